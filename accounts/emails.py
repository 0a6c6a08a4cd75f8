"""Parsing pasted lists of e-mail addresses (enrolment, invite lists)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email

from accounts.models import EMAIL_MAX

# Pasted lists may separate addresses by new lines, commas, semicolons or spaces.
SEPARATORS = re.compile(r"[\s,;]+")
MAX_ADDRESSES = 1000


@dataclass
class EmailList:
    """The addresses found in a pasted list, and the pieces that were not addresses."""

    emails: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def parse_email_list(text: str) -> EmailList:
    """Split ``text`` into normalized (lower-case, de-duplicated) addresses and invalid pieces."""
    result = EmailList()
    for piece in SEPARATORS.split(text or ""):
        if not piece:
            continue
        email = normalize_email(piece)
        if email is None:
            result.invalid.append(piece[:80])
        elif email not in result.emails:
            result.emails.append(email)
    return result


def normalize_email(raw: str) -> str | None:
    """A valid address in lower case, or None."""
    raw = raw.strip().strip("<>")
    if not raw or len(raw) > EMAIL_MAX:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None
