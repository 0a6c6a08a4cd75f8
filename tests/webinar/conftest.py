"""Fixtures for broadcasts' outside-facing flows: every test's app sends its e-mail to the
``mailbox`` fixture (a real SMTP server on loopback, in tests/conftest.py); link rate limits
start empty."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import CODE, LINK, Mailbox
from webinar import joining

__all__ = ["CODE", "LINK", "Mailbox"]  # the ``mailbox`` fixture itself is in tests/conftest.py


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
