"""Languages and time zones.

Flask-Babel picks each request's language (the user's profile, else the browser's
``Accept-Language``, else English) and time zone (the profile, else UTC). The catalogues live as
``.po`` files in ``lectern/translations/<lang>/LC_MESSAGES/``: ``messages.po`` for templates,
Python and e-mails, ``js.po`` for the room's and the player's JavaScript, which receives its
strings as one JSON object in the page (:func:`js_catalogue`).

The ``.po`` files are the only source: :func:`compiled_directory` compiles them once per content
into a folder under the system's temporary directory, shared by every process of this version.

Updating the catalogues after changing strings::

    python -m lectern.i18n update    # extract, then merge into every language's .po
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, has_request_context, request, session
from flask_babel import Babel, get_locale, refresh
from flask_babel import lazy_gettext as _l
from flask_login import current_user

PACKAGE = Path(__file__).resolve().parent
SOURCES = PACKAGE / "translations"
ROOT = PACKAGE.parent
# language code -> its own name, as the language picker shows it
LANGUAGES: dict[str, str] = {"en": "English", "ko": "한국어"}
DEFAULT_LANGUAGE = "en"
DOMAINS = ("messages", "js")
# Query parameter that picks the language for someone not signed in (remembered in the session).
LANGUAGE_PARAM = "lang"
# account and room role -> its name as pages show it
ROLE_LABELS = {
    "admin": _l("administrator"),
    "instructor": _l("instructor"),
    "host": _l("host"),
    "student": _l("student"),
    "attendee": _l("attendee"),
    "panelist": _l("panelist"),
    "none": _l("none"),
}

babel = Babel()


def select_locale() -> str:
    """The signed-in user's language, else the one picked with ``?lang=`` (remembered in the
    session), else the browser's best match, else English."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    user = current_user
    if user and user.is_authenticated and getattr(user, "locale", None) in LANGUAGES:
        return str(user.locale)
    picked = request.args.get(LANGUAGE_PARAM) or session.get(LANGUAGE_PARAM)
    if picked in LANGUAGES:
        return str(picked)
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def remember_language() -> None:
    """Keep a ``?lang=`` choice for the following pages (before each request). Also forgets a
    language and zone Flask-Babel cached in ``g``: an app context that outlives one request
    (tests, CLI commands) would otherwise keep the first request's."""
    refresh()
    picked = request.args.get(LANGUAGE_PARAM)
    if picked in LANGUAGES and session.get(LANGUAGE_PARAM) != picked:
        session[LANGUAGE_PARAM] = picked


def role_label(role: str | None) -> str:
    """An account or room role's name in the request's language (unknown roles as they are)."""
    label = ROLE_LABELS.get(role or "")
    return str(label) if label is not None else str(role or "")


def select_timezone() -> str | None:
    """The signed-in user's time zone (None: Flask-Babel's default, UTC)."""
    if not has_request_context():
        return None
    user = current_user
    zone = getattr(user, "timezone", None) if user and user.is_authenticated else None
    return zone if valid_timezone(zone) else None


def valid_timezone(name: object) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows ("Europe/Berlin")."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@cache
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone, sorted, for the profile's picker."""
    return tuple(sorted(available_timezones()))


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.relative_to(SOURCES)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def compiled_directory(sources: Path = SOURCES) -> Path:
    """A folder of ``.mo`` files compiled from ``sources``' ``.po`` files (compiled once per
    content, atomically, so several processes can start at the same time)."""
    po_files = sorted(sources.glob("*/LC_MESSAGES/*.po"))
    target = Path(tempfile.gettempdir()) / f"lectern-catalogues-{_digest(po_files)}"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix="lectern-catalogues-", dir=target.parent))
    for po in po_files:
        mo = staging / po.relative_to(sources).with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as fp:
            catalog = read_po(fp)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        mo.write_bytes(buffer.getvalue())
    try:
        os.rename(staging, target)
    except OSError:  # another process got there first
        subprocess.run(["rm", "-rf", str(staging)], check=False)
    return target


@cache
def _js_entries(language: str) -> dict[str, Any]:
    """msgid -> translation (a string, or a list of plural forms) from ``js.po``."""
    path = SOURCES / language / "LC_MESSAGES" / "js.po"
    if not path.exists():
        return {}
    with path.open("rb") as fp:
        catalog = read_po(fp)
    entries: dict[str, Any] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, (tuple, list)):
            forms = [s for s in message.string or () if s]
            if forms:
                entries[str(message.id[0])] = forms
        elif message.string:
            entries[str(message.id)] = message.string
    return entries


def js_catalogue() -> dict[str, Any]:
    """The JavaScript strings of the request's language (empty for English: the ids are the
    English text)."""
    return _js_entries(str(get_locale() or DEFAULT_LANGUAGE))


def init_app(app: Flask) -> None:
    """Bind Flask-Babel to ``app`` with Lectern's selectors and compiled catalogues."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    babel.init_app(
        app,
        locale_selector=select_locale,
        timezone_selector=select_timezone,
        default_translation_directories=str(compiled_directory()),
    )
    # {% trans %} blocks: whitespace and line breaks collapse, as the extraction sees them
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.jinja_env.globals.update(
        LANGUAGES=LANGUAGES,
        js_catalogue=js_catalogue,
        current_language=select_locale,
        role_label=role_label,
    )
    app.before_request(remember_language)


# Marks beyond gettext's own (``N_`` marks a text translated later): lazy strings, the front
# end's t()/tn(), and the refusals whose message is a msgid with named placeholders, translated
# when sent (``Refused("...", name=...)``, ``Invalid``, ``UploadError``, ``ApiError(status,
# "...")``: see rooms.validate.Reason and rooms.namespace.error).
KEYWORDS = [
    *("-k", "_l", "-k", "t", "-k", "tn:1,2", "-k", "Refused", "-k", "Invalid"),
    *("-k", "UploadError", "-k", "ApiError:2"),
]


PYBABEL = [sys.executable, "-m", "babel.messages.frontend"]
CONFIGS = {"messages": "babel.cfg", "js": "babel-js.cfg"}


def extract(domain: str, pot: Path) -> None:
    """Write every string marked in the sources of ``domain`` to the template ``pot``."""
    options = ["--no-location", "--sort-output", "-o", str(pot), str(ROOT)]
    subprocess.run(
        [*PYBABEL, "extract", "-F", str(ROOT / CONFIGS[domain]), *KEYWORDS, *options],
        check=True,
    )


def update() -> None:
    """Extract every marked string and merge it into each language's catalogues (strings no
    longer in the sources are dropped, not kept as obsolete entries)."""
    with tempfile.TemporaryDirectory() as folder:
        for domain in DOMAINS:
            pot = Path(folder) / f"{domain}.pot"
            extract(domain, pot)
            for language in set(LANGUAGES) - {DEFAULT_LANGUAGE}:  # English ids are the text
                po = SOURCES / language / "LC_MESSAGES" / f"{domain}.po"
                verb = ["update", "--no-fuzzy-matching", "--ignore-obsolete"]
                action = verb if po.exists() else ["init"]
                files = ["-D", domain, "-i", str(pot), "-d", str(SOURCES), "-l", language]
                subprocess.run([*PYBABEL, *action, *files], check=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["update"]:
        sys.exit("usage: python -m lectern.i18n update")
    update()
