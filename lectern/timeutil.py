"""Time helpers: every stored time is naive UTC, the same on SQLite and PostgreSQL.

People type and read wall-clock times in their own zone: :func:`to_utc` turns what a form
received into the stored form, :func:`to_local` the other way (:mod:`lectern.timefmt` formats
it for a page or an e-mail).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Zone = tzinfo | str  # a zone, or its IANA name ("Europe/Berlin")


class NonexistentTime(ValueError):
    """A local wall-clock time that never happens in its zone: the clocks skip over it when
    they spring forward (02:30 in Berlin on the last Sunday of March)."""


def utcnow() -> datetime:
    """The current time as naive UTC, the form stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def zone_of(name: Zone | None) -> tzinfo:
    """The zone ``name`` names; UTC for None, an empty or an unknown name. Other tzinfo
    objects (pytz's, as Flask-Babel hands out) become the ZoneInfo of the same name."""
    if isinstance(name, ZoneInfo) or name is UTC:
        return name
    if isinstance(name, tzinfo):
        name = getattr(name, "zone", None) or str(name)
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_name(zone: Zone | None) -> str:
    """The IANA name people see next to a time ("Asia/Seoul", "UTC")."""
    name = str(getattr(zone_of(zone), "key", None) or "UTC")
    return "UTC" if name in ("Etc/UTC", "Etc/Zulu", "Zulu", "UCT") else name


def to_utc(local: datetime, zone: Zone | None) -> datetime:
    """A naive wall-clock time in ``zone`` as naive UTC.

    A time the clocks pass twice (when they fall back) is taken at its first occurrence, still
    on summer time: 02:30 in Berlin on the last Sunday of October is 00:30 UTC, not 01:30.

    :raises NonexistentTime: the clocks skip ``local`` in ``zone`` (spring forward).
    :raises ValueError: ``local`` carries a zone already.
    """
    if local.tzinfo is not None:
        raise ValueError("to_utc takes a naive wall-clock time")
    where = zone_of(zone)
    first = local.replace(tzinfo=where, fold=0)  # fold=0: the earlier of two occurrences
    utc = first.astimezone(UTC)
    if utc.astimezone(where).replace(tzinfo=None) != local.replace(fold=0):
        raise NonexistentTime(f"{local:%Y-%m-%d %H:%M} does not exist in {zone_name(where)}")
    return utc.replace(tzinfo=None)


def to_local(utc: datetime, zone: Zone | None) -> datetime:
    """A stored (naive UTC) time as the naive wall-clock time in ``zone``."""
    return utc.replace(tzinfo=UTC).astimezone(zone_of(zone)).replace(tzinfo=None, fold=0)
