"""Outgoing e-mail: through an SMTP server when ``SMTP_HOST`` is set, printed to the console
otherwise (the embedded setup), so every message a user would get can be seen.
"""

from __future__ import annotations

import logging
import smtplib
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from flask import current_app, has_request_context, url_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    filename: str
    mimetype: str  # "text/calendar"
    data: bytes


@dataclass(frozen=True)
class Mail:
    """One plain-text message to one person."""

    to: str
    subject: str
    body: str
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


def one_line(text: str) -> str:
    """A header value on one line: line breaks and other control characters become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def build(mail: Mail, sender: str) -> EmailMessage:
    """The MIME message for ``mail`` (headers cannot be split by what users typed)."""
    message = EmailMessage()
    message["From"] = one_line(sender)
    message["To"] = one_line(mail.to)
    message["Subject"] = one_line(mail.subject)
    message.set_content(mail.body)
    for a in mail.attachments:
        maintype, _, subtype = a.mimetype.partition("/")
        message.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
    return message


def print_to_console(messages: list[EmailMessage]) -> None:
    """The embedded setup's 'delivery': each message's headers and text on standard output."""
    for message in messages:
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        files = [p.get_filename() for p in message.iter_attachments()]
        sys.stdout.write(
            "----- e-mail (SMTP_HOST is not set, so it is printed here) -----\n"
            f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n"
            + (f"Attached: {', '.join(str(f) for f in files)}\n" if files else "")
            + f"\n{text.rstrip()}\n-----\n"
        )
    sys.stdout.flush()


@dataclass
class Delivery:
    """What a send did: how many messages the server took, and the addresses it refused.
    True when nothing was refused."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.failed


UNSENT = (OSError, smtplib.SMTPException, UnicodeError, ValueError)


def deliver_smtp(mails: list[Mail], config: dict[str, Any], delivery: Delivery) -> None:
    """Send each of ``mails`` over one SMTP connection (STARTTLS and login when configured);
    a message the server refuses is counted and the others still go."""
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=15) as smtp:
        if config["SMTP_STARTTLS"]:
            smtp.starttls()
        if config["SMTP_USER"]:
            smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
        for mail in mails:
            try:
                smtp.send_message(build(mail, config["MAIL_FROM"]))
            except UNSENT as error:
                if isinstance(error, smtplib.SMTPServerDisconnected):
                    raise
                log.warning("the mail server refused the e-mail to %s: %s", mail.to, error)
                delivery.failed.append(mail.to)
                continue
            delivery.sent += 1


def send(mails: Iterable[Mail]) -> Delivery:
    """Send ``mails``, each on its own: one refused address does not stop the others."""
    config = current_app.config
    mails = list(mails)
    delivery = Delivery()
    if not config.get("SMTP_HOST"):
        print_to_console([build(m, config["MAIL_FROM"]) for m in mails])
        delivery.sent = len(mails)
        return delivery
    try:
        if mails:
            deliver_smtp(mails, config, delivery)
    except UNSENT:
        log.exception("the mail server %s could not be reached", config["SMTP_HOST"])
        done = delivery.sent + len(delivery.failed)
        delivery.failed.extend(m.to for m in mails[done:])
    return delivery


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL for ``endpoint``: from the request when there is one, else from
    ``PUBLIC_URL`` (e-mails sent by a command or at first start)."""
    if has_request_context():
        return url_for(endpoint, _external=True, **values)
    with current_app.test_request_context(base_url=current_app.config["PUBLIC_URL"]):
        return url_for(endpoint, _external=True, **values)
