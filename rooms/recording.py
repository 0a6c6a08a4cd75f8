"""Recording a room: the presenter starts and stops it; the room's media worker writes the files.

The recording row and its segments are written before anything is announced; if the worker dies
the recording is kept as ``interrupted`` with the files written until then.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from lectern.extensions import db
from media import tokens
from media.channel import MediaChannel, MediaUnavailable
from rooms import log
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import MediaStream, Recording, RecordingSegment, Room
from rooms.placement import origin_for
from rooms.policy import Perm
from rooms.validate import Bool, Text

logger = logging.getLogger(__name__)


def running(room_id: int) -> Recording | None:
    return db.session.scalar(
        select(Recording).where(Recording.room_id == room_id, Recording.status == "recording")
    )


def view(recording: Recording | None) -> dict[str, Any] | None:
    if recording is None:
        return None
    return {"id": recording.id, "status": recording.status, "started_ts": recording.started_ts}


def folder(recording: Recording) -> Path:
    return Path(current_app.config["DATA_DIR"]) / recording.directory


def channel() -> MediaChannel:
    found: MediaChannel | None = current_app.extensions.get("media")
    if found is None or not found.available:
        raise Refused("recording needs the media server, which is not available")
    return found


def grant(room: Room, **extra: Any) -> str:
    return tokens.sign(current_app.config["MEDIA_SECRET"], op="record", room=room.key, **extra)


def segment_name(stream: MediaStream) -> str:
    """The file the worker records ``stream`` into: ``<stream>.mp4`` for H.264 (an MP4 that
    phones play as it is), ``<stream>.webm`` otherwise."""
    h264 = (stream.video_codec or "").upper() == "H264"
    return f"{stream.id}.mp4" if h264 else f"{stream.id}.webm"


def add_segment(recording: Recording, stream: MediaStream) -> None:
    """Note a stream that joined the recording (the worker records it by itself)."""
    db.session.add(
        RecordingSegment(
            recording_id=recording.id,
            stream_id=stream.id,
            user_id=stream.user_id,
            source=stream.source,
            file=segment_name(stream),
            start_s=round(max(0.0, time.time() - recording.started_ts), 3),
        )
    )


def start(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.RECORD)
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    if running(room.id) is not None:
        raise Refused("this room is already being recorded")
    return {"recording": begin(room, actor, data["title"] or actor.title or "Recording", out)}


def begin(room: Room, actor: Actor, title: str, out: Outbox) -> dict[str, Any] | None:
    """Start recording ``room`` on its media worker; the row is committed before the news."""
    media = channel()
    recording = Recording(
        room_id=room.id,
        title=title,
        status="recording",
        directory="",
        worker=origin_for(media, room.id, room.key),
        started_ts=time.time(),
        started_by=actor.user_id,
    )
    db.session.add(recording)
    db.session.flush()
    recording.directory = f"recordings/{recording.id}"
    try:
        reply = media.call(
            recording.worker, "record_start", token=grant(room, dir=str(folder(recording)))
        )
    except MediaUnavailable as exc:
        db.session.rollback()
        raise Refused("the media server is not reachable; try again in a moment") from exc
    if not reply.get("ok"):
        db.session.rollback()
        raise Refused("media server refused: %(why)s", why=reply.get("error"))
    recording.started_ts = float(reply["started_at"])
    for stream in db.session.scalars(select(MediaStream).where(MediaStream.room_id == room.id)):
        add_segment(recording, stream)
    log.record(room.id, actor.user_id, "recording.start", id=recording.id)
    db.session.commit()
    out.to_all(room.id, "recording.state", {"recording": view(recording)})
    return view(recording)


def set_auto(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Record automatically from the first publish on (or not)."""
    actor.require(Perm.RECORD)
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    room.auto_record = data["on"]
    log.record(room.id, actor.user_id, "recording.auto", on=room.auto_record)
    db.session.commit()
    out.to_all(room.id, "recording.auto", {"on": room.auto_record})
    return {"on": room.auto_record}


