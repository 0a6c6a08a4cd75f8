"""Accounts: users, the record of failed sign-ins used for rate limiting, and the single-use
links sent by e-mail (setup, welcome, invitation, password reset, sign-up)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from accounts.roles import ROLES, Perm, role_allows
from lectern.extensions import db
from lectern.timeutil import utcnow

EMAIL_MAX = 254
NAME_MAX = 120


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    """A person who signs in; ``role`` is one of :data:`accounts.roles.ROLES`."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN (" + ", ".join(f"'{r}'" for r in ROLES) + ")", name="ck_users_role"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # A deactivated account cannot sign in and its live connections are closed.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # IANA zone ("Asia/Seoul") times are shown in; None until the browser or the user sets it.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Interface language ("en", "ko"); None: the browser's preference.
    locale: Mapped[str | None] = mapped_column(String(8))

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return bool(self.active)

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password``, never the password itself."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches; accounts without a password never match."""
        return self.password_hash is not None and check_password_hash(self.password_hash, password)

    def can(self, perm: Perm) -> bool:
        """Whether this user's role grants the site-wide permission ``perm``."""
        return role_allows(self.role, perm)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"


class LoginFailure(db.Model):  # type: ignore[name-defined]
    """One failed sign-in, kept for a while to slow password guessing (accounts.throttle counts
    them per account and address, per address and per account)."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_at", "email", "at"),
        Index("ix_login_failures_remote_addr_at", "remote_addr", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    remote_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Purpose(StrEnum):
    """What an e-mailed link is for; each purpose has its own lifetime (see accounts.tokens)."""

    SETUP = "setup"  # the first administrator, printed at start
    WELCOME = "welcome"  # an account an admin created: set your password
    INVITE = "invite"  # a course invitation to an address without an account
    RESET = "reset"  # forgot password
    SIGNUP = "signup"  # self sign-up: confirm the address, then set a password


class AccountToken(db.Model):  # type: ignore[name-defined]
    """One single-use link sent by e-mail (or printed). Only an HMAC of the token is stored.

    ``email`` is where it was sent; ``user_id`` the account it acts on (welcome, reset);
    ``course_id`` the course an invitation enrols in; ``stamp`` a digest of the password hash
    when a reset link was made, so a password change by any means invalidates the link.
    """

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN (" + ", ".join(f"'{p}'" for p in Purpose) + ")",
            name="ck_account_tokens_purpose",
        ),
        Index("ix_account_tokens_email_purpose", "email", "purpose"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    name: Mapped[str | None] = mapped_column(String(NAME_MAX))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    course_id: Mapped[int | None] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stamp: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])

    @property
    def pending(self) -> bool:
        """Not used and not expired."""
        return self.used_at is None and self.expires_at > utcnow()
