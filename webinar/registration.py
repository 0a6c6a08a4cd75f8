"""Registering for a broadcast, approving registrations and keeping the invite list."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from accounts.emails import MAX_ADDRESSES, parse_email_list
from accounts.models import User
from lectern.extensions import db
from lectern.mail import Delivery, send
from webinar.links import ensure_link, issue
from webinar.models import Broadcast, Mode, Registration, Status
from webinar.notify import pending_mail, send_join_links
from webinar.policy import registration_of


def register(user: User, broadcast: Broadcast) -> Registration:
    """Register ``user``: approved at once when open or invited, pending when approval is needed.
    Either way an e-mail says so; an approved registrant's carries their join link."""
    reg = registration_of(user, broadcast)
    if reg is None:
        reg = Registration(broadcast_id=broadcast.id, email=user.email)
        db.session.add(reg)
    invited = reg.invited and reg.user_id is None
    reg.user_id = user.id
    reg.name = user.name
    if broadcast.registration_mode == Mode.APPROVAL and not invited:
        reg.status = Status.PENDING.value
    else:
        reg.status = Status.APPROVED.value
    confirm(reg)
    return reg


def confirm(reg: Registration) -> Delivery:
    """Commit ``reg`` and e-mail its registrant: the join link when approved, else a receipt."""
    code = ensure_link(reg) if reg.status == Status.APPROVED else None
    db.session.commit()
    if reg.status == Status.APPROVED:
        return send_join_links([(reg, code)])
    return send([pending_mail(reg)])


def decide(broadcast: Broadcast, registration_id: int, approve: bool) -> Registration | None:
    """Approve or decline one registration of ``broadcast``; None if it is not one of its own."""
    reg = db.session.get(Registration, registration_id)
    if reg is None or reg.broadcast_id != broadcast.id:
        return None
    reg.status = (Status.APPROVED if approve else Status.DECLINED).value
    if approve:
        confirm(reg)
    else:
        db.session.commit()
    return reg


@dataclass
class InviteResult:
    """What adding addresses to an invite list did, or why it did nothing."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    too_many: bool = False
    delivered: Delivery = field(default_factory=Delivery)  # what the mail server took

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
    issued: list[tuple[Registration, str | None]] = []
    for email in parsed.emails:
        if email in existing:
            result.already.append(email)
            continue
        user = users.get(email)
        reg = Registration(
            broadcast_id=broadcast.id,
            email=email,
            name=user.name if user else "",
            status=Status.PENDING.value,
            invited=True,
        )
        reg.broadcast = broadcast
        db.session.add(reg)
        db.session.flush()
        issued.append((reg, issue(reg)))
        result.added.append(email)
    db.session.commit()
    result.delivered = send_join_links(issued)
    return result
