"""MP4 export: an ffmpeg child process transcodes the recording's main track to H.264 + AAC.

A recording that is one H.264 segment needs none: that segment is an MP4 already, and its
download is the recorded file itself (:func:`download`).

A background task of the Socket.IO server starts ffmpeg and reads its ``-progress`` lines into
the export's row, so the web process only waits on a pipe (cooperatively, under eventlet). The
MP4 follows the player's clock: the main track's pieces in order, black where no camera ran,
and the sound of every camera mixed in at its place.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from lectern.extensions import db
from lectern.timeutil import utcnow
from recordings import media, player
from recordings.models import ERROR_MAX, RecordingExport
from rooms.models import Recording, RecordingSegment
from rooms.validate import N_

logger = logging.getLogger(__name__)

FILENAME = "export.mp4"
PARTIAL = "export.partial.mp4"
STALE_AFTER = timedelta(seconds=60)  # a running export not heard from for this long has died
PROGRESS_EVERY_S = 0.5
PROGRESS_LINE = re.compile(r"^(\w+)=(\S*)$")  # ffmpeg -progress: key=value
DEFAULT_SIZE = (640, 360)
FPS = 30
ENCODE = [
    *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"),
    *("-c:a", "aac", "-b:a", "128k", "-ac", "2", "-movflags", "+faststart"),
]

# export id -> its ffmpeg process, for the exports this web process runs (the limit on
# exports at once, RECORDING_EXPORTS_MAX, counts these: it is per web process)
running: dict[int, subprocess.Popen[bytes]] = {}


# Why an export failed, kept in English on its row and translated when shown (:func:`shown`).
STOPPED = N_("the export stopped; try again")
FFMPEG_FAILED = N_("ffmpeg could not make the MP4: %(detail)s")


class ExportError(Exception):
    """The export cannot be made; the message says why, for the person who asked (a msgid,
    marked ``N_``, English on the row, translated by :func:`shown`)."""


def shown(error: str | None) -> str | None:
    """An export's stored (English) error in the reader's language; what ffmpeg said after the
    known text stays as it is."""
    if not error:
        return error
    prefix = FFMPEG_FAILED.split("%(")[0]
    if error.startswith(prefix):
        return gettext(FFMPEG_FAILED, detail=error[len(prefix) :])
    return gettext(error)


class Cancelled(Exception):
    """The export's row is gone (its recording was deleted): stop quietly."""


def output(recording: Recording) -> Path:
    return media.folder(recording) / FILENAME


def current(recording: Recording) -> RecordingExport | None:
    return db.session.scalar(
        select(RecordingExport).where(RecordingExport.recording_id == recording.id)
    )


def stale(export: RecordingExport) -> bool:
    """A running export whose process is gone (the server restarted, or it hung)."""
    return export.status == "running" and utcnow() - export.updated_at > STALE_AFTER


def download(recording: Recording) -> Path | None:
    """The MP4 to download: the recording's own (one H.264 segment, once it has stopped), else
    the export's, once made; None while there is none."""
    if recording.status == "recording":
        return None
    own = media.own_mp4(recording)
    if own is not None:
        return own
    made = output(recording)
    return made if state(recording)["status"] == "ready" and made.is_file() else None


def state(recording: Recording) -> dict[str, Any]:
    """The export as the page shows it: none, running (with progress), ready or failed; ready
    at once for a recording that is its own MP4."""
    if recording.status != "recording" and media.own_mp4(recording) is not None:
        return {"status": "ready", "progress": 1.0, "error": None}
    export = current(recording)
    if export is None or (export.status == "ready" and not output(recording).is_file()):
        return {"status": "none", "progress": 0.0, "error": None}
    if stale(export):
        return {"status": "failed", "progress": 0.0, "error": shown(STOPPED)}
    return {"status": export.status, "progress": export.progress, "error": shown(export.error)}


def start(app: Flask, recording: Recording, user_id: int) -> RecordingExport | None:
    """Start an export unless one is running or done; returns the export's row, or None for a
    recording that is its own MP4 (nothing to make)."""
    if media.own_mp4(recording) is not None:
        return None
    export = current(recording)
    if export is not None and state(recording)["status"] in ("running", "ready"):
        return export
    limit = int(app.config.get("RECORDING_EXPORTS_MAX", 2))
    if len(running) >= limit:
        raise ExportError(N_("the server is busy with other exports; try again in a few minutes"))
    if export is None:
        export = RecordingExport(recording_id=recording.id)
        db.session.add(export)
    export.status, export.progress, export.error = "running", 0.0, None
    export.requested_by, export.updated_at = user_id, utcnow()
    try:
        db.session.commit()
    except IntegrityError:  # asked twice at once: the other request started it
        db.session.rollback()
        found = current(recording)
        assert found is not None
        return found
    app.extensions["socketio"].start_background_task(task, app, export.id)
    return export


