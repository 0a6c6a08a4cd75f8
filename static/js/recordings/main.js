// The recording player: loads timeline.json, then keeps the videos, the slide and the room's
// panels on one clock. Modules: sync (the clock and the videos), replay (the room's state at
// any time), panels (drawing it), controls (play, position, speed, markers), export (MP4).

import { t } from "../i18n.js";
import { Playback } from "./sync.js";
import { Replay } from "./replay.js";
import { Panels } from "./panels.js";
import { setupControls, setupTabs } from "./controls.js";
import { setupExport } from "./export.js";

const root = document.getElementById("player");

function note(text) {
  const box = document.getElementById("player-note");
  box.textContent = text;
  box.hidden = !text;
}

/** The start time asked for in the address (#t=90), if any. */
function startTime() {
  const found = /(?:^|[#&])t=(\d+(?:\.\d+)?)/.exec(window.location.hash);
  return found ? Number(found[1]) : 0;
}

async function load() {
  let doc;
  try {
    const response = await fetch(root.dataset.timeline, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    doc = await response.json();
  } catch {
    note(t("The recording could not be loaded. Reload the page to try again."));
    return;
  }
  const playback = new Playback(doc, {
    main: document.getElementById("main-slot"),
    screen: document.getElementById("screen-slot"),
    stage: document.querySelector(".stage"),
  });
  const replay = new Replay(doc);
  const panels = new Panels(doc, replay, (at) => playback.seek(at));
  setupControls(doc, playback);
  playback.addEventListener("time", () => {
    panels.update(playback.t);
    root.dataset.position = playback.t.toFixed(2);
  });
  playback.addEventListener("problem", (event) => note(event.detail));
  playback.addEventListener("state", () => { if (playback.playing) note(""); });
  if (!doc.segments.length) note(t("No video or sound was recorded; the slides and the room's activity still replay."));
  playback.seek(startTime());
  root.dataset.ready = "true";
}

setupTabs();
setupExport(root);
load();
