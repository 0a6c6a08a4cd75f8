"""Q&A: ask (optionally anonymously), upvote once, and moderate (approve, answer, pin, dismiss,
merge a duplicate into another question)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from lectern.extensions import db
from rooms import log
from rooms.coalesce import Coalescer
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import QUESTION_MAX, Connection, Question, QuestionVote, Room
from rooms.people import names
from rooms.policy import Perm
from rooms.validate import Bool, Int, Text

PUBLIC = ("open", "answered")
MERGEABLE = ("pending", "open")  # a duplicate merged away; it then becomes "merged"

# Vote counts reach the room coalesced: at most one update per question per interval.
votes_coalescer = Coalescer()


def view(q: Question, author: str | None) -> dict[str, Any]:
    """A question as participants see it: an anonymous author is never sent, not even its id."""
    return {
        "id": q.id,
        "text": q.text,
        "status": q.status,
        "pinned": q.pinned,
        "anonymous": q.anonymous,
        "author": None if q.anonymous else author,
        "author_id": None if q.anonymous else q.author_id,
        "answer": q.answer,
        "answered_live": q.answered_live,
        "votes": q.votes,
        "merged_into": q.merged_into_id,
        "created_at": q.created_at.isoformat() + "Z",
    }


def visible(room_id: int, actor: Actor) -> list[dict[str, Any]]:
    """Questions ``actor`` may see: public ones, plus pending/dismissed for moderators, plus
    their own pending ones."""
    query = select(Question).where(Question.room_id == room_id)
    if not actor.may(Perm.MODERATE):
        query = query.where(
            or_(
                Question.status.in_(PUBLIC),
                (Question.status == "pending") & (Question.author_id == actor.user_id),
            )
        )
    found = list(db.session.scalars(query.order_by(Question.id)))
    who = names(q.author_id for q in found if not q.anonymous)
    return [view(q, who.get(q.author_id)) for q in found]


def my_votes(room_id: int, user_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(QuestionVote.question_id)
            .join(Question)
            .where(Question.room_id == room_id, QuestionVote.user_id == user_id)
        )
    )


def find(actor: Actor, question_id: int, lock: bool = False) -> Question:
    """The room's question; ``lock`` holds its row (PostgreSQL) against a concurrent change."""
    q = db.session.get(Question, question_id, with_for_update=lock)
    if q is None or q.room_id != actor.room_id:
        raise Refused("no such question in this room")
    return q


def moderates(actor: Actor, user_id: int) -> bool:
    """Whether ``user_id`` is connected to the actor's room in a role that moderates (and so
    is in the moderators' audience)."""
    roles = db.session.scalars(
        select(Connection.role).where(
            Connection.room_id == actor.room_id, Connection.user_id == user_id
        )
    )
    return any(actor.policy.allows(role, Perm.MODERATE) for role in roles)


def announce(actor: Actor, q: Question, out: Outbox) -> dict[str, Any]:
    """Send a question's new state to those who may see it."""
    data = view(q, None if q.anonymous else names([q.author_id]).get(q.author_id))
    if q.status in PUBLIC:
        out.to_all(actor.room_id, "question.update", data)
    else:
        out.to_mods(actor.room_id, "question.update", data)
        if not moderates(actor, q.author_id):  # a moderator has it already, once is enough
            out.to_user(actor.room_id, q.author_id, "question.update", data)
        if q.status == "dismissed":
            out.to_all(actor.room_id, "question.remove", {"id": q.id})
    return data


def ask(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.ASK)
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    if data["anonymous"] and not room.anonymous_questions:
        raise Refused("this room does not allow anonymous questions")
    status = "pending" if room.moderated and not actor.may(Perm.MODERATE) else "open"
    q = Question(
        room_id=actor.room_id,
        author_id=actor.user_id,
        text=data["text"],
        anonymous=data["anonymous"],
        status=status,
    )
    db.session.add(q)
    db.session.flush()
    log.record(
        actor.room_id,
        actor.user_id,
        "question.ask",
        id=q.id,
        text=q.text,
        anonymous=q.anonymous,
        status=status,
    )
    db.session.commit()
    return {"question": announce(actor, q, out)}


def vote_update(room_id: int, question_id: int) -> Any:
    def build(out: Outbox) -> None:
        q = db.session.get(Question, question_id)
        if q is not None:
            target = out.to_all if q.status in PUBLIC else out.to_mods
            target(room_id, "question.votes", {"id": q.id, "votes": q.votes})

    return build


