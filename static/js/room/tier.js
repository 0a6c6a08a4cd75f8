// The tier an attendee of a broadcast watches: real time (WebRTC, each stream in its own
// connection: player.js) or low data (HLS: the broadcast's first camera stream, packaged by the
// media worker, in ONE <video> fed by hls.js, or by the browser itself on Safari).
//
// Only someone who cannot publish, in a room whose `hls.url` answers a URL (a broadcast with
// the tier on), has a choice. The page moves to HLS by itself when a view of the camera is
// refused because the real-time tier is full, or fails to connect twice, or has not connected
// within CONNECT_MS (UDP blocked); or when the viewer ticks "Low data", a choice kept in this
// browser. It moves back when the viewer unticks it or is asked on stage (can_publish).
// media.js asks `active()` before viewing anything over WebRTC and reconciles on "local:tier".
//
// The signed playlist URL expires (`expires`): it is asked again before then, and after a 403;
// requests hls.js makes with the old token are rewritten to the new one (xhrSetup).

import { t } from "../i18n.js";
import { announce, el } from "./dom.js";
import { makeTile, play, removeTile, setNotice, setQuality } from "./tiles.js";

let room;
let signed = null; // {url, expires (unix s)}: the tier's playlist, while the room has one
let asked = false; // hls.url has answered since the last connect
let refreshTimer = null;
let choice = false; // the viewer ticked "Low data"
let reason = null; // why the page chose HLS by itself: "full" | "failed"
let mode = "webrtc"; // "webrtc" | "hls": what the page plays now
let playback = null; // {stream, tile, hls (null: native or between tries), tries, recoveries, retry, playing, played}
let box = null; // {status, why, choice, toggle}: the tier's part of the page
let watchdog = null; // {id, timer}: the camera view that has CONNECT_MS to connect
const connected = new Set(); // ids of camera streams whose WebRTC view has connected once

const CHOICE_KEY = "lectern:low-data"; // localStorage: "1" when the viewer chose low data
const ALL_FULL = "full"; // the code of media.view's refusal when every media server is full
const FAILS_BEFORE_HLS = 2; // failed connections of a camera view before the page gives up on WebRTC
// A camera view not connected this long after it was listed has no path (ICE may never even
// fail: with no candidate pair at all it stays "checking"): the page gives up on WebRTC too.
const CONNECT_MS = 15000;
const REFRESH_MARGIN_S = 60; // ask for a fresh URL this long before it expires (at most)
const RETRY_MS = 1000; // first pause before playing the playlist again; doubles up to RETRY_MAX_MS
const RETRY_MAX_MS = 10000;
const MEDIA_RECOVERIES = 2; // hls.js media errors recovered in place before starting again
const CLOCK_MS = 1000; // how often "about N s behind" is measured
const HLS_CONFIG = {
  // Parts and blocking reloads, the playlist's PART-HOLD-BACK (about 1 s) behind its live edge;
  // hls.js adds a second after each stall, up to one target duration (bench/hls.py "page").
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1.2, // or catch up by playing slightly faster
  backBufferLength: 10,
};

/** Whether the page watches the HLS tier (media.js then views nothing over WebRTC). */
export function active() {
  return mode === "hls";
}

const HLS_JS = "../../vendor/hls.js-1.7.4/hls.light.min.mjs";
const MSE_TYPE = 'video/mp4; codecs="avc1.42E01E,mp4a.40.2"'; // the tier's H.264 + AAC
let hlsModule = null; // hls.js, loaded the first time the tier plays (it is 370 kB)

/** hls.js's Hls class, or null where it cannot load or this browser has no MSE for it. */
async function loadHls() {
  hlsModule ||= import(HLS_JS).then((module) => module.default).catch(() => null);
  const Hls = await hlsModule;
  return Hls && Hls.isSupported() ? Hls : null;
}

function native(video) {
  return Boolean(video.canPlayType("application/vnd.apple.mpegurl"));
}

