// The player's controls: play/pause, the position (a range input with question markers under
// it), the speed, the panel tabs, and keys (space or k: play/pause; arrows: 5 s back/forward).

import { t } from "../i18n.js";
import { el, typing } from "../room/dom.js";
import { clock } from "./time.js";

const $ = (id) => document.getElementById(id);
const STEP_S = 5;

export function setupControls(doc, playback) {
  const play = $("play");
  const scrubber = $("scrubber");
  let dragging = false;

  play.disabled = false;
  scrubber.disabled = false;
  scrubber.max = String(doc.recording.duration);
  $("time-total").textContent = clock(doc.recording.duration);

  play.addEventListener("click", () => (playback.playing ? playback.pause() : playback.play()));
  scrubber.addEventListener("pointerdown", () => { dragging = true; });
  scrubber.addEventListener("pointerup", () => { dragging = false; });
  scrubber.addEventListener("input", () => playback.seek(Number(scrubber.value)));
  $("speed").addEventListener("change", (event) => playback.setRate(event.target.value));

  playback.addEventListener("state", () => {
    play.textContent = playback.playing ? t("Pause") : t("Play");
    play.setAttribute("aria-label", playback.playing ? t("Pause") : t("Play"));
    play.classList.toggle("playing", playback.playing);
  });
  playback.addEventListener("time", () => {
    $("time-now").textContent = clock(playback.t);
    if (!dragging) scrubber.value = String(playback.t);
    scrubber.setAttribute("aria-valuetext", t("%(now)s of %(total)s", { now: clock(playback.t), total: clock(doc.recording.duration) }));
  });

  document.addEventListener("keydown", (event) => {
    if (typing(event) || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === " " || event.key === "k") {
      if (event.target instanceof HTMLButtonElement) return; // the button's own click
      event.preventDefault();
      play.click();
    } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && !ownArrows(event.target)) {
      event.preventDefault();
      playback.seek(playback.t + (event.key === "ArrowLeft" ? -STEP_S : STEP_S));
    }
  });
  drawMarkers(doc, playback);
}

/** Controls that use the arrow keys themselves: the position bar and the panel tabs. */
function ownArrows(target) {
  return target instanceof Element && Boolean(target.closest("#scrubber, [role=tablist]"));
}

/** A button under the position bar for each question asked (?) and answered (✓). */
function drawMarkers(doc, playback) {
  const box = $("markers");
  const length = doc.recording.duration || 1;
  box.replaceChildren(...doc.markers.map((m) => {
    const at = { time: clock(m.t), text: m.text };
    const label = m.kind === "asked" ? t("Question asked at %(time)s: %(text)s", at) : t("Question answered at %(time)s: %(text)s", at);
    const marker = el("button", {
      type: "button",
      class: `marker ${m.kind}`,
      text: m.kind === "asked" ? "?" : "✓",
      title: label,
      "aria-label": label,
      "data-t": String(m.t),
      onclick: () => playback.seek(m.t),
    });
    // Placed through the CSSOM (a custom property), which the page's CSP allows.
    marker.style.setProperty("--at", String(Math.min(1, Math.max(0, m.t / length))));
    return marker;
  }));
  box.hidden = doc.markers.length === 0;
}

/** Tabs over the panels: click, or arrow keys between tabs. */
export function setupTabs() {
  const tabs = [...document.querySelectorAll(".rec-panels [role=tab]")];
  const select = (tab) => {
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !on;
    }
  };
  tabs.forEach((tab) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const visible = tabs.filter((other) => !other.hidden);
      const next = visible[(visible.indexOf(tab) + (event.key === "ArrowRight" ? 1 : -1) + visible.length) % visible.length];
      select(next);
      next.focus();
    });
  });
}
