// Chat: the room's messages, a form to write one, and (for presenters) who may write.

import { t } from "../i18n.js";
import { clock, el, syncList, toast } from "./dom.js";
import * as tabs from "./tabs.js";

let room;
const $ = (id) => document.getElementById(id);
const HISTORY = 200; // messages kept on screen
const MODE_NOTE = {
  hosts: t("Only presenters can write in the chat right now."),
  off: t("The chat is turned off."),
};

function build() {
  const node = el("li", { class: "message" });
  node.parts = { author: el("span", { class: "author" }), at: el("small"), text: el("p", { class: "text" }) };
  node.append(node.parts.author, " ", node.parts.at, node.parts.text);
  return node;
}

function update(node, m) {
  node.classList.toggle("own", m.author_id === room.userId);
  node.parts.author.textContent = m.author;
  node.parts.at.textContent = clock(m.at);
  node.parts.text.textContent = m.text;
}

function render() {
  const list = $("chat-list");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  syncList(list, room.state.chat, (m) => m.id, build, update);
  if (atBottom) list.scrollTop = list.scrollHeight;
  renderMode();
}

function renderMode() {
  const mode = room.state.room.chat_mode;
  const managing = room.may("chat.manage");
  const blocked = mode !== "everyone" && !managing;
  const note = $("chat-note");
  note.textContent = blocked ? MODE_NOTE[mode] : managing && mode !== "everyone" ? MODE_NOTE[mode] : "";
  note.hidden = !note.textContent;
  const form = $("chat-form");
  if (form) for (const control of form.elements) control.disabled = blocked;
  const select = $("chat-mode");
  if (select) select.value = mode;
}

function add(message) {
  const chat = room.state.chat;
  if (chat.some((m) => m.id === message.id)) return false;
  chat.push(message);
  chat.sort((a, b) => a.id - b.id);
  if (chat.length > HISTORY) chat.splice(0, chat.length - HISTORY);
  return true;
}

async function send(event) {
  event.preventDefault();
  const input = $("chat-text");
  const reply = await room.send("chat.send", { text: input.value });
  if (!reply.ok) return toast(reply.error);
  input.value = "";
  add(reply.message);
  render();
  $("chat-list").scrollTop = $("chat-list").scrollHeight;
}

async function setMode(event) {
  const reply = await room.send("chat.mode", { mode: event.target.value });
  if (!reply.ok) {
    toast(reply.error);
    renderMode();
  }
}

export function init(r) {
  room = r;
  const form = $("chat-form");
  if (form) form.addEventListener("submit", send);
  const select = $("chat-mode");
  if (select) select.addEventListener("change", setMode);
  room.onState(render);
  room.on("chat.message", (m) => {
    if (add(m)) {
      render();
      if (m.author_id !== room.userId) tabs.notify("chat");
    }
  });
  room.on("chat.mode", (data) => {
    room.state.room.chat_mode = data.mode;
    renderMode();
  });
}
