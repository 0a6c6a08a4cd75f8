// Q&A: ask (optionally anonymously), upvote (a toggle), sort by votes or time; moderators
// approve pending questions, answer them (live or in writing), pin, dismiss, and merge a
// duplicate into another question (merged ones stay visible to moderators only, collapsed).

import { t, tn } from "../i18n.js";
import { announce, clock, el, syncList, toast } from "./dom.js";
import * as tabs from "./tabs.js";

let room;
const $ = (id) => document.getElementById(id);
const PUBLIC = ["open", "answered"];

function questions() {
  return room.state.questions;
}

function upsert(q) {
  const list = questions();
  const index = list.findIndex((x) => x.id === q.id);
  if (index >= 0) list[index] = { ...list[index], ...q };
  else list.push(q);
}

function sorted(list) {
  const byVotes = $("qa-sort").value === "votes";
  return [...list].sort((a, b) => {
    if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
    if (byVotes && a.votes !== b.votes) return b.votes - a.votes;
    return b.id - a.id; // newer first
  });
}

function build(q) {
  const node = el("li", { class: "question" });
  node.dataset.key = String(q.id); // syncList sets it too, after build: the tools need it now
  const p = (node.parts = {
    flags: el("p", { class: "flags" }),
    text: el("p", { class: "text", id: `question-${q.id}` }),
    meta: el("p", { class: "meta" }),
    answer: el("p", { class: "answer" }),
    vote: el("button", { type: "button", class: "vote", "aria-pressed": "false" }),
    tools: el("div", { class: "tools" }),
  });
  p.vote.setAttribute("aria-describedby", `question-${q.id}`);
  p.vote.addEventListener("click", () => upvote(Number(node.dataset.key)));
  node.append(p.vote, el("div", { class: "body" }, p.flags, p.text, p.meta, p.answer, p.tools));
  if (room.may("question.moderate")) addTools(node);
  return node;
}

function tool(node, name, label, onClick) {
  // Described by the question's text: "Approve" alone does not say which question.
  const button = el("button", { type: "button", class: `small secondary ${name}`, text: label });
  button.setAttribute("aria-describedby", `question-${node.dataset.key}`);
  button.addEventListener("click", () => onClick(Number(node.dataset.key)));
  node.parts[name] = button;
  node.parts.tools.append(button);
}

function addTools(node) {
  tool(node, "approve", t("Approve"), (id) => moderate("question.approve", { id }));
  tool(node, "live", t("Answered live"), (id) => moderate("question.answer", { id }));
  tool(node, "write", t("Write answer"), () => openAnswer(node));
  tool(node, "pin", t("Pin"), (id) => moderate("question.pin", { id, pinned: !isPinned(id) }));
  tool(node, "merge", t("Merge into…"), () => openMerge(node));
  tool(node, "dismiss", t("Dismiss"), (id) => moderate("question.dismiss", { id }));
  node.parts.dismiss.classList.add("danger");
}

function isPinned(id) {
  const q = questions().find((x) => x.id === id);
  return Boolean(q && q.pinned);
}

function openAnswer(node) {
  if (node.querySelector(".answer-form")) return;
  const id = Number(node.dataset.key);
  const text = el("textarea", { rows: "2", maxlength: "4000", required: true, "aria-label": t("Written answer") });
  const form = el("form", { class: "answer-form stack" }, text,
    el("div", { class: "form-row" },
      el("button", { type: "submit", text: t("Publish answer") }),
      el("button", { type: "button", class: "secondary", text: t("Cancel"), onclick: () => form.remove() })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await moderate("question.answer", { id, text: text.value })) form.remove();
  });
  node.parts.tools.after(form);
  text.focus();
}

/** Questions `id` may be merged into: the other open or answered ones. */
function targets(id) {
  return questions().filter((q) => q.id !== id && PUBLIC.includes(q.status)).sort((a, b) => a.id - b.id);
}

function short(text, n = 60) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function openMerge(node) {
  if (node.querySelector(".merge-form")) return;
  const id = Number(node.dataset.key);
  const choices = targets(id).map((q) => el("option", { value: String(q.id), text: `#${q.id}: ${short(q.text)}` }));
  if (!choices.length) return toast(t("There is no other open or answered question to merge into."));
  const select = el("select", { "aria-label": t("Merge into question") }, ...choices);
  const form = el("form", { class: "merge-form form-row" },
    el("label", { class: "inline-field", text: t("Into") + " " }, select),
    el("span", { class: "tool-group" },
      el("button", { type: "submit", class: "small", text: t("Merge") }),
      el("button", { type: "button", class: "small secondary", text: t("Cancel"), onclick: () => form.remove() })));
  select.setAttribute("aria-describedby", `question-${id}`);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await room.send("question.merge", { id, into: Number(select.value) });
    if (!reply.ok) return toast(reply.error);
    upsert(reply.question);
    if (reply.merged) upsert(reply.merged);
    form.remove();
    render();
    announce(t("Question merged into #%(id)s.", { id: reply.question.id }));
  });
  node.parts.tools.after(form);
  select.focus();
}

