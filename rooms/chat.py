"""Chat: room messages; the presenter can turn chat off or limit it to hosts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lectern.extensions import db
from rooms import log
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import CHAT_MAX, ChatMessage, Room
from rooms.people import names
from rooms.policy import Perm
from rooms.validate import Choice, Text

HISTORY = 100
MODES = ("everyone", "hosts", "off")


def view(m: ChatMessage, author: str) -> dict[str, Any]:
    return {
        "id": m.id,
        "author_id": m.author_id,
        "author": author,
        "text": m.text,
        "at": m.created_at.isoformat() + "Z",
    }


def history(room_id: int) -> list[dict[str, Any]]:
    """The last messages of the room, oldest first."""
    recent = list(
        db.session.scalars(
            select(ChatMessage)
            .where(ChatMessage.room_id == room_id)
            .order_by(ChatMessage.id.desc())
            .limit(HISTORY)
        )
    )[::-1]
    who = names(m.author_id for m in recent)
    return [view(m, who.get(m.author_id, "?")) for m in recent]


def send(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.CHAT)
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    if room.chat_mode == "off" and not actor.may(Perm.MANAGE_CHAT):
        raise Refused("chat is turned off")
    if room.chat_mode == "hosts" and not (actor.may(Perm.MANAGE_CHAT) or actor.may(Perm.PUBLISH)):
        raise Refused("chat is limited to hosts")  # presenters and those on stage: panelists
    msg = ChatMessage(room_id=actor.room_id, author_id=actor.user_id, text=data["text"])
    db.session.add(msg)
    db.session.flush()
    log.record(actor.room_id, actor.user_id, "chat.message", id=msg.id, text=msg.text)
    db.session.commit()
    message = view(msg, actor.name)
    out.to_all(actor.room_id, "chat.message", message)
    return {"message": message}


def set_mode(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.MANAGE_CHAT)
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    room.chat_mode = data["mode"]
    log.record(actor.room_id, actor.user_id, "chat.mode", mode=room.chat_mode)
    db.session.commit()
    out.to_all(actor.room_id, "chat.mode", {"mode": room.chat_mode})
    return {}


EVENTS = [
    Event("chat.send", {"text": Text(max=CHAT_MAX)}, send, "chat"),
    Event("chat.mode", {"mode": Choice(MODES)}, set_mode),
]
