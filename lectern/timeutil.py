"""Time helpers: every stored time is naive UTC, the same on SQLite and PostgreSQL."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as naive UTC, the form stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
