// The player: each stream of the room in its own RTCPeerConnection with receive-only
// transceivers, retried when it fails or when its video never starts. A view the server
// refuses (every media server full) says why in the tile and asks again later; a view whose
// media worker died (media.moved) asks again at once and is placed on another. Refusals,
// failures and connections are told to tier.js ("local:view_refused", "local:view_failed",
// "local:view_connected"), which may move the page to the HLS tier.
//
// Each view asks for the viewer's choice of quality (quality.js) and follows it when it
// changes (media.quality). The tile's hint says what the viewer gets and why: their own
// choice, or in Auto a smaller picture or sound only because the connection is weak. Video
// that stops while the sound goes on is such a state, not a failure: it is never reconnected.

import { t } from "../i18n.js";
import { toast } from "./dom.js";
import { gathered, iceConfig, measure } from "./peer.js";
import * as quality from "./quality.js";
import { makeTile, play, removeTile, setNotice, setQuality } from "./tiles.js";

let room;
// stream id -> {stream, pc, tile, tries, closed, stats, connectedAt, worker, peer, quality,
//   askedAt, seen: {frames, audio, frameAt, hearing}, best (tallest frame height seen)}
const viewers = new Map();
const $ = (id) => document.getElementById(id);

const RETRY_MS = 1500;
const REFUSED_MS = 20000; // a view refused MAX_TRIES times asks again this often, while listed
const STALL_MS = 6000;
const MAX_TRIES = 5;
// Auto: no new video frame this long while the sound keeps arriving is "audio only" (a video
// that never started: STALL_MS).
const SOUND_ONLY_MS = 3000;
// A view whose sound arrives but whose video never started is reconnected this many times
// (a fresh connection asks for a keyframe), then kept: sound without video beats nothing.
const SOUND_RETRIES = 1;

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
  v.peer = null;
  v.seen = { frames: 0, audio: 0, frameAt: null, hearing: false };
  v.tile.fig.classList.remove("has-video-track", "audio-only");
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
    v.quality = quality.current();
    const request = { stream: v.stream.id, sdp: pc.localDescription.sdp, quality: v.quality };
    const reply = await room.send("media.view", request);
    if (v.closed || pc !== v.pc) return;
    if (!reply.ok) return refused(v, reply.error, reply.code);
    v.worker = reply.worker;
    v.peer = reply.peer;
    setNotice(v.tile, "");
    await pc.setRemoteDescription({ type: reply.type, sdp: reply.sdp });
    if (quality.current() !== v.quality) prefer(v, quality.current()); // changed meanwhile
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
 * keyframe. Not when the viewer chose sound only, nor (after SOUND_RETRIES) while the sound
 * arrives: the media server may hold the video back from a weak connection. */
function checkStalled(v) {
  const frames = v.stats ? v.stats.frames : null; // null: no video packet has arrived yet
  const hasVideo = v.tile.fig.classList.contains("has-video-track");
  if (v.quality === "audio" || frames > 0 || (!hasVideo && v.stats && v.stats.packets > 0)) {
    v.tries = 0; // playing (or audio only, and arriving)
    return;
  }
  const since = Math.max(v.connectedAt || 0, v.askedAt || 0); // video asked for since then
  if (hasVideo && v.connectedAt && Date.now() - since > STALL_MS) {
    if (v.seen.hearing && v.tries >= SOUND_RETRIES) return;
    retry(v, new Error(t("no video arrived")));
  }
}

/** Note what moved since the last measurement: new frames, new sound, the tallest picture. */
function follow(v, now) {
  const { frames, audio, height } = v.stats;
  if (frames > v.seen.frames) [v.seen.frames, v.seen.frameAt] = [frames, now];
  v.seen.hearing = audio > v.seen.audio;
  v.seen.audio = audio;
  if (height > (v.best || 0)) v.best = height;
}

/** Sound arrives, video has not for a while: what Auto does on a connection too weak for any
 * picture. Video asked for since the last frame (a new connection, a new choice) waits for a
 * keyframe first: STALL_MS. */
function soundOnly(v, now) {
  const asked = Math.max(v.connectedAt || now, v.askedAt || 0);
  const last = v.seen.frameAt || 0;
  const [since, wait] = last > asked ? [last, SOUND_ONLY_MS] : [asked, STALL_MS];
  return v.seen.hearing && now - since >= wait;
}

/** What the viewer gets and why, from the view's statistics ([level, text] of measure()):
 * their own choice when it is not Auto; in Auto, sound only or a smaller picture than this
 * view has shown when the connection is weak, else full quality. */
function explain(v, [level, text], now) {
  const chosen = v.quality;
  const silent = chosen === "audio" || soundOnly(v, now);
  v.tile.fig.classList.toggle("audio-only", silent); // the avatar, not a frozen picture
  if (chosen === "audio") return [v.stats.level, t("Audio only (your choice)")];
  if (silent && chosen === "auto") return ["poor", t("Your connection is weak: audio only. Slides continue.")];
  if (level === "wait" || silent) return [level, text];
  if (chosen === "low") return [v.stats.level, t("Low quality (your choice)")];
  if (chosen === "high") return [v.stats.level, t("High quality (your choice)")];
  if (v.stats.height && v.stats.height < v.best) return ["fair", t("Lower quality: your connection is slow")];
  return level === "good" ? [level, t("Full quality")] : [level, text];
}

/** Update every tile's quality hint; restart viewers whose video never started. */
export async function measureAll() {
  for (const v of [...viewers.values()]) {
    if (!v.pc || v.pc.connectionState !== "connected") continue;
    try {
      const expectVideo = v.tile.fig.classList.contains("has-video-track") && v.quality !== "audio";
      const measured = await measure(v, true, expectVideo);
      const now = Date.now();
      follow(v, now);
      const [level, text] = explain(v, measured, now);
      setQuality(v.tile, level, text);
      checkStalled(v);
    } catch {
      // closed meanwhile
    }
  }
}

/** Ask the media worker serving `v` to send it `choice` from now on (media.quality). */
async function prefer(v, choice) {
  const peer = v.peer;
  const reply = await room.send("media.quality", { stream: v.stream.id, peer, quality: choice });
  if (v.closed || v.peer !== peer) return; // a new connection asks for the choice itself
  if (!reply.ok) {
    toast(t("The video quality could not be changed: %(error)s", { error: reply.error }));
    return;
  }
  v.quality = choice;
  v.askedAt = Date.now();
}

/** The viewer chose another quality: every connected view follows (a view still connecting
 * asks for it once answered). */
export function choose(choice) {
  for (const v of viewers.values()) if (v.peer && !v.closed) prefer(v, choice);
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
  quality.init(choose);
}
