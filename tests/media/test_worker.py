"""A real media worker forwards one publisher's VP8/Opus to many viewers without transcoding.

The worker runs as its own process (``python -m media.worker``); the publisher and the viewers
are aiortc peers in this process. Viewers decode what arrives, so a count of decoded frames
shows the forwarded packets are playable.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import pytest

from .conftest import (
    HEIGHT,
    ROOM,
    SECRET,
    WIDTH,
    Line,
    Published,
    Publisher,
    Viewer,
    WorkerProcess,
    call,
    grant,
    published,
    spare_offer,
    stream_frames,
    until,
    until_async,
    view,
)

# 30 fps video and 50 audio frames a second are sent; a viewer must decode at least half.
SECONDS = 3.0
MIN_VIDEO = int(30 * SECONDS / 2)
MIN_AUDIO = int(50 * SECONDS / 2)


async def steady(worker: WorkerProcess, stream: Published, frames: int = 60) -> None:
    """Wait until the worker has received ``frames`` video frames of ``stream``."""

    async def enough() -> bool:
        return (await stream_frames(worker.port, stream.id)).get("video", 0) >= frames

    assert await until_async(enough, timeout=10), "the publisher's video never reached the worker"


def codecs(sdp: str) -> dict[str, set[str]]:
    """Codec names per media kind in an SDP (``a=rtpmap:96 VP8/90000`` -> ``VP8``)."""
    found: dict[str, set[str]] = {}
    kind = ""
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split()[0]
            found.setdefault(kind, set())
        elif line.startswith("a=rtpmap:") and kind:
            found[kind].add(line.split()[1].split("/")[0])
    return found


def test_three_viewers_decode_what_is_published_and_nothing_is_transcoded(
    worker: WorkerProcess,
) -> None:
    async def scenario() -> tuple[list[Viewer], float, dict[str, Any]]:
        async with published(worker.port) as stream:
            await steady(worker, stream, frames=30)
            viewers = [Viewer() for _ in range(3)]
            try:
                asked = time.monotonic()
                await asyncio.gather(*(view(worker.port, stream.id, v) for v in viewers))
                await asyncio.sleep(SECONDS)
                stats = await call(worker.port, "stats")
            finally:
                await asyncio.gather(*(v.close() for v in viewers))
        return viewers, asked, stats

    viewers, asked, stats = asyncio.run(scenario())

    # Joining together, each still gets a keyframe soon (keyframe requests are spaced out,
    # not dropped).
    waits = [v.first_video_at - asked if v.first_video_at else None for v in viewers]
    assert all(w is not None and w < 1.5 for w in waits), waits
    for viewer in viewers:
        assert viewer.frames["video"] >= MIN_VIDEO, viewer.frames
        assert viewer.frames["audio"] >= MIN_AUDIO, viewer.frames
        assert viewer.sizes == {(WIDTH, HEIGHT)}
    assert stats["streams"] == 1
    assert stats["viewers"] == 3
    assert sum(stats["frames"][s]["video"] for s in stats["frames"]) >= MIN_VIDEO
    assert stats["encoders"] == 0
    assert stats["decoders"] == 0


def test_negotiated_codecs_are_vp8_and_opus(worker: WorkerProcess) -> None:
    async def scenario() -> tuple[str, str]:
        async with published(worker.port) as stream:
            viewer = Viewer()
            try:
                reply = await view(worker.port, stream.id, viewer)
            finally:
                await viewer.close()
            return stream.answer["sdp"], reply["sdp"]

    publish_answer, view_answer = asyncio.run(scenario())

    for answer in (publish_answer, view_answer):
        found = codecs(answer)
        assert found["video"] - {"rtx"} == {"VP8"}, found
        assert found["audio"] == {"opus"}, found


def test_late_joiner_sees_video_within_a_second(worker: WorkerProcess) -> None:
    """aiortc's encoder makes a keyframe every 3,000 frames: the viewer's PLI must reach it."""

    async def scenario() -> list[float]:
        waits = []
        async with published(worker.port) as stream:
            await steady(worker, stream)
            for _ in range(2):
                viewer = Viewer()
                try:
                    sent = time.monotonic()
                    await view(worker.port, stream.id, viewer)
                    await until(lambda v=viewer: v.first_video_at is not None, timeout=5)
                    assert viewer.first_video_at is not None, "no video frame in 5 s"
                    waits.append(viewer.first_video_at - sent)
                finally:
                    await viewer.close()
                await asyncio.sleep(0.5)  # past the hub's keyframe-request interval
        return waits

    waits = asyncio.run(scenario())

    assert max(waits) < 1.0, waits


# -- refused requests -------------------------------------------------------------------------
def forged(stream: str) -> dict[str, Any]:
    return {"op": "view", "token": grant("view", stream=stream, secret="not-" + SECRET)}


def expired(stream: str) -> dict[str, Any]:
    return {"op": "view", "token": grant("view", stream=stream, exp=int(time.time()) - 5)}


def publish_token_for_view(stream: str) -> dict[str, Any]:
    return {"op": "view", "token": grant("publish", stream=stream)}


def other_rooms_stream(stream: str) -> dict[str, Any]:
    return {"op": "view", "token": grant("view", room="lesson:2", stream=stream)}


def expired_publish(stream: str) -> dict[str, Any]:
    return {"op": "publish", "token": grant("publish", exp=int(time.time()) - 5)}


def forged_publish(stream: str) -> dict[str, Any]:
    return {"op": "publish", "token": grant("publish", secret="not-" + SECRET)}


def garbage_sdp_publish(stream: str) -> dict[str, Any]:
    return {"op": "publish", "token": grant("publish"), "sdp": "hello, I am not SDP"}


def empty_sdp_publish(stream: str) -> dict[str, Any]:
    return {"op": "publish", "token": grant("publish"), "sdp": "v=0\r\nnonsense\r\n"}


def broken_sdp_view(stream: str) -> dict[str, Any]:
    sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    return {"op": "view", "token": grant("view", stream=stream), "sdp": sdp}


async def vp8_less_view(stream: str) -> dict[str, Any]:
    """A viewer offering H.264 only, for a stream published in VP8."""
    viewer = Viewer("video/H264")
    try:
        sdp = await viewer.offer()
    finally:
        await viewer.close()
    return {"op": "view", "token": grant("view", stream=stream), "sdp": sdp}


async def vp9_only_publish(stream: str) -> dict[str, Any]:
    """A publisher offering VP9 only (a codec the worker does not forward)."""
    publisher = Publisher("video/VP8")
    try:
        sdp = (await publisher.offer()).replace("VP8/90000", "VP9/90000")
    finally:
        await publisher.close()
    return {"op": "publish", "token": grant("publish"), "sdp": sdp}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (forged, "refused: bad signature"),
        (forged_publish, "refused: bad signature"),
        (expired, "refused: expired token"),
        (expired_publish, "refused: expired token"),
        (publish_token_for_view, "refused: not a view token"),
        (other_rooms_stream, "no such stream"),
        (garbage_sdp_publish, "sdp must be an SDP offer"),
        (empty_sdp_publish, "the offer has no audio or video"),
        (broken_sdp_view, "bad request"),
        (vp8_less_view, "the viewer's browser cannot receive VP8"),
        (vp9_only_publish, "the offer has no video codec this server forwards"),
    ],
)
def test_refused_request_leaves_the_worker_serving(
    worker: WorkerProcess, make: Any, reason: str
) -> None:
    async def scenario() -> dict[str, Any]:
        async with published(worker.port) as stream:
            request = make(stream.id)
            if inspect.isawaitable(request):
                request = await request
            request.setdefault("sdp", await spare_offer())
            line = await Line.open(worker.port)
            viewer = Viewer()
            try:
                before = await line.send("stats")
                refused = await line.send(**request)
                after = await line.send("stats")
                # The same connection still serves: a genuine viewer is answered.
                token = grant("view", stream=stream.id)
                served = await line.send("view", token=token, sdp=await viewer.offer())
                if served.get("ok"):
                    await line.send("close", peer=served["peer"])
            finally:
                await viewer.close()
                await line.close()
        return {"before": before, "refused": refused, "after": after, "served": served}

    got = asyncio.run(scenario())

    assert got["refused"]["ok"] is False
    assert reason in got["refused"]["error"]
    # Nothing is left behind by the refused request.
    assert got["after"]["streams"] == got["before"]["streams"] == 1
    assert got["after"]["viewers"] == got["before"]["viewers"]
    assert got["served"]["ok"] is True, got["served"]
    assert got["served"]["sdp"].startswith("v=0")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"op": "reboot"}\n', "unknown op"),
        (b"[1, 2, 3]\n", "unknown op"),
        (b"this is not JSON\n", "bad request"),
        (b'{"op": "view"}\n', "refused: malformed token"),
    ],
)
def test_malformed_line_gets_a_reason_and_the_connection_stays_open(
    worker: WorkerProcess, line: bytes, reason: str
) -> None:
    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any]]:
        channel = await Line.open(worker.port)
        try:
            refused = await channel.send_raw(line)
            served = await channel.send("ping")
        finally:
            await channel.close()
        return refused, served

    refused, served = asyncio.run(scenario())

    assert refused is not None, "the worker hung up instead of answering"
    assert refused["ok"] is False
    assert reason in refused["error"]
    assert served == {"ok": True, "pid": worker.proc.pid}


# -- viewers that go away ---------------------------------------------------------------------
class StalledViewer:
    """A viewer on an event loop of its own, in a thread, whose loop can be frozen: while it
    is, nothing reads its sockets."""

    def __init__(self, port: int, stream: str) -> None:
        self.port = port
        self.stream = stream
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.viewer: Viewer | None = None

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.viewer = Viewer()
        await view(self.port, self.stream, self.viewer)

    async def start(self) -> None:
        await asyncio.to_thread(self.run, self._start())

    def freeze(self, seconds: float) -> None:
        self.loop.call_soon_threadsafe(time.sleep, seconds)

    async def stop(self) -> None:
        if self.viewer is not None:
            await asyncio.to_thread(self.run, self.viewer.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join, 5)
        self.loop.close()


def test_closed_or_stalled_viewer_does_not_hold_up_the_others(worker: WorkerProcess) -> None:
    async def scenario() -> dict[str, Any]:
        result: dict[str, Any] = {}
        async with published(worker.port) as stream:
            leaving, staying = Viewer(), Viewer()
            stalled = StalledViewer(worker.port, stream.id)
            try:
                await asyncio.gather(
                    view(worker.port, stream.id, leaving),
                    view(worker.port, stream.id, staying),
                    stalled.start(),
                )
                result["all_playing"] = await until(
                    lambda: all(
                        v is not None and v.frames["video"] > 10
                        for v in (leaving, staying, stalled.viewer)
                    ),
                    timeout=5,
                )
                result["before"] = (await call(worker.port, "stats"))["viewers"]

                await leaving.close()  # no "close" request: the worker must notice by itself

                async def dropped() -> bool:
                    return (await call(worker.port, "stats"))["viewers"] == 2

                result["dropped"] = await until_async(dropped, timeout=5)
                stalled.freeze(2.0)
                counted = staying.frames["video"]
                await asyncio.sleep(2.0)
                result["staying_gained"] = staying.frames["video"] - counted
                assert stalled.viewer is not None
                counted = stalled.viewer.frames["video"]
                await asyncio.sleep(1.5)
                result["stalled_gained_after"] = stalled.viewer.frames["video"] - counted
                result["after"] = (await call(worker.port, "stats"))["viewers"]
            finally:
                await staying.close()
                await stalled.stop()
        return result

    result = asyncio.run(scenario())

    assert result["all_playing"], "not every viewer got video"
    assert result["before"] == 3
    assert result["dropped"], "the worker kept the closed viewer"
    assert result["staying_gained"] >= 30, result  # ~60 expected in 2 s
    assert result["stalled_gained_after"] > 0, result  # it recovers once it reads again
    assert result["after"] == 2


def test_close_stream_ends_every_viewers_tracks(worker: WorkerProcess) -> None:
    async def scenario() -> tuple[list[Viewer], dict[str, Any], dict[str, Any]]:
        async with published(worker.port) as stream:
            viewers = [Viewer(), Viewer()]
            try:
                await asyncio.gather(*(view(worker.port, stream.id, v) for v in viewers))
                await until(lambda: all(v.frames["video"] > 5 for v in viewers), timeout=5)
                closed = await call(worker.port, "close_stream", stream=stream.id)
                await until(lambda: all(len(v.ended) == 2 for v in viewers), timeout=5)
                stats = await call(worker.port, "stats")
            finally:
                await asyncio.gather(*(v.close() for v in viewers))
        return viewers, closed, stats

    viewers, closed, stats = asyncio.run(scenario())

    assert closed == {"ok": True, "closed": 1}
    for viewer in viewers:
        assert viewer.frames["video"] > 5
        assert viewer.ended == {"video", "audio"}
    assert stats["streams"] == 0
    assert stats["viewers"] == 0


def test_room_of_a_view_grant_is_checked_against_the_stream(worker: WorkerProcess) -> None:
    """Sanity for the refusal table: the same stream is viewable with its own room's grant."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with published(worker.port, room="lesson:7") as stream:
            token = grant("view", room="lesson:7", stream=stream.id)
            viewer = Viewer()
            try:
                ok = await call(worker.port, "view", token=token, sdp=await viewer.offer())
                wrong = await call(
                    worker.port,
                    "view",
                    token=grant("view", room=ROOM, stream=stream.id),
                    sdp=await spare_offer(),
                )
            finally:
                await viewer.close()
        return ok, wrong

    ok, wrong = asyncio.run(scenario())

    assert ok["ok"] is True
    assert wrong == {"ok": False, "error": "no such stream"}
