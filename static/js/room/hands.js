// Raised hands: participants raise and lower theirs and see their place in the queue; those who
// manage hands see the queue in raise order (the server's order), call on, lower, lower all,
// and get a sound, a visual notice and a screen-reader announcement when a hand goes up.

import { language, t } from "../i18n.js";
import { announce, clock, el, syncList, toast } from "./dom.js";
import * as tabs from "./tabs.js";

let room;
const $ = (id) => document.getElementById(id);

function mine() {
  return room.state.hands.queue.find((h) => h.user_id === room.userId) || null;
}

/** "3rd" in English; other languages put the number in their sentence ("3번째"). */
function ordinal(n) {
  if (!language.startsWith("en")) return String(n);
  const suffix = { one: "st", two: "nd", few: "rd", other: "th" };
  return `${n}${suffix[new Intl.PluralRules("en", { type: "ordinal" }).select(n)]}`;
}

function renderMine() {
  const button = $("hand-btn");
  if (!button) return;
  const hand = mine();
  button.setAttribute("aria-pressed", String(Boolean(hand)));
  button.textContent = hand ? t("Lower hand") : t("Raise hand");
  button.classList.toggle("raised", Boolean(hand));
  const position = room.state.hands.position;
  let text = "";
  if (hand && hand.state === "called") text = t("You have been called on: you may turn on your camera and mic.");
  else if (hand) text = position ? t("Your hand is up: you are %(position)s in line.", { position: ordinal(position) }) : t("Your hand is up.");
  $("hand-status").textContent = text;
}

function buildHand(hand) {
  const node = el("li", { class: "hand" });
  node.parts = {
    name: el("span", { class: "name" }),
    meta: el("small", { class: "meta" }),
    actions: el("span", { class: "actions" }),
  };
  node.append(node.parts.name, " ", node.parts.meta, node.parts.actions);
  if (room.may("hand.manage")) {
    const call = el("button", { type: "button", class: "small call", text: t("Call on") });
    const lower = el("button", { type: "button", class: "small secondary lower", text: t("Lower") });
    call.addEventListener("click", () => act("hand.call", { user_id: Number(node.dataset.user) }));
    lower.addEventListener("click", () => act("hand.lower", { user_id: Number(node.dataset.user) }));
    node.parts.actions.append(call, lower);
    node.parts.call = call;
    node.parts.lower = lower;
  }
  return node;
}

function updateHand(node, hand) {
  node.dataset.user = String(hand.user_id);
  node.dataset.state = hand.state;
  const me = hand.user_id === room.userId;
  node.parts.name.textContent = me ? t("%(name)s (you)", { name: hand.name }) : hand.name;
  node.parts.meta.textContent = hand.state === "called" ? t("called on") : t("raised %(time)s", { time: clock(hand.raised_at) });
  if (node.parts.call) {
    node.parts.call.hidden = hand.state !== "raised";
    node.parts.call.setAttribute("aria-label", t("Call on %(name)s", { name: hand.name }));
    const called = hand.state === "called";
    node.parts.lower.textContent = called ? t("Done") : t("Lower");
    node.parts.lower.setAttribute("aria-label", called ? t("End %(name)s's turn", { name: hand.name }) : t("Lower %(name)s's hand", { name: hand.name }));
  }
}

function render() {
  const queue = room.state.hands.queue;
  syncList($("hand-queue"), queue, (h) => h.hand_id, buildHand, updateHand);
  $("hands-empty").hidden = queue.length > 0;
  const lowerAll = $("lower-all");
  if (lowerAll) lowerAll.disabled = queue.length === 0;
  const raised = queue.filter((h) => h.state === "raised").length;
  tabs.setCount("hands", room.may("hand.manage") ? raised : 0);
  renderMine();
}

async function act(event, data = {}) {
  const reply = await room.send(event, data);
  if (!reply.ok) toast(reply.error);
  return reply;
}

async function toggleMine() {
  if (mine()) {
    const reply = await act("hand.lower", {});
    if (reply.ok) dropMine();
  } else {
    const reply = await act("hand.raise");
    if (!reply.ok) return;
    if (!mine()) {
      // Where the queue is kept from participants, this client only knows its own hand.
      room.state.hands.queue.push({
        hand_id: `mine-${Date.now()}`, user_id: room.userId, name: room.state.me.name,
        state: "raised", raised_at: new Date().toISOString(),
      });
    }
    room.state.hands.position = reply.position ?? null;
    render();
    announce(t("Your hand is raised."));
  }
}

function dropMine() {
  room.state.hands.queue = room.state.hands.queue.filter((h) => h.user_id !== room.userId);
  room.state.hands.position = null;
  render();
}

function onQueue(data) {
  room.state.hands.queue = data.queue;
  const index = data.queue.findIndex((h) => h.user_id === room.userId);
  room.state.hands.position = index >= 0 ? index + 1 : null;
  render();
}

function onMyHand(data) {
  room.state.me.can_publish = data.can_publish;
  if (data.state === "called") {
    const hand = mine();
    if (hand) hand.state = "called";
    render();
    toast(t("You have been called on: turn on your camera and mic to speak."));
  } else {
    dropMine();
    announce(data.state === "done" ? t("Your turn to speak has ended.") : t("Your hand was lowered."));
  }
  room.local("local:can_publish", data.can_publish);
}

// --- the cue for those who manage hands: a short beep (WebAudio), a notice, an announcement ---

let audio = null;

function unlockAudio() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  if (!audio) audio = new Context();
  if (audio.state === "suspended") audio.resume().catch(() => {});
}

function beep() {
  if (!audio || audio.state !== "running") return;
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  const now = audio.currentTime;
  osc.frequency.value = 880;
  gain.gain.setValueAtTime(0.0001, now);
  gain.gain.exponentialRampToValueAtTime(0.2, now + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.18);
  osc.connect(gain).connect(audio.destination);
  osc.start(now);
  osc.stop(now + 0.2);
}

function onRaised(data) {
  beep();
  toast(t("%(name)s raised a hand.", { name: data.name }));
  const tab = $("tab-hands");
  tab.classList.remove("cue");
  void tab.offsetWidth; // restart the animation
  tab.classList.add("cue");
}

export function init(r) {
  room = r;
  const button = $("hand-btn");
  if (button) button.addEventListener("click", toggleMine);
  const lowerAll = $("lower-all");
  if (lowerAll) lowerAll.addEventListener("click", () => act("hand.lower_all"));
  if (room.may("hand.manage")) {
    // Browsers only let a page play sound after the user has interacted with it.
    for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, unlockAudio);
  }
  room.onState(render);
  room.on("hand.queue", onQueue);
  room.on("hand.state", onMyHand);
  room.on("hand.raised", onRaised);
}
