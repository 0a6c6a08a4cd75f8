"""Single-use links: made here, sent by e-mail (or printed), redeemed once.

The token is 32 random bytes, shown only in the link; the database keeps an HMAC of it (keyed
from ``SECRET_KEY``, as join links are), so a copy of the database opens no account. Redeeming
is one conditional ``UPDATE ... WHERE used_at IS NULL``: two tabs racing cannot both win.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from accounts.models import AccountToken, Purpose, User
from lectern.extensions import db
from lectern.timeutil import utcnow

# purpose -> how long its link works
LIFETIMES: dict[Purpose, timedelta] = {
    Purpose.SETUP: timedelta(hours=24),
    Purpose.WELCOME: timedelta(days=7),
    Purpose.INVITE: timedelta(days=7),
    Purpose.RESET: timedelta(hours=1),
    Purpose.SIGNUP: timedelta(hours=24),
}
TOKEN_MAX = 100  # longer strings in a link are not ours: refused before any hashing


# Why a link cannot be used (lookup's second value)
INVALID = "invalid"
USED = "used"
EXPIRED = "expired"


def digest(token: str) -> str:
    """The stored form of ``token``: HMAC-SHA256 keyed from the app's secret."""
    secret = current_app.config["SECRET_KEY"].encode()
    key = hmac.new(secret, b"lectern-account-tokens", hashlib.sha256).digest()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def password_stamp(user: User) -> str:
    """A short digest of the user's password hash: it changes whenever the password does."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def issue(purpose: Purpose, email: str, **fields: object) -> tuple[AccountToken, str]:
    """A new link's row (added, not committed) and its token, to put in the link."""
    token = secrets.token_urlsafe(32)
    row = AccountToken(
        purpose=purpose.value,
        token_hash=digest(token),
        email=email,
        expires_at=utcnow() + LIFETIMES[purpose],
        **fields,
    )
    db.session.add(row)
    return row, token


def renew(row: AccountToken) -> str:
    """Give a pending row a fresh token and lifetime (re-sending an invitation): the old link
    stops working. The caller commits."""
    token = secrets.token_urlsafe(32)
    row.token_hash = digest(token)
    row.expires_at = utcnow() + LIFETIMES[Purpose(row.purpose)]
    row.created_at = utcnow()
    return token


def lookup(token: str, purpose: Purpose) -> tuple[AccountToken | None, str | None]:
    """(row, None) for a usable link, else (row or None, INVALID | USED | EXPIRED)."""
    if not token or len(token) > TOKEN_MAX:
        return None, INVALID
    row = db.session.scalar(select(AccountToken).where(AccountToken.token_hash == digest(token)))
    if row is None or row.purpose != purpose:
        return None, INVALID
    if row.used_at is not None:
        return row, USED
    if row.expires_at <= utcnow():
        return row, EXPIRED
    if purpose == Purpose.RESET and (row.user is None or row.stamp != password_stamp(row.user)):
        return row, USED  # the password changed since the link was made
    return row, None


def consume(row: AccountToken) -> bool:
    """Mark the link used, if nobody did meanwhile; True for the one caller that won. The
    caller commits (with whatever the link does, so nothing is half-done)."""
    result = db.session.execute(
        update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def retire(purpose: Purpose, **where: object) -> None:
    """Mark every pending link of ``purpose`` matching ``where`` used (a newer one replaces
    them). The caller commits."""
    conditions = [getattr(AccountToken, k) == v for k, v in where.items()]
    db.session.execute(
        update(AccountToken)
        .where(AccountToken.purpose == purpose.value, AccountToken.used_at.is_(None), *conditions)
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
