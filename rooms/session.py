"""A session's life: scheduled, live (on air), ended.

:func:`state_of` is the one rule every page and the room follow. A session goes live at its
scheduled start (or earlier, while someone publishes in its room) and ends at its scheduled end,
or when a presenter ends it for everyone (``room.end``). That end is final: joining, looking up
membership or opening any page never reopens it; only a presenter's explicit start
(:func:`start_again`, before the scheduled end) does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from flask import url_for
from sqlalchemy import exists, select

from accounts.models import User
from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import access, log, recording
from rooms.access import Lost
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import MediaStream, Recording, Room, RoomEvent
from rooms.policy import Perm
from rooms.registry import kind_named
from rooms.validate import N_

ENDED = N_("this session has ended")
OVER = N_("the session's scheduled time is over: schedule a new one")


class SessionState(StrEnum):
    """Where a lesson or broadcast is in its life."""

    SCHEDULED = "scheduled"  # not started yet
    LIVE = "live"  # on air
    ENDED = "ended"  # ended for everyone, or its scheduled time is over


def state_of(
    starts_at: datetime,
    ends_at: datetime,
    ended_at: datetime | None,
    on_air: bool = False,
    now: datetime | None = None,
) -> SessionState:
    """The session's state from its schedule, its room's ``ended_at`` and whether someone is
    publishing in its room (``on_air``: a presenter started early or runs over)."""
    now = now or utcnow()
    if ended_at is not None:
        return SessionState.ENDED
    if on_air or starts_at <= now < ends_at:
        return SessionState.LIVE
    return SessionState.SCHEDULED if now < starts_at else SessionState.ENDED


@dataclass(frozen=True)
class Session:
    """A session as pages and clients show it: its state, who ended it, its recordings."""

    state: SessionState
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None  # the presenter's name, when ended for everyone
    recordings: list[Recording] = field(default_factory=list)  # newest first

    @property
    def can_start_again(self) -> bool:
        """A presenter may start it again: ended for everyone, before its scheduled end."""
        return self.ended_at is not None and utcnow() < self.ends_at

    def view(self) -> dict[str, Any]:
        """As JSON for the room's clients (``state.get``'s ``session``, ``room.ended``)."""
        return {
            "state": self.state.value,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "ended_at": iso(self.ended_at) if self.ended_at else None,
            "ended_by": self.ended_by,
            "recordings": [
                {
                    "id": r.id,
                    "title": r.title,
                    "status": r.status,
                    "url": url_for("recordings.watch", recording_id=r.id),
                }
                for r in self.recordings
            ],
        }


def iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def room_of(kind: str, ref_id: int) -> Room | None:
    """The room of ``kind:ref_id`` if it was ever opened; looking never creates one."""
    return db.session.scalar(select(Room).where(Room.kind == kind, Room.ref_id == ref_id))


def on_air(room_id: int) -> bool:
    """Someone publishes in the room."""
    return bool(db.session.scalar(select(exists().where(MediaStream.room_id == room_id))))


def ended_by(room: Room) -> str | None:
    """The name of the presenter who last ended the session."""
    return db.session.scalar(
        select(User.name)
        .join(RoomEvent, RoomEvent.actor_id == User.id)
        .where(RoomEvent.room_id == room.id, RoomEvent.type == "room.end")
        .order_by(RoomEvent.id.desc())
        .limit(1)
    )


def describe(room: Room | None, starts_at: datetime, ends_at: datetime) -> Session:
    """The session held in ``room`` (None: never opened) on the schedule given."""
    if room is None:
        return Session(state_of(starts_at, ends_at, None), starts_at, ends_at)
    recordings = db.session.scalars(
        select(Recording).where(Recording.room_id == room.id).order_by(Recording.id.desc())
    )
    return Session(
        state_of(starts_at, ends_at, room.ended_at, on_air(room.id)),
        starts_at,
        ends_at,
        room.ended_at,
        ended_by(room) if room.ended_at else None,
        list(recordings),
    )


def states(
    kind: str, schedules: dict[int, tuple[datetime, datetime]], now: datetime | None = None
) -> dict[int, SessionState]:
    """The state of many sessions of one kind (``{ref_id: (starts_at, ends_at)}``) in two
    queries: for lists such as the dashboard."""
    rooms = {
        ref: (room_id, ended)
        for room_id, ref, ended in db.session.execute(
            select(Room.id, Room.ref_id, Room.ended_at).where(
                Room.kind == kind, Room.ref_id.in_(schedules)
            )
        )
    }
    room_ids = [room_id for room_id, _ in rooms.values()]
    publishing = set(
        db.session.scalars(select(MediaStream.room_id).where(MediaStream.room_id.in_(room_ids)))
    )
    result = {}
    for ref, (starts_at, ends_at) in schedules.items():
        room_id, ended = rooms.get(ref, (None, None))
        result[ref] = state_of(starts_at, ends_at, ended, room_id in publishing, now)
    return result


def states_of(kind: str, sessions: Iterable[Any]) -> dict[int, SessionState]:
    """The state of each lesson or broadcast in ``sessions`` (objects with ``id``,
    ``starts_at`` and ``ends_at``), for the pages that list them."""
    return states(kind, {s.id: (s.starts_at, s.ends_at) for s in sessions})


def end(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Stop the recording and every stream, lower every hand, tell everyone (with the final
    state), then close every connection but the sender's, which gets the reply and closes."""
    actor.require(Perm.END)
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    running = recording.running(room.id)
    if running is not None:
        recording.finish(room, running, actor.user_id, out)
    room.ended_at = utcnow()  # first: a publish in flight re-checks it as it records its stream
    log.record(room.id, actor.user_id, "room.end")
    db.session.commit()
    # Everyone's access ends: grants, streams and hands, and every connection but the sender's.
    access.changed(room.id, None, out, Lost.ACCESS, by=actor.user_id, spare=actor.sid)
    final = schedule_of(actor.kind, actor.ref_id, room)
    out.to_all(room.id, "room.ended", {"by": actor.name, "session": final})
    return {"session": final}


def window(kind: str, ref_id: int) -> tuple[datetime, datetime] | None:
    """When the session of ``kind:ref_id`` is scheduled (its kind's hook); None if unknown."""
    found = kind_named(kind)
    return found.schedule(ref_id) if found and found.schedule else None


def session_of(kind: str, ref_id: int) -> Session | None:
    """The session of lesson or broadcast ``ref_id``; None if there is no such session."""
    scheduled = window(kind, ref_id)
    return describe(room_of(kind, ref_id), *scheduled) if scheduled else None


def schedule_of(kind: str, ref_id: int, room: Room) -> dict[str, Any] | None:
    """The room's session as clients see it (None: its kind has no schedule)."""
    scheduled = window(kind, ref_id)
    return describe(room, *scheduled).view() if scheduled else None


def admit(room: Room, actor: Actor) -> None:
    """Let ``actor`` into ``room``; nobody enters a session ended for everyone (a presenter
    starts it again explicitly, :func:`start_again`). Changes nothing.

    :raises Refused: while the session is ended.
    """
    if room.ended_at is not None:
        raise Refused(ENDED)


def start_again(room: Room, actor: Actor, ends_at: datetime) -> None:
    """A presenter opens a session that was ended for everyone, before its scheduled end.

    :raises Refused: for other roles, or once the scheduled time is over.
    """
    actor.require(Perm.END)
    if room.ended_at is None:
        return
    if utcnow() >= ends_at:
        raise Refused(OVER)
    room.ended_at = None
    log.record(room.id, actor.user_id, "room.start")
    db.session.commit()


EVENTS = [Event("room.end", {}, end)]
