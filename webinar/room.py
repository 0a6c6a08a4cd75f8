"""A broadcast's live room: hosts and panelists present and moderate, attendees watch and ask."""

from __future__ import annotations

from accounts.models import User
from lectern.extensions import db
from rooms.policy import PRESENTER, Perm, RoomPolicy
from rooms.registry import Membership, RoomKind
from webinar.models import Broadcast, Kind
from webinar.policy import broadcast_role

AUDIENCE = frozenset({Perm.RAISE_HAND, Perm.ASK, Perm.UPVOTE, Perm.CHAT, Perm.VOTE})

BROADCAST_POLICY = RoomPolicy(
    roles={
        "host": PRESENTER,
        "panelist": AUDIENCE | {Perm.MODERATE, Perm.SEE_PRESENCE, Perm.PUBLISH, Perm.MANAGE_HANDS},
        "attendee": AUDIENCE,
    },
    moderated=True,
    anonymous_questions=True,
    hand_queue_public=False,
)

JOINING_ROLES = frozenset(BROADCAST_POLICY.roles)


def resolve(user: User, broadcast_id: int) -> Membership | None:
    """The host and approved registrants may join; shareholder questions are attributed."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None:
        return None
    role = broadcast_role(user, broadcast)
    if role not in JOINING_ROLES:
        return None
    return Membership(
        role=role,
        title=broadcast.title,
        anonymous_questions=broadcast.kind != Kind.SHAREHOLDER,
    )


BROADCAST_ROOM = RoomKind(name="broadcast", policy=BROADCAST_POLICY, resolve=resolve)
