"""Personal join links: unguessable, revocable, bound to the first device that uses them, and
for shareholder meetings verified on first use with the holder id and a code.

A link's token is ``<registration id>.<version>.<HMAC>``: nothing secret is stored, issuing a
new link (version + 1) invalidates every older one, and the link can be sent again in a reminder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, session
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import false, select, update

from lectern.extensions import db
from lectern.timeutil import utcnow
from webinar.models import Broadcast, Kind, Registration, Status

MAX_FAILED_CHECKS = 5  # wrong holder id or code this many times: the link is revoked
GRACE = timedelta(hours=1)  # a link still works this long after the scheduled end
CODE_DIGITS = 8

INVALID = _l("This join link is not valid. Check that it was copied whole.")
REPLACED = _l("This join link was replaced by a newer one: use the latest e-mail.")
REVOKED = _l("This join link was revoked. Ask the host for a new one.")
LOCKED = _l(
    "Wrong holder id or code too many times: this link is locked. Ask the host for a new one."
)


def _key(purpose: str) -> bytes:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, f"lectern-join-links:{purpose}".encode(), hashlib.sha256).digest()


def _mac(reg_id: int, version: int) -> str:
    digest = hmac.new(_key("link"), f"{reg_id}:{version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def token_of(reg: Registration) -> str:
    """The registration's current join-link token (a link must have been issued)."""
    return f"{reg.id}.{reg.link_version}.{_mac(reg.id, reg.link_version)}"


def code_digest(reg: Registration, code: str) -> str:
    message = f"{reg.id}:{reg.link_version}:{code.strip()}".encode()
    return hmac.new(_key("code"), message, hashlib.sha256).hexdigest()


def needs_verification(broadcast: Broadcast) -> bool:
    return broadcast.kind == Kind.SHAREHOLDER


def issue(reg: Registration) -> str | None:
    """Issue a new link for ``reg`` (older links stop working, the device binding is reset).

    Returns the new holder code for a shareholder meeting (shown once, in the e-mail), else None.
    The caller commits.
    """
    reg.link_version += 1
    reg.link_revoked = False
    reg.device_hash = None
    reg.verified_at = None
    reg.failed_checks = 0
    reg.code_hash = None
    if not needs_verification(reg.broadcast):
        return None
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    reg.code_hash = code_digest(reg, code)
    return code


def ensure_link(reg: Registration) -> str | None:
    """Give ``reg`` a link if it never had one; returns its new code, if one was made (an
    existing link keeps its code: reminders point to the invitation's)."""
    return issue(reg) if reg.link_version == 0 else None


@dataclass(frozen=True)
class Checked:
    """The registration a token names, or why the token does not let anyone in."""

    registration: Registration | None
    problem: str | None = None  # a sentence for the visitor
    status: int = 200


def parse(token: str) -> tuple[int, int] | None:
    """(registration id, link version) of a token this server issued, checked by its MAC alone
    (no database: a guess costs nothing but a hash); None for anything else."""
    parts = token.split(".") if len(token) <= 100 else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) < 12 for p in parts[:2]):
        return None
    reg_id, version = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2].encode(), _mac(reg_id, version).encode()):
        return None
    return reg_id, version


def check(token: str) -> Checked:
    """Look the token up; every failure is a refusal with a reason, nothing is written."""
    parsed = parse(token)
    reg = db.session.get(Registration, parsed[0]) if parsed else None
    if parsed is None or reg is None:
        return Checked(None, str(INVALID), 404)
    if parsed[1] != reg.link_version:
        return Checked(None, str(REPLACED), 410)
    if reg.link_revoked:
        return Checked(None, str(REVOKED), 410)
    if reg.status == Status.DECLINED:
        return Checked(None, "The host declined this registration.", 403)
    if reg.status == Status.PENDING and not reg.invited:
        return Checked(None, "Your registration is waiting for the host's approval.", 403)
    if utcnow() > reg.broadcast.ends_at + GRACE:
        return Checked(None, "This broadcast is over: its join links have expired.", 410)
    return Checked(reg)


def device_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def device_matches(reg: Registration, secret: str | None) -> bool:
    """Whether the visitor's device cookie is the one bound to this link."""
    return (
        reg.device_hash is not None
        and secret is not None
        and hmac.compare_digest(reg.device_hash, device_digest(secret))
    )


def verify_holder(reg: Registration, holder_id: str, code: str) -> str | None:
    """Check the holder id and code; None when right, else the refusal (counted, and after
    :data:`MAX_FAILED_CHECKS` the link is revoked). The caller commits either way."""
    holder_ok = hmac.compare_digest(
        (reg.holder_id or "").strip().casefold().encode(), holder_id.strip().casefold().encode()
    )
    code_ok = reg.code_hash is not None and hmac.compare_digest(
        reg.code_hash, code_digest(reg, code)
    )
    if holder_ok and code_ok:
        return None
    # Counted in the database, not from the value read: parallel guesses cannot lose a count.
    mine = Registration.id == reg.id
    db.session.execute(
        update(Registration).where(mine).values(failed_checks=Registration.failed_checks + 1)
    )
    failed = db.session.scalar(select(Registration.failed_checks).where(mine)) or 0
    if failed >= MAX_FAILED_CHECKS:
        db.session.execute(update(Registration).where(mine).values(link_revoked=True))
    db.session.expire(reg, ["failed_checks", "link_revoked"])
    if failed >= MAX_FAILED_CHECKS:
        return str(LOCKED)
    left = MAX_FAILED_CHECKS - failed
    return ngettext(
        "The holder id or code is wrong. %(num)s attempt left.",
        "The holder id or code is wrong. %(num)s attempts left.",
        left,
    )


def bind_device(reg: Registration) -> str | None:
    """Bind the link to this device and mark the registration verified and approved; returns
    the device secret for the cookie, or None when another device (or a new link, or a
    revocation) got there first. One conditional UPDATE: two devices racing cannot both bind.
    The caller commits."""
    secret = secrets.token_urlsafe(32)
    bound = db.session.execute(
        update(Registration)
        .where(
            Registration.id == reg.id,
            Registration.device_hash.is_(None),
            Registration.link_version == reg.link_version,
            Registration.link_revoked == false(),
        )
        .values(
            device_hash=device_digest(secret),
            verified_at=utcnow(),
            status=Status.APPROVED.value,
        )
    )
    db.session.expire(reg, ["device_hash", "verified_at", "status"])
    return secret if bound.rowcount == 1 else None  # type: ignore[attr-defined]


def cookie_name(reg: Registration) -> str:
    return f"lectern_device_{reg.id}"


# The Flask session remembers which link (registration id -> link version) signed it in.
SESSION_KEY = "join_links"


def remember(reg: Registration) -> None:
    """Note in the session that ``reg``'s current link was used here."""
    links = dict(session.get(SESSION_KEY, {}))
    links[str(reg.id)] = reg.link_version
    session[SESSION_KEY] = links


def session_holds(reg: Registration) -> bool:
    """Whether this session came in through ``reg``'s current, unrevoked link: what an account
    without a password needs to stay in (a revoked or replaced link ends its access)."""
    links = session.get(SESSION_KEY, {})
    return not reg.link_revoked and links.get(str(reg.id)) == reg.link_version
