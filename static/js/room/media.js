// Live media: publish camera + mic or a shared screen (each in its own RTCPeerConnection with
// send-only transceivers), and keep the player in step with the room's list of streams.
//
// When the server forgets streams (a reconnect, a restarted media worker: media.reset) this
// client publishes again what it was publishing and views again what is listed. When a media
// worker that served some views dies (media.moved), those views are asked for again.

import * as devices from "./devices.js";
import { t } from "../i18n.js";
import { announce, toast } from "./dom.js";
import { gathered, iceConfig, measure, preferH264 } from "./peer.js";
import * as player from "./player.js";
import * as quality from "./quality.js";
import { makeTile, play, removeTile, setQuality } from "./tiles.js";
import * as tier from "./tier.js";

let room;
const own = new Map(); // source ("camera" | "screen") -> {source, media, pc, id, tile, busy, seen, stats}
let preview = null; // {media, tile}: the camera shown to the user only, before going live
const $ = (id) => document.getElementById(id);

const STATS_MS = 2500;
const RETRY_MS = 1500;
const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } };
// The camera's encodings, lowest first (a camera SIMULCAST_MIN_HEIGHT pixels tall or more):
// half size for weak connections, full size for the others.
const SIMULCAST = [
  { rid: "l", scaleResolutionDownBy: 2, maxBitrate: 150000 },
  { rid: "h", maxBitrate: 900000 },
];
const SIMULCAST_MIN_HEIGHT = 360;
const SINGLE_BITRATE = 900000; // the one encoding sent to a media server without simulcast

function note(text) {
  const box = $("media-note");
  box.textContent = text;
  box.hidden = !text;
}

// --- publishing ---

const BLOCKED = t("Camera and microphone access is blocked. Allow it in your browser's site settings to be seen and heard. You can still watch and listen.");
const DEVICE_ERRORS = {
  NotAllowedError: BLOCKED,
  SecurityError: BLOCKED,
  NotFoundError: t("No camera or microphone was found. You can still watch and listen."),
  NotReadableError: t("Your camera or microphone is in use by another application, or could not be started. You can still watch and listen."),
};

function explain(err) {
  return DEVICE_ERRORS[err && err.name] || t("Your camera and microphone could not be started (%(error)s). You can still watch and listen.", { error: err && err.message });
}

/** Camera and mic (the chosen devices, see devices.js); if one is missing, whichever exists. */
async function cameraAndMic() {
  const found = await devices.refresh();
  if (!found.videoinput && !found.audioinput) {
    throw new DOMException("no camera or microphone", "NotFoundError");
  }
  const video = devices.constraint("video", VIDEO);
  const audio = devices.constraint("audio");
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: found.audioinput ? audio : false,
      video: found.videoinput ? video : false,
    });
  } catch (err) {
    if (err.name !== "NotFoundError" && err.name !== "OverconstrainedError") throw err;
    for (const [constraints, missing] of [[{ audio }, "camera"], [{ video }, "microphone"]]) {
      try {
        const media = await navigator.mediaDevices.getUserMedia(constraints);
        note(missing === "camera"
          ? t("No camera was found: you are sending your microphone only.")
          : t("No microphone was found: you are sending your camera only."));
        return media;
      } catch {
        // try the other one
      }
    }
    throw err;
  }
}

/** The camera and mic as a stream, or null after saying why not. */
async function acquire() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    note(t("This page needs a secure (https) connection to use your camera and microphone. You can still watch and listen."));
    return null;
  }
  note("");
  try {
    const media = await cameraAndMic();
    devices.rememberTracks(media);
    devices.refresh(); // labels are readable now that access is allowed
    return media;
  } catch (err) {
    note(explain(err));
    return null;
  }
}

/** Start camera & mic: publish the preview if there is one, else the chosen devices. */
async function startCamera() {
  $("camera-btn").disabled = true;
  try {
    if (preview) {
      const { media, tile } = preview;
      preview = null;
      await publish("camera", media, tile);
    } else {
      const media = await acquire();
      if (media && room.state.me.can_publish) await publish("camera", media);
      else if (media) for (const track of media.getTracks()) track.stop();
    }
  } finally {
    $("camera-btn").disabled = false;
    renderControls();
  }
}

