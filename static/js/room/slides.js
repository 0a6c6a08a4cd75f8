// Slides: everyone sees the page the presenter shows (late joiners too, from the state);
// presenters upload PDFs (with a progress bar for the upload and the rendering), pick a deck,
// and move through its pages with thumbnails, buttons or the arrow keys.

import { language, t, tn } from "../i18n.js";
import { announce, el, syncList, toast, typing } from "./dom.js";

let room;
let selected = null; // the deck id the presenter is looking at
let tracking = null; // {deckId, lastEvent} while an upload renders
let pollTimer = null;
const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const percent = new Intl.NumberFormat(language, { style: "percent" });
const QUIET_MS = 3000; // no progress event for this long: ask over HTTP instead
const DONE_SHOWN_MS = 8000;
// Why rendering failed, as the server words it (rooms/uploads.py), in the page's language
const DECK_ERRORS = {
  "rendering took too long and was stopped": t("rendering took too long and was stopped"),
  "rendering failed because of a server error": t("rendering failed because of a server error"),
};

function pageUrl(deckId, page) {
  return `${room.settings.slidesUrl}/${deckId}/${page}.png`;
}

// --- what everyone sees ---

function renderCurrent() {
  const shown = room.state.slides;
  const figure = $("slide");
  figure.hidden = !shown;
  $("screen").classList.toggle("has-slides", Boolean(shown));
  if (!shown) return;
  const { deck, page } = shown;
  const img = $("slide-img");
  const url = pageUrl(deck.id, page);
  if (img.getAttribute("src") !== url) img.src = url;
  img.alt = t("Slide %(page)s of %(pages)s: %(file)s", { page, pages: deck.pages, file: deck.filename });
  $("slide-caption").textContent = t("Slide %(page)s of %(pages)s", { page, pages: deck.pages });
}

function onPage(shown) {
  room.state.slides = shown;
  renderCurrent();
  renderPresenter();
}

// --- the presenter's tools ---

function decks() {
  return room.state.decks || [];
}

function deckLabel(deck) {
  const file = deck.filename;
  if (deck.status === "failed") return t("%(file)s (failed)", { file });
  if (deck.status === "rendering") {
    return t("%(file)s (preparing %(done)s/%(pages)s)", { file, done: deck.rendered, pages: deck.pages || "?" });
  }
  return tn("%(file)s (%(n)s page)", "%(file)s (%(n)s pages)", deck.pages, { file });
}

function renderPicker() {
  const select = $("deck-select");
  const list = decks();
  if (selected === null || !list.some((d) => d.id === selected)) {
    const shown = room.state.slides;
    selected = shown ? shown.deck.id : list.length ? list[list.length - 1].id : null;
  }
  const options = list.length
    ? list.map((d) => el("option", { value: String(d.id), text: deckLabel(d) }))
    : [el("option", { value: "", text: t("No decks yet: upload a PDF") })];
  select.replaceChildren(...options);
  select.value = selected === null ? "" : String(selected);
  select.disabled = !list.length;
}

function buildThumb(item) {
  const button = el("button", { type: "button", class: "thumb" },
    el("img", { alt: "", loading: "lazy", src: pageUrl(item.deck, item.page) }),
    el("span", { text: String(item.page) }));
  button.addEventListener("click", () => go(item.deck, item.page));
  return el("li", {}, button);
}

function updateThumb(node, item) {
  const button = node.firstElementChild;
  button.setAttribute("aria-label", t("Show page %(page)s", { page: item.page }));
  if (item.current) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
}

function renderThumbs() {
  const deck = decks().find((d) => d.id === selected);
  const shown = room.state.slides;
  const items = [];
  for (let page = 1; deck && page <= deck.rendered; page++) {
    const current = Boolean(shown && shown.deck.id === deck.id && shown.page === page);
    items.push({ deck: deck.id, page, current });
  }
  syncList($("thumbs"), items, (item) => `${item.deck}:${item.page}`, buildThumb, updateThumb);
  const [prev, next] = [$("slide-prev"), $("slide-next")];
  prev.disabled = !step(-1);
  next.disabled = !step(1);
}

function renderPresenter() {
  if (!$("deck-select")) return;
  renderPicker();
  renderThumbs();
  if (!decks().length) $("upload-box").open = true; // nothing to show yet: offer the upload
}

/** The page `delta` away from the one shown (in the selected deck), or null. Moving forward
 * in a deck that is not on screen starts it at page 1. */
function step(delta) {
  const deck = decks().find((d) => d.id === selected);
  if (!deck || !deck.rendered) return null;
  const shown = room.state.slides;
  if (!shown || shown.deck.id !== deck.id) return delta < 0 ? null : { deck: deck.id, page: 1 };
  const page = shown.page + delta;
  return page >= 1 && page <= deck.rendered ? { deck: deck.id, page } : null;
}

async function go(deckId, page) {
  const reply = await room.send("slides.goto", { deck_id: deckId, page });
  if (!reply.ok) return toast(reply.error);
  onPage(reply.slides);
  announce(t("Showing slide %(page)s.", { page }));
}

