"""When someone's access to a room changes, it changes on their live connections at once.

A connection's role is fixed when it connects (``rooms.namespace.actors``), so every change of
who may do what in a room ends the same way, through :func:`changed`: what they lost ends in the
database (publish grants, raised hands), their streams stop on the media worker and leave the
room, and every connection of theirs is closed on whichever web worker holds it (through the
Socket.IO message queue when there is one). A client then reconnects and is resolved afresh:
with its new role, or refused. Stage moves, removal from a course, a declined registration or
revoked join link, a deactivated account and the end of a session all use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from sqlalchemy import delete, select, union

from lectern.extensions import db
from rooms import hands, log, media
from rooms.context import Outbox
from rooms.models import Connection, Grant, Hand, MediaStream, Room
from rooms.registry import kind_named


class Lost(Enum):
    """What a change of access takes away, besides the open connections."""

    NOTHING = "nothing"  # a new role that keeps every right (promoted to the stage)
    PUBLISHING = "publishing"  # publish grants and streams (demoted from the stage)
    ACCESS = "access"  # everything: grants, streams and hands; reconnecting is refused


def changed(
    room_id: int,
    user_id: int | None,
    out: Outbox,
    lost: Lost = Lost.ACCESS,
    by: int | None = None,
    spare: str = "",
) -> None:
    """``user_id``'s access to the room changed (None: everyone's): end what they ``lost``, then
    close all their connections but ``spare``. The caller has committed the change itself
    (a role, an enrolment, ``ended_at``), so reconnecting clients are resolved by it.

    :param by: who made the change (the ``ended_by`` of the hands it ends)
    """
    if lost is not Lost.NOTHING:
        withdraw(room_id, user_id, out)
    if lost is Lost.ACCESS:
        lower_hands(room_id, user_id, out, by)
    close(room_id, user_id, out, spare)


def withdraw(room_id: int, user_id: int | None, out: Outbox) -> None:
    """End the publish grants, then the streams (``media.stop_streams``). The grants' end is
    committed first: a publish in flight re-checks its grant as it records its stream, so it
    either sees the grant gone or is recorded in time to be found and stopped here."""
    query = delete(Grant).where(Grant.room_id == room_id)
    if user_id is not None:
        query = query.where(Grant.user_id == user_id)
    db.session.execute(query)
    db.session.commit()
    if user_id is None:
        media.stop_streams(room_id, out)
    else:
        media.stop_streams(room_id, out, user_id=user_id)


def lower_hands(room_id: int, user_id: int | None, out: Outbox, by: int | None) -> None:
    """Lower raised hands and finish called ones; moderators (or everyone) get the queue."""
    query = select(Hand).where(Hand.room_id == room_id, Hand.state.in_(hands.ACTIVE))
    if user_id is not None:
        query = query.where(Hand.user_id == user_id)
    ended = list(db.session.scalars(query))
    for hand in ended:
        state = hands.finish(hand, by)
        log.record(room_id, by, f"hand.{state}", hand_id=hand.id, user_id=hand.user_id)
    db.session.commit()
    room = db.session.get(Room, room_id)
    kind = kind_named(room.kind) if room is not None else None
    if ended and kind is not None:
        hands.send_queue(room_id, kind.policy, out)


def close(room_id: int, user_id: int | None, out: Outbox, spare: str = "") -> None:
    """Close the user's (None: everyone's) connections to the room but ``spare``, on every web
    worker, after the outbox's messages."""
    query = select(Connection.sid).where(Connection.room_id == room_id)
    if user_id is not None:
        query = query.where(Connection.user_id == user_id)
    for sid in db.session.scalars(query):
        if sid != spare:
            out.disconnect(sid)


def rooms_of(user_id: int, among: Iterable[int] | None = None) -> list[int]:
    """The rooms (of ``among``, else all) where the user has something live: a connection, a
    publish grant, a stream or a raised hand."""
    live = union(
        select(Connection.room_id).where(Connection.user_id == user_id),
        select(Grant.room_id).where(Grant.user_id == user_id),
        select(MediaStream.room_id).where(MediaStream.user_id == user_id),
        select(Hand.room_id).where(Hand.user_id == user_id, Hand.state.in_(hands.ACTIVE)),
    ).subquery()
    query = select(live.c[0])
    if among is not None:
        query = query.where(live.c[0].in_(list(among)))
    return sorted(db.session.scalars(query))


def remove(
    user_id: int, out: Outbox, among: Iterable[int] | None = None, by: int | None = None
) -> None:
    """The user lost access to the rooms ``among`` (None: every room), e.g. removed from a
    course or deactivated: :func:`changed` in each where they have something live. The caller
    committed the change and delivers ``out``."""
    for room_id in rooms_of(user_id, among):
        changed(room_id, user_id, out, Lost.ACCESS, by=by)


def remove_now(user_id: int, among: Iterable[int] | None = None, by: int | None = None) -> None:
    """:func:`remove`, delivered at once: for pages and commands, outside the room's events
    (which deliver their own outbox)."""
    from rooms.namespace import deliver  # the namespace imports the modules that import this

    out = Outbox()
    remove(user_id, out, among, by)
    deliver(out)
