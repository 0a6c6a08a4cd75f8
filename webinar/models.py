"""Broadcasts (all-hands, shareholder meetings, public webinars) and their registrations."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

from accounts.models import EMAIL_MAX, NAME_MAX, User
from lectern.extensions import db
from lectern.timeutil import utcnow

TITLE_MAX = 200
DOMAIN_MAX = 253
HOLDER_ID_MAX = 64


class Kind(StrEnum):
    """What sort of broadcast this is; it sets the defaults for joining and Q&A."""

    ALL_HANDS = "all_hands"
    SHAREHOLDER = "shareholder"
    WEBINAR = "webinar"


class Mode(StrEnum):
    """How people get in: anyone signed in, after host approval, or only from the invite list."""

    OPEN = "open"
    APPROVAL = "approval"
    INVITE = "invite"


class Status(StrEnum):
    """Where a registration stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


# Lazy: each is shown in the language of the request (or e-mail) that reads it.
KIND_LABELS = {
    Kind.ALL_HANDS: _l("All-hands"),
    Kind.SHAREHOLDER: _l("Shareholder meeting"),
    Kind.WEBINAR: _l("Public webinar"),
}
MODE_LABELS = {
    Mode.OPEN: _l("Open"),
    Mode.APPROVAL: _l("Host approval"),
    Mode.INVITE: _l("Invite list only"),
}


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN (" + ", ".join(f"'{m.value}'" for m in enum) + ")"


class Broadcast(db.Model):  # type: ignore[name-defined]
    """A one-to-many session run by a host: an all-hands, shareholder meeting or webinar."""

    __tablename__ = "broadcasts"
    __table_args__ = (
        CheckConstraint(_in("kind", Kind), name="ck_broadcasts_kind"),
        CheckConstraint(_in("registration_mode", Mode), name="ck_broadcasts_mode"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20))
    registration_mode: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    # All-hands: only accounts whose e-mail is in this domain may see and join (None: anyone).
    allowed_domain: Mapped[str | None] = mapped_column(String(DOMAIN_MAX))
    # When the last reminder e-mail went to the registrants.
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    host: Mapped[User] = relationship()
    registrations: Mapped[list[Registration]] = relationship(
        back_populates="broadcast", cascade="all, delete-orphan", order_by="Registration.id"
    )

    @property
    def ends_at(self) -> datetime:
        """When the broadcast is scheduled to end."""
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    def is_live(self, now: datetime | None = None) -> bool:
        """Whether ``now`` falls inside the scheduled time."""
        now = now or utcnow()
        return self.starts_at <= now < self.ends_at

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[Kind(self.kind)])

    @property
    def mode_label(self) -> str:
        return str(MODE_LABELS[Mode(self.registration_mode)])


class Registration(db.Model):  # type: ignore[name-defined]
    """A person's place in a broadcast: registered, invited, approved or declined."""

    __tablename__ = "registrations"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "email", name="uq_registrations_broadcast_email"),
        CheckConstraint(_in("status", Status), name="ck_registrations_status"),
        CheckConstraint("role IN ('attendee', 'panelist')", name="ck_registrations_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    status: Mapped[str] = mapped_column(String(20), default=Status.PENDING.value)
    role: Mapped[str] = mapped_column(String(20), default="attendee")
    # Shareholder meetings: the holder's id in the share register and the shares they vote.
    holder_id: Mapped[str | None] = mapped_column(String(HOLDER_ID_MAX))
    shares: Mapped[int | None] = mapped_column(BigInteger)
    # On the invite list (by the host), as opposed to signed up and waiting for approval.
    invited: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Personal join link: its token is an HMAC of (id, link_version), so issuing a new link
    # (version + 1) makes every older one invalid; 0 means none was issued yet.
    link_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    link_revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Shareholders verify on first use with their holder id and this code (stored hashed).
    code_hash: Mapped[str | None] = mapped_column(String(256))
    failed_checks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The device that first used the link (hash of a cookie secret): a second device is refused.
    device_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    broadcast: Mapped[Broadcast] = relationship(back_populates="registrations")
    user: Mapped[User | None] = relationship()


class WhipKey(db.Model):  # type: ignore[name-defined]
    """A stream key: an encoder (OBS) holding it publishes into the broadcast's room over WHIP
    as the host who made it. Only an HMAC of the key is kept (shown once, when made)."""

    __tablename__ = "whip_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
