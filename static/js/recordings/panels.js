// What was on screen and in the room's panels at the player's current time: the slide, the
// questions, the chat, the hand queue, and which chapter is playing. Each time in a list is a
// button that seeks there.

import { t } from "../i18n.js";
import { el, syncList } from "../room/dom.js";
import { clock } from "./time.js";

const $ = (id) => document.getElementById(id);

function timeButton(label, at, seek) {
  return el("button", { type: "button", class: "link time", text: label, onclick: () => seek(at) });
}

function setCount(tabId, n) {
  const count = $(tabId).querySelector(".count");
  count.textContent = n ? String(n) : "";
}

export class Panels {
  constructor(doc, replay, seek) {
    this.replay = replay;
    this.seek = seek;
    this.chapters = doc.chapters;
    this.shownChapter = -2;
    $("tab-hands").hidden = !replay.showHands;
    this.buildChapters();
    this.renderAll();
  }

  update(t) {
    if (this.replay.seek(t)) this.renderAll();
    this.markChapter(t);
  }

  renderAll() {
    this.renderSlide();
    this.renderQuestions();
    this.renderChat();
    this.renderHands();
  }

  renderSlide() {
    const slide = this.replay.slide;
    const img = $("slide-img");
    img.hidden = !slide;
    $("slide").classList.toggle("empty", !slide);
    if (!slide) {
      $("slide-caption").textContent = t("No slides shown yet");
      return;
    }
    if (img.getAttribute("src") !== slide.url) img.src = slide.url;
    img.alt = t("Slide %(page)s", { page: slide.page });
    img.dataset.deck = String(slide.deck_id);
    img.dataset.page = String(slide.page);
    $("slide-caption").textContent = t("Slide %(page)s", { page: slide.page });
  }

  renderQuestions() {
    const items = this.replay.questionList();
    syncList($("qa-list"), items, (q) => q.id, () => el("li", { class: "rec-question" }), (node, q) => {
      node.classList.toggle("pinned", q.pinned);
      node.classList.toggle("answered", q.status === "answered");
      const meta = el("p", { class: "q-meta" },
        el("span", { class: "q-author", text: q.author || t("Anonymous") }),
        q.t !== null ? timeButton(t("asked %(time)s", { time: clock(q.t) }), q.t, this.seek) : null,
        q.pinned ? el("span", { class: "q-flag", text: t("Pinned") }) : null,
        q.status === "answered" ? el("span", { class: "q-flag ok", text: t("Answered") }) : null);
      const answer = q.status !== "answered" ? null
        : el("p", { class: "q-answer" },
          el("span", { text: q.answer ? t("Answer: %(answer)s", { answer: q.answer }) : t("Answered live") }),
          q.answeredAt !== undefined ? timeButton(clock(q.answeredAt), q.answeredAt, this.seek) : null);
      node.replaceChildren(el("p", { class: "q-text", text: q.text }), meta, answer || "");
    });
    $("qa-empty").hidden = items.length > 0;
    setCount("tab-qa", items.length);
  }

  renderChat() {
    const list = $("chat-list");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const items = this.replay.chat;
    syncList(list, items, (m) => m.id, (m) => el("li", { class: "rec-message" },
      el("p", { class: "msg-meta" }, el("span", { class: "msg-author", text: m.author }), timeButton(clock(m.t), m.t, this.seek)),
      el("p", { class: "msg-text", text: m.text })), () => {});
    if (atBottom) list.scrollTop = list.scrollHeight;
    $("chat-empty").hidden = items.length > 0;
    setCount("tab-chat", items.length);
  }

  renderHands() {
    if (!this.replay.showHands) return;
    const items = this.replay.handList();
    syncList($("hand-list"), items, (h) => h.hand_id, () => el("li"), (node, h) => {
      node.replaceChildren(el("span", { text: h.name }),
        h.state === "called" ? el("span", { class: "q-flag ok", text: t("Called on") }) : "");
    });
    $("hands-empty").hidden = items.length > 0;
    setCount("tab-hands", items.length);
  }

  buildChapters() {
    const list = $("chapter-list");
    list.replaceChildren(...this.chapters.map((c) => el("li", {},
      el("button", { type: "button", class: "chapter", onclick: () => this.seek(c.t) },
        el("span", { class: "time", text: clock(c.t) }), el("span", { text: c.title })))));
    $("chapters-empty").hidden = this.chapters.length > 0;
    setCount("tab-chapters", this.chapters.length);
  }

  markChapter(t) {
    let current = -1;
    this.chapters.forEach((c, i) => { if (c.t <= t) current = i; });
    if (current === this.shownChapter) return;
    this.shownChapter = current;
    [...$("chapter-list").children].forEach((li, i) => {
      const button = li.firstElementChild;
      if (i === current) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    });
  }
}
