"""Who may watch a recording: the members of its room (as the room kind resolves them), or
anyone holding its share link. Everyone else is told there is nothing there (404).

The owner is whoever may record in the room (``Perm.RECORD``: the instructor, the host); they
rename, delete and share.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from flask import abort
from flask_login import current_user
from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db
from rooms.context import Actor
from rooms.models import Recording, Room
from rooms.policy import Perm
from rooms.state import member_of

TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 characters
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # token_urlsafe's alphabet; the column's length


@dataclass(frozen=True)
class Viewer:
    """Someone allowed to watch ``recording``: a member (``actor``) or a share-link holder."""

    recording: Recording
    actor: Actor | None  # None: watching through the share link
    token: str | None = None  # the share token the link used

    @property
    def owns(self) -> bool:
        return self.actor is not None and self.actor.may(Perm.RECORD)

    @property
    def member(self) -> bool:
        return self.actor is not None


def membership(user: User, room: Room) -> Actor | None:
    """``user``'s actor in ``room`` (their role there), or None if they are not a member.

    Only a lookup: members watch the recordings of an ended session, and a presenter opening
    the library does not reopen anything."""
    return member_of(user, room)


def as_member(recording_id: int) -> Viewer:
    """The signed-in user watching recording ``recording_id``; 404 unless they are a member."""
    recording = db.session.get(Recording, recording_id)
    room = db.session.get(Room, recording.room_id) if recording is not None else None
    if recording is None or room is None or not current_user.is_authenticated:
        abort(404)
    actor = membership(current_user, room)
    if actor is None:
        abort(404)
    return Viewer(recording, actor)


def as_holder(token: str) -> Viewer:
    """Whoever holds ``token``, the share link of one recording; 404 for any other token."""
    if not TOKEN_SHAPE.fullmatch(token):  # not even a token: no query (PostgreSQL refuses NULs)
        abort(404)
    recording = db.session.scalar(select(Recording).where(Recording.share_token == token))
    if recording is None:
        abort(404)
    return Viewer(recording, None, token)


def find(recording_id: int | None, token: str | None) -> Viewer:
    """The caller of a route reachable by id (members) or by share token (link holders)."""
    return as_member(recording_id) if recording_id is not None else as_holder(token or "")


def owner(recording_id: int) -> Viewer:
    """The recording's owner; 404 for non-members, 403 for members who do not own it."""
    viewer = as_member(recording_id)
    if not viewer.owns:
        abort(403)
    return viewer


def library(user: User, limit: int | None = None) -> list[Viewer]:
    """Recordings ``user`` may watch, newest first, each with their role in its room."""
    rooms = db.session.scalars(select(Room).where(Room.id.in_(select(Recording.room_id))))
    actors = {room.id: actor for room in rooms if (actor := membership(user, room)) is not None}
    if not actors:
        return []
    query = (
        select(Recording)
        .where(Recording.room_id.in_(actors))
        .order_by(Recording.started_ts.desc(), Recording.id.desc())
        .limit(limit)
    )
    return [Viewer(r, actors[r.room_id]) for r in db.session.scalars(query)]


def share(recording: Recording) -> str:
    """Give the recording a share link (keeping the one it has); returns its token."""
    if recording.share_token is None:
        recording.share_token = secrets.token_urlsafe(TOKEN_BYTES)
        db.session.commit()
    return recording.share_token


def unshare(recording: Recording) -> None:
    """Revoke the share link: the old link stops working at once."""
    recording.share_token = None
    db.session.commit()