/** A local preview before going live: the user's own tile, marked as seen by them only. */
async function startPreview() {
  $("preview-btn").disabled = true;
  const media = await acquire();
  $("preview-btn").disabled = false;
  if (!media) return renderControls();
  if (preview || own.has("camera") || !room.state.me.can_publish) {
    for (const track of media.getTracks()) track.stop();
    return renderControls();
  }
  const tile = makeTile(t("You (preview: only you see this)"), "camera", true);
  tile.video.srcObject = media;
  if (media.getVideoTracks().length) tile.fig.classList.add("has-video-track");
  setQuality(tile, "wait", t("Not live"));
  play(tile.video);
  preview = { media, tile };
  renderControls();
  announce(t("Preview on: only you see it. Choose Go live to be seen."));
}

function stopPreview() {
  if (!preview) return;
  for (const track of preview.media.getTracks()) track.stop();
  removeTile(preview.tile);
  preview = null;
  renderControls();
}

/**
 * Use another camera or microphone. While live, the new track replaces the old one on the
 * publication's sender (RTCRtpSender.replaceTrack: no renegotiation, viewers keep watching);
 * in preview, the preview switches. With neither, the choice waits for the next start.
 */
async function switchDevice(kind, deviceId) {
  const entry = own.get("camera");
  const stream = entry ? entry.media : preview && preview.media;
  if (!stream || !deviceId) return;
  const trackKind = kind === "videoinput" ? "video" : "audio";
  const old = stream.getTracks().find((track) => track.kind === trackKind) || null;
  if (old && old.getSettings().deviceId === deviceId) return;
  const exact = { deviceId: { exact: deviceId } };
  let fresh;
  try {
    const constraints = trackKind === "video" ? { video: { ...VIDEO, ...exact } } : { audio: exact };
    fresh = (await navigator.mediaDevices.getUserMedia(constraints)).getTracks()[0];
  } catch (err) {
    note(trackKind === "video"
      ? t("That camera could not be started (%(error)s).", { error: err.message })
      : t("That microphone could not be started (%(error)s).", { error: err.message }));
    return;
  }
  if (old) fresh.enabled = old.enabled; // a muted microphone stays muted
  const sender = entry && entry.pc && entry.pc.getSenders().find((s) => s.track && s.track.kind === trackKind);
  if (old) {
    stream.removeTrack(old);
    old.stop();
  }
  stream.addTrack(fresh);
  if (sender) await sender.replaceTrack(fresh);
  else if (entry && !entry.busy) negotiate(entry); // a kind it had none of: a new offer
  const tile = entry ? entry.tile : preview.tile;
  tile.fig.classList.toggle("has-video-track", stream.getVideoTracks().length > 0);
  note("");
  renderControls();
  const other = trackKind === "video" ? t("another camera") : t("another microphone");
  announce(t("Now using %(device)s.", { device: fresh.label || other }));
}

/** The words under the pickers when a kind of device is missing. */
function renderDeviceNote() {
  const found = devices.counts();
  let text = "";
  if (!found.videoinput && !found.audioinput) text = t("No camera or microphone found. You can still watch and listen.");
  else if (!found.videoinput) text = t("No camera found: others can hear you but not see you.");
  else if (!found.audioinput) text = t("No microphone found: others can see you but not hear you.");
  const box = $("device-note");
  box.textContent = text;
  box.hidden = !text;
}

async function startScreen() {
  let media;
  try {
    media = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    if (err.name !== "NotAllowedError") note(t("Screen sharing could not start (%(error)s).", { error: err.message }));
    return; // cancelled by the user: nothing to say
  }
  const [screen] = media.getVideoTracks();
  screen.addEventListener("ended", () => stopPublishing("screen"));
  // Slides and text stay readable on a weak link: sharp pictures before frame rate.
  if ("contentHint" in screen) screen.contentHint = "detail";
  await publish("screen", media);
  renderControls();
}

async function publish(source, media, tile = null) {
  const label = source === "screen" ? t("Your screen") : t("You");
  if (tile) tile.fig.querySelector(".name").textContent = label;
  else {
    tile = makeTile(label, source, true);
    tile.video.srcObject = media;
    if (media.getVideoTracks().length) tile.fig.classList.add("has-video-track");
    play(tile.video);
  }
  const entry = { source, media, pc: null, id: null, busy: false, tile };
  own.set(source, entry);
  room.local("local:live", source);
  await negotiate(entry);
  if (entry.id) announce(source === "screen" ? t("You are sharing your screen.") : t("You are live."));
}

