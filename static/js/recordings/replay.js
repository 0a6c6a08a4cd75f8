// The room as the audience saw it at any moment of the recording: the state at t = 0 from the
// server, then its events applied in order. Moving forward applies the new events; moving back
// starts again from t = 0 (cheap: a lesson logs a few thousand events at most).

import { countUpTo } from "./time.js";

export class Replay {
  constructor(doc) {
    this.initial = doc.initial;
    this.events = doc.events;
    this.showHands = doc.initial.hands !== null;
    this.reset();
  }

  reset() {
    this.applied = 0;
    this.slide = this.initial.slide;
    // questions: id -> {id, text, author, status, answer, pinned, t}
    this.questions = new Map(this.initial.questions.map((q) => [q.id, { ...q, t: null }]));
    this.hands = new Map((this.initial.hands || []).map((h) => [h.hand_id, { ...h }]));
    this.chat = []; // [{id, text, author, t}] in order
  }

  /** Bring the state to time `t`; true when anything changed. */
  seek(t) {
    const wanted = countUpTo(this.events, t);
    if (wanted === this.applied) return false;
    if (wanted < this.applied) this.reset();
    while (this.applied < wanted) this.apply(this.events[this.applied++]);
    return true;
  }

  apply(e) {
    const q = this.questions.get(e.id);
    switch (e.type) {
      case "slides.page":
        this.slide = { deck_id: e.deck_id, page: e.page, url: e.url };
        break;
      case "question.ask":
        this.questions.set(e.id, {
          id: e.id, text: e.text, author: e.author, status: "open", answer: null, pinned: false, t: e.t,
        });
        break;
      case "question.answer":
        if (q) Object.assign(q, { status: "answered", answer: e.answer, answeredAt: e.t });
        break;
      case "question.pin":
        if (q) q.pinned = e.pinned;
        break;
      case "question.dismiss":
        this.questions.delete(e.id);
        break;
      case "chat.message":
        this.chat.push({ id: e.id, text: e.text, author: e.author, t: e.t });
        break;
      case "hand.raise":
        this.hands.set(e.hand_id, { hand_id: e.hand_id, name: e.name, state: "raised" });
        break;
      case "hand.called": {
        const hand = this.hands.get(e.hand_id);
        if (hand) hand.state = "called";
        break;
      }
      case "hand.lowered":
      case "hand.done":
        this.hands.delete(e.hand_id);
        break;
      default:
        break;
    }
  }

  /** Visible questions: pinned first, then in the order they were asked. */
  questionList() {
    const order = (q) => (q.t === null ? -1 : q.t);
    return [...this.questions.values()].sort(
      (a, b) => Number(b.pinned) - Number(a.pinned) || order(a) - order(b) || a.id - b.id,
    );
  }

  /** Raised hands in the order they were raised. */
  handList() {
    return [...this.hands.values()].sort((a, b) => a.hand_id - b.hand_id);
  }
}
