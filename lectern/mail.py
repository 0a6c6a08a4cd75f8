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


def build(mail: Mail, sender: str) -> EmailMessage:
    """The MIME message for ``mail``."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
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


def deliver_smtp(messages: list[EmailMessage], config: dict) -> None:
    """Send ``messages`` over one SMTP connection (STARTTLS and login when configured)."""
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=15) as smtp:
        if config["SMTP_STARTTLS"]:
            smtp.starttls()
        if config["SMTP_USER"]:
            smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
        for message in messages:
            smtp.send_message(message)


def send(mails: Iterable[Mail]) -> bool:
    """Send ``mails``; False (and logged) when the SMTP server could not take them."""
    config = current_app.config
    messages = [build(m, config["MAIL_FROM"]) for m in mails]
    if not messages:
        return True
    if not config.get("SMTP_HOST"):
        print_to_console(messages)
        return True
    try:
        deliver_smtp(messages, config)
    except (OSError, smtplib.SMTPException):
        log.exception("sending %d e-mail(s) through %s failed", len(messages), config["SMTP_HOST"])
        return False
    return True


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL for ``endpoint``: from the request when there is one, else from
    ``PUBLIC_URL`` (e-mails sent by a command or at first start)."""
    if has_request_context():
        return url_for(endpoint, _external=True, **values)
    with current_app.test_request_context(base_url=current_app.config["PUBLIC_URL"]):
        return url_for(endpoint, _external=True, **values)
