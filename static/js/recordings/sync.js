// One clock for every video of a recording. The clock's time `t` is seconds from the recording's
// start; each segment's <video> plays the same moment of its file while the segment runs.
//
// Segment files carry recording time in their timestamps (a camera that joined 10 s in starts
// at 10 s), and Chromium shows that time as currentTime; a browser that starts every file at 0
// shows currentTime 0 on load instead, and is shifted by the file's first timestamp
// (media_start). Either way: video.currentTime = t - shift.
//
// While a video shows the main track (or the screen) it leads: the clock follows it, so
// buffering holds the clock instead of letting the videos drift. Between segments the clock
// runs on its own.

import { t } from "../i18n.js";
import { pieceAt } from "./time.js";

const TICK_MS = 100;
const FOLLOW_S = 0.3; // a video further than this from the clock is moved to it
const LEAD_S = 1.5; // a leading video this far off is out of step: it is moved, not followed
const WARM_S = 5; // segments starting this soon load ahead
const SOON_S = 0.75; // a camera starting this soon (its first keyframe) shows that first frame

export class Playback extends EventTarget {
  /** doc: the timeline document; slots: {main, screen} elements the videos go in, and the
   * stage that holds them (marked "sharing" while a screen is shown). */
  constructor(doc, slots) {
    super();
    this.duration = doc.recording.duration;
    this.main = doc.tracks.main;
    this.screen = doc.tracks.screen;
    this.slots = slots;
    this.t = 0;
    this.playing = false;
    this.rate = 1;
    this.at = performance.now();
    this.segments = doc.segments.map((segment) => this.attach(segment));
    this.byId = new Map(this.segments.map((s) => [s.id, s]));
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.sync(true);
  }

  attach(segment) {
    const onScreen = this.screen.some((p) => p.segment === segment.id);
    const video = document.createElement("video");
    video.className = "rec-video";
    video.preload = "metadata";
    video.playsInline = true;
    video.hidden = true;
    video.dataset.segment = String(segment.id);
    video.setAttribute("aria-label", onScreen ? t("Shared screen") : t("Camera"));
    video.src = segment.url;
    const entry = { ...segment, video, shift: null, failed: false };
    // At loadeddata the element sits on the file's first frame: at media_start where the
    // browser keeps the file's timestamps (Chromium), at 0 where it starts every file at 0.
    // (At loadedmetadata Chromium still says 0 either way.)
    video.addEventListener("loadeddata", () => {
      if (entry.shift !== null) return;
      const zeroBased = video.currentTime < 0.05 && segment.media_start >= 0.05;
      entry.shift = zeroBased ? segment.media_start : 0;
      this.sync(true);
    });
    video.addEventListener("error", () => {
      entry.failed = true;
      this.dispatchEvent(new CustomEvent("problem", { detail: t("Part of the video could not be loaded.") }));
    });
    (onScreen ? this.slots.screen : this.slots.main).append(video);
    return entry;
  }

  running(segment, t = this.t) {
    return !segment.failed && segment.start_s <= t && t < segment.end_s;
  }

  /** The video the clock follows now: the main track's, else the screen's, else none. */
  leader() {
    for (const track of [this.main, this.screen]) {
      const piece = pieceAt(track, this.t);
      const segment = piece && this.byId.get(piece.segment);
      if (segment && segment.shift !== null && this.running(segment) && !segment.video.ended) return segment;
    }
    return null;
  }

  tick() {
    const now = performance.now();
    if (this.playing) this.advance((now - this.at) / 1000);
    this.at = now;
    this.sync(false);
    this.dispatchEvent(new Event("time"));
  }

  advance(elapsed) {
    const leader = this.leader();
    const video = leader && leader.video;
    if (video && !video.paused && !video.seeking && Math.abs(video.currentTime + leader.shift - this.t) < LEAD_S) {
      this.t = video.currentTime + leader.shift;
    } else if (!(video && (video.seeking || (!video.paused && video.readyState < 3)))) {
      this.t += elapsed * this.rate; // no leader, or it is not playing yet; hold while it loads
    }
    if (this.t >= this.duration) {
      this.t = this.duration;
      this.pause();
    }
  }

  /** Put every video where the clock is: shown or hidden, playing or paused, at the right time. */
  sync(force) {
    const shown = new Set([pieceAt(this.main, this.t), pieceAt(this.screen, this.t)].filter(Boolean).map((p) => p.segment));
    const leader = this.leader();
    // The camera starts a moment after the recording (its first keyframe): until then the main
    // slot shows that first frame rather than saying there is no camera.
    const soon = pieceAt(this.main, this.t) ? null : pieceAt(this.main, this.t + SOON_S);
    for (const segment of this.segments) {
      if (soon && soon.segment === segment.id && !this.running(segment)) this.cue(segment);
      else this.place(segment, shown.has(segment.id), segment === leader, force);
    }
    const sharing = Boolean(pieceAt(this.screen, this.t));
    this.slots.main.classList.toggle("empty", !pieceAt(this.main, this.t) && !soon);
    this.slots.screen.hidden = !sharing;
    this.slots.stage.classList.toggle("sharing", sharing);
  }

  place(segment, shown, leads, force) {
    const video = segment.video;
    const running = this.running(segment);
    video.hidden = !(shown && running);
    if (running || this.running(segment, this.t + WARM_S)) video.preload = "auto";
    if (!running || segment.shift === null) {
      if (!video.paused) video.pause();
      return;
    }
    const want = this.t - segment.shift;
    const limit = leads && this.playing ? LEAD_S : FOLLOW_S;
    if (!video.seeking && (force || Math.abs(video.currentTime - want) > limit)) video.currentTime = want;
    if (video.playbackRate !== this.rate) video.playbackRate = this.rate;
    if (this.playing && video.paused && !video.ended) {
      video.play().catch((error) => this.refused(error));
    } else if (!this.playing && !video.paused) {
      video.pause();
    }
  }

  /** Show a segment that is about to start, paused on its first frame. */
  cue(segment) {
    const video = segment.video;
    video.preload = "auto";
    if (!video.paused) video.pause();
    if (segment.shift === null || segment.failed) return;
    video.hidden = false;
    const first = segment.start_s - segment.shift;
    if (!video.seeking && Math.abs(video.currentTime - first) > FOLLOW_S) video.currentTime = first;
  }

  refused(error) {
    if (error && error.name === "NotAllowedError" && this.playing) {
      this.pause();
      this.dispatchEvent(new CustomEvent("problem", { detail: t("Press play to start the recording.") }));
    }
  }

  seek(t) {
    this.t = Math.min(Math.max(0, Number(t) || 0), this.duration);
    this.at = performance.now();
    this.sync(true);
    this.dispatchEvent(new Event("time"));
  }

  play() {
    if (this.t >= this.duration) this.t = 0;
    this.playing = true;
    this.at = performance.now();
    this.sync(false);
    this.dispatchEvent(new Event("state"));
  }

  pause() {
    this.playing = false;
    this.sync(false);
    this.dispatchEvent(new Event("state"));
  }

  setRate(rate) {
    this.rate = Number(rate) || 1;
    this.sync(false);
  }
}
