"""A recording's files: its folder, its segments and their times, and which segment is on
screen when.

Segment files are written by the media worker with timestamps in recording time (milliseconds
since the recording started), so a segment that joined 10 s in has its first frame at about
10 s; ``manifest.json`` beside them notes each segment's first timestamp (``first_media_ms``).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import delete, select

from lectern.extensions import db
from recordings.models import RecordingExport
from rooms.models import Recording, RecordingSegment

logger = logging.getLogger(__name__)

# "<stream id>.webm" (VP8), "<stream id>.mp4" (H.264) or, recorded before H.264 went into MP4,
# "<stream id>.mkv"; nothing else
FILE_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,95}\.(webm|mp4|mkv)")
MIMETYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".mkv": "video/x-matroska"}
MIN_PIECE_S = 0.05  # shorter stretches of a track are not worth switching to


@dataclass(frozen=True)
class Piece:
    """A stretch of a track (``start`` .. ``end`` s into the recording) showing ``segment``."""

    start: float
    end: float
    segment: RecordingSegment


def folder(recording: Recording) -> Path:
    """Where the recording's files are: ``DATA_DIR/<directory>``."""
    return Path(current_app.config["DATA_DIR"]) / recording.directory


def segments(recording: Recording) -> list[RecordingSegment]:
    """The recording's segments in the order they started."""
    query = select(RecordingSegment).where(RecordingSegment.recording_id == recording.id)
    return list(db.session.scalars(query.order_by(RecordingSegment.start_s, RecordingSegment.id)))


def segment_file(recording: Recording, name: str) -> Path | None:
    """The file of the segment called ``name``; None for any name that is not one (no paths)."""
    if not FILE_SHAPE.fullmatch(name):
        return None
    found = db.session.scalar(
        select(RecordingSegment.file).where(
            RecordingSegment.recording_id == recording.id, RecordingSegment.file == name
        )
    )
    path = folder(recording) / name if found else None
    return path if path is not None and path.is_file() else None


def own_mp4(recording: Recording) -> Path | None:
    """The recording's MP4 when it is one H.264 segment: its download is the file itself (no
    export). Several segments still need the export job, which puts them on one clock."""
    found = segments(recording)
    if len(found) != 1 or not found[0].file.endswith(".mp4"):
        return None
    return segment_file(recording, found[0].file)


def manifest(recording: Recording) -> dict[str, Any]:
    """The worker's manifest, or an empty one when it is missing or unreadable."""
    try:
        found = json.loads((folder(recording) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def media_starts(recording: Recording) -> dict[str, float]:
    """Each segment's first timestamp in seconds (stream id -> s), from the manifest."""
    starts = {}
    for entry in manifest(recording).get("segments", []):
        first = entry.get("first_media_ms") if isinstance(entry, dict) else None
        if isinstance(first, int | float) and isinstance(entry.get("stream"), str):
            starts[entry["stream"]] = first / 1000
    return starts


def last_timestamp(path: Path) -> float | None:
    """The end of the last frame in a segment file, in seconds (a cut-off file has no
    duration)."""
    import av  # only here: the web process otherwise never loads FFmpeg's libraries

    end = None
    try:
        with av.open(str(path)) as container:
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None:
                    continue
                finish = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                end = finish if end is None else max(end, finish)
    except (OSError, av.FFmpegError):
        logger.warning("cannot read %s", path)
    return end


def segment_end(recording: Recording, segment: RecordingSegment) -> float:
    """When ``segment`` ended, in seconds into the recording.

    A segment cut off by a crash has no end time: it is read from its file once and kept.
    """
    if segment.end_s is not None:
        return segment.end_s
    if recording.status == "recording":
        return round(time.time() - recording.started_ts, 3)
    end = last_timestamp(folder(recording) / segment.file)
    segment.end_s = round(max(end or segment.start_s, segment.start_s), 3)
    db.session.commit()
    return segment.end_s


def duration(recording: Recording, ends: list[float], last_event: float = 0.0) -> float:
    """How long the recording runs in the player, in seconds.

    An interrupted recording ends when its last file or event does: its ``ended_ts`` is when
    the server noticed, which after a crash may be much later.
    """
    if recording.status == "recording" or recording.ended_ts is None:
        return round(max(0.0, time.time() - recording.started_ts), 3)
    full = recording.ended_ts - recording.started_ts
    if recording.status == "ready" or not (ends or last_event):
        return round(max(0.0, full), 3)
    return round(max(0.0, min(full, max([*ends, last_event]))), 3)


def pieces(spans: list[tuple[float, float, RecordingSegment]], length: float) -> list[Piece]:
    """One track from overlapping segments (start, end, segment): at any moment the segment that
    started last among those running is shown, so a student called on replaces the instructor's
    camera while they speak, and the instructor's comes back after."""
    cuts = sorted({0.0, length, *(min(max(x, 0.0), length) for s, e, _ in spans for x in (s, e))})
    track: list[Piece] = []
    for start, end in itertools.pairwise(cuts):
        running = [(s, seg) for s, e, seg in spans if s <= start and e >= end]
        if not running:
            continue
        shown = max(running, key=lambda r: (r[0], r[1].id))[1]
        joins = bool(track) and abs(track[-1].end - start) < 1e-6
        if (
            joins
            and end - start < MIN_PIECE_S
            and any(seg is track[-1].segment for _, seg in running)
        ):
            shown = track[-1].segment  # a blip: keep what is on screen
        if joins and track[-1].segment is shown:
            track[-1] = Piece(track[-1].start, end, shown)
        else:
            track.append(Piece(start, end, shown))
    return [p for p in track if p.end - p.start >= MIN_PIECE_S]


def tracks(
    recording: Recording, found: list[RecordingSegment], length: float
) -> dict[str, list[Piece]]:
    """The main track (cameras; screens when nobody had a camera) and the screen track."""
    spans = {
        source: [(s.start_s, segment_end(recording, s), s) for s in found if s.source == source]
        for source in ("camera", "screen")
    }
    if not spans["camera"]:
        return {"main": pieces(spans["screen"], length), "screen": []}
    return {"main": pieces(spans["camera"], length), "screen": pieces(spans["screen"], length)}


def discard(recording: Recording) -> None:
    """Delete the recording, its rows and its files (SQLite enforces no cascades here)."""
    for model in (RecordingExport, RecordingSegment):
        db.session.execute(delete(model).where(model.recording_id == recording.id))
    db.session.delete(recording)
    db.session.commit()
    remove_files(recording)


def remove_files(recording: Recording) -> None:
    """Delete the recording's folder, which must lie inside ``DATA_DIR/recordings``."""
    root = (Path(current_app.config["DATA_DIR"]) / "recordings").resolve()
    target = folder(recording).resolve()
    if recording.directory and target.parent == root:
        shutil.rmtree(target, ignore_errors=True)
    else:
        logger.warning("recording %s: not deleting unexpected folder %s", recording.id, target)
