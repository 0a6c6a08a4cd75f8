"""Fixtures for broadcasts' outside-facing flows: a real SMTP server on loopback that keeps every
message it receives, and helpers to read links and codes out of those messages."""

from __future__ import annotations

import email
import re
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from webinar import joining

LINK = re.compile(r"https?://\S+/broadcasts/join/(\S+)")
CODE = re.compile(r"verification code: (\d{8})")


class Mailbox:
    """An aiosmtpd handler: every message the app sends lands in ``messages``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        """Addresses starting with "refused" do not exist on this server."""
        if address.startswith("refused"):
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def text(self, message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content())

    def last_link(self, address: str) -> tuple[str, str | None]:
        """(token, code or None) from the newest message to ``address``."""
        found = self.to(address)
        assert found, f"no e-mail to {address}"
        text = self.text(found[-1])
        link = LINK.search(text)
        assert link, text
        code = CODE.search(text)
        return link.group(1), code.group(1) if code else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def app_config(mailbox: Mailbox) -> dict[str, object]:
    """The app sends its e-mail to the test's SMTP server."""
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": mailbox.port}


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    """Link and sign-up rate limits start empty (every test client comes from 127.0.0.1)."""
    joining.visitors.reset()
    yield
    joining.visitors.reset()
