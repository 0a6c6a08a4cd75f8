"""Questions sent ahead: written on the broadcast's page before it starts, they wait in the live
room's moderation queue (or go straight to the list when the host asks)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db
from rooms import log
from rooms.models import Question, Room
from rooms.state import room_for
from webinar.models import Broadcast
from webinar.room import BROADCAST_ROOM, resolve


def broadcast_room(user: User, broadcast: Broadcast) -> Room | None:
    """The broadcast's live room (created with its defaults if nobody joined yet)."""
    membership = resolve(user, broadcast.id)
    return None if membership is None else room_for(BROADCAST_ROOM, broadcast.id, membership)


def submit_ahead(user: User, broadcast: Broadcast, text: str, anonymous: bool) -> str | None:
    """Add ``user``'s question to the room; None when done, else why it was refused."""
    text = text.strip()
    if not text:
        return _("Write a question first.")
    room = broadcast_room(user, broadcast)
    if room is None:
        return _("You may not ask questions in this broadcast.")
    if anonymous and not room.anonymous_questions:
        return _("Questions at this meeting carry your name: anonymous questions are off.")
    host = broadcast.host_id == user.id or user.role == "admin"
    status = "pending" if room.moderated and not host else "open"
    question = Question(
        room_id=room.id, author_id=user.id, text=text, anonymous=anonymous, status=status
    )
    db.session.add(question)
    db.session.flush()
    log.record(
        room.id,
        user.id,
        "question.ask",
        id=question.id,
        text=text,
        anonymous=anonymous,
        status=status,
        ahead=True,
    )
    db.session.commit()
    return None


def asked_ahead(user: User, broadcast: Broadcast) -> list[dict[str, Any]]:
    """The user's own questions for this broadcast, newest first, for its page."""
    room = db.session.scalar(
        select(Room).where(Room.kind == BROADCAST_ROOM.name, Room.ref_id == broadcast.id)
    )
    if room is None:
        return []
    questions = db.session.scalars(
        select(Question)
        .where(Question.room_id == room.id, Question.author_id == user.id)
        .order_by(Question.id.desc())
    )
    return [{"text": q.text, "status": q.status, "at": q.created_at} for q in questions]
