"""Fixtures for the deployment tests: a fresh PostgreSQL database; the browser scenarios'
helpers (people, screenshots and evidence on failure, a slide deck) reused as they are; and
Chromium that accepts the deployment's self-signed certificate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import (  # noqa: F401  (fixtures and the hook, reused here)
    artifacts,
    pdf_file,
    people_on,
    pytest_runtest_makereport,
)
from tests.conftest import scratch_postgres
from tests.live import CHROMIUM, CHROMIUM_ARGS, in_ci, launch_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium as in the browser tests, trusting the throwaway TLS certificate of
    the deployment under test (``--ignore-certificate-errors``)."""
    if not CHROMIUM.exists():
        if in_ci():
            pytest.fail(f"{CHROMIUM} is required in CI")
        pytest.skip(f"{CHROMIUM} is not installed")
    with launch_chromium([*CHROMIUM_ARGS, "--ignore-certificate-errors"]) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def fresh_postgres() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this module (the web workers migrate it);
    dropped afterwards."""
    with scratch_postgres("lectern_deploy") as url:
        yield url