def upvote(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Toggle the caller's vote; the new count reaches everyone coalesced."""
    actor.require(Perm.UPVOTE)
    q = find(actor, data["id"])
    if q.status not in PUBLIC:
        raise Refused("only visible questions can be upvoted")
    existing = db.session.get(QuestionVote, (q.id, actor.user_id))
    removed = existing is not None
    if existing is not None:
        db.session.delete(existing)
    else:
        db.session.add(QuestionVote(question_id=q.id, user_id=actor.user_id))
    db.session.flush()
    q.votes = Question.votes + (-1 if removed else 1)
    log.record(actor.room_id, actor.user_id, "question.upvote", id=q.id, on=not removed)
    db.session.commit()
    db.session.refresh(q)
    votes_coalescer.mark(("votes", actor.room_id, q.id), vote_update(actor.room_id, q.id))
    return {"id": q.id, "voted": not removed, "votes": q.votes}


def moderate(actor: Actor, data: dict[str, Any], out: Outbox, change: str) -> dict[str, Any]:
    """Apply one moderation ``change`` to a question, log it and announce it."""
    actor.require(Perm.MODERATE)
    q = find(actor, data["id"])
    if change == "approve":
        if q.status != "pending":
            raise Refused("only pending questions can be approved")
        q.status = "open"
    elif change == "answer":
        q.status, q.answer, q.answered_live = "answered", data.get("text"), not data.get("text")
    elif change == "pin":
        q.pinned = data["pinned"]
    elif change == "dismiss":
        q.status, q.pinned = "dismissed", False
    log.record(
        actor.room_id,
        actor.user_id,
        f"question.{change}",
        id=q.id,
        answer=q.answer,
        pinned=q.pinned,
    )
    db.session.commit()
    return {"question": announce(actor, q, out)}


def voters(question_id: int) -> set[int]:
    return set(
        db.session.scalars(
            select(QuestionVote.user_id).where(QuestionVote.question_id == question_id)
        )
    )


def move_votes(source: Question, target: Question) -> None:
    """Make the source's upvoters upvoters of the target, and the source's author too unless
    they wrote the target (each user once), then recount the target from its vote rows."""
    moving = voters(source.id)
    if source.author_id != target.author_id:
        moving.add(source.author_id)
    for user_id in moving - voters(target.id):
        db.session.add(QuestionVote(question_id=target.id, user_id=user_id))
    db.session.flush()
    target.votes = (
        db.session.scalar(select(func.count()).where(QuestionVote.question_id == target.id)) or 0
    )


def merge(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Merge the question ``id`` (a duplicate) into ``into``: its upvoters (and its author)
    upvote the target; the duplicate keeps its own rows and count for the record."""
    actor.require(Perm.MODERATE)
    if data["id"] == data["into"]:
        raise Refused("a question cannot be merged into itself")
    # Both rows locked, lower id first: two moderators merging A into B and B into A at once
    # cannot make a cycle (the second sees the first's result), nor deadlock.
    first, second = sorted((data["id"], data["into"]))
    locked = {first: find(actor, first, lock=True), second: find(actor, second, lock=True)}
    source, target = locked[data["id"]], locked[data["into"]]
    if source.status not in MERGEABLE:
        raise Refused("only pending or open questions can be merged")
    if target.status == "pending":
        raise Refused("approve the question you merge into first")
    if target.status not in PUBLIC:
        raise Refused("questions can only be merged into open or answered ones")
    was_public = source.status in PUBLIC
    source.status, source.merged_into_id, source.pinned = "merged", target.id, False
    move_votes(source, target)
    log.record(actor.room_id, actor.user_id, "question.merge", id=source.id, into=target.id)
    db.session.commit()
    merged = announce(actor, source, out)
    if was_public:
        out.to_all(actor.room_id, "question.remove", {"id": source.id})
    return {"question": announce(actor, target, out), "merged": merged}


def approve(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    return moderate(actor, data, out, "approve")


def answer(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    return moderate(actor, data, out, "answer")


def pin(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    return moderate(actor, data, out, "pin")


def dismiss(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    return moderate(actor, data, out, "dismiss")


ID = {"id": Int()}

EVENTS = [
    Event("question.ask", {"text": Text(max=QUESTION_MAX), "anonymous": Bool()}, ask, "question"),
    Event("question.upvote", ID, upvote),
    Event("question.approve", ID, approve),
    Event("question.answer", {**ID, "text": Text(max=QUESTION_MAX * 4, required=False)}, answer),
    Event("question.pin", {**ID, "pinned": Bool(default=True)}, pin),
    Event("question.dismiss", ID, dismiss),
    Event("question.merge", {**ID, "into": Int()}, merge),
]
