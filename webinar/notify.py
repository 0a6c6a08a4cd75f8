"""The e-mails a broadcast sends: invitations and join links, registration received, reminders."""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import force_locale
from flask_babel import gettext as _
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


def language_of(reg: Registration) -> str:
    """The language the registrant's e-mails are written in: their account's, else English."""
    user = recipient(reg)
    language = user.locale if user is not None else None
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def when(broadcast: Broadcast, reg: Registration | None = None) -> str:
    """The broadcast's time as its recipient reads it: in their account's zone and language
    when they have one (else UTC and English), the zone named."""
    user = recipient(reg) if reg is not None else None
    zone = user.timezone if user is not None else None
    language = user.locale if user is not None and user.locale in LANGUAGES else None
    start = timefmt.when(broadcast.starts_at, language=language or DEFAULT_LANGUAGE, zone=zone)
    return _("%(start)s (%(minutes)s minutes)", start=start, minutes=broadcast.duration_minutes)


def greeting(reg: Registration) -> str:
    return _("Hello %(name)s,", name=reg.name) if reg.name else _("Hello,")


def join_mail(reg: Registration, code: str | None, reminder: bool = False) -> Mail:
    """The message carrying a registrant's personal join link, in the registrant's language."""
    with force_locale(language_of(reg)):
        return _join_mail(reg, code, reminder)


def _join_mail(reg: Registration, code: str | None, reminder: bool) -> Mail:
    """The join-link message (and holder code when new) in the current language."""
    broadcast = reg.broadcast
    url = join_url(reg)
    lines = [
        greeting(reg),
        "",
        (
            _("A reminder: %(title)s starts soon.", title=broadcast.title)
            if reminder
            else _(
                "You are invited to %(title)s (%(kind)s).",
                title=broadcast.title,
                kind=broadcast.kind_label,
            )
        ),
        _("When: %(when)s", when=when(broadcast, reg)),
        "",
        _("Your personal join link (do not forward it: it works on one device only):"),
        url,
    ]
    if needs_verification(broadcast):
        lines += [
            "",
            _("On first use you will be asked for your holder id (%(id)s)", id=reg.holder_id),
        ]
        lines += [
            _("and this verification code: %(code)s", code=code)
            if code
            else _("and the verification code from your invitation e-mail.")
        ]
    lines += ["", _("The attached calendar file adds the meeting to your calendar.")]
    if reminder:
        subject = _("Reminder: %(title)s", title=broadcast.title)
    else:
        subject = _("Your link: %(title)s", title=broadcast.title)
    return Mail(reg.email, subject, "\n".join(lines), (calendar_attachment(broadcast, url),))


def pending_mail(reg: Registration) -> Mail:
    """Registration received, awaiting the host's approval (in the registrant's language)."""
    broadcast = reg.broadcast
    with force_locale(language_of(reg)):
        received = _(
            "We received your registration for %(title)s (%(when)s).",
            title=broadcast.title,
            when=when(broadcast, reg),
        )
        body = "\n".join(
            [
                greeting(reg),
                "",
                received,
                _(
                    "The host reviews registrations; "
                    "you will get your join link once it is approved."
                ),
            ]
        )
        return Mail(reg.email, _("Registration received: %(title)s", title=broadcast.title), body)


def send_join_links(issued: Iterable[tuple[Registration, str | None]]) -> Delivery:
    """E-mail each (registration, new code) its join link; False when SMTP refused them."""
    return send(join_mail(reg, code) for reg, code in issued)


def send_reminders(regs: Iterable[Registration]) -> tuple[int, Delivery]:
    """Remind every registrant of the time and their link; returns (count, delivered)."""
    mails = []
    for reg in regs:
        mails.append(join_mail(reg, ensure_link(reg), reminder=True))
    return len(mails), send(mails)
