// WebRTC plumbing shared by publishing and viewing: the room's ICE servers, waiting for ICE
// gathering before an offer is sent, the publisher's video codec order, and the
// connection-quality hint read from getStats().

import { t } from "../i18n.js";

const GATHER_MS = 2000;

/** The RTCPeerConnection configuration: the ICE servers the room's state names. */
export function iceConfig(room) {
  return { iceServers: (room.state && room.state.ice_servers) || [] };
}

/** Resolve when ICE gathering is complete, or after GATHER_MS with what was gathered. */
export function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, GATHER_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** An H.264 codec the media server forwards: packetization-mode 1 (non-interleaved). */
function isH264(codec) {
  return codec.mimeType.toLowerCase() === "video/h264" && /packetization-mode=1/.test(codec.sdpFmtpLine || "");
}

/**
 * Offer H.264 first on a publishing video transceiver where this browser can send it (the
 * media server forwards the first codec offered that it knows, to every viewer as it is);
 * otherwise leave the browser's order, VP8 first.
 */
export function preferH264(transceiver) {
  const caps = window.RTCRtpSender && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
  if (!caps || typeof transceiver.setCodecPreferences !== "function") return;
  const h264 = caps.codecs.filter(isH264);
  if (!h264.length) return;
  try {
    transceiver.setCodecPreferences([...h264, ...caps.codecs.filter((c) => !isH264(c))]);
  } catch {
    // A browser that refuses the order keeps its own: VP8 first, which is forwarded as well.
  }
}

// Thresholds for the hint: packet loss (ratio), round-trip time (s), frames per second.
function grade(lossRatio, rtt, fps, limited) {
  if (lossRatio > 0.08 || rtt > 0.5 || (fps !== null && fps < 5)) return "poor";
  if (lossRatio > 0.02 || rtt > 0.25 || (fps !== null && fps < 12) || limited) return "fair";
  return "good";
}

/**
 * Read `entry.pc`'s statistics (inbound: a viewer; else a publisher) and grade them;
 * `expectVideo`: the viewer was answered with a video track.
 * Keeps the counters in `entry.stats` to compare with next time: {lost, packets, frames,
 * height (of the last video frame), audio (audio packets), level (the connection's grade
 * alone, whether or not video moves)}.
 * Returns [level, text]: level is good | fair | poor | wait.
 */
export async function measure(entry, inbound, expectVideo = false) {
  const report = await entry.pc.getStats();
  let rtt = 0;
  let lost = 0;
  let packets = 0;
  let audio = 0;
  let fps = null;
  let frames = null;
  let height = 0;
  let limited = false;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") rtt = s.currentRoundTripTime || rtt;
    if (inbound && s.type === "inbound-rtp") {
      lost += s.packetsLost || 0;
      packets += s.packetsReceived || 0;
      if (s.kind === "audio") audio += s.packetsReceived || 0;
      if (s.kind === "video") [fps, frames, height] = [s.framesPerSecond ?? null, s.framesDecoded || 0, s.frameHeight || 0];
    }
    if (!inbound && s.type === "remote-inbound-rtp") lost = Math.max(lost, s.fractionLost || 0);
    if (!inbound && s.type === "outbound-rtp" && s.kind === "video") {
      // a simulcasting camera has one per encoding: the best frame rate, any one limited
      if (s.framesPerSecond !== undefined) fps = Math.max(fps ?? 0, s.framesPerSecond);
      limited ||= s.qualityLimitationReason === "bandwidth";
    }
  });
  const before = entry.stats || { lost: 0, packets: 0, frames: 0 };
  const ratio = inbound ? Math.max(0, lost - before.lost) / Math.max(1, packets - before.packets + lost - before.lost) : lost;
  const moving = !inbound || (frames !== null && frames > before.frames);
  entry.stats = { lost, packets, frames, height, audio, level: grade(ratio, rtt, moving ? fps : null, limited) };
  if (inbound && (frames === 0 || (frames === null && expectVideo))) return ["wait", t("Waiting for video…")];
  if (inbound && frames !== null && frames === before.frames) return ["poor", t("Video paused")];
  if (inbound && !packets) return ["wait", t("Connecting…")];
  const level = grade(ratio, rtt, fps, limited);
  return [level, { good: t("Good connection"), fair: t("Fair connection"), poor: t("Poor connection") }[level]];
}
