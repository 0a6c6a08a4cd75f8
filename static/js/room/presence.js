// Presence: everyone sees how many are in the room; moderators see who (and, in a broadcast,
// hosts move people on and off the stage from that list).

import { t, tn } from "../i18n.js";
import { clock, el, syncList } from "./dom.js";
import * as stage from "./stage.js";

// room role -> its name in the page's language
const ROLES = {
  instructor: t("instructor"), student: t("student"), host: t("host"),
  panelist: t("panelist"), attendee: t("attendee"),
};

let room;
const $ = (id) => document.getElementById(id);

function renderCount() {
  const count = room.state.presence.count;
  $("presence-count").textContent = tn("%(n)s person here", "%(n)s people here", count);
}

function build() {
  const node = el("li", { class: "person" });
  node.parts = { name: el("span", { class: "name" }), meta: el("small"), actions: el("span", { class: "actions" }) };
  node.append(node.parts.name, " ", node.parts.meta, node.parts.actions);
  return node;
}

function update(node, person) {
  const me = person.user_id === room.userId;
  node.parts.name.textContent = me ? t("%(name)s (you)", { name: person.name }) : person.name;
  const role = ROLES[person.role] || person.role;
  node.parts.meta.textContent = person.joined_at ? t("%(role)s · since %(time)s", { role, time: clock(person.joined_at) }) : role;
  if (node.dataset.role !== person.role) {
    node.dataset.role = person.role;
    const button = stage.control(person);
    node.parts.actions.replaceChildren(...(button ? [button] : []));
  }
}

function renderPeople() {
  const list = $("people-list");
  const people = room.state.presence.people;
  if (!list || !people) return;
  syncList(list, people, (p) => p.user_id, build, update);
}

function render() {
  renderCount();
  renderPeople();
}

export function init(r) {
  room = r;
  room.onState(render);
  room.on("local:people", renderPeople);
  room.on("presence.count", (data) => {
    room.state.presence.count = data.count;
    renderCount();
  });
  room.on("presence.join", (person) => {
    const people = room.state.presence.people;
    if (!people || people.some((p) => p.user_id === person.user_id)) return;
    people.push({ ...person, joined_at: new Date().toISOString() });
    renderPeople();
  });
  room.on("presence.leave", (person) => {
    const people = room.state.presence.people;
    if (!people) return;
    room.state.presence.people = people.filter((p) => p.user_id !== person.user_id);
    renderPeople();
  });
}