function update(node, q) {
  const p = node.parts;
  const voted = room.state.my_votes.includes(q.id);
  const open = PUBLIC.includes(q.status);
  node.dataset.status = q.status;
  node.classList.toggle("pinned", q.pinned);
  p.flags.textContent = [
    q.pinned ? t("Pinned") : "",
    q.status === "pending" ? t("Waiting for approval") : "",
    q.status === "answered" ? t("Answered") : "",
    q.status === "merged" ? t("Merged into #%(id)s", { id: q.merged_into }) : "",
  ].filter(Boolean).join(" · ");
  p.flags.hidden = !p.flags.textContent;
  p.text.textContent = q.text;
  const number = room.may("question.moderate") ? `#${q.id} · ` : "";
  p.meta.textContent = `${number}${q.anonymous ? t("Anonymous") : q.author} · ${clock(q.created_at)}`;
  p.answer.hidden = q.status !== "answered";
  p.answer.textContent = q.answer ? t("Answer: %(answer)s", { answer: q.answer }) : t("Answered live");
  p.vote.textContent = `▲ ${q.votes}`;
  p.vote.setAttribute("aria-pressed", String(voted));
  p.vote.setAttribute("aria-label", voted
    ? tn("Remove your upvote (%(n)s vote)", "Remove your upvote (%(n)s votes)", q.votes)
    : tn("Upvote (%(n)s vote)", "Upvote (%(n)s votes)", q.votes));
  p.vote.disabled = !open || !room.may("question.upvote");
  if (p.approve) {
    p.approve.hidden = q.status !== "pending";
    p.live.hidden = q.status === "answered";
    p.write.textContent = q.status === "answered" ? t("Edit answer") : t("Write answer");
    p.pin.textContent = q.pinned ? t("Unpin") : t("Pin");
    p.pin.setAttribute("aria-pressed", String(q.pinned));
    p.pin.hidden = !open;
    p.merge.hidden = !(q.status === "pending" || q.status === "open");
    const merged = q.status === "merged";
    for (const name of ["live", "write", "dismiss"]) p[name].hidden = merged || (name === "live" && q.status === "answered");
  }
}

function render() {
  const shown = questions().filter((q) => q.status !== "dismissed");
  const merged = shown.filter((q) => q.status === "merged");
  const all = shown.filter((q) => q.status !== "merged");
  const pendingList = $("qa-pending");
  const moderating = Boolean(pendingList);
  const main = moderating ? all.filter((q) => q.status !== "pending") : all;
  const mergedList = $("qa-merged");
  if (mergedList) {
    syncList(mergedList, merged.sort((a, b) => a.id - b.id), (q) => q.id, build, update);
    $("qa-merged-box").hidden = merged.length === 0;
    $("qa-merged-title").textContent = t("Merged duplicates (%(n)s)", { n: merged.length });
  }
  syncList($("qa-list"), sorted(main), (q) => q.id, build, update);
  if (moderating) {
    const pending = all.filter((q) => q.status === "pending").sort((a, b) => a.id - b.id);
    syncList(pendingList, pending, (q) => q.id, build, update);
    $("pending-title").hidden = pending.length === 0;
    $("pending-title").textContent = t("Waiting for approval (%(n)s)", { n: pending.length });
  }
  $("qa-empty").hidden = all.length > 0;
  const anon = $("ask-anon-label");
  if (anon) anon.hidden = !room.state.room.anonymous_questions;
}

async function upvote(id) {
  const reply = await room.send("question.upvote", { id });
  if (!reply.ok) return toast(reply.error);
  const votes = new Set(room.state.my_votes);
  if (reply.voted) votes.add(id);
  else votes.delete(id);
  room.state.my_votes = [...votes];
  upsert({ id, votes: reply.votes });
  render();
}

async function moderate(event, data) {
  const reply = await room.send(event, data);
  if (!reply.ok) {
    toast(reply.error);
    return false;
  }
  upsert(reply.question);
  render();
  return true;
}

async function ask(event) {
  event.preventDefault();
  const text = $("ask-text");
  const anon = $("ask-anon");
  const reply = await room.send("question.ask", { text: text.value, anonymous: anon.checked });
  if (!reply.ok) return toast(reply.error);
  upsert(reply.question);
  render();
  text.value = "";
  if (reply.question.status === "pending") toast(t("Sent: your question appears to others once a moderator approves it."));
  else announce(t("Question sent."));
}

function onUpdate(q) {
  const known = questions().some((x) => x.id === q.id);
  upsert(q);
  render();
  if (!known) {
    tabs.notify("qa");
    if (q.status === "pending" && room.may("question.moderate")) announce(t("A question is waiting for approval."));
  }
}

function onRemove(data) {
  room.state.questions = questions().filter((q) => q.id !== data.id);
  render();
}

function onVotes(data) {
  if (!questions().some((q) => q.id === data.id)) return;
  upsert(data);
  render();
}

export function init(r) {
  room = r;
  const form = $("ask-form");
  if (form) form.addEventListener("submit", ask);
  $("qa-sort").addEventListener("change", render);
  room.onState(render);
  room.on("question.update", onUpdate);
  room.on("question.remove", onRemove);
  room.on("question.votes", onVotes);
}