/** Whether this browser can play the tier: MSE (for hls.js) or HLS of its own (Safari). */
function playable() {
  const mse = window.ManagedMediaSource || window.MediaSource;
  return Boolean(mse && mse.isTypeSupported(MSE_TYPE)) || native(document.createElement("video"));
}

/** Whether this viewer may watch the HLS tier: a broadcast with the tier, and no right to
 * publish (those on stage need real time). `signed` unknown yet counts as yes. */
function eligible() {
  if (!room.state || room.state.me.can_publish || !playable()) return false;
  return asked ? Boolean(signed) : true;
}

function wanted() {
  return eligible() && (choice || reason !== null) ? "hls" : "webrtc";
}

/** The camera stream the tier packages: the room's first, not one's own. */
function camera() {
  const streams = (room.state && room.state.streams) || [];
  return streams.find((s) => s.source === "camera" && s.user_id !== room.userId) || null;
}

// --- the signed URL ---

async function askUrl() {
  clearTimeout(refreshTimer);
  const reply = await room.send("hls.url", {});
  if (!reply.ok) {
    // offline or refused for now: ask again later, keep what we had
    refreshTimer = setTimeout(askUrl, RETRY_MAX_MS);
    return;
  }
  asked = true;
  signed = reply.url ? { url: reply.url, expires: reply.expires } : null;
  if (signed) {
    const left = signed.expires * 1000 - Date.now();
    const margin = Math.min(REFRESH_MARGIN_S * 1000, left / 4);
    refreshTimer = setTimeout(askUrl, Math.max(RETRY_MS, left - margin));
  }
  apply();
}