def task(app: Flask, export_id: int) -> None:
    """The background task: its own app context and session; any failure ends on the row."""
    with app.app_context():
        try:
            run(export_id)
        except ExportError as error:
            finish(export_id, str(error))
        except Exception:
            logger.exception("MP4 export %s failed", export_id)
            db.session.rollback()
            finish(export_id, N_("the export failed because of a server error"))
        finally:
            db.session.remove()


def finish(export_id: int, error: str | None) -> None:
    """Mark the export ready, or failed with ``error`` (if its row still exists)."""
    values: dict[str, Any] = {"status": "failed" if error else "ready", "updated_at": utcnow()}
    values |= {"error": error[:ERROR_MAX]} if error else {"progress": 1.0, "error": None}
    db.session.execute(
        update(RecordingExport).where(RecordingExport.id == export_id).values(**values)
    )
    db.session.commit()


def run(export_id: int) -> None:
    """Plan the export, run ffmpeg with progress, and put the finished file in place."""
    export = db.session.get(RecordingExport, export_id)
    recording = db.session.get(Recording, export.recording_id) if export else None
    if recording is None:
        return
    plan = make_plan(recording)
    partial = media.folder(recording) / PARTIAL
    command = [ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", "-y", "-copyts"]
    command += [*plan.inputs, "-filter_complex", plan.graph, "-map", "[v]", "-map", "[a]"]
    command += [*ENCODE, "-t", f"{plan.duration:.3f}", "-f", "mp4"]
    command += ["-progress", "pipe:1", "-nostats", str(partial)]
    db.session.commit()  # end the read transaction: the pipe may be read for a long time
    try:
        error = follow(export_id, command, plan.duration)
    except Cancelled:
        partial.unlink(missing_ok=True)
        return
    if error is not None or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise ExportError(FFMPEG_FAILED % {"detail": error or "no output"})
    partial.replace(output(recording))
    finish(export_id, None)


def follow(export_id: int, command: list[str], duration: float) -> str | None:
    """Run ffmpeg, keeping the row's progress current; returns its error, None on success.

    :raises Cancelled: when the export's row disappears (its recording was deleted).
    """
    last_error = ""
    reported = 0.0
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        running[export_id] = proc
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").strip()
                progress = PROGRESS_LINE.match(line)
                if progress is None:  # an error message (-v error prints nothing else)
                    last_error = line[:ERROR_MAX] or last_error
                    continue
                key, value = progress.groups()
                if key != "out_time_us" or not value.isdigit():
                    continue
                if time.monotonic() - reported > PROGRESS_EVERY_S:
                    reported = time.monotonic()
                    if not advance(export_id, int(value) / 1e6 / max(duration, 0.001)):
                        proc.terminate()
                        raise Cancelled
        finally:
            running.pop(export_id, None)
    if proc.returncode != 0:
        return last_error or f"exit status {proc.returncode}"
    return None


def advance(export_id: int, fraction: float) -> bool:
    """Store the export's progress; False if its row is gone."""
    done = db.session.execute(
        update(RecordingExport)
        .where(RecordingExport.id == export_id, RecordingExport.status == "running")
        .values(progress=round(min(0.99, max(0.0, fraction)), 3), updated_at=utcnow())
    )
    db.session.commit()
    return bool(done.rowcount)  # type: ignore[attr-defined]


def cancel(recording: Recording) -> None:
    """Stop the recording's export if this process is running it (it is being deleted)."""
    export = current(recording)
    proc = running.pop(export.id, None) if export is not None else None
    if proc is not None and proc.poll() is None:
        proc.terminate()


def ffmpeg() -> str:
    found = shutil.which(current_app.config.get("FFMPEG", "ffmpeg"))
    if found is None:
        raise ExportError(N_("ffmpeg is not installed on the server"))
    return found


# -- the plan: inputs and filter graph ---------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What a segment file holds."""

    video: tuple[int, int] | None  # width, height
    audio: bool


@dataclass
class Plan:
    """ffmpeg's inputs (``-an``/``-vn`` + ``-i`` each) and filter graph, and the length."""

    duration: float
    inputs: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)

    @property
    def graph(self) -> str:
        return ";".join(self.filters)

    def add_input(self, path: Path, keep: str) -> int:
        """Open ``path`` once more, with only its ``keep`` ("video"/"audio") stream."""
        self.inputs += ["-an" if keep == "video" else "-vn", "-i", str(path)]
        return len(self.inputs) // 3 - 1


