"""An iCalendar (RFC 5545) invitation for a broadcast, to download or attach to an e-mail."""

from __future__ import annotations

from datetime import datetime

from lectern.timeutil import utcnow
from webinar.models import Broadcast


def escape(text: str) -> str:
    """Escape a TEXT value: backslash, semicolon, comma and line breaks."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def quoted(text: str) -> str:
    """A parameter value to put inside double quotes (which it may not contain)."""
    return "".join(" " if c in '"\r\n' or ord(c) < 32 else c for c in text)


def fold(line: str) -> str:
    """Fold a content line to at most 75 octets per physical line (continuations start with a
    space), never splitting a UTF-8 character."""
    out: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > (75 if not out else 74):
            out.append(current)
            current, size = "", 0
        current += char
        size += width
    out.append(current)
    return "\r\n ".join(out)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def ics(broadcast: Broadcast, url: str, host_name: str) -> bytes:
    """The calendar file: one event at the broadcast's (UTC) time, linking to ``url``."""
    description = (broadcast.description or "").strip()
    description = f"{description}\n\nJoin: {url}" if description else f"Join: {url}"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Lectern//Broadcasts//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:broadcast-{broadcast.id}@lectern",
        f"DTSTAMP:{stamp(utcnow())}",
        f"DTSTART:{stamp(broadcast.starts_at)}",
        f"DTEND:{stamp(broadcast.ends_at)}",
        f"SUMMARY:{escape(broadcast.title)}",
        f"DESCRIPTION:{escape(description)}",
        f'ORGANIZER;CN="{quoted(host_name)}":mailto:no-reply@lectern.invalid',
        f"URL:{url}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode()
