"""Accounts: users and the record of failed sign-ins used for rate limiting."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, String, true
from sqlalchemy.orm import Mapped, mapped_column
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
    """One failed sign-in, kept for a short window to slow password guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_email_at", "email", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    remote_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
