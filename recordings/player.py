"""The player's document (``timeline.json``): segments, the tracks they make, the replayed events,
chapters and question markers, all on one clock: seconds from the recording's start."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from accounts.models import User
from lectern.extensions import db
from recordings import media, timeline
from recordings.access import Viewer, library
from rooms.models import Recording, RecordingSegment, Room, RoomEvent
from rooms.policy import Perm
from rooms.registry import parse_key


@dataclass(frozen=True)
class Links:
    """URLs of a recording's resources, for members or for a share link's holders."""

    file: Callable[[str], str]  # segment file name -> URL
    slide: Callable[[int, int], str]  # (deck id, page) -> URL


def window_end(recording: Recording) -> float:
    """Unix time the recording's event window ends (now, while it is still recording)."""
    return recording.ended_ts if recording.ended_ts is not None else time.time()


def last_event(recording: Recording) -> float:
    """Seconds into the recording of the room's last logged event in the window."""
    newest = db.session.scalar(
        select(func.max(RoomEvent.ts)).where(
            RoomEvent.room_id == recording.room_id,
            RoomEvent.ts >= recording.started_ts,
            RoomEvent.ts <= window_end(recording),
        )
    )
    return max(0.0, newest - recording.started_ts) if newest is not None else 0.0


def length(recording: Recording) -> float:
    """The recording's duration as the player shows it (see :func:`media.duration`)."""
    if recording.status == "ready" and recording.duration_s is not None:
        return recording.duration_s
    ends = [media.segment_end(recording, s) for s in media.segments(recording)]
    return media.duration(recording, ends, last_event(recording))


def started_at(recording: Recording) -> datetime:
    """When the recording started, as naive UTC like every other stored time."""
    return datetime.fromtimestamp(recording.started_ts, UTC).replace(tzinfo=None)


def shows_hands(viewer: Viewer) -> bool:
    """The hand queue is replayed where the room shows it to all, or to its hand managers."""
    if viewer.actor is not None and viewer.actor.may(Perm.MANAGE_HANDS):
        return True
    room = db.session.get(Room, viewer.recording.room_id)
    parsed = parse_key(room.key) if room is not None else None
    return parsed is not None and parsed[0].policy.hand_queue_public


def segment_view(
    segment: RecordingSegment, end: float, starts: dict[str, float], links: Links
) -> dict[str, Any]:
    return {
        "id": segment.id,
        "source": segment.source,
        "url": links.file(segment.file),
        "start_s": segment.start_s,
        "end_s": end,
        # The file's first timestamp (recording time): a browser that starts every file at 0
        # needs it to line the file up with the clock.
        "media_start": starts.get(segment.stream_id, segment.start_s),
    }


def pieces_view(track: list[media.Piece]) -> list[dict[str, Any]]:
    return [{"start": p.start, "end": p.end, "segment": p.segment.id} for p in track]


def document(viewer: Viewer, links: Links) -> dict[str, Any]:
    """Everything the player needs, in one JSON document."""
    recording = viewer.recording
    found = media.segments(recording)
    ends = {s.id: media.segment_end(recording, s) for s in found}
    initial, events = timeline.replay(
        recording.room_id,
        recording.started_ts,
        window_end(recording),
        shows_hands(viewer),
        links.slide,
    )
    total = media.duration(recording, list(ends.values()), events[-1]["t"] if events else 0.0)
    events = [e for e in events if e["t"] <= total]
    tracks = media.tracks(recording, found, total)
    starts = media.media_starts(recording)
    return {
        "recording": {
            "id": recording.id,
            "title": recording.title,
            "status": recording.status,
            "duration": total,
            "started_ts": recording.started_ts,
        },
        "segments": [segment_view(s, ends[s.id], starts, links) for s in found],
        "tracks": {name: pieces_view(track) for name, track in tracks.items()},
        "initial": initial,
        "events": events,
        "chapters": timeline.chapters(initial, events),
        "markers": timeline.markers(events),
    }


def deck_shown(recording: Recording, deck_id: int) -> bool:
    """Whether slide deck ``deck_id`` was on screen at some point of the recording."""
    shown = timeline.logged(
        recording.room_id, ("slides.page",), recording.started_ts, window_end(recording)
    )
    before = db.session.scalar(
        select(RoomEvent)
        .where(
            RoomEvent.room_id == recording.room_id,
            RoomEvent.type == "slides.page",
            RoomEvent.ts < recording.started_ts,
        )
        .order_by(RoomEvent.ts.desc(), RoomEvent.id.desc())
        .limit(1)
    )
    candidates = [*shown, *([before] if before is not None else [])]
    return any((e.payload or {}).get("deck_id") == deck_id for e in candidates)


@dataclass(frozen=True)
class Entry:
    """One recording as the library and the dashboard list it."""

    recording: Recording
    context: str  # the lesson or broadcast it recorded
    owns: bool
    duration: float
    started_at: datetime


def entries(user: User, limit: int | None = None) -> list[Entry]:
    """The recordings ``user`` may watch, newest first."""
    return [
        Entry(
            v.recording,
            v.actor.title if v.actor else "",
            v.owns,
            length(v.recording),
            started_at(v.recording),
        )
        for v in library(user, limit)
    ]
