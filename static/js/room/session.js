// The session's life in the room: the prominent badge (scheduled, LIVE = on air, ended), and
// ending it. A presenter ends it for everyone (after confirming on the same button); every page
// then switches at once to the ended screen (who ended it, the recordings), hiding the room, and
// stays there: the server refuses to reconnect until a presenter starts the session again.

import { t } from "../i18n.js";
import { announce, el, toast } from "./dom.js";

const CONFIRM_MS = 5000;
const BADGE = {
  scheduled: () => t("SCHEDULED"),
  live: () => t("LIVE"),
  ended: () => t("ENDED"),
};
// What the ended screen hides: everything live, so nothing stale stays visible.
const LIVE_PARTS = [".room-body", ".room-meta", "#rec", "#rec-btn", ".rec-auto", "#end-session", "#conn"];

let room;
let ended = false;
let startTimer = null;
const $ = (id) => document.getElementById(id);

function showBadge(state) {
  const badge = $("onair");
  if (!badge) return;
  badge.dataset.session = state;
  badge.className = `badge ${state === "live" ? "onair" : state}`;
  badge.textContent = (BADGE[state] || BADGE.scheduled)();
  $("room").dataset.session = state;
}

/** The badge from the snapshot's session; a scheduled one turns LIVE at its start. */
function render() {
  const session = room.state.session;
  if (!session || ended) return;
  clearTimeout(startTimer);
  let state = session.state;
  if (state === "scheduled" && room.state.streams.length) state = "live"; // someone is on air
  showBadge(state);
  const wait = Date.parse(session.starts_at) - Date.now();
  if (state === "scheduled" && wait > 0 && wait < 2 ** 31 - 1) {
    startTimer = setTimeout(() => { if (!ended) showBadge("live"); }, wait);
  }
}

function ask(button) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = t("Confirm: end for everyone");
    setTimeout(() => {
      button.dataset.confirm = "";
      button.textContent = t("End for everyone");
    }, CONFIRM_MS);
    return;
  }
  button.disabled = true;
  room.send("room.end").then((reply) => {
    if (reply.ok) {
      room.socket.disconnect(); // the server closed everyone else's connection already
    } else if (!ended) {
      button.disabled = false;
      toast(reply.error);
    }
  });
}

function recordingItem(recording) {
  const item = el("li", {}, el("a", { href: recording.url, text: recording.title }));
  if (recording.status === "recording") item.append(" ", el("small", { text: t("being prepared") }));
  return item;
}

/** Replace the room with the ended screen: who ended it, the recordings, "Start again". */
function showEnded(by, session) {
  ended = true;
  clearTimeout(startTimer);
  showBadge("ended");
  for (const selector of LIVE_PARTS) {
    for (const node of document.querySelectorAll(selector)) node.hidden = true;
  }
  $("ended-by").textContent = t("%(name)s ended it for everyone", { name: by });
  const recordings = (session && session.recordings) || [];
  $("ended-recordings").replaceChildren(...recordings.map(recordingItem));
  $("ended-no-recording").hidden = recordings.length > 0;
  const start = $("ended-start");
  if (start && session) start.hidden = Date.now() >= Date.parse(session.ends_at);
  $("ended-screen").hidden = false;
}

function onEnded(data) {
  const by = data && data.by ? data.by : t("A presenter");
  const note = t("%(name)s ended it for everyone", { name: by });
  room.sessionEnded(note);
  showEnded(by, data && data.session);
  announce(`${note}.`);
}

export function init(r) {
  room = r;
  room.onState(render);
  room.on("media.streams", render);
  room.on("room.ended", onEnded);
  const button = $("end-session");
  if (button) button.addEventListener("click", () => ask(button));
}
