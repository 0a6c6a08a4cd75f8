// Live media: publish camera + mic or a shared screen (each in its own RTCPeerConnection with
// send-only transceivers), and keep the player in step with the room's list of streams.
//
// When the server forgets streams (a reconnect, a restarted media worker: media.reset) this
// client publishes again what it was publishing and views again what is listed.

import { announce, toast } from "./dom.js";
import { gathered, iceConfig, measure } from "./peer.js";
import * as player from "./player.js";
import { makeTile, play, removeTile, setQuality } from "./tiles.js";

let room;
const own = new Map(); // source ("camera" | "screen") -> {source, media, pc, id, tile, busy, seen, stats}
const $ = (id) => document.getElementById(id);

const STATS_MS = 2500;
const RETRY_MS = 1500;
const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } };

function note(text) {
  const box = $("media-note");
  box.textContent = text;
  box.hidden = !text;
}

// --- publishing ---

const DEVICE_ERRORS = {
  NotAllowedError: "Camera and microphone access is blocked. Allow it in your browser's site settings to be seen and heard. You can still watch and listen.",
  SecurityError: "Camera and microphone access is blocked. Allow it in your browser's site settings to be seen and heard. You can still watch and listen.",
  NotFoundError: "No camera or microphone was found. You can still watch and listen.",
  NotReadableError: "Your camera or microphone is in use by another application, or could not be started. You can still watch and listen.",
};

function explain(err) {
  return DEVICE_ERRORS[err && err.name] || `Your camera and microphone could not be started (${err && err.message}). You can still watch and listen.`;
}

/** Camera and mic; if one is missing, whichever exists. */
async function cameraAndMic() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: VIDEO });
  } catch (err) {
    if (err.name !== "NotFoundError" && err.name !== "OverconstrainedError") throw err;
    for (const [constraints, missing] of [[{ audio: true }, "camera"], [{ video: VIDEO }, "microphone"]]) {
      try {
        const media = await navigator.mediaDevices.getUserMedia(constraints);
        note(`No ${missing} was found: you are sending your ${missing === "camera" ? "microphone" : "camera"} only.`);
        return media;
      } catch {
        // try the other one
      }
    }
    throw err;
  }
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    note("This page needs a secure (https) connection to use your camera and microphone. You can still watch and listen.");
    return;
  }
  note("");
  $("camera-btn").disabled = true;
  try {
    await publish("camera", await cameraAndMic());
  } catch (err) {
    note(explain(err));
  } finally {
    $("camera-btn").disabled = false;
    renderControls();
  }
}

async function startScreen() {
  let media;
  try {
    media = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    if (err.name !== "NotAllowedError") note(`Screen sharing could not start (${err.message}).`);
    return; // cancelled by the user: nothing to say
  }
  media.getVideoTracks()[0].addEventListener("ended", () => stopPublishing("screen"));
  await publish("screen", media);
  renderControls();
}

async function publish(source, media) {
  const label = source === "screen" ? "Your screen" : "You";
  const entry = { source, media, pc: null, id: null, busy: false, tile: makeTile(label, source, true) };
  entry.tile.video.srcObject = media;
  if (media.getVideoTracks().length) entry.tile.fig.classList.add("has-video-track");
  play(entry.tile.video);
  own.set(source, entry);
  await negotiate(entry);
  if (entry.id) announce(source === "screen" ? "You are sharing your screen." : "You are live.");
}

async function negotiate(entry) {
  entry.busy = true;
  entry.id = null;
  entry.seen = false;
  if (entry.pc) entry.pc.close();
  const pc = new RTCPeerConnection(iceConfig(room));
  entry.pc = pc;
  entry.stats = null;
  setQuality(entry.tile, "wait", "Connecting…");
  for (const track of entry.media.getTracks()) {
    pc.addTransceiver(track, { direction: "sendonly", streams: [entry.media] });
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
  } catch (err) {
    if (room.status === "live" && own.get(entry.source) === entry) {
      // Refused (no longer allowed, media server down): stop rather than retry forever.
      note(`Could not go live: ${err.message}`);
      stopPublishing(entry.source, false);
    } // else offline: the next state after reconnecting publishes again
  } finally {
    entry.busy = false;
    reconcile();
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
  const muted = tracks.some((t) => t.enabled);
  for (const t of tracks) t.enabled = !muted;
  renderControls();
  announce(muted ? "Microphone muted." : "Microphone on.");
}

function renderControls() {
  const allowed = Boolean(room.state && room.state.me.can_publish);
  $("publish-controls").hidden = !allowed;
  const camera = own.get("camera");
  const cameraBtn = $("camera-btn");
  cameraBtn.textContent = camera ? "Stop camera" : "Start camera & mic";
  cameraBtn.setAttribute("aria-pressed", String(Boolean(camera)));
  const mic = $("mic-btn");
  const audio = camera ? camera.media.getAudioTracks() : [];
  mic.hidden = !audio.length;
  const muted = audio.length > 0 && audio.every((t) => !t.enabled);
  mic.textContent = muted ? "Unmute mic" : "Mute mic";
  mic.setAttribute("aria-pressed", String(muted));
  const screenBtn = $("screen-btn");
  screenBtn.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  screenBtn.textContent = own.has("screen") ? "Stop sharing" : "Share screen";
  screenBtn.setAttribute("aria-pressed", String(own.has("screen")));
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
  for (const id of viewing) if (!listed.has(id) || isOwn({ id })) player.close(id);
  for (const stream of streams) {
    if (!viewing.has(stream.id) && !isOwn(stream)) player.view(stream);
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
  if (!allowed) for (const source of [...own.keys()]) stopPublishing(source, false);
  renderControls();
}

export function init(r) {
  room = r;
  $("camera-btn").addEventListener("click", () => (own.has("camera") ? stopPublishing("camera") : startCamera()));
  $("screen-btn").addEventListener("click", () => (own.has("screen") ? stopPublishing("screen") : startScreen()));
  $("mic-btn").addEventListener("click", toggleMic);
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
    toast(data && data.reason ? `Reconnecting video: ${data.reason}` : "Reconnecting video…");
    reconcile(true);
  });
  room.on("local:can_publish", onPermission);
  setInterval(() => {
    player.measureAll();
    measureOwn();
  }, STATS_MS);
}
