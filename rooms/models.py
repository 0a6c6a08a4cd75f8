"""Live-room state kept in the database (the source of truth), and the room's event log.

Everything a participant sees in a room is rebuilt from these tables, so a reconnecting client
or a restarted web worker loses nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from lectern.extensions import db
from lectern.timeutil import utcnow

QUESTION_MAX = 1000
CHAT_MAX = 500
POLL_QUESTION_MAX = 300
POLL_OPTION_MAX = 120
FILENAME_MAX = 200


class Room(db.Model):  # type: ignore[name-defined]
    """The live room of one lesson or broadcast, created on first join; ``kind:ref_id`` names it."""

    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("kind", "ref_id", name="uq_rooms_kind_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref_id: Mapped[int] = mapped_column(Integer)
    chat_mode: Mapped[str] = mapped_column(String(10), default="everyone")  # everyone|hosts|off
    moderated: Mapped[bool] = mapped_column(Boolean, default=False)
    anonymous_questions: Mapped[bool] = mapped_column(Boolean, default=True)
    deck_id: Mapped[int | None] = mapped_column(Integer)  # the deck being shown, if any
    page: Mapped[int] = mapped_column(Integer, default=1)
    # Start recording by itself as soon as someone publishes (set by a presenter).
    auto_record: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set when a presenter ends the session for everyone; a presenter joining again reopens it.
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.ref_id}"


class Connection(db.Model):  # type: ignore[name-defined]
    """One open Socket.IO connection to a room: presence is the set of these."""

    __tablename__ = "room_connections"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    connected_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The web worker holding the connection (``rooms.workers.WORKER_ID``): a worker that stops
    # beating leaves rows that the others remove.
    worker: Mapped[str | None] = mapped_column(String(32), index=True)


class WebWorker(db.Model):  # type: ignore[name-defined]
    """A running web worker's heartbeat: its connections are live while ``last_seen`` is recent."""

    __tablename__ = "web_workers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seen: Mapped[datetime] = mapped_column(DateTime)


class Hand(db.Model):  # type: ignore[name-defined]
    """A raised hand; ``id`` is the server-assigned queue order, the same on every screen."""

    __tablename__ = "hands"
    __table_args__ = (Index("ix_hands_room_state", "room_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(10), default="raised")  # raised|called|lowered|done
    raised_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Grant(db.Model):  # type: ignore[name-defined]
    """Permission to publish media given to someone whose role lacks it (called on, promoted)."""

    __tablename__ = "publish_grants"
    __table_args__ = (UniqueConstraint("room_id", "user_id", name="uq_grants_room_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(20))
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Question(db.Model):  # type: ignore[name-defined]
    """A question for the presenter; ``votes`` caches the number of QuestionVote rows."""

    __tablename__ = "questions"
    __table_args__ = (Index("ix_questions_room_status", "room_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))  # pending|open|answered|dismissed|merged
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_live: Mapped[bool] = mapped_column(Boolean, default=False)
    votes: Mapped[int] = mapped_column(Integer, default=0)
    # A duplicate merged by a moderator points at the question it was merged into.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class QuestionVote(db.Model):  # type: ignore[name-defined]
    """One upvote: a user votes for a question at most once."""

    __tablename__ = "question_votes"

    question_id: Mapped[int] = mapped_column(
        ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class ChatMessage(db.Model):  # type: ignore[name-defined]
    """A chat message in a room."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Poll(db.Model):  # type: ignore[name-defined]
    """A single- or multiple-choice poll; results stay after it closes."""

    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(String(POLL_QUESTION_MAX))
    options: Mapped[list[str]] = mapped_column(JSON)
    multiple: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(10), default="open")  # open|closed
    revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Weighted: each ballot counts the voter's weight (a shareholder's shares), not 1.
    weighted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Anonymous: ballots are counted but the audit trail does not say who cast them.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)


class PollVote(db.Model):  # type: ignore[name-defined]
    """One participant's ballot in a poll: the indexes of the options they chose."""

    __tablename__ = "poll_votes"

    poll_id: Mapped[int] = mapped_column(
        ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    choices: Mapped[list[int]] = mapped_column(JSON)
    weight: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PollAudit(db.Model):  # type: ignore[name-defined]
    """The poll's audit trail, append-only: every ballot cast and every attempt refused, with why.

    For an anonymous poll a cast ballot's ``user_id`` and ``holder_id`` are left empty.
    """

    __tablename__ = "poll_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    holder_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(10))  # cast|refused
    reason: Mapped[str | None] = mapped_column(String(200))
    choices: Mapped[list[int] | None] = mapped_column(JSON)
    weight: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SlideDeck(db.Model):  # type: ignore[name-defined]
    """An uploaded PDF, rendered page by page to images in the background."""

    __tablename__ = "slide_decks"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(FILENAME_MAX))
    pages: Mapped[int] = mapped_column(Integer, default=0)
    rendered: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10), default="rendering")  # rendering|ready|failed
    error: Mapped[str | None] = mapped_column(String(300))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RoomEvent(db.Model):  # type: ignore[name-defined]
    """The room's timeline: every state change, appended in the same commit as the change."""

    __tablename__ = "room_events"
    __table_args__ = (Index("ix_room_events_room_ts", "room_id", "ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    ts: Mapped[float] = mapped_column(Float, default=time.time)  # Unix time, sub-second
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MediaStream(db.Model):  # type: ignore[name-defined]
    """A live published stream (camera + microphone, or a screen) on a media worker."""

    __tablename__ = "media_streams"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the worker's stream id
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sid: Mapped[str] = mapped_column(String(64))  # the publisher's Socket.IO connection
    source: Mapped[str] = mapped_column(String(10))  # camera|screen
    worker: Mapped[str] = mapped_column(String(64))  # host:port of the media worker
    # The worker's name for the video codec ("VP8", "H264"; None: no video or not told).
    video_codec: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MediaRelay(db.Model):  # type: ignore[name-defined]
    """A cascade leg: a media worker other than the stream's own receives the stream from it to
    serve its viewers (one leg per stream per worker). Ending the stream closes its relays."""

    __tablename__ = "media_relays"

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("media_streams.id", ondelete="CASCADE"), primary_key=True
    )
    worker: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)  # host:port
    origin_peer: Mapped[str | None] = mapped_column(String(64))  # the leg, a viewer at the origin
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Recording(db.Model):  # type: ignore[name-defined]
    """A recording of a room: segment files in ``DATA_DIR/<directory>`` and a time window of the
    room's event log (``started_ts`` .. ``ended_ts``) that the player replays beside them."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12))  # recording|ready|interrupted|failed
    directory: Mapped[str] = mapped_column(String(200))  # relative to DATA_DIR
    worker: Mapped[str] = mapped_column(String(64))
    started_ts: Mapped[float] = mapped_column(Float)  # Unix time the worker started recording
    ended_ts: Mapped[float | None] = mapped_column(Float)
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    share_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_ts is None else round(self.ended_ts - self.started_ts, 3)


class RecordingSegment(db.Model):  # type: ignore[name-defined]
    """One published stream's part of a recording: a WebM (VP8) or Matroska (H.264) file and
    when it ran."""

    __tablename__ = "recording_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    stream_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(10))  # camera|screen
    file: Mapped[str] = mapped_column(String(100))
    start_s: Mapped[float] = mapped_column(Float)  # offset from the recording's start
    end_s: Mapped[float | None] = mapped_column(Float)
