"""Stored (naive UTC) times as people read them: in their zone, in their language's format
(Babel's CLDR data), with the zone named ("Tue, Dec 8, 2026, 7:00 PM (Asia/Seoul)").

The functions take the language and zone explicitly, so an e-mail can use its recipient's; the
Jinja globals registered by :func:`register` use the request's (Flask-Babel's selectors).
"""

from __future__ import annotations

from datetime import datetime

from babel import Locale
from babel.dates import format_skeleton, format_time
from flask import Flask

from lectern.i18n import select_locale, select_timezone
from lectern.timeutil import Zone, to_local, zone_name, zone_of

Language = Locale | str


def date_and_time(moment: datetime, language: Language, zone: Zone | None) -> str:
    """Weekday, date and time of day, without the zone: "Tue, Dec 8, 2026, 7:00 PM"."""
    where, locale = zone_of(zone), Locale.parse(language)
    day = format_skeleton("yMMMEd", moment, tzinfo=where, locale=locale)
    clock = format_time(moment, "short", tzinfo=where, locale=locale)
    return str(locale.datetime_formats["medium"]).format(clock, day)


def when(
    start: datetime, end: datetime | None = None, *, language: Language, zone: Zone | None
) -> str:
    """A start (and end) time with its zone: "Tue, Dec 8, 2026, 7:00 PM - 8:00 PM
    (Asia/Seoul)" (with an en dash); the end shows its date too when it falls on another
    local day."""
    text = date_and_time(start, language, zone)
    if end is not None:
        same_day = to_local(start, zone).date() == to_local(end, zone).date()
        text += " \N{EN DASH} " + (
            clock(end, language=language, zone=zone)
            if same_day
            else date_and_time(end, language, zone)
        )
    return f"{text} ({zone_name(zone)})"


def clock(moment: datetime, *, language: Language, zone: Zone | None, seconds: bool = False) -> str:
    """The time of day, as the language writes it ("7:00 PM", "19:00", "오후 7:00")."""
    form = "medium" if seconds else "short"
    return format_time(moment, form, tzinfo=zone_of(zone), locale=Locale.parse(language))


def short_date(moment: datetime, *, language: Language, zone: Zone | None) -> str:
    """Month and day ("Dec 8", "12월 8일") in ``zone``."""
    return format_skeleton("MMMd", moment, tzinfo=zone_of(zone), locale=Locale.parse(language))


# --- the request's language and zone -----------------------------------------------------------


# Asked of the selectors each time: Flask-Babel keeps its answer for the whole app context,
# which outlives one request where a caller (a test, a command) has pushed its own context.


def request_language() -> Locale:
    """The viewer's language (Flask-Babel's selector)."""
    return Locale.parse(select_locale())


def request_zone() -> Zone:
    """The viewer's zone (their profile's, else UTC) as a ZoneInfo."""
    return zone_of(select_timezone())


def local_when(start: datetime, end: datetime | None = None) -> str:
    """:func:`when` for the viewer."""
    return when(start, end, language=request_language(), zone=request_zone())


def local_clock(moment: datetime, seconds: bool = False) -> str:
    """:func:`clock` for the viewer."""
    return clock(moment, language=request_language(), zone=request_zone(), seconds=seconds)


def local_moment(moment: datetime, seconds: bool = False) -> str:
    """Month, day and time for the viewer, no zone: for tables whose page names it."""
    language, zone = request_language(), request_zone()
    day = short_date(moment, language=language, zone=zone)
    return f"{day} {clock(moment, language=language, zone=zone, seconds=seconds)}"


def local_zone() -> str:
    """The viewer's zone's name, for "Times are in ..." notes."""
    return zone_name(request_zone())


def iso_utc(moment: datetime) -> str:
    """A stored time for ``<time datetime=...>``: ISO 8601 UTC with a Z."""
    return moment.replace(microsecond=0).isoformat() + "Z"


def register(app: Flask) -> None:
    """Give templates the viewer-side formatters."""
    app.jinja_env.globals.update(
        local_when=local_when,
        local_clock=local_clock,
        local_moment=local_moment,
        local_zone=local_zone,
        iso_utc=iso_utc,
    )