def auto_start(actor: Actor, out: Outbox) -> None:
    """Someone started publishing: start the room's recording if it records automatically."""
    room = db.session.get(Room, actor.room_id)
    if room is None or not room.auto_record or running(room.id) is not None:
        return
    try:
        begin(room, actor, actor.title or "Recording", out)
    except Refused as refusal:
        logger.warning("automatic recording of %s did not start: %s", room.key, refusal)


def apply_manifest(recording: Recording, manifest: dict[str, Any]) -> None:
    """Take the worker's segment times; drop segments that never wrote a frame."""
    timed = {s["stream"]: s for s in manifest.get("segments", [])}
    for segment in db.session.scalars(
        select(RecordingSegment).where(RecordingSegment.recording_id == recording.id)
    ):
        found = timed.get(segment.stream_id)
        if found is None:
            db.session.delete(segment)
            continue
        segment.start_s = found["start_s"]
        segment.end_s = found["end_s"] if found["end_s"] is not None else segment.end_s
        segment.file = written_file(segment, found.get("file"))


def written_file(segment: RecordingSegment, name: Any) -> str:
    """The file the worker wrote for ``segment``: ``<stream>.mp4`` for H.264 (``.mkv`` from a
    worker of before H.264 went into MP4), else the ``<stream>.webm`` noted when it joined."""
    if name in (f"{segment.stream_id}.mp4", f"{segment.stream_id}.mkv"):
        return str(name)
    return segment.file


def stop(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.RECORD)
    recording = running(actor.room_id)
    if recording is None:
        raise Refused("this room is not being recorded")
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    finish(room, recording, actor.user_id, out)
    return {"recording": view(recording)}


def finish(room: Room, recording: Recording, actor_id: int | None, out: Outbox) -> None:
    """Stop ``recording`` on its worker and keep what it wrote (interrupted if unreachable)."""
    try:
        reply = channel().call(recording.worker, "record_stop", token=grant(room))
    except MediaUnavailable:
        reply = {"ok": False, "error": "unreachable"}
    if reply.get("ok"):
        apply_manifest(recording, reply["manifest"])
        recording.status = "ready"
    else:
        interrupt(recording)
    recording.ended_ts = time.time()
    log.record(room.id, actor_id, "recording.stop", id=recording.id, status=recording.status)
    db.session.commit()
    out.to_all(room.id, "recording.state", {"recording": None})


def interrupt(recording: Recording) -> None:
    """The worker is gone: keep what its manifest on disk says was written."""
    recording.status = "interrupted"
    recording.ended_ts = recording.ended_ts or time.time()
    manifest_path = folder(recording) / "manifest.json"
    try:
        apply_manifest(recording, json.loads(manifest_path.read_text()))
    except (OSError, ValueError):
        logger.warning("recording %s has no readable manifest", recording.id)


def interrupt_worker(worker: str, out: Outbox) -> None:
    """A media worker restarted: its running recordings end as interrupted."""
    for recording in db.session.scalars(
        select(Recording).where(Recording.worker == worker, Recording.status == "recording")
    ):
        interrupt(recording)
        log.record(recording.room_id, None, "recording.interrupted", id=recording.id)
        out.to_all(recording.room_id, "recording.state", {"recording": None})
    db.session.commit()


def interrupt_all() -> None:
    """On a fresh start nothing is recording: mark leftovers interrupted."""
    for recording in db.session.scalars(select(Recording).where(Recording.status == "recording")):
        interrupt(recording)
    db.session.commit()


def stream_started(room_id: int, stream: MediaStream) -> None:
    recording = running(room_id)
    if recording is not None:
        add_segment(recording, stream)


def stream_stopped(room_id: int, stream_id: str) -> None:
    recording = running(room_id)
    if recording is None:
        return
    segment = db.session.scalar(
        select(RecordingSegment).where(
            RecordingSegment.recording_id == recording.id, RecordingSegment.stream_id == stream_id
        )
    )
    if segment is not None and segment.end_s is None:
        segment.end_s = round(time.time() - recording.started_ts, 3)


EVENTS = [
    Event("recording.start", {"title": Text(max=200, required=False)}, start, "media"),
    Event("recording.stop", {}, stop, "media"),
    Event("recording.auto", {"on": Bool(default=True)}, set_auto),
]
