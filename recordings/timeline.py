"""What the player replays beside the video: the room's event log inside the recording's time
window, reduced to what the audience saw.

Nothing here names users by id; anonymous askers are not named; a question waiting for
approval appears only when (and if) a moderator approved it. Events before the recording
started are folded into the state at t = 0 (the slide on screen, the open questions, the hand
queue), so a recording started mid-lesson does not begin blank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db
from rooms.models import RoomEvent, SlideDeck

QUESTION_TYPES = ("question.ask", "question.approve", "question.answer", "question.pin")
HAND_TYPES = ("hand.raise", "hand.called", "hand.lowered", "hand.done")
STATE_TYPES = ("slides.page", *QUESTION_TYPES, "question.dismiss", *HAND_TYPES)
REPLAYED_TYPES = (*STATE_TYPES, "chat.message")
VISIBLE = ("open", "answered")  # question statuses everyone sees
MIN_CHAPTER_S = 5.0  # a slide shown for less than this is a flip-through, not a chapter
SNIPPET = 80

SlideUrl = Callable[[int, int], str]  # (deck id, page) -> the page image's URL


@dataclass
class Replay:
    """The audience's view of a room, advanced one logged event at a time."""

    names: dict[int, str]
    show_hands: bool
    slide_url: SlideUrl
    slide: dict[str, Any] | None = None
    questions: dict[int | None, dict[str, Any]] = field(default_factory=dict)  # visible ones, by id
    pending: dict[int | None, dict[str, Any]] = field(default_factory=dict)  # awaiting approval
    hands: dict[int, dict[str, Any]] = field(default_factory=dict)  # active hands by hand id

    def name(self, user_id: Any) -> str:
        return self.names.get(user_id, "Someone") if isinstance(user_id, int) else "Someone"

    def apply(self, event: RoomEvent) -> dict[str, Any] | None:
        """Take ``event`` into the state; returns what the player shows of it (or None)."""
        handler = HANDLERS.get(event.type)
        return handler(self, event, event.payload or {}) if handler else None

    def slide_page(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        deck, page = data.get("deck_id"), data.get("page")
        if not isinstance(deck, int) or not isinstance(page, int):
            return None
        self.slide = {"deck_id": deck, "page": page, "url": self.slide_url(deck, page)}
        return {"type": "slides.page", **self.slide}

    def ask(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        qid = question_id(data)
        if qid is None:
            return None
        author = None if data.get("anonymous") else self.name(event.actor_id)
        question = {"id": qid, "text": str(data.get("text", "")), "author": author}
        if data.get("status") in VISIBLE:
            return self.show(question)
        self.pending[qid] = question
        return None

    def approve(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        question = self.pending.pop(question_id(data), None)
        return self.show(question) if question is not None else None

    def show(self, question: dict[str, Any]) -> dict[str, Any]:
        self.questions[question["id"]] = {
            **question,
            "status": "open",
            "answer": None,
            "pinned": False,
        }
        return {"type": "question.ask", **question}

    def answer(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        question = self.questions.get(question_id(data))
        if question is None:
            return None
        question.update(status="answered", answer=data.get("answer"))
        return {"type": "question.answer", "id": question["id"], "answer": question["answer"]}

    def pin(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        question = self.questions.get(question_id(data))
        if question is None:
            return None
        question["pinned"] = bool(data.get("pinned"))
        return {"type": "question.pin", "id": question["id"], "pinned": question["pinned"]}

    def dismiss(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        qid = question_id(data)
        self.pending.pop(qid, None)
        if self.questions.pop(qid, None) is None:
            return None
        return {"type": "question.dismiss", "id": qid}

    def chat(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        text = str(data.get("text", ""))
        return {
            "type": "chat.message",
            "id": data.get("id"),
            "text": text,
            "author": self.name(event.actor_id),
        }

    def hand(self, event: RoomEvent, data: dict[str, Any]) -> dict[str, Any] | None:
        hand_id = data.get("hand_id")
        if not self.show_hands or not isinstance(hand_id, int):
            return None
        if event.type == "hand.raise":
            self.hands[hand_id] = {
                "hand_id": hand_id,
                "name": self.name(event.actor_id),
                "state": "raised",
            }
        hand = self.hands.get(hand_id)
        if hand is None:  # raised before anything we know of
            return None
        if event.type == "hand.called":
            hand["state"] = "called"
        elif event.type in ("hand.lowered", "hand.done"):
            del self.hands[hand_id]
        return {"type": event.type, "hand_id": hand_id, "name": hand["name"]}

    def state(self) -> dict[str, Any]:
        """The view at this point, as the player starts from it."""
        return {
            "slide": self.slide,
            "questions": [dict(q) for q in self.questions.values()],
            "hands": [dict(h) for h in sorted(self.hands.values(), key=lambda h: h["hand_id"])]
            if self.show_hands
            else None,
        }


def question_id(data: dict[str, Any]) -> int | None:
    found = data.get("id")
    return found if isinstance(found, int) else None


HANDLERS: dict[str, Callable[[Replay, RoomEvent, dict[str, Any]], dict[str, Any] | None]] = {
    "slides.page": Replay.slide_page,
    "question.ask": Replay.ask,
    "question.approve": Replay.approve,
    "question.answer": Replay.answer,
    "question.pin": Replay.pin,
    "question.dismiss": Replay.dismiss,
    "chat.message": Replay.chat,
    **{kind: Replay.hand for kind in HAND_TYPES},
}


def logged(
    room_id: int, types: Iterable[str], since: float | None, until: float
) -> list[RoomEvent]:
    """The room's events of ``types`` with ``since`` <= ts <= ``until`` (any age if None)."""
    query = select(RoomEvent).where(
        RoomEvent.room_id == room_id, RoomEvent.type.in_(tuple(types)), RoomEvent.ts <= until
    )
    if since is not None:
        query = query.where(RoomEvent.ts >= since)
    return list(db.session.scalars(query.order_by(RoomEvent.ts, RoomEvent.id)))


def names_of(events: Iterable[RoomEvent]) -> dict[int, str]:
    """Display names of everyone the events mention (as actor or as a hand's owner)."""
    ids = set()
    for event in events:
        ids.add(event.actor_id)
        ids.add((event.payload or {}).get("user_id"))
    wanted = [i for i in ids if isinstance(i, int)]
    if not wanted:
        return {}
    return dict(db.session.execute(select(User.id, User.name).where(User.id.in_(wanted))).all())


def replay(
    room_id: int, start_ts: float, end_ts: float, show_hands: bool, slide_url: SlideUrl
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the state at t = 0, the events in the window with ``t`` seconds from the start)."""
    before = [e for e in logged(room_id, STATE_TYPES, None, start_ts) if e.ts < start_ts]
    during = logged(room_id, REPLAYED_TYPES, start_ts, end_ts)
    state = Replay(names_of([*before, *during]), show_hands, slide_url)
    for event in before:
        state.apply(event)
    initial = state.state()
    events = []
    for event in during:
        shown = state.apply(event)
        if shown is not None:
            events.append({"t": round(event.ts - start_ts, 3), **shown})
    return initial, events


def shown_decks(initial: dict[str, Any], events: list[dict[str, Any]]) -> set[int]:
    """Every slide deck on screen at some point of the recording."""
    slides = [initial["slide"], *(e for e in events if e["type"] == "slides.page")]
    return {s["deck_id"] for s in slides if s is not None}


def chapters(initial: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chapter per slide shown for a while: flipping through pages makes no chapters."""
    changes = [{"t": 0.0, **initial["slide"]}] if initial["slide"] else []
    changes += [e for e in events if e["type"] == "slides.page"]
    kept: list[dict[str, Any]] = []
    for change in changes:
        if kept and change["t"] - kept[-1]["t"] < MIN_CHAPTER_S:
            kept.pop()  # the previous slide was only passed through
        if kept and (kept[-1]["deck_id"], kept[-1]["page"]) == (change["deck_id"], change["page"]):
            continue
        kept.append(change)
    decks = deck_names({c["deck_id"] for c in kept})
    several = len({c["deck_id"] for c in kept}) > 1
    return [
        {
            "t": c["t"],
            "title": f"{decks.get(c['deck_id'], 'Slides')}: slide {c['page']}"
            if several
            else f"Slide {c['page']}",
        }
        for c in kept
    ]


def deck_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    query = select(SlideDeck.id, SlideDeck.filename).where(SlideDeck.id.in_(ids))
    return dict(db.session.execute(query).all())


def markers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points on the scrubber: when each question was asked (became visible) and answered."""
    texts = {e["id"]: e["text"] for e in events if e["type"] == "question.ask"}
    found = []
    for event in events:
        if event["type"] in ("question.ask", "question.answer"):
            text = texts.get(event["id"], "an earlier question")
            kind = "asked" if event["type"] == "question.ask" else "answered"
            found.append({"t": event["t"], "kind": kind, "id": event["id"], "text": snippet(text)})
    return found


def snippet(text: str) -> str:
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1].rstrip() + "…"
