"""Registering for a broadcast, approving registrations and keeping the invite list."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from accounts.emails import MAX_ADDRESSES, parse_email_list
from accounts.models import User
from lectern.extensions import db
from webinar.models import Broadcast, Mode, Registration, Status
from webinar.policy import registration_of


def register(user: User, broadcast: Broadcast) -> Registration:
    """Register ``user``: approved at once when open or invited, pending when approval is needed."""
    reg = registration_of(user, broadcast)
    if reg is None:
        reg = Registration(broadcast_id=broadcast.id, email=user.email)
        db.session.add(reg)
    invited = reg.id is not None and reg.user_id is None
    reg.user_id = user.id
    reg.name = user.name
    if broadcast.registration_mode == Mode.APPROVAL and not invited:
        reg.status = Status.PENDING.value
    else:
        reg.status = Status.APPROVED.value
    db.session.commit()
    return reg


def decide(broadcast: Broadcast, registration_id: int, approve: bool) -> Registration | None:
    """Approve or decline one registration of ``broadcast``; None if it is not one of its own."""
    reg = db.session.get(Registration, registration_id)
    if reg is None or reg.broadcast_id != broadcast.id:
        return None
    reg.status = (Status.APPROVED if approve else Status.DECLINED).value
    db.session.commit()
    return reg


@dataclass
class InviteResult:
    """What adding addresses to an invite list did, or why it did nothing."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    too_many: bool = False

    @property
    def ok(self) -> bool:
        return not (self.invalid or self.too_many)


def invite(broadcast: Broadcast, text: str) -> InviteResult:
    """Put every address in ``text`` on the invite list; if any is invalid, add none."""
    parsed = parse_email_list(text)
    result = InviteResult(
        invalid=parsed.invalid or ([] if parsed.emails else ["(no e-mail address found)"]),
        too_many=len(parsed.emails) > MAX_ADDRESSES,
    )
    if not result.ok:
        return result
    existing = set(
        db.session.scalars(
            select(Registration.email).where(Registration.broadcast_id == broadcast.id)
        )
    )
    users = {
        u.email: u for u in db.session.scalars(select(User).where(User.email.in_(parsed.emails)))
    }
    for email in parsed.emails:
        if email in existing:
            result.already.append(email)
            continue
        user = users.get(email)
        db.session.add(
            Registration(
                broadcast_id=broadcast.id,
                email=email,
                name=user.name if user else "",
                status=Status.PENDING.value,
            )
        )
        result.added.append(email)
    db.session.commit()
    return result
