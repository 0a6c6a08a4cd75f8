"""The room's event log: appended in the same transaction as the change it records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lectern.extensions import db
from rooms.models import RoomEvent


def record(room_id: int, actor_id: int | None, type_: str, **payload: Any) -> None:
    """Add an event to the session; the caller's commit writes it with the change."""
    db.session.add(RoomEvent(room_id=room_id, actor_id=actor_id, type=type_, payload=payload))


def timeline(room_id: int, since: float = 0.0) -> list[dict[str, Any]]:
    """The room's events in order, as plain data (for replay and tests)."""
    events = db.session.scalars(
        select(RoomEvent)
        .where(RoomEvent.room_id == room_id, RoomEvent.ts >= since)
        .order_by(RoomEvent.id)
    )
    return [
        {"ts": e.ts, "actor_id": e.actor_id, "type": e.type, "payload": e.payload} for e in events
    ]
