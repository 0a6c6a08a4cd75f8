"""Presence: who is connected to a room. Moderators get the list, everyone gets the count."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from lectern.extensions import db
from rooms import log
from rooms.coalesce import Coalescer
from rooms.context import Actor, Outbox
from rooms.models import Connection
from rooms.people import names

# Join/leave changes the count for everyone: sent coalesced, not once per join.
count_coalescer = Coalescer()


def count(room_id: int) -> int:
    """Distinct users connected to the room."""
    return (
        db.session.scalar(
            select(func.count(func.distinct(Connection.user_id))).where(
                Connection.room_id == room_id
            )
        )
        or 0
    )


def people(room_id: int) -> list[dict[str, Any]]:
    """One entry per connected user: name, role and when they first connected."""
    rows = db.session.execute(
        select(Connection.user_id, Connection.role, func.min(Connection.connected_at))
        .where(Connection.room_id == room_id)
        .group_by(Connection.user_id, Connection.role)
    ).all()
    who = names(r[0] for r in rows)
    return sorted(
        (
            {
                "user_id": uid,
                "name": who.get(uid, "?"),
                "role": role,
                "joined_at": at.isoformat() + "Z",
            }
            for uid, role, at in rows
        ),
        key=lambda p: p["joined_at"],
    )


def connections_of(room_id: int, user_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(Connection.room_id == room_id, Connection.user_id == user_id)
        )
        or 0
    )


def count_update(room_id: int) -> Any:
    def build(out: Outbox) -> None:
        out.to_all(room_id, "presence.count", {"count": count(room_id)})

    return build


def connect(actor: Actor, sid: str, out: Outbox) -> None:
    """Record a new connection; the first one of a user is a join."""
    first = connections_of(actor.room_id, actor.user_id) == 0
    db.session.merge(
        Connection(sid=sid, room_id=actor.room_id, user_id=actor.user_id, role=actor.role)
    )
    if first:
        log.record(actor.room_id, actor.user_id, "presence.join", role=actor.role)
    db.session.commit()
    if first:
        out.to_mods(
            actor.room_id,
            "presence.join",
            {"user_id": actor.user_id, "name": actor.name, "role": actor.role},
        )
    count_coalescer.mark(("count", actor.room_id), count_update(actor.room_id))


def disconnect(actor: Actor, sid: str, out: Outbox) -> None:
    """Forget a connection; the user's last one is a leave."""
    db.session.execute(delete(Connection).where(Connection.sid == sid))
    last = connections_of(actor.room_id, actor.user_id) == 0
    if last:
        log.record(actor.room_id, actor.user_id, "presence.leave")
    db.session.commit()
    if last:
        out.to_mods(actor.room_id, "presence.leave", {"user_id": actor.user_id, "name": actor.name})
    count_coalescer.mark(("count", actor.room_id), count_update(actor.room_id))


def forget_all() -> None:
    """Drop every connection row (a web worker starting alone owns no live connections)."""
    db.session.execute(delete(Connection))
    db.session.commit()
