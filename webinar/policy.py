"""Who may do what with a broadcast: broadcast roles as data."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import or_, select

from accounts.models import User
from lectern.extensions import db
from webinar.models import Broadcast, Kind, Mode, Registration, Status


class Action(StrEnum):
    VIEW = "view"  # see the broadcast's page
    REGISTER = "register"
    JOIN = "join"  # enter the live room
    PUBLISH = "publish"  # send camera, microphone or screen
    MANAGE = "manage"  # edit, approve registrations, manage the invite list


# broadcast role -> actions it allows
BROADCAST_PERMISSIONS: dict[str, frozenset[Action]] = {
    "host": frozenset({Action.VIEW, Action.JOIN, Action.PUBLISH, Action.MANAGE}),
    "panelist": frozenset({Action.VIEW, Action.JOIN, Action.PUBLISH}),
    "attendee": frozenset({Action.VIEW, Action.JOIN}),
    "pending": frozenset({Action.VIEW}),
    # On a shareholder meeting's list but not yet verified through the personal link.
    "unverified": frozenset({Action.VIEW}),
    "declined": frozenset({Action.VIEW}),
    "invited": frozenset({Action.VIEW, Action.REGISTER}),
    "visitor": frozenset({Action.VIEW, Action.REGISTER}),
}


def registration_of(user: User, broadcast: Broadcast) -> Registration | None:
    """The user's registration (by account, or by e-mail for an invitation not yet claimed)."""
    return db.session.scalar(
        select(Registration).where(
            Registration.broadcast_id == broadcast.id,
            or_(Registration.user_id == user.id, Registration.email == user.email),
        )
    )


def broadcast_role(user: User, broadcast: Broadcast) -> str | None:
    """The user's role in ``broadcast``; None when it is invisible to them."""
    if user.role == "admin" or broadcast.host_id == user.id:
        return "host"
    reg = registration_of(user, broadcast)
    if reg is not None:
        if broadcast.kind == Kind.SHAREHOLDER and reg.verified_at is None:
            # Only the personal link, with the holder id and code, lets a holder in.
            return "declined" if reg.status == Status.DECLINED else "unverified"
        if reg.status == Status.APPROVED:
            return reg.role
        if reg.status == Status.PENDING and reg.invited and reg.user_id is None:
            return "invited"
        return reg.status
    if broadcast.registration_mode == Mode.INVITE or not in_domain(user, broadcast):
        return None
    return "visitor"


def in_domain(user: User, broadcast: Broadcast) -> bool:
    """Whether ``user``'s e-mail is in the broadcast's domain (True when it has none)."""
    domain = broadcast.allowed_domain
    return not domain or user.email.rpartition("@")[2].lower() == domain.lower()


def broadcast_allows(user: User, broadcast: Broadcast, action: Action) -> bool:
    """Whether ``user`` may perform ``action`` on ``broadcast``."""
    role = broadcast_role(user, broadcast)
    return role is not None and action in BROADCAST_PERMISSIONS[role]
