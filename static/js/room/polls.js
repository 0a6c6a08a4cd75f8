// Polls: hosts open single- or multiple-choice polls (in shareholder meetings weighted by
// shares; anonymous if they choose), see results live, reveal them and close the poll;
// participants vote once and see the results once revealed.

import { language, t, tn } from "../i18n.js";
import { announce, el, flash, toast } from "./dom.js";
import * as tabs from "./tabs.js";

let room;
const $ = (id) => document.getElementById(id);
const MAX_OPTIONS = 10;

function upsert(poll) {
  const polls = room.state.polls;
  const index = polls.findIndex((p) => p.id === poll.id);
  const merged = index >= 0 ? { ...polls[index], ...poll } : { my_choices: null, ...poll };
  if (!merged.revealed && !room.may("poll.manage")) delete merged.results; // hidden again
  if (index >= 0) polls[index] = merged;
  else polls.push(merged);
  return index < 0;
}

function ballot(poll) {
  const type = poll.multiple ? "checkbox" : "radio";
  const options = poll.options.map((option, i) =>
    el("li", {}, el("label", { class: "check" },
      el("input", { type, name: `poll-${poll.id}`, value: String(i) }), ` ${option}`)));
  const form = el("form", { class: "ballot stack" },
    el("fieldset", {}, el("legend", { class: "sr-only", text: poll.question }), el("ol", { class: "choices" }, ...options)),
    el("p", { class: "error ballot-error", role: "alert", hidden: true }),
    el("button", { type: "submit", text: t("Vote") }));
  form.addEventListener("submit", (event) => vote(event, poll));
  return form;
}

const number = new Intl.NumberFormat(language);
const percent = new Intl.NumberFormat(language, { style: "percent" });

/** Results as bars: shares of the votes, or for a weighted poll of the weight (shares) cast. */
function results(poll) {
  const { counts, ballots } = poll.results;
  const weighted = Boolean(poll.weighted);
  const total = weighted ? poll.results.weight_total || counts.reduce((a, b) => a + b, 0) : ballots;
  const rows = poll.options.map((option, i) => {
    const share = total ? Math.round((100 * counts[i]) / total) : 0;
    const amount = weighted ? tn("%(n)s share", "%(n)s shares", counts[i], { n: number.format(counts[i]) }) : number.format(counts[i]);
    const label = t("%(option)s: %(amount)s (%(share)s)", { option, amount, share: percent.format(share / 100) });
    return el("li", { class: "result" },
      el("span", { class: "result-label", text: label }),
      el("progress", { max: String(Math.max(total, 1)), value: String(counts[i]), "aria-label": label }));
  });
  const parts = [tn("%(n)s ballot", "%(n)s ballots", ballots, { n: number.format(ballots) })];
  if (weighted) parts.push(tn("%(n)s share", "%(n)s shares", total, { n: number.format(total) }));
  const summary = parts.join(" · ");
  return el("div", { class: "results" },
    el("p", { class: "muted", text: poll.revealed ? summary : t("%(summary)s (only presenters see these)", { summary }) }),
    el("ol", { class: "bars" }, ...rows));
}

function hostTools(poll) {
  const tools = el("div", { class: "tools" });
  const reveal = el("button", {
    type: "button", class: "small secondary",
    text: poll.revealed ? t("Hide results") : t("Reveal results"),
  });
  reveal.addEventListener("click", () => act("poll.reveal", { id: poll.id, revealed: !poll.revealed }));
  tools.append(reveal);
  if (poll.state === "open") {
    const close = el("button", { type: "button", class: "small secondary", text: t("Close poll") });
    close.addEventListener("click", () => act("poll.close", { id: poll.id }));
    tools.append(close);
  }
  return tools;
}

function card(poll) {
  const mine = poll.my_choices;
  const state = poll.state === "open" ? t("Open") : t("Closed");
  const node = el("li", { class: "poll", "data-id": String(poll.id), "data-state": poll.state },
    el("p", { class: "flags", text: [
      state,
      poll.multiple ? t("choose any") : t("choose one"),
      poll.weighted ? t("weighted by shares") : "",
      poll.anonymous ? t("anonymous ballots") : "",
    ].filter(Boolean).join(" · ") }),
    el("h3", { class: "poll-question", text: poll.question }));
  if (mine) {
    // An anonymous poll keeps only that the user voted, not what: my_choices is then [].
    const text = mine.length
      ? t("You voted: %(choices)s", { choices: mine.map((i) => poll.options[i]).join(", ") })
      : t("You voted (anonymous ballot).");
    node.append(el("p", { class: "voted", text }));
  } else if (poll.state === "open" && room.may("poll.vote")) {
    node.append(ballot(poll));
  }
  if (poll.results) node.append(results(poll));
  if (room.may("poll.manage")) node.append(hostTools(poll));
  return node;
}

