"""An MP4 export of a recording, made by a background job; its row is the job's state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from lectern.extensions import db
from lectern.timeutil import utcnow

ERROR_MAX = 300


class RecordingExport(db.Model):  # type: ignore[name-defined]
    """The MP4 of one recording: ``DATA_DIR/<recording.directory>/export.mp4`` once ready."""

    __tablename__ = "recording_exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(10), default="running")  # running|ready|failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    error: Mapped[str | None] = mapped_column(String(ERROR_MAX))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