function move(delta) {
  const target = step(delta);
  if (target) go(target.deck, target.page);
}

function onKey(event) {
  if (typing(event) || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.target instanceof Element && event.target.closest('[role="tablist"]')) return;
  const delta = { ArrowRight: 1, PageDown: 1, ArrowLeft: -1, PageUp: -1 }[event.key];
  if (!delta) return;
  event.preventDefault();
  move(delta);
}

// --- uploading ---

/** Show the upload's progress, or (failed) why it failed: styled and announced as an error. */
function progress(value, max, text, failed = false) {
  $("upload-progress").hidden = false;
  const bar = $("upload-bar");
  bar.max = max;
  bar.value = value;
  bar.hidden = failed;
  const line = $("upload-text");
  line.textContent = text;
  line.classList.toggle("error", failed);
  line.setAttribute("role", failed ? "alert" : "status");
}

function showDeckProgress(deck) {
  const file = deck.filename;
  if (deck.status === "ready") {
    progress(1, 1, tn("Ready: %(file)s, %(n)s page. Choose a page to show it.", "Ready: %(file)s, %(n)s pages. Choose a page to show it.", deck.pages, { file }));
  } else if (deck.status === "failed") {
    const error = DECK_ERRORS[deck.error] || deck.error || t("unknown error");
    progress(0, 1, t("Could not prepare %(file)s: %(error)s", { file, error }), true);
  } else if (!deck.pages) progress(0, 1, t("Preparing the slides…"));
  else progress(deck.rendered, deck.pages, t("Preparing page %(page)s of %(pages)s…", { page: deck.rendered, pages: deck.pages }));
}

function onDeck(deck) {
  if (!room.state.decks) return;
  const list = room.state.decks;
  const index = list.findIndex((d) => d.id === deck.id);
  if (index >= 0) list[index] = deck;
  else list.push(deck);
  if (tracking && tracking.deckId === deck.id) {
    tracking.lastEvent = Date.now();
    showDeckProgress(deck);
    if (deck.status !== "rendering") finishTracking(deck);
  }
  renderPresenter();
}

function finishTracking(deck) {
  tracking = null;
  clearInterval(pollTimer);
  pollTimer = null;
  if (deck.status === "ready") {
    announce(tn("Slides ready: %(n)s page.", "Slides ready: %(n)s pages.", deck.pages));
    $("upload-box").open = false;
    setTimeout(() => { if (!tracking) $("upload-progress").hidden = true; }, DONE_SHOWN_MS);
  } else {
    announce(t("The slides could not be prepared."));
  }
}

async function pollStatus() {
  if (!tracking) return;
  const quiet = Date.now() - tracking.lastEvent > QUIET_MS;
  if (room.status === "live" && !quiet) return;
  try {
    const response = await fetch(`${room.settings.slidesUrl}/${tracking.deckId}`, {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    const body = await response.json();
    if (body.ok) onDeck(body.deck);
  } catch {
    // offline too: the next tick tries again
  }
}

function upload(event) {
  event.preventDefault();
  const input = $("upload-file");
  const file = input.files[0];
  if (!file) return toast(t("Choose a PDF file first."));
  const form = new FormData();
  form.append("file", file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", room.settings.slidesUrl);
  xhr.setRequestHeader("X-CSRFToken", room.settings.csrf);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) progress(e.loaded, e.total, t("Uploading… %(percent)s", { percent: percent.format(e.loaded / e.total) }));
  });
  xhr.addEventListener("load", () => uploaded(xhr, input));
  xhr.addEventListener("error", () => progress(0, 1, t("The upload failed: check your connection and try again."), true));
  progress(0, 1, t("Uploading…"));
  $("upload-form").querySelector("button").disabled = true;
  xhr.send(form);
}

function uploaded(xhr, input) {
  $("upload-form").querySelector("button").disabled = false;
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch {
    body = { ok: false, error: t("the server answered %(status)s", { status: xhr.status }) };
  }
  if (!body.ok) return progress(0, 1, t("The upload was refused: %(error)s", { error: body.error }), true);
  input.value = "";
  selected = body.deck.id;
  tracking = { deckId: body.deck.id, lastEvent: Date.now() };
  clearInterval(pollTimer);
  pollTimer = setInterval(pollStatus, POLL_MS);
  onDeck(body.deck);
  showDeckProgress(body.deck);
}

export function init(r) {
  room = r;
  room.onState(() => {
    renderCurrent();
    renderPresenter();
  });
  room.on("slides.page", onPage);
  if ($("upload-form")) {
    $("upload-form").addEventListener("submit", upload);
    $("deck-select").addEventListener("change", (e) => {
      selected = Number(e.target.value) || null;
      renderThumbs();
    });
    $("slide-prev").addEventListener("click", () => move(-1));
    $("slide-next").addEventListener("click", () => move(1));
    document.addEventListener("keydown", onKey);
    room.on("slides.deck", onDeck);
  }
}