function render() {
  const list = $("poll-list");
  // A ballot being filled in must survive updates of other polls: only redraw what changed.
  const polls = [...room.state.polls].sort((a, b) => b.id - a.id);
  const keep = new Map([...list.children].map((n) => [n.dataset.id, n]));
  list.replaceChildren(...polls.map((poll) => {
    const signature = JSON.stringify(poll);
    const old = keep.get(String(poll.id));
    if (old && old.signature === signature) return old;
    const node = card(poll);
    node.signature = signature;
    if (old) keepChoices(old, node);
    return node;
  }));
  $("polls-empty").hidden = polls.length > 0;
}

/** Live results redraw a poll's card: the options the user ticked but has not sent stay ticked
 * (and focus stays on the one they were on). */
function keepChoices(from, to) {
  const focused = from.contains(document.activeElement) ? document.activeElement.value : null;
  const ticked = new Set([...from.querySelectorAll("form input:checked")].map((i) => i.value));
  for (const input of to.querySelectorAll("form input")) {
    if (ticked.has(input.value)) input.checked = true;
    if (focused !== null && input.value === focused) input.focus();
  }
}

async function act(event, data) {
  const reply = await room.send(event, data);
  if (!reply.ok) toast(reply.error);
  return reply;
}

async function vote(event, poll) {
  event.preventDefault();
  const form = event.target;
  const error = form.querySelector(".ballot-error");
  const picked = [...form.querySelectorAll("input:checked")].map((i) => Number(i.value));
  if (!picked.length) return flash(error, t("Choose an option first."));
  const reply = await room.send("poll.vote", { id: poll.id, choices: picked });
  if (!reply.ok) return flash(error, t("Your vote was not counted: %(error)s", { error: reply.error }));
  upsert({ id: poll.id, my_choices: reply.choices });
  render();
  announce(t("Your vote was counted."));
}

// --- the host's form ---

function optionRow(value = "") {
  const list = $("poll-options");
  const n = list.children.length + 1;
  const input = el("input", { maxlength: "120", required: true, "aria-label": t("Option %(n)s", { n }) });
  input.value = value;
  const remove = el("button", { type: "button", class: "small secondary", text: t("Remove"), "aria-label": t("Remove option %(n)s", { n }) });
  const row = el("li", { class: "option-row" }, input, remove);
  remove.addEventListener("click", () => {
    if (list.children.length > 2) row.remove();
    renumber();
  });
  list.append(row);
  renumber();
  return input;
}

function renumber() {
  const rows = [...$("poll-options").children];
  rows.forEach((row, i) => {
    row.querySelector("input").setAttribute("aria-label", t("Option %(n)s", { n: i + 1 }));
    row.querySelector("button").setAttribute("aria-label", t("Remove option %(n)s", { n: i + 1 }));
    row.querySelector("button").disabled = rows.length <= 2;
  });
  $("poll-add").disabled = rows.length >= MAX_OPTIONS;
}

function resetForm() {
  $("poll-question").value = "";
  $("poll-multiple").checked = false;
  $("poll-weighted").checked = false;
  $("poll-anonymous").checked = false;
  $("poll-anonymous").disabled = false;
  $("poll-options").replaceChildren();
  optionRow();
  optionRow();
}

async function create(event) {
  event.preventDefault();
  const options = [...$("poll-options").querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
  const payload = { question: $("poll-question").value, options, multiple: $("poll-multiple").checked };
  // Sent only when chosen: a server without these options then still opens plain polls.
  if ($("poll-weighted").checked && !$("poll-weighted-label").hidden) payload.weighted = true;
  if ($("poll-anonymous").checked) payload.anonymous = true;
  const reply = await act("poll.open", payload);
  if (!reply.ok) return;
  const empty = { id: reply.poll.id, counts: options.map(() => 0), ballots: 0, weight_total: 0 };
  upsert({ ...reply.poll, results: reply.poll.results || empty });
  render();
  resetForm();
  $("poll-new").open = false;
}

function onUpdate(poll) {
  const isNew = upsert(poll);
  render();
  if (isNew) {
    tabs.notify("polls");
    if (!room.may("poll.manage")) {
      toast(t("New poll: %(question)s", { question: poll.question }));
    }
  }
}

function onResults(data) {
  if (!room.state.polls.some((p) => p.id === data.id)) return;
  upsert({ id: data.id, results: data });
  render();
}

/** Offer weighted polls only where the room has a share register (a shareholder meeting). */
function renderForm() {
  const label = $("poll-weighted-label");
  if (label) label.hidden = !room.state.room.share_register;
}

export function init(r) {
  room = r;
  room.onState(renderForm);
  if ($("poll-form")) {
    $("poll-form").addEventListener("submit", create);
    // Each weighted ballot's weight names its holder: such a poll cannot be anonymous.
    $("poll-weighted").addEventListener("change", () => {
      $("poll-anonymous").disabled = $("poll-weighted").checked;
      if ($("poll-weighted").checked) $("poll-anonymous").checked = false;
    });
    $("poll-add").addEventListener("click", () => optionRow().focus());
    resetForm();
  }
  room.onState(render);
  room.on("poll.update", onUpdate);
  room.on("poll.results", onResults);
}