def probe(path: Path) -> Probe:
    """Read a file's streams with ffprobe."""
    prober = shutil.which(current_app.config.get("FFPROBE", "ffprobe"))
    if prober is None:
        raise ExportError(N_("ffprobe is not installed on the server"))
    entries = "stream=codec_type,width,height"
    done = subprocess.run(
        [prober, "-v", "error", "-show_entries", entries, "-of", "json", str(path)],
        capture_output=True,
        timeout=60,
    )
    streams = json.loads(done.stdout or b"{}").get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    size = (int(video["width"]), int(video["height"])) if video and video.get("width") else None
    return Probe(size, any(s.get("codec_type") == "audio" for s in streams))


def even(size: tuple[int, int]) -> tuple[int, int]:
    return (max(2, size[0] // 2 * 2), max(2, size[1] // 2 * 2))


def make_plan(recording: Recording) -> Plan:
    """The inputs and filter graph that turn the main track into one video and one sound."""
    found = media.segments(recording)
    total = player.length(recording)
    main = media.tracks(recording, found, total)["main"]
    if total <= 0 or not main:
        raise ExportError(N_("this recording has no video or sound to export"))
    sources = {p.segment.source for p in main}
    used = [s for s in found if s.source in sources]
    probes = {s.id: probe(media.folder(recording) / s.file) for s in used}
    sizes = [probes[p.segment.id].video for p in main]
    size = even(next((s for s in sizes if s), DEFAULT_SIZE))
    plan = Plan(duration=total)
    video_parts(plan, recording, main, probes, size)
    sound(plan, recording, [s for s in used if probes[s.id].audio])
    return plan


def video_parts(
    plan: Plan,
    recording: Recording,
    main: list[media.Piece],
    probes: dict[int, Probe],
    size: tuple[int, int],
) -> None:
    """The pieces of the main track in order, black between them, joined into ``[v]``."""
    labels: list[str] = []
    at = 0.0
    for piece in [*main, None]:
        start = piece.start if piece is not None else plan.duration
        if start - at > 0.001:
            labels.append(black(plan, start - at, size, len(labels)))
        if piece is None:
            break
        if probes[piece.segment.id].video is None:
            labels.append(black(plan, piece.end - piece.start, size, len(labels)))
        else:
            labels.append(cut(plan, recording, piece, size, len(labels)))
        at = piece.end
    plan.filters.append("".join(labels) + f"concat=n={len(labels)}:v=1:a=0[v]")


def black(plan: Plan, seconds: float, size: tuple[int, int], n: int) -> str:
    width, height = size
    plan.filters.append(
        f"color=c=black:s={width}x{height}:r={FPS}:d={seconds:.3f},setsar=1,format=yuv420p[v{n}]"
    )
    return f"[v{n}]"


def cut(plan: Plan, recording: Recording, piece: media.Piece, size: tuple[int, int], n: int) -> str:
    """One piece: its stretch of the file (timestamps are recording time), padded to length."""
    k = plan.add_input(media.folder(recording) / piece.segment.file, "video")
    width, height = size
    start, length = piece.start, piece.end - piece.start
    plan.filters.append(
        f"[{k}:v]trim=start={start:.3f}:end={piece.end:.3f},setpts=PTS-{start:.3f}/TB,"
        f"fps={FPS}:start_time=0,"
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,"
        f"tpad=stop_mode=clone:stop_duration={length:.3f},trim=duration={length:.3f}[v{n}]"
    )
    return f"[v{n}]"


def sound(plan: Plan, recording: Recording, voiced: list[RecordingSegment]) -> None:
    """Every segment's sound at its place on the clock, mixed into ``[a]`` (silence if none)."""
    total = f"{plan.duration:.3f}"
    if not voiced:
        plan.filters.append(f"anullsrc=r=48000:cl=stereo,atrim=duration={total}[a]")
        return
    labels = []
    for n, segment in enumerate(voiced):
        k = plan.add_input(media.folder(recording) / segment.file, "audio")
        plan.filters.append(
            f"[{k}:a]aresample=48000:async=1:first_pts=0,"
            f"aformat=sample_rates=48000:channel_layouts=stereo,"
            f"apad=whole_dur={total},atrim=end={total}[a{n}]"
        )
        labels.append(f"[a{n}]")
    if len(labels) == 1:
        plan.filters.append(f"{labels[0]}anull[a]")
    else:
        plan.filters.append(
            "".join(labels)
            + f"amix=inputs={len(labels)}:duration=longest:dropout_transition=0:normalize=0[a]"
        )