/** `url` (one hls.js would fetch, built from an older playlist URL) with today's token. */
function withToken(url) {
  if (!signed) return url;
  const token = signed.url.match(/\/hls\/([^/]+)\//);
  return token ? url.replace(/\/hls\/[^/]+\//, `/hls/${token[1]}/`) : url;
}

// --- deciding ---

/** Move to the tier wanted now, and keep the HLS picture in step with the camera stream. */
function apply() {
  if (!room.state) return;
  const next = wanted();
  if (next !== mode) {
    mode = next;
    if (mode === "hls") announce(t("Now watching the low-data stream."));
    else if (playback) announce(t("Now watching in real time."));
    room.local("local:tier", mode); // media.js closes or opens its WebRTC views
  }
  const stream = mode === "hls" && signed ? camera() : null;
  if (!stream || (playback && playback.stream.id !== stream.id)) stop();
  if (stream && !playback) start(stream);
  watch();
  render();
}

/** Give the camera's WebRTC view CONNECT_MS to connect, while it may still move to HLS. */
function watch() {
  const stream = mode === "webrtc" && asked && eligible() && !reason ? camera() : null;
  if (watchdog && (!stream || watchdog.id !== stream.id)) {
    clearTimeout(watchdog.timer);
    watchdog = null;
  }
  if (!stream || watchdog || connected.has(stream.id)) return;
  const timer = setTimeout(() => onFailed({ stream, tries: FAILS_BEFORE_HLS }), CONNECT_MS);
  watchdog = { id: stream.id, timer };
}

function onConnected(data) {
  connected.add(data.stream.id);
  if (watchdog && watchdog.id === data.stream.id) {
    clearTimeout(watchdog.timer);
    watchdog = null;
  }
}

/** A WebRTC view was refused (player.js): "every media server full" sends the page to HLS. */
function onRefused(data) {
  if (data.stream.source !== "camera" || data.code !== ALL_FULL || reason || !eligible()) return;
  reason = "full";
  apply();
}

/** A WebRTC view failed to connect (player.js): after FAILS_BEFORE_HLS in a row, HLS. */
function onFailed(data) {
  if (data.stream.source !== "camera" || data.tries < FAILS_BEFORE_HLS || reason || !eligible()) return;
  if (watchdog) clearTimeout(watchdog.timer);
  watchdog = null;
  reason = "failed";
  apply();
}

function onChoice() {
  choice = box.toggle.checked;
  if (!choice) reason = null; // unticked: real time again, even after a refusal
  try {
    if (choice) localStorage.setItem(CHOICE_KEY, "1");
    else localStorage.removeItem(CHOICE_KEY);
  } catch {
    // storage blocked: the choice lasts this page only
  }
  apply();
}

function onPermission() {
  if (room.state.me.can_publish) reason = null; // on stage: real time, and a fresh start after
  apply();
}

// --- playing the HLS tier ---

function start(stream) {
  const tile = makeTile(stream.name, "camera", false);
  tile.fig.classList.add("hls");
  tile.fig.dataset.tier = "hls";
  playback = { stream, tile, hls: null, tries: 0, recoveries: 0, retry: null, playing: false, played: false };
  const p = playback;
  tile.video.addEventListener("playing", () => playing(p));
  tile.video.addEventListener("waiting", () => setQuality(p.tile, "wait", t("Loading…")));
  // Native HLS (Safari): any error starts again with a fresh URL (an expired one gives 403).
  tile.video.addEventListener("error", () => { if (!p.hls) again(p, t("the video could not be played"), true); });
  load(p);
}

/** Play the playlist in `p`'s video: hls.js where the browser has MSE, else natively. */
async function load(p) {
  p.playing = false;
  setQuality(p.tile, "wait", t("Loading…"));
  setNotice(p.tile, t("Starting the low-data stream…"));
  const video = p.tile.video;
  const Hls = await loadHls();
  if (p !== playback || !signed) return; // stopped meanwhile
  if (Hls) {
    const hls = new Hls({
      ...HLS_CONFIG,
      xhrSetup: (xhr, url) => xhr.open("GET", withToken(url), true),
    });
    p.hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => onHlsError(Hls, p, hls, data));
    hls.on(Hls.Events.MANIFEST_PARSED, () => play(video));
    hls.loadSource(signed.url);
    hls.attachMedia(video);
  } else if (native(video)) {
    video.src = signed.url;
    play(video);
  } else {
    again(p, t("this browser cannot play it"));
  }
}

function playing(p) {
  if (p !== playback) return;
  p.playing = true;
  p.played = true;
  p.tries = 0;
  p.tile.fig.classList.add("has-video-track");
  setNotice(p.tile, "");
  setQuality(p.tile, "good", t("Low data"));
  render();
}

/** A fatal hls.js error: a media error is recovered in place (twice), anything else (the
 * playlist not there yet while the tier starts, an expired URL's 403, a lost connection)
 * starts the playlist again after a pause that grows. */
function onHlsError(Hls, p, hls, data) {
  if (!data.fatal || p !== playback || p.hls !== hls) return;
  if (data.type === Hls.ErrorTypes.MEDIA_ERROR && p.recoveries < MEDIA_RECOVERIES) {
    p.recoveries += 1;
    hls.recoverMediaError();
    return;
  }
  const code = data.response && data.response.code;
  again(p, code ? t("error %(code)s", { code }) : data.details, code === 403);
}

function again(p, why, expired = false) {
  if (p !== playback || p.retry) return;
  if (p.hls) p.hls.destroy();
  p.hls = null;
  p.playing = false;
  p.tries += 1;
  p.tile.fig.classList.remove("has-video-track");
  setQuality(p.tile, "poor", t("Reconnecting…"));
  // Before its first picture a missing playlist means the tier is still starting.
  setNotice(p.tile, !p.played
    ? t("Starting the low-data stream…")
    : t("The low-data stream stopped (%(error)s). Trying again…", { error: why }));
  const delay = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** (p.tries - 1));
  p.retry = setTimeout(async () => {
    p.retry = null;
    if (p !== playback) return;
    if (expired || !signed) await askUrl();
    if (p === playback && signed) load(p);
  }, delay);
  render();
}

