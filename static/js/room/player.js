// The player: each stream of the room in its own RTCPeerConnection with receive-only
// transceivers, retried when it fails or when its video never starts. A view the server
// refuses (every media server full) says why in the tile and asks again later; a view whose
// media worker died (media.moved) asks again at once and is placed on another. Refusals,
// failures and connections are told to tier.js ("local:view_refused", "local:view_failed",
// "local:view_connected"), which may move the page to the HLS tier.

import { t } from "../i18n.js";
import { gathered, iceConfig, measure } from "./peer.js";
import { makeTile, play, removeTile, setNotice, setQuality } from "./tiles.js";

let room;
const viewers = new Map(); // stream id -> {stream, pc, tile, tries, closed, stats, connectedAt, worker}
const $ = (id) => document.getElementById(id);

const RETRY_MS = 1500;
const REFUSED_MS = 20000; // a view refused MAX_TRIES times asks again this often, while listed
const STALL_MS = 6000;
const MAX_TRIES = 5;

/** Start viewing `stream` (a STREAM of the room's state). */
export function view(stream) {
  const label = stream.source === "screen" ? t("%(name)s (screen)", { name: stream.name }) : stream.name;
  const v = { stream, pc: null, tile: makeTile(label, stream.source, false), tries: 0, closed: false };
  v.tile.fig.dataset.stream = stream.id;
  v.tile.fig.dataset.user = String(stream.user_id);
  viewers.set(stream.id, v);
  connect(v);
}

/** The ids of the streams being viewed. */
export function viewing() {
  return [...viewers.keys()];
}

export function close(id) {
  const v = viewers.get(id);
  if (!v) return;
  v.closed = true;
  viewers.delete(id);
  if (v.pc) v.pc.close();
  removeTile(v.tile);
}

async function connect(v) {
  const pc = new RTCPeerConnection(iceConfig(room));
  v.pc = pc;
  v.stats = null;
  v.connectedAt = null;
  v.tile.fig.classList.remove("has-video-track");
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const media = new MediaStream();
  v.tile.video.srcObject = media;
  pc.addEventListener("track", (event) => {
    media.addTrack(event.track);
    if (event.track.kind === "video") v.tile.fig.classList.add("has-video-track");
    play(v.tile.video);
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc !== v.pc) return;
    if (pc.connectionState === "connected") {
      v.connectedAt = Date.now();
      room.local("local:view_connected", { stream: v.stream }); // tier.js
    }
    if (pc.connectionState === "failed") retry(v);
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (v.closed || pc !== v.pc) return;
    const reply = await room.send("media.view", { stream: v.stream.id, sdp: pc.localDescription.sdp });
    if (v.closed || pc !== v.pc) return;
    if (!reply.ok) return refused(v, reply.error, reply.code);
    v.worker = reply.worker;
    setNotice(v.tile, "");
    await pc.setRemoteDescription({ type: reply.type, sdp: reply.sdp });
  } catch (err) {
    if (!v.closed && pc === v.pc) retry(v, err);
  }
}

/** The server said no (every media server is full, one is not reachable): the tile says
 * so, never a black picture, and the view is asked for again, soon at first, then every
 * REFUSED_MS for as long as the stream is listed. */
function refused(v, error, code) {
  if (v.pc) v.pc.close();
  v.pc = null;
  v.worker = null;
  v.tries += 1;
  setNotice(v.tile, error || t("Cannot connect"));
  setQuality(v.tile, "poor", t("Cannot connect"));
  setTimeout(() => {
    if (!v.closed && !v.pc) connect(v);
  }, v.tries > MAX_TRIES ? REFUSED_MS : RETRY_MS * v.tries);
  room.local("local:view_refused", { stream: v.stream, error, code, tries: v.tries }); // tier.js
}

/** The media worker `worker` died: the views it served ask again (placed on another). */
export function moved(worker) {
  for (const v of viewers.values()) {
    if (v.closed || !worker || v.worker !== worker) continue;
    if (v.pc) v.pc.close();
    v.pc = null;
    v.worker = null;
    v.tries = 0;
    setQuality(v.tile, "wait", t("Reconnecting…"));
    connect(v);
  }
}

function retry(v, err) {
  if (v.pc) v.pc.close();
  v.pc = null;
  v.tries += 1;
  if (v.tries > MAX_TRIES) {
    setQuality(v.tile, "poor", err && err.message ? t("Cannot connect: %(error)s", { error: err.message }) : t("Cannot connect"));
  } else {
    setQuality(v.tile, "wait", t("Reconnecting…"));
    setTimeout(() => {
      if (!v.closed && !v.pc) connect(v);
    }, RETRY_MS * v.tries);
  }
  room.local("local:view_failed", { stream: v.stream, tries: v.tries }); // tier.js: HLS instead?
}

/** A viewer connected for STALL_MS whose video (the server answered with one) has not shown
 * a single frame asks again: a new connection makes the server ask the publisher for a fresh
 * keyframe. */
function checkStalled(v) {
  const frames = v.stats ? v.stats.frames : null; // null: no video packet has arrived yet
  const hasVideo = v.tile.fig.classList.contains("has-video-track");
  if (frames > 0 || (!hasVideo && v.stats && v.stats.packets > 0)) {
    v.tries = 0; // playing (or audio only, and arriving)
    return;
  }
  if (hasVideo && v.connectedAt && Date.now() - v.connectedAt > STALL_MS) {
    retry(v, new Error(t("no video arrived")));
  }
}

/** Update every tile's quality hint; restart viewers whose video never started. */
export async function measureAll() {
  for (const v of [...viewers.values()]) {
    if (!v.pc || v.pc.connectionState !== "connected") continue;
    try {
      const expectVideo = v.tile.fig.classList.contains("has-video-track");
      const [level, text] = await measure(v, true, expectVideo);
      setQuality(v.tile, level, text);
      checkStalled(v);
    } catch {
      // closed meanwhile
    }
  }
}

function soundOn() {
  for (const v of viewers.values()) {
    v.tile.video.muted = false;
    v.tile.video.play().catch(() => {});
  }
  $("sound-btn").hidden = true;
}

export function init(r) {
  room = r;
  $("sound-btn").addEventListener("click", soundOn);
}
