"""Sign-in rate limiting kept in the database, so it holds across web workers and restarts.

Every limit is a wait before the next try, never a lock: wrong passwords from one address make
that address wait, not the account's owner elsewhere. Failures are remembered for
``LOGIN_WINDOW_SECONDS``; within it:

- per account and address: ``LOGIN_MAX_FAILURES`` failures are free, then each further try
  waits ``LOGIN_BACKOFF_SECONDS`` after the last failure, doubled with every failure, at most
  ``LOGIN_LOCK_SECONDS``;
- per address, over all accounts (one address guessing many accounts): the same backoff after
  ``LOGIN_ADDRESS_FAILURES`` failures;
- per account, over all addresses (a guesser spread over many addresses): once
  ``LOGIN_ACCOUNT_ADDRESSES`` different addresses failed, a try on the account waits until
  ``LOGIN_ACCOUNT_SPACING`` seconds after its last failure, except from a browser that signed
  in to the account before (``known``: see accounts.routes), so the owner keeps their way in.

A refused try checks no password and is not counted. SECURITY.md gives the numbers.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from accounts.models import LoginFailure
from lectern.extensions import db
from lectern.timeutil import utcnow

log = logging.getLogger(__name__)

ADDR_MAX = 64  # LoginFailure.remote_addr


def _setting(name: str) -> int:
    return int(current_app.config[f"LOGIN_{name}"])


def _since() -> datetime:
    return utcnow() - timedelta(seconds=_setting("WINDOW_SECONDS"))


def _seconds_until(moment: datetime) -> int:
    """Whole seconds from now until ``moment`` (0 when it has passed)."""
    return max(0, math.ceil((moment - utcnow()).total_seconds()))


def backoff(failures: list[datetime], free: int) -> int:
    """Seconds to wait after ``failures`` when ``free`` of them cost nothing: the base wait,
    doubled for each failure past the free ones, at most the longest wait (0: allowed)."""
    if len(failures) < free:
        return 0
    doublings = min(len(failures) - free, 30)
    delay = min(_setting("LOCK_SECONDS"), _setting("BACKOFF_SECONDS") * 2**doublings)
    return _seconds_until(max(failures) + timedelta(seconds=delay))


def account_spacing(failures: list[tuple[str, datetime]]) -> int:
    """The soft per-account wait: only once many addresses failed on the account."""
    if len({addr for addr, _ in failures}) < _setting("ACCOUNT_ADDRESSES"):
        return 0
    last = max(at for _, at in failures)
    return _seconds_until(last + timedelta(seconds=_setting("ACCOUNT_SPACING")))


def seconds_locked(email: str, remote_addr: str, known: bool = False) -> int:
    """How long sign-in for ``email`` from ``remote_addr`` must wait; 0 when allowed.
    ``known``: the browser signed in to this account before (spared the per-account wait)."""
    remote_addr = remote_addr[:ADDR_MAX]
    since = _since()
    by_email = db.session.execute(
        select(LoginFailure.remote_addr, LoginFailure.at).where(
            LoginFailure.email == email, LoginFailure.at >= since
        )
    ).all()
    by_addr = db.session.scalars(
        select(LoginFailure.at).where(
            LoginFailure.remote_addr == remote_addr, LoginFailure.at >= since
        )
    ).all()
    waits = {
        "account and address": backoff(
            [at for addr, at in by_email if addr == remote_addr], _setting("MAX_FAILURES")
        ),
        "address": backoff(list(by_addr), _setting("ADDRESS_FAILURES")),
        "account": 0 if known else account_spacing([(addr, at) for addr, at in by_email]),
    }
    limit, wait = max(waits.items(), key=lambda item: item[1])
    if wait:
        log.warning("sign-in to %s from %s waits %d s (%s limit)", email, remote_addr, wait, limit)
    return wait


def record_failure(email: str, remote_addr: str) -> None:
    """Remember a failed sign-in and forget those older than the window."""
    db.session.execute(delete(LoginFailure).where(LoginFailure.at < _since()))
    db.session.add(LoginFailure(email=email, remote_addr=remote_addr[:ADDR_MAX]))
    db.session.commit()


def clear_failures(email: str, remote_addr: str) -> None:
    """Forget the failures of this account from this address after it signs in from there;
    other addresses' failures still count against them."""
    db.session.execute(
        delete(LoginFailure).where(
            LoginFailure.email == email, LoginFailure.remote_addr == remote_addr[:ADDR_MAX]
        )
    )
    db.session.commit()


def failure_count(email: str, remote_addr: str | None = None) -> int:
    """Failures recorded for ``email`` (from ``remote_addr``, if given) inside the window."""
    query = select(func.count()).where(LoginFailure.email == email, LoginFailure.at >= _since())
    if remote_addr is not None:
        query = query.where(LoginFailure.remote_addr == remote_addr[:ADDR_MAX])
    return db.session.scalar(query) or 0
