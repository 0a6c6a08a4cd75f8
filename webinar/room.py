"""A broadcast's live room: hosts and panelists present and moderate, attendees watch and ask."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db
from rooms import access
from rooms.models import Room
from rooms.policy import PRESENTER, Perm, RoomPolicy
from rooms.registry import Membership, RoomKind
from rooms.validate import N_
from webinar.links import session_holds
from webinar.models import Broadcast, Kind, Status
from webinar.policy import broadcast_role, registration_of

AUDIENCE = frozenset({Perm.RAISE_HAND, Perm.ASK, Perm.UPVOTE, Perm.CHAT, Perm.VOTE})

BROADCAST_POLICY = RoomPolicy(
    roles={
        "host": PRESENTER,
        # Someone invited on to the stage to speak: heard and seen, but no moderator (the host
        # moderates), and no list of who is in the audience.
        "panelist": AUDIENCE | {Perm.PUBLISH},
        "attendee": AUDIENCE,
    },
    moderated=True,
    anonymous_questions=True,
    hand_queue_public=False,
)

JOINING_ROLES = frozenset(BROADCAST_POLICY.roles)
BROADCAST_ROOM_NAME = "broadcast"


def resolve(user: User, broadcast_id: int) -> Membership | None:
    """The host and approved registrants may join; shareholder questions are attributed."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None:
        return None
    role = broadcast_role(user, broadcast)
    if role not in JOINING_ROLES or not link_still_valid(user, broadcast, role):
        return None
    return Membership(
        role=role,
        title=broadcast.title,
        anonymous_questions=broadcast.kind != Kind.SHAREHOLDER,
        share_register=broadcast.kind == Kind.SHAREHOLDER,
    )


def link_still_valid(user: User, broadcast: Broadcast, role: str) -> bool:
    """An account without a password exists only through its join link: it may join while its
    session came in through the registration's current, unrevoked link."""
    if role == "host" or user.password_hash is not None:
        return True
    registration = registration_of(user, broadcast)
    return registration is not None and session_holds(registration)


def kick(broadcast_id: int, user_id: int, by: int | None = None) -> None:
    """The user's access to the broadcast's room ended (declined, or their join link is gone):
    their grants, streams and hands end and their live connections close (``rooms.access``);
    reconnecting, they are resolved again and refused."""
    room = db.session.scalar(
        select(Room.id).where(Room.kind == BROADCAST_ROOM_NAME, Room.ref_id == broadcast_id)
    )
    if room is not None:
        access.remove_now(user_id, among=[room], by=by)


def link_replaced(broadcast_id: int, user_id: int, by: int | None = None) -> None:
    """A registration's join link was revoked or replaced: an account that exists only through
    its link (no password) loses the room; one with a password keeps it."""
    user = db.session.get(User, user_id)
    if user is not None and user.password_hash is None:
        kick(broadcast_id, user_id, by)


def participant(broadcast_id: int, user_id: int) -> tuple[Broadcast, User, str | None] | None:
    """The broadcast, the user and the user's broadcast role; None if either does not exist."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    user = db.session.get(User, user_id)
    if broadcast is None or user is None:
        return None
    return broadcast, user, broadcast_role(user, broadcast)


def set_stage_role(broadcast_id: int, user_id: int, role: str) -> str | None:
    """Make an approved registrant a panelist or an attendee (their registration's role)."""
    found = participant(broadcast_id, user_id)
    current = found[2] if found else None
    if current == "host":
        return N_("the host is always on stage")
    if found is None or current not in ("panelist", "attendee"):
        return N_("they have no approved registration for this broadcast")
    if current == role:
        if role == "panelist":
            return N_("they are already a panelist")
        return N_("they are already an attendee")
    registration = registration_of(found[1], found[0])
    assert registration is not None  # their role came from it
    registration.role = role
    return None


def vote_weight(broadcast_id: int, user_id: int) -> tuple[int, str | None] | None:
    """A shareholder votes their shares under their holder id; elsewhere everyone who may join
    votes once."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    user = db.session.get(User, user_id)
    if broadcast is None or user is None:
        return None
    if broadcast.kind != Kind.SHAREHOLDER:
        return (1, None) if broadcast_role(user, broadcast) in JOINING_ROLES else None
    # One query on the hot path of a vote storm: the holder's registration, verified.
    registration = registration_of(user, broadcast)
    if (
        registration is None
        or registration.status != Status.APPROVED
        or registration.verified_at is None
        or not registration.shares
        or registration.shares <= 0
    ):
        return None
    return registration.shares, registration.holder_id


def schedule(broadcast_id: int) -> tuple[datetime, datetime] | None:
    """When the broadcast is on: its scheduled start and end."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    return None if broadcast is None else (broadcast.starts_at, broadcast.ends_at)


BROADCAST_ROOM = RoomKind(
    name=BROADCAST_ROOM_NAME,
    policy=BROADCAST_POLICY,
    resolve=resolve,
    set_stage_role=set_stage_role,
    vote_weight=vote_weight,
    schedule=schedule,
)
