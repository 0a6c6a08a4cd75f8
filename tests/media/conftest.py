"""Fixtures for the media tests: a real media worker process and synthetic aiortc peers.

Every packet stays on 127.0.0.1: the peers here use no ICE servers, and aioice is made to offer
127.0.0.1 as its only host candidate (it leaves loopback out on its own). The tests are plain
functions that drive their peers with ``asyncio.run``.

Test modules here that write ``from conftest import ...`` get this module (pytest imports the
nearest conftest.py last, under the same name; see tests/rooms/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import VideoFrame

from lectern import ROOT
from media import tokens
from media.supervisor import free_port, wait_for_port
from tests.live import stop_process

SECRET = "media-test-secret"
ROOM = "lesson:1"
# Not aiortc's default 640x480, so a viewer's frame size shows it got what was published.
WIDTH, HEIGHT = 320, 240
START_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 10.0


# -- processes --------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``python -m media.worker`` child and the file its output goes to."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def worker_env() -> dict[str, str]:
    """The worker's settings: this test's secret, loopback only, no ICE servers."""
    env = {**os.environ, "MEDIA_SECRET": SECRET, "MEDIA_HOST_ADDRESSES": "127.0.0.1"}
    env.pop("ICE_SERVERS", None)
    return env


def start_worker(log: Path, port: int | None = None, **settings: str) -> WorkerProcess:
    """Start a worker on a loopback port (a free one by default) and wait until it accepts
    connections (``settings``: more environment, e.g. ``MEDIA_CAPACITY="2"``)."""
    port = port or free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "media.worker", "--port", str(port)],
            cwd=ROOT,
            env={**worker_env(), **settings},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(port, proc, log)
    if not wait_for_port("127.0.0.1", port, timeout=START_TIMEOUT_S):
        stop_process(proc)
        pytest.fail(f"the media worker did not start:\n{worker.output()}")
    return worker


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A media worker process of this test module's own; terminated after the module."""
    started = start_worker(tmp_path_factory.mktemp("media") / "worker.log")
    try:
        yield started
    finally:
        stop_process(started.proc)


@pytest.fixture(scope="module")
def worker_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A second worker: the one viewers are placed on when A is not theirs."""
    started = start_worker(tmp_path_factory.mktemp("media-b") / "worker.log", MEDIA_CAPACITY="7")
    try:
        yield started
    finally:
        stop_process(started.proc)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's peers offer 127.0.0.1 as their only host candidate (restored after)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


# -- the worker channel, from inside an event loop --------------------------------------------
def grant(op: str, room: str = ROOM, user: int = 1, secret: str = SECRET, **extra: Any) -> str:
    """A token as the web app signs it (``exp`` may be passed to backdate it)."""
    return tokens.sign(secret, op=op, room=room, user=user, **extra)


class Line:
    """One open connection to a worker: JSON lines out, one reply line back for each."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Line:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1024 * 1024), CALL_TIMEOUT_S
        )
        return cls(reader, writer)

    async def send_raw(self, line: bytes) -> dict[str, Any] | None:
        """Send ``line`` as it is; the reply, or None if the worker closed the connection."""
        self.writer.write(line)
        await self.writer.drain()
        reply = await asyncio.wait_for(self.reader.readline(), CALL_TIMEOUT_S)
        return json.loads(reply) if reply else None

    async def send(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = await self.send_raw(json.dumps({"op": op, **fields}).encode() + b"\n")
        assert reply is not None, f"the worker closed the connection after {op}"
        return reply

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def call(port: int, op: str, **fields: Any) -> dict[str, Any]:
    """One request on a fresh connection, as ``media.channel`` makes it."""
    line = await Line.open(port)
    try:
        return await line.send(op, **fields)
    finally:
        await line.close()


async def until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Whether ``check()`` came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def until_async(
    check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.1
) -> bool:
    """Like :func:`until` for a check that has to await (a worker request)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


# -- synthetic peers --------------------------------------------------------------------------
def loopback_pc() -> RTCPeerConnection:
    """A peer connection with no ICE servers (aiortc would otherwise use a public STUN one)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class SizedVideoTrack(VideoStreamTrack):
    """aiortc's synthetic 30 fps video, at ``WIDTH`` x ``HEIGHT``."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts = pts
        frame.time_base = time_base
        return frame


def only_video_codec(pc: RTCPeerConnection, codec: str | None) -> None:
    """Make ``pc``'s offer list ``codec`` (``"video/H264"``, ``"video/VP8"``) as its only video
    codec (None: aiortc's defaults, VP8 first)."""
    if codec is None:
        return
    caps = RTCRtpSender.getCapabilities("video")
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType == codec])


class Publisher:
    """A camera and a microphone: synthetic video and audio that aiortc encodes to VP8 (or
    ``codec``, e.g. ``"video/H264"``) and Opus."""

    def __init__(self, codec: str | None = None) -> None:
        self.pc = loopback_pc()
        self.pc.addTrack(SizedVideoTrack())
        self.pc.addTrack(AudioStreamTrack())
        only_video_codec(self.pc, codec)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def close(self) -> None:
        await self.pc.close()


class Viewer:
    """A receive-only peer that decodes what arrives and counts it per kind (``codec``: the only
    video codec it offers to receive)."""

    def __init__(self, codec: str | None = None) -> None:
        self.pc = loopback_pc()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        only_video_codec(self.pc, codec)
        self.frames = {"video": 0, "audio": 0}
        self.sizes: set[tuple[int, int]] = set()
        self.first_video_at: float | None = None
        self.ended: set[str] = set()
        self.reading = True
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.ended.add(track.kind)
                return
            self.frames[track.kind] += 1
            if track.kind == "video":
                self.sizes.add((frame.width, frame.height))
                if self.first_video_at is None:
                    self.first_video_at = time.monotonic()

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Published:
    """A live stream on the worker and the publisher behind it."""

    id: str
    publisher: Publisher
    answer: dict[str, Any]


@contextlib.asynccontextmanager
async def published(
    port: int, room: str = ROOM, user: int = 1, codec: str | None = None
) -> AsyncIterator[Published]:
    """Publish synthetic camera + microphone to the worker (``codec``: the only video codec
    offered); the stream is closed afterwards."""
    publisher = Publisher(codec)
    try:
        reply = await call(
            port, "publish", token=grant("publish", room, user), sdp=await publisher.offer()
        )
        assert reply["ok"], reply
        await publisher.answer(reply["sdp"])
        yield Published(reply["stream"], publisher, reply)
        await call(port, "close_stream", stream=reply["stream"])
    finally:
        await publisher.close()


async def spare_offer() -> str:
    """A well-formed viewer offer from a peer that is closed at once (for refused requests)."""
    viewer = Viewer()
    try:
        return await viewer.offer()
    finally:
        await viewer.close()


async def view(port: int, stream: str, viewer: Viewer, room: str = ROOM) -> dict[str, Any]:
    """Ask the worker to send ``stream`` to ``viewer``; returns the worker's reply."""
    token = grant("view", room, user=2, stream=stream)
    reply = await call(port, "view", token=token, sdp=await viewer.offer())
    assert reply["ok"], reply
    await viewer.answer(reply["sdp"])
    return reply


async def stream_frames(port: int, stream: str) -> dict[str, int]:
    """Frames the worker has received of ``stream`` so far, per kind."""
    stats = await call(port, "stats")
    return dict(stats["frames"].get(stream, {}))
