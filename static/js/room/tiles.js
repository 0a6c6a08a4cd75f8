// Video tiles on the stage: one per stream viewed or published, with a name and a quality hint.

import { t } from "../i18n.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);

/** A new tile on the stage; `local` tiles (one's own camera or screen) stay silent. */
export function makeTile(label, source, local) {
  const video = el("video", { autoplay: true, playsinline: true });
  video.muted = local; // never play one's own microphone back
  const quality = el("span", { class: "quality", "data-level": "wait", text: t("Connecting…") });
  const fig = el("figure", { class: `tile ${source}${local ? " local" : ""}` },
    video,
    el("span", { class: "avatar", "aria-hidden": "true", text: label.slice(0, 1).toUpperCase() }),
    el("figcaption", {}, el("span", { class: "name", text: label }), quality));
  $("videos").append(fig);
  updateStage();
  return { fig, video, quality };
}

export function removeTile(tile) {
  if (!tile) return;
  tile.video.srcObject = null;
  tile.fig.remove();
  updateStage();
}

function updateStage() {
  const count = $("videos").children.length;
  $("screen").classList.toggle("has-video", count > 0);
  $("videos").dataset.count = String(count);
}

/** Play a tile's video, falling back to muted (and a "Turn sound on" button) where the
 * browser wants a click before playing sound. */
export function play(video) {
  video.play().catch(() => {
    if (video.muted) return;
    // Autoplay with sound needs a click first: play muted and offer a button.
    video.muted = true;
    video.play().catch(() => {});
    $("sound-btn").hidden = false;
  });
}

export function setQuality(tile, level, text) {
  tile.quality.dataset.level = level;
  tile.quality.textContent = text;
}

/** A message across the tile, read out when it changes (e.g. why its video cannot be shown:
 * every media server full); `text` empty takes it away. */
export function setNotice(tile, text) {
  let notice = tile.fig.querySelector(".notice");
  if (!text) {
    if (notice) notice.remove();
    return;
  }
  if (!notice) {
    notice = el("p", { class: "notice", role: "status" });
    tile.fig.append(notice);
  }
  notice.textContent = text;
}
