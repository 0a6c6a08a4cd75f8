"""Fixtures for the recordings tests: recordings of a lesson's and a broadcast's rooms, with real
small segment files and event logs, and test clients signed in as each kind of person.

Segment files are WebM (VP8 + Opus) encoded here with PyAV, or MP4 (H.264 + Opus) written by the
media worker's own SegmentWriter, with timestamps in recording time as the media worker writes
them: a segment that starts 3 s in has its first frame at about 3 s.
Slide pages are PNGs rendered from a PDF with pypdfium2 and encoded with PyAV.

The ``app`` fixture keeps one app context pushed for the whole test, and Flask-Login caches the
current user in ``g``; so each person signs in inside an app context of their own (as in
tests/rooms/conftest.py).
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from accounts.models import User
from lectern.extensions import db
from media.packets import EncodedFrame
from media.recorder import SegmentWriter, container_for, finalize
from rooms.models import Recording, RecordingSegment, Room, RoomEvent, SlideDeck

T0 = 1_790_000_000.0  # when the test recordings start (Unix time)
MS = Fraction(1, 1000)
SIZE = (160, 120)
FPS = 15
FIRST_FRAME_S = 0.05  # the first frame reaches the recorder a little after the segment starts
SLIDE_COLOURS = [(36, 84, 214), (30, 125, 60), (198, 40, 40), (154, 103, 0)]


# -- media files ----------------------------------------------------------------------------------


def frame_image(n: int, size: tuple[int, int], shade: int) -> np.ndarray:
    """Frame ``n``: a coloured background (by ``shade``) with a white square moving across."""
    width, height = size
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :] = ((60 + 70 * shade) % 256, 90, (200 - 50 * shade) % 256)
    side = max(8, height // 4)
    x = (n * 4) % max(1, width - side)
    image[height // 2 - side // 2 : height // 2 + side // 2, x : x + side] = 255
    return image


ENCODER_OPTIONS = {
    "libvpx": {"deadline": "realtime", "cpu-used": "8"},
    "libx264": {"preset": "ultrafast", "tune": "zerolatency"},  # Annex B, SPS/PPS at keyframes
}


@functools.cache
def video_packets(
    frames: int, size: tuple[int, int], fps: int, shade: int, encoder_name: str = "libvpx"
) -> list[bytes]:
    """``frames`` VP8 (or H.264) frames (the first a key frame), encoded once per set of
    arguments."""
    encoder = av.CodecContext.create(encoder_name, "w")
    encoder.width, encoder.height = size
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.bit_rate = 200_000
    encoder.options = {**ENCODER_OPTIONS[encoder_name], "g": str(fps * 2)}
    packets = []
    for n in range(frames):
        frame = av.VideoFrame.from_ndarray(frame_image(n, size, shade), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = n
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets


@functools.cache
def audio_packets(count: int) -> list[bytes]:
    """``count`` 20 ms Opus packets of a quiet 440 Hz tone."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, 48000)
    packets = []
    for n in range(count):
        t = (np.arange(960) + n * 960) / 48000
        tone = (3000 * np.sin(2 * math.pi * 440 * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = 48000
        frame.pts = n * 960
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets


@dataclass(frozen=True)
class Media:
    """What a segment file holds: frames from ``first`` s for ``seconds`` s."""

    first: float
    seconds: float
    size: tuple[int, int]
    fps: int
    shade: int
    audio: bool
    live: bool  # written as the recorder leaves it before a stop


def write_segment(
    path: Path,
    start_s: float,
    end_s: float,
    *,
    size: tuple[int, int] = SIZE,
    fps: int = FPS,
    shade: int = 0,
    audio: bool = True,
    live: bool = False,
) -> float:
    """A segment file running ``start_s`` .. ``end_s`` in recording time, WebM (VP8 + Opus) or,
    named ``.mp4``, H.264 + Opus; returns the time of its first frame. ``live`` writes it as
    the recorder does before a stop (no cues; a fragmented MP4)."""
    first = start_s + FIRST_FRAME_S
    media = Media(first, max(0.0, end_s - first), size, fps, shade, audio, live)
    (write_mp4 if path.suffix == ".mp4" else write_webm)(path, media)
    return first


def write_webm(path: Path, media: Media) -> None:
    """VP8 + Opus, muxed here."""
    first, fps = media.first, media.fps
    options = {"live": "1", "cluster_time_limit": "1000"} if media.live else {}
    with av.open(str(path), "w", format="webm", options=options) as out:
        width, height = media.size
        video = out.add_mux_stream("vp8", width=width, height=height, time_base=MS)
        sound = out.add_mux_stream("opus", rate=48000, time_base=MS) if media.audio else None
        frames = video_packets(max(1, int(media.seconds * fps)), media.size, fps, media.shade)
        timed = [
            (int(first * 1000 + n * 1000 / fps), video, data, n == 0)
            for n, data in enumerate(frames)
        ]
        if sound is not None:
            timed += [
                (int(first * 1000 + n * 20), sound, data, True)
                for n, data in enumerate(audio_packets(max(1, int(media.seconds * 50))))
            ]
        for ms, stream, data, key in sorted(timed, key=lambda p: (p[0], p[1].index)):
            packet = av.Packet(data)
            packet.stream = stream
            packet.pts = packet.dts = ms
            packet.time_base = MS
            packet.is_keyframe = key
            out.mux(packet)


def write_mp4(path: Path, media: Media) -> None:
    """H.264 + Opus, written as the media worker records an H.264 stream (its SegmentWriter,
    then its finalize unless ``live``)."""
    first, fps = media.first, media.fps
    kinds = {"video", "audio"} if media.audio else {"video"}
    writer = SegmentWriter(path, kinds, 0.0, container=container_for("video/H264"))
    count = max(1, int(media.seconds * fps))
    frames = video_packets(count, media.size, fps, media.shade, "libx264")
    timed = [
        (first + n / fps, "video", EncodedFrame(data, n * 90000 // fps, 90000, n == 0, 0.0))
        for n, data in enumerate(frames)
    ]
    if media.audio:
        timed += [
            (first + n * 0.02, "audio", EncodedFrame(data, n * 960, 48000, True, 0.0))
            for n, data in enumerate(audio_packets(max(1, int(media.seconds * 50))))
        ]
    for at, kind, frame in sorted(timed, key=lambda f: (f[0], f[1] != "video")):
        frame.arrived = at
        writer.on_frame(kind, frame)
    writer.close()
    if not media.live:
        finalize(path)


@functools.cache
def slide_png(number: int, size: tuple[int, int] = (640, 360)) -> bytes:
    """A slide that says "Slide N" above a coloured band, as a PNG."""
    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(*size)
    band = pdfium_c.FPDFPageObj_CreateNewRect(0, 0, size[0], size[1] // 4)
    pdfium_c.FPDFPageObj_SetFillColor(band, *SLIDE_COLOURS[(number - 1) % 4], 255)
    pdfium_c.FPDFPath_SetDrawMode(band, pdfium_c.FPDF_FILLMODE_ALTERNATE, False)
    pdfium_c.FPDFPage_InsertObject(page.raw, band)
    text = pdfium_c.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", 72)
    encoded = f"Slide {number}".encode("utf-16-le") + b"\0\0"
    buffer = ctypes.create_string_buffer(encoded, len(encoded))
    pdfium_c.FPDFText_SetText(text, ctypes.cast(buffer, ctypes.POINTER(pdfium_c.FPDF_WCHAR)))
    pdfium_c.FPDFPageObj_Transform(text, 1, 0, 0, 1, 60, size[1] / 2)
    pdfium_c.FPDFPage_InsertObject(page.raw, text)
    assert pdfium_c.FPDFPage_GenerateContent(page.raw)
    pixels = np.ascontiguousarray(pdf[0].render(scale=1, rev_byteorder=True).to_numpy()[:, :, :3])
    pdf.close()
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height = pixels.shape[1], pixels.shape[0]
    encoder.pix_fmt = "rgb24"
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    return b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])


# -- the database ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A user as plain data (ORM objects expire and belong to one session)."""

    id: int
    email: str
    name: str


@dataclass(frozen=True)
class Seg:
    """A segment to record: ``source`` from ``start`` to ``end`` s; a segment cut off by a
    crash has no ``end``, and its file runs to ``written`` s."""

    source: str = "camera"
    start: float = 0.0
    end: float | None = 10.0
    shade: int = 0
    audio: bool = True
    written: float = 10.0
    codec: str = "vp8"  # or "h264": an MP4 segment


def add_recording(
    data_dir: Path,
    room_id: int,
    *,
    title: str = "Waves",
    start: float = T0,
    length: float | None = 10.0,
    status: str = "ready",
    segments: Iterable[Seg] = (Seg(),),
    by: int | None = None,
    size: tuple[int, int] = SIZE,
    fps: int = FPS,
) -> int:
    """A recording with its segment files and manifest, as the runtime leaves one; its id."""
    recording = Recording(
        room_id=room_id,
        title=title,
        status=status,
        directory="",
        worker="127.0.0.1:1",
        started_ts=start,
        ended_ts=None if length is None else start + length,
        started_by=by,
    )
    db.session.add(recording)
    db.session.flush()
    recording.directory = f"recordings/{recording.id}"
    folder = data_dir / recording.directory
    folder.mkdir(parents=True)
    entries = []
    for n, seg in enumerate(segments):
        stream = f"{recording.id:04d}{n:02d}{seg.source}"
        file_end = seg.end if seg.end is not None else seg.written
        name = f"{stream}.mp4" if seg.codec == "h264" else f"{stream}.webm"
        first = write_segment(
            folder / name,
            seg.start,
            file_end,
            size=size,
            fps=fps,
            shade=seg.shade,
            audio=seg.audio,
            live=seg.end is None,
        )
        db.session.add(
            RecordingSegment(
                recording_id=recording.id,
                stream_id=stream,
                user_id=by,
                source=seg.source,
                file=name,
                start_s=seg.start,
                end_s=seg.end,
            )
        )
        entries.append(
            {
                "stream": stream,
                "file": name,
                "start_s": seg.start,
                "end_s": seg.end,
                "first_media_ms": round(first * 1000),
            }
        )
    (folder / "manifest.json").write_text(json.dumps({"segments": entries}))
    db.session.commit()
    return recording.id


def add_event(room_id: int, t: float, type_: str, actor: int | None = None, **payload: Any) -> None:
    """Log ``type_`` in the room ``t`` seconds after T0 (negative: before the recording)."""
    db.session.add(
        RoomEvent(room_id=room_id, ts=T0 + t, actor_id=actor, type=type_, payload=payload)
    )
    db.session.commit()


def add_deck(data_dir: Path, room_id: int, pages: int = 2) -> int:
    """A rendered slide deck of ``pages`` pages in the room; its id."""
    deck = SlideDeck(room_id=room_id, filename="waves.pdf", pages=pages, rendered=pages)
    deck.status = "ready"
    db.session.add(deck)
    db.session.commit()
    folder = data_dir / "slides" / str(deck.id)
    folder.mkdir(parents=True)
    for page in range(1, pages + 1):
        (folder / f"{page}.png").write_bytes(slide_png(page))
    return deck.id


def room_row(kind: str, ref_id: int) -> int:
    room = Room(kind=kind, ref_id=ref_id)
    db.session.add(room)
    db.session.commit()
    return room.id


class Visitor:
    """A test client whose every request runs in an app context of its own, as in production:
    a fresh database session and a fresh Flask-Login user each time (the test's own context
    would otherwise answer every request as whoever was loaded first)."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app = app
        self.client = client

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        with self.app.app_context():
            return self.client.open(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> TestResponse:
        return self.open(*args, method="GET", **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> TestResponse:
        return self.open(*args, method="POST", **kwargs)


class Studio:
    """A lesson (an instructor, two students) and an all-hands broadcast (its host, a panelist,
    an attendee, a registrant still waiting for approval), an outsider tied to neither, and
    the live rooms of both."""

    def __init__(self, app: Flask, auth_class: type, users: Any, courses: Any, casts: Any):
        self.app = app
        self.auth_class = auth_class
        self.data_dir = Path(app.config["DATA_DIR"])
        self._clients: dict[int, Visitor] = {}

        def person(role: str, name: str) -> Person:
            user = users.make(role, name=name)
            return Person(user.id, user.email, user.name)

        self.instructor = person("instructor", "Iris Instructor")
        self.student = person("student", "Sam Student")
        self.other_student = person("student", "Tia Student")
        self.host = person("host", "Hugo Host")
        self.panelist = person("attendee", "Pia Panelist")
        self.attendee = person("attendee", "Abe Attendee")
        self.pending = person("attendee", "Pat Pending")
        self.outsider = person("student", "Otto Outsider")

        course = courses.make(self.user(self.instructor), students=(self.user(self.student),))
        courses.make(self.user(self.instructor), students=(self.user(self.other_student),))
        self.lesson_room = room_row("lesson", courses.lesson(course).id)
        cast = casts.make(self.user(self.host), kind="all_hands", mode="approval")
        casts.register(cast, self.user(self.panelist)).role = "panelist"
        casts.register(cast, self.user(self.attendee))
        casts.register(cast, self.user(self.pending), status="pending")
        db.session.commit()
        self.broadcast_room = room_row("broadcast", cast.id)

    @staticmethod
    def user(who: Person) -> User:
        found = db.session.get(User, who.id)
        assert found is not None
        return found

    def by_role(self, name: str) -> Person:
        return {
            "instructor": self.instructor,
            "student": self.student,
            "other_student": self.other_student,
            "host": self.host,
            "panelist": self.panelist,
            "attendee": self.attendee,
            "pending": self.pending,
            "outsider": self.outsider,
        }[name]

    def client(self, who: Person | None) -> Visitor:
        """A client signed in as ``who`` (one per person), or signed out for None."""
        if who is None:
            return Visitor(self.app, self.app.test_client())
        if who.id not in self._clients:
            with self.app.app_context():
                client = self.app.test_client()
                response = self.auth_class(client).login(who.email)
                assert response.status_code == 302, f"could not sign in {who.email}"
            self._clients[who.id] = Visitor(self.app, client)
        return self._clients[who.id]

    def recording(self, room: str = "lesson", **options: Any) -> int:
        """A recording of the lesson's (or the broadcast's) room; see :func:`add_recording`."""
        room_id = self.lesson_room if room == "lesson" else self.broadcast_room
        owner = self.instructor if room == "lesson" else self.host
        return add_recording(self.data_dir, room_id, by=options.pop("by", owner.id), **options)

    def folder(self, recording_id: int) -> Path:
        return self.data_dir / "recordings" / str(recording_id)


@pytest.fixture
def studio(app: Flask, auth: Any, users: Any, courses: Any, broadcasts: Any) -> Studio:
    return Studio(app, type(auth), users, courses, broadcasts)
