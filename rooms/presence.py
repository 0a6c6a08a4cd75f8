"""Presence: who is connected to a room. Moderators get the list, everyone gets the count.

Each connection row names the web worker holding it (``WORKER_ID``), and each worker beats a
``web_workers`` row every ``HEARTBEAT_S``: the rows of a worker silent for ``STALE_S`` (killed)
are removed by the others, as its disconnects would have been (:func:`orphans`).
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import log
from rooms.coalesce import Coalescer
from rooms.context import Actor, Outbox
from rooms.models import Connection, WebWorker
from rooms.people import names

WORKER_ID = secrets.token_hex(8)  # this web worker, for the life of its process
HEARTBEAT_S = 5.0
STALE_S = 15.0  # three missed beats: the worker is gone
_last_beat = float("-inf")  # time.monotonic() of this worker's last beat

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
        Connection(
            sid=sid,
            room_id=actor.room_id,
            user_id=actor.user_id,
            role=actor.role,
            worker=WORKER_ID,
        )
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


def disconnect(room_id: int, user_id: int, name: str, sid: str, out: Outbox) -> None:
    """Forget a connection; the user's last one is a leave. A row already gone (removed with
    its worker's, :func:`orphans`) was counted then."""
    result = cast(
        CursorResult[Any], db.session.execute(delete(Connection).where(Connection.sid == sid))
    )
    last = result.rowcount > 0 and connections_of(room_id, user_id) == 0
    if last:
        log.record(room_id, user_id, "presence.leave")
    db.session.commit()
    if last:
        out.to_mods(room_id, "presence.leave", {"user_id": user_id, "name": name})
    count_coalescer.mark(("count", room_id), count_update(room_id))


def beat(due: float = 0.0) -> None:
    """Say this worker is alive (committed), if its last beat is ``due`` seconds old. Before
    its first connection row, so no other worker mistakes that row for an orphan."""
    global _last_beat
    now = time.monotonic()
    if now - _last_beat < due:
        return
    seen = utcnow()
    beaten = db.session.execute(
        update(WebWorker).where(WebWorker.id == WORKER_ID).values(last_seen=seen)
    )
    if not cast(CursorResult[Any], beaten).rowcount:
        db.session.add(WebWorker(id=WORKER_ID, last_seen=seen))
    try:
        db.session.commit()
    except IntegrityError:  # another thread of this worker wrote the first beat meanwhile
        db.session.rollback()
    _last_beat = now


def orphans(stale_s: float = STALE_S) -> list[tuple[int, int, str, str]]:
    """(room id, user id, name, sid) of the connections whose web worker has not beaten for
    ``stale_s`` (or that name none: from before workers beat); those workers' rows go."""
    cutoff = utcnow() - timedelta(seconds=stale_s)
    alive = select(WebWorker.id).where(WebWorker.last_seen >= cutoff)
    rows = db.session.execute(
        select(Connection.room_id, Connection.user_id, Connection.sid).where(
            or_(Connection.worker.is_(None), Connection.worker.not_in(alive))
        )
    ).all()
    db.session.execute(delete(WebWorker).where(WebWorker.last_seen < cutoff))
    db.session.commit()
    who = names(r[1] for r in rows)
    return [(room_id, uid, who.get(uid, "?"), sid) for room_id, uid, sid in rows]


def forget_all() -> None:
    """Drop every connection row (a web worker starting alone owns no live connections)."""
    db.session.execute(delete(Connection))
    db.session.commit()