async function negotiate(entry) {
  entry.busy = true;
  entry.id = null;
  entry.seen = false;
  if (entry.pc) entry.pc.close();
  const pc = new RTCPeerConnection(iceConfig(room));
  entry.pc = pc;
  entry.stats = null;
  setQuality(entry.tile, "wait", t("Connecting…"));
  for (const track of entry.media.getTracks()) {
    const transceiver = addTrack(pc, entry, track);
    if (track.kind === "video" && room.state && room.state.prefer_h264) preferH264(transceiver);
    if (track.kind === "video" && entry.source === "screen") keepResolution(transceiver.sender);
  }
  pc.addEventListener("connectionstatechange", () => {
    if (pc === entry.pc && pc.connectionState === "failed" && own.get(entry.source) === entry) {
      setTimeout(() => { if (pc === entry.pc && !entry.busy) negotiate(entry); }, RETRY_MS);
    }
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const reply = await room.send("media.publish", { sdp: pc.localDescription.sdp, source: entry.source });
    if (own.get(entry.source) !== entry || pc !== entry.pc) {
      if (reply.ok) room.send("media.unpublish", { stream: reply.stream }); // stopped meanwhile
      return;
    }
    if (!reply.ok) throw new Error(reply.error);
    entry.id = reply.stream;
    await pc.setRemoteDescription({ type: reply.type, sdp: reply.sdp });
    await unlessSimulcast(pc);
  } catch (err) {
    if (room.status === "live" && own.get(entry.source) === entry) {
      // Refused (no longer allowed, media server down): stop rather than retry forever.
      note(t("Could not go live: %(error)s", { error: err.message }));
      stopPublishing(entry.source, false);
    } // else offline: the next state after reconnecting publishes again
  } finally {
    entry.busy = false;
    reconcile();
  }
}

/**
 * A send-only transceiver for `track`. A camera tall enough to halve sends two encodings
 * (simulcast): the media server forwards each viewer the one its connection carries. A shared
 * screen, a small camera, or a browser that refuses the encodings sends one.
 */
function addTrack(pc, entry, track) {
  const init = { direction: "sendonly", streams: [entry.media] };
  const height = track.kind === "video" && track.getSettings ? track.getSettings().height || 0 : 0;
  if (entry.source === "camera" && height >= SIMULCAST_MIN_HEIGHT) {
    try {
      return pc.addTransceiver(track, { ...init, sendEncodings: SIMULCAST.map((e) => ({ ...e })) });
    } catch {
      // no simulcast in this browser: one encoding
    }
  }
  return pc.addTransceiver(track, init);
}

/**
 * A media server that answered without simulcast receives one encoding: the browser keeps
 * the first (low) one, which then gets the full picture and bitrate.
 */
async function unlessSimulcast(pc) {
  for (const sender of pc.getSenders()) {
    if (!sender.track || sender.track.kind !== "video") continue;
    const parameters = sender.getParameters();
    const [only] = parameters.encodings || [];
    if (!only || parameters.encodings.length !== 1 || (only.scaleResolutionDownBy || 1) === 1) continue;
    only.scaleResolutionDownBy = 1;
    only.maxBitrate = SINGLE_BITRATE;
    try {
      await sender.setParameters(parameters);
    } catch {
      // keep what the browser chose
    }
  }
}

/** A shared screen lowers its frame rate, not its resolution, when the bandwidth runs short. */
async function keepResolution(sender) {
  try {
    const parameters = sender.getParameters();
    parameters.degradationPreference = "maintain-resolution";
    await sender.setParameters(parameters);
  } catch {
    // a browser without the setting: its own default
  }
}

async function stopPublishing(source, tell = true) {
  const entry = own.get(source);
  if (!entry) return;
  own.delete(source);
  for (const track of entry.media.getTracks()) track.stop();
  if (entry.pc) entry.pc.close();
  removeTile(entry.tile);
  renderControls();
  if (tell && entry.id) await room.send("media.unpublish", { stream: entry.id });
}

function toggleMic() {
  const entry = own.get("camera");
  if (!entry) return;
  const tracks = entry.media.getAudioTracks();
  const muted = tracks.some((track) => track.enabled);
  for (const track of tracks) track.enabled = !muted;
  renderControls();
  announce(muted ? t("Microphone muted.") : t("Microphone on."));
}

function renderControls() {
  const allowed = Boolean(room.state && room.state.me.can_publish);
  $("publish-controls").hidden = !allowed;
  $("devices").hidden = !allowed;
  const found = devices.counts();
  const none = !found.videoinput && !found.audioinput;
  const camera = own.get("camera");
  const cameraBtn = $("camera-btn");
  cameraBtn.textContent = camera ? t("Stop camera") : preview ? t("Go live") : t("Start camera & mic");
  cameraBtn.setAttribute("aria-pressed", String(Boolean(camera)));
  if (!camera) cameraBtn.disabled = none;
  const previewBtn = $("preview-btn");
  previewBtn.hidden = Boolean(camera);
  previewBtn.textContent = preview ? t("Stop preview") : t("Preview camera");
  previewBtn.setAttribute("aria-pressed", String(Boolean(preview)));
  previewBtn.disabled = none;
  const mic = $("mic-btn");
  const audio = camera ? camera.media.getAudioTracks() : [];
  mic.hidden = !audio.length;
  const muted = audio.length > 0 && audio.every((track) => !track.enabled);
  mic.textContent = muted ? t("Unmute mic") : t("Mute mic");
  mic.setAttribute("aria-pressed", String(muted));
  const screenBtn = $("screen-btn");
  screenBtn.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  screenBtn.textContent = own.has("screen") ? t("Stop sharing") : t("Share screen");
  screenBtn.setAttribute("aria-pressed", String(own.has("screen")));
  renderDeviceNote();
}

// --- keeping in step with the room's list of streams ---

function isOwn(stream) {
  for (const entry of own.values()) {
    if (entry.id === stream.id) return true;
    // A publish whose answer has not arrived yet: its stream id comes with the answer.
    if (entry.busy && stream.user_id === room.userId && stream.source === entry.source) return true;
  }
  return false;
}

/**
 * Match the room's list of streams: view new ones, drop ended ones, and publish again what
 * the server forgot. `renew` (a fresh state, a media reset) republishes whatever is not
 * listed; otherwise only a stream the list showed before and no longer does.
 */
function reconcile(renew = false) {
  if (!room.state) return;
  const streams = room.state.streams;
  const listed = new Set(streams.map((s) => s.id));
  const viewing = new Set(player.viewing());
  const lowData = tier.active(); // the HLS tier plays the broadcast instead: no WebRTC views
  quality.show(!lowData);
  for (const id of viewing) if (lowData || !listed.has(id) || isOwn({ id })) player.close(id);
  for (const stream of streams) {
    if (!lowData && !viewing.has(stream.id) && !isOwn(stream)) player.view(stream);
  }
  if (!room.socket.connected) return;
  for (const entry of own.values()) {
    if (entry.busy) continue;
    if (listed.has(entry.id)) entry.seen = true;
    else if (renew || entry.seen) negotiate(entry);
  }
}

async function measureOwn() {
  for (const entry of [...own.values()]) {
    if (!entry.pc || entry.pc.connectionState !== "connected") continue;
    try {
      const [level, text] = await measure(entry, false);
      setQuality(entry.tile, level, text);
    } catch {
      // closed meanwhile
    }
  }
}

function onPermission(allowed) {
  if (!allowed) {
    for (const source of [...own.keys()]) stopPublishing(source, false);
    stopPreview();
  }
  renderControls();
}

export function init(r) {
  room = r;
  $("camera-btn").addEventListener("click", () => (own.has("camera") ? stopPublishing("camera") : startCamera()));
  $("screen-btn").addEventListener("click", () => (own.has("screen") ? stopPublishing("screen") : startScreen()));
  $("mic-btn").addEventListener("click", toggleMic);
  $("preview-btn").addEventListener("click", () => (preview ? stopPreview() : startPreview()));
  devices.init((kind, deviceId) => (kind ? switchDevice(kind, deviceId) : renderControls()));
  devices.refresh();
  player.init(room);
  room.onState(() => {
    onPermission(room.state.me.can_publish);
    reconcile(true);
  });
  room.on("media.streams", (data) => {
    room.state.streams = data.streams;
    reconcile();
  });
  room.on("media.reset", (data) => {
    // The media worker restarted: every connection to it is gone.
    for (const id of player.viewing()) player.close(id);
    toast(data && data.reason ? t("Reconnecting video: %(reason)s", { reason: data.reason }) : t("Reconnecting video…"));
    reconcile(true);
  });
  room.on("media.moved", (data) => player.moved(data && data.worker));
  room.on("local:can_publish", onPermission);
  room.on("local:tier", () => reconcile());
  room.on("room.ended", () => {
    // The presenter ended the session: nothing is sent or received any more.
    for (const source of [...own.keys()]) stopPublishing(source, false);
    if (preview) stopPreview();
    for (const id of player.viewing()) player.close(id);
  });
  setInterval(() => {
    player.measureAll();
    measureOwn();
  }, STATS_MS);
}