function stop() {
  const p = playback;
  if (!p) return;
  playback = null;
  clearTimeout(p.retry);
  if (p.hls) p.hls.destroy();
  p.tile.video.removeAttribute("src");
  p.tile.video.load();
  removeTile(p.tile);
}

/** How far behind live the picture is, in seconds (null: not known yet). From the playlist's
 * PROGRAM-DATE-TIME (the server's clock when the segment started) where it has one, else how
 * far from the playlist's live edge the player is. */
function behind(p) {
  if (!p || !p.playing) return null;
  const video = p.tile.video;
  let dated = null;
  if (p.hls) dated = p.hls.playingDate;
  else if (video.getStartDate) {
    const start = video.getStartDate().getTime();
    if (!Number.isNaN(start)) dated = new Date(start + video.currentTime * 1000);
  }
  if (dated) {
    const seconds = (Date.now() - dated.getTime()) / 1000;
    if (seconds > 0 && seconds < 3600) return seconds; // else the two clocks disagree
  }
  if (p.hls) return p.hls.latency || null;
  const end = video.seekable.length ? video.seekable.end(video.seekable.length - 1) : null;
  return end === null ? null : Math.max(0, end - video.currentTime);
}

// --- the page ---

function build() {
  const toggle = el("input", { type: "checkbox", id: "low-data" });
  toggle.addEventListener("change", onChoice);
  const choiceBox = el("span", { class: "tool-group tier-choice", hidden: true },
    el("label", { class: "check", for: "low-data" }, toggle, t("Low data (HLS)")));
  document.querySelector("#room .toolbar").append(choiceBox);
  const status = el("p", { id: "tier-status", class: "tier-status", "data-tier": "webrtc" });
  const why = el("span", { class: "tier-why" });
  const line = el("div", { id: "tier", class: "tier", hidden: true }, status, why);
  document.getElementById("media-note").before(line);
  return { line, status, why, choice: choiceBox, toggle };
}

function label() {
  if (!camera()) return t("No live video yet: the broadcast has not started.");
  if (mode === "webrtc") return t("Live (real time)");
  const seconds = behind(playback);
  if (!playback || !playback.playing) return t("Live (low data): loading…");
  if (seconds === null) return t("Live (low data)");
  return t("Live (low data, about %(s)s s behind)", { s: Math.max(1, Math.round(seconds)) });
}

const WHY = {
  full: () => t("The real-time stream is full, so you are watching the low-data stream, a few seconds behind."),
  failed: () => t("The real-time stream could not connect (your network may block it), so you are watching the low-data stream."),
};

function render() {
  if (!box || !room.state) return;
  const shown = eligible() && asked;
  box.line.hidden = !shown;
  box.choice.hidden = !shown;
  box.toggle.checked = mode === "hls";
  box.status.dataset.tier = mode;
  box.status.textContent = label();
  const why = mode === "hls" && reason ? WHY[reason]() : "";
  box.why.textContent = why;
  box.why.hidden = !why;
}

function soundOn() {
  if (!playback) return;
  playback.tile.video.muted = false;
  playback.tile.video.play().catch(() => {});
}

export function init(r) {
  room = r;
  box = build();
  try {
    choice = localStorage.getItem(CHOICE_KEY) === "1";
  } catch {
    choice = false;
  }
  room.onState(() => {
    // A fresh state (a connect): ask for the tier's URL again; until it answers, a viewer who
    // chose low data stays on it rather than opening WebRTC views for a moment.
    asked = false;
    apply();
    askUrl();
  });
  room.on("media.streams", (data) => {
    room.state.streams = data.streams;
    apply();
  });
  room.on("local:can_publish", onPermission);
  room.on("local:view_refused", onRefused);
  room.on("local:view_failed", onFailed);
  room.on("local:view_connected", onConnected);
  room.on("room.ended", () => {
    stop();
    signed = null;
    apply();
  });
  document.getElementById("sound-btn").addEventListener("click", soundOn);
  setInterval(() => { if (mode === "hls") render(); }, CLOCK_MS);
}
