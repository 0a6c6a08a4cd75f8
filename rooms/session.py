"""Ending the session for everyone: a presenter closes the room; until a presenter joins again,
nobody else can enter it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import hands, log, media, recording
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import Connection, Grant, Hand, Room
from rooms.policy import Perm

ENDED = "this session has ended"


def end(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Stop the recording and every stream, lower every hand, then close every connection."""
    actor.require(Perm.END)
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    running = recording.running(room.id)
    if running is not None:
        recording.finish(room, running, actor.user_id, out)
    media.stop_streams(room.id, out)
    for hand in db.session.scalars(
        select(Hand).where(Hand.room_id == room.id, Hand.state.in_(hands.ACTIVE))
    ):
        hand.state, hand.ended_at, hand.ended_by = "done", utcnow(), actor.user_id
    db.session.execute(delete(Grant).where(Grant.room_id == room.id))
    room.ended_at = utcnow()
    log.record(room.id, actor.user_id, "room.end")
    db.session.commit()
    out.to_all(room.id, "room.ended", {"by": actor.name})
    for sid in db.session.scalars(select(Connection.sid).where(Connection.room_id == room.id)):
        out.disconnect(sid)
    return {}


def admit(room: Room, actor: Actor) -> None:
    """Let ``actor`` into ``room``: an ended session stays closed except to a presenter, whose
    joining opens it again.

    :raises Refused: for anyone else while the session is ended.
    """
    if room.ended_at is None:
        return
    if not actor.may(Perm.END):
        raise Refused(ENDED)
    room.ended_at = None
    log.record(room.id, actor.user_id, "room.reopen")
    db.session.commit()


EVENTS = [Event("room.end", {}, end)]
