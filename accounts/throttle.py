"""Sign-in rate limiting kept in the database, so it holds across web workers and restarts."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from accounts.models import LoginFailure
from lectern.extensions import db
from lectern.timeutil import utcnow

# An address may fail this many times more often than one account before it is locked too.
ADDRESS_FACTOR = 4


def _window() -> timedelta:
    return timedelta(seconds=current_app.config["LOGIN_LOCK_SECONDS"])


def _wait_after(failures: list, limit: int) -> int:
    """Seconds until the oldest of the last ``limit`` failures leaves the window (0: allowed)."""
    if len(failures) < limit:
        return 0
    oldest = sorted(failures, reverse=True)[limit - 1]
    return max(0, int((oldest + _window() - utcnow()).total_seconds()) + 1)


def seconds_locked(email: str, remote_addr: str) -> int:
    """How long sign-in for ``email`` from ``remote_addr`` stays refused; 0 when allowed."""
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    since = utcnow() - _window()
    by_email = db.session.scalars(
        select(LoginFailure.at).where(LoginFailure.email == email, LoginFailure.at >= since)
    ).all()
    by_addr = db.session.scalars(
        select(LoginFailure.at).where(
            LoginFailure.remote_addr == remote_addr, LoginFailure.at >= since
        )
    ).all()
    return max(
        _wait_after(list(by_email), limit), _wait_after(list(by_addr), limit * ADDRESS_FACTOR)
    )


def record_failure(email: str, remote_addr: str) -> None:
    """Remember a failed sign-in and forget those older than the window."""
    db.session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - _window()))
    db.session.add(LoginFailure(email=email, remote_addr=remote_addr[:64]))
    db.session.commit()


def clear_failures(email: str) -> None:
    """Forget an account's failures after it signs in successfully."""
    db.session.execute(delete(LoginFailure).where(LoginFailure.email == email))
    db.session.commit()


def failure_count(email: str) -> int:
    """Failures recorded for ``email`` inside the window (for tests and admin views)."""
    since = utcnow() - _window()
    return (
        db.session.scalar(
            select(func.count()).where(LoginFailure.email == email, LoginFailure.at >= since)
        )
        or 0
    )
