"""The e-mails a broadcast sends: invitations and join links, registration received, reminders."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from accounts.models import User
from lectern import timefmt
from lectern.extensions import db
from lectern.i18n import DEFAULT_LANGUAGE, LANGUAGES
from lectern.mail import Attachment, Delivery, Mail, external_url, send
from webinar.calendar import ics
from webinar.links import ensure_link, needs_verification, token_of
from webinar.models import Broadcast, Registration


def join_url(reg: Registration) -> str:
    return external_url("webinar.join_link", token=token_of(reg))


def calendar_attachment(broadcast: Broadcast, url: str) -> Attachment:
    return Attachment("broadcast.ics", "text/calendar", ics(broadcast, url, broadcast.host.name))


def recipient(reg: Registration) -> User | None:
    """The registrant's account: theirs by id, else one with the invited address (addresses
    are stored in lower case)."""
    if reg.user_id is not None:
        return db.session.get(User, reg.user_id)
    return db.session.scalar(select(User).where(User.email == reg.email.lower()))


def when(broadcast: Broadcast, reg: Registration | None = None) -> str:
    """The broadcast's time as its recipient reads it: in their account's zone and language
    when they have one (else UTC and English), the zone named."""
    user = recipient(reg) if reg is not None else None
    zone = user.timezone if user is not None else None
    language = user.locale if user is not None and user.locale in LANGUAGES else None
    start = timefmt.when(broadcast.starts_at, language=language or DEFAULT_LANGUAGE, zone=zone)
    return f"{start} ({broadcast.duration_minutes} minutes)"


def greeting(reg: Registration) -> str:
    return f"Hello {reg.name}," if reg.name else "Hello,"


def join_mail(reg: Registration, code: str | None, reminder: bool = False) -> Mail:
    """The message carrying a registrant's personal join link (and holder code when new)."""
    broadcast = reg.broadcast
    url = join_url(reg)
    lines = [
        greeting(reg),
        "",
        (
            f"A reminder: {broadcast.title} starts soon."
            if reminder
            else f"You are invited to {broadcast.title} ({broadcast.kind_label})."
        ),
        f"When: {when(broadcast, reg)}",
        "",
        "Your personal join link (do not forward it: it works on one device only):",
        url,
    ]
    if needs_verification(broadcast):
        lines += ["", f"On first use you will be asked for your holder id ({reg.holder_id})"]
        lines += [
            f"and this verification code: {code}"
            if code
            else "and the verification code from your invitation e-mail."
        ]
    lines += ["", "The attached calendar file adds the meeting to your calendar."]
    subject = f"{'Reminder' if reminder else 'Your link'}: {broadcast.title}"
    return Mail(reg.email, subject, "\n".join(lines), (calendar_attachment(broadcast, url),))


def pending_mail(reg: Registration) -> Mail:
    broadcast = reg.broadcast
    body = "\n".join(
        [
            greeting(reg),
            "",
            f"We received your registration for {broadcast.title} ({when(broadcast, reg)}).",
            "The host reviews registrations; you will get your join link once it is approved.",
        ]
    )
    return Mail(reg.email, f"Registration received: {broadcast.title}", body)


def send_join_links(issued: Iterable[tuple[Registration, str | None]]) -> Delivery:
    """E-mail each (registration, new code) its join link; False when SMTP refused them."""
    return send(join_mail(reg, code) for reg, code in issued)


def send_reminders(regs: Iterable[Registration]) -> tuple[int, Delivery]:
    """Remind every registrant of the time and their link; returns (count, delivered)."""
    mails = []
    for reg in regs:
        mails.append(join_mail(reg, ensure_link(reg), reminder=True))
    return len(mails), send(mails)
