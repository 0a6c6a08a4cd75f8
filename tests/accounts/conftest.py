"""Fixtures for accounts: the e-mails the app sends (captured as they leave), links read out of
them, and fresh rate limits for every test."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from accounts import limits, notify
from lectern.mail import Delivery, Mail

LINK = re.compile(r"https?://\S+")


class Outbox:
    """Every message accounts sent (also the ones sent in the background)."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    def send(self, mails: list[Mail]) -> Delivery:
        mails = list(mails)
        self.mails.extend(mails)
        return Delivery(sent=len(mails))

    def to(self, address: str, wait: float = 0.0) -> list[Mail]:
        """The messages to ``address``; waits up to ``wait`` seconds for a first one."""
        deadline = time.monotonic() + wait
        while True:
            found = [m for m in self.mails if m.to == address]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def link(self, address: str, wait: float = 2.0) -> str:
        """The path of the link in the newest message to ``address``."""
        found = self.to(address, wait)
        assert found, f"no e-mail to {address}"
        match = LINK.search(found[-1].body)
        assert match, found[-1].body
        return "/" + match.group(0).split("/", 3)[3]


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> Outbox:
    box = Outbox()
    monkeypatch.setattr(notify, "send", box.send)
    return box


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    limits.reset()
    yield
    limits.reset()
