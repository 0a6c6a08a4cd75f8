"""Rate limits of the account pages (per web worker, like the join links' limits).

Keys are a client address, an e-mail address or a user id, hashed to the limiter's integer key
with a prefix so the three kinds never share a bucket.
"""

from __future__ import annotations

from flask import abort, request

from rooms.ratelimit import Limiter, Rate

limiter = Limiter(
    {
        # Forgot password and sign-up: per client address and per e-mail address asked about.
        "mail_addr": Rate(burst=10, per_second=0.05),
        "mail_email": Rate(burst=3, per_second=1 / 600),
        # Opening or submitting a link's page, per client address (tokens cannot be guessed,
        # this bounds the hashing and the database reads).
        "token": Rate(burst=30, per_second=0.5),
        # Forms of a signed-in user (admin actions, enrolment, profile), per user.
        "user": Rate(burst=30, per_second=1.0),
    }
)


def _key(kind: str, value: object) -> int:
    return hash(f"{kind}:{value}")


def client() -> str:
    return request.remote_addr or "?"


def allow_mail(email: str) -> bool:
    """One more e-mail-sending request (forgot password, sign-up) from this client about
    ``email``; it counts whether or not an account has the address."""
    by_addr = limiter.allow(_key("addr", client()), "mail_addr")
    by_email = limiter.allow(_key("email", email), "mail_email")
    return by_addr and by_email


def check_token_rate() -> None:
    """429 when this client opens too many links' pages."""
    if not limiter.allow(_key("addr", client()), "token"):
        abort(429)


def check_user_rate(user_id: int) -> None:
    """429 when this user sends forms too fast."""
    if not limiter.allow(_key("user", user_id), "user"):
        abort(429)


def reset() -> None:
    limiter.reset()
