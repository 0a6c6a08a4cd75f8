"""One stream over two media workers (a cascade): published on A, served to viewers on B.

Both workers are real processes; B receives the stream from A over ONE WebRTC leg (the
``relay`` op: B is a viewer of A) however many viewers it serves, and those viewers decode what
the publisher on A sends. Keyframe requests cross the leg; ending the stream ends the leg.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from media.supervisor import free_port

from .conftest import (
    HEIGHT,
    WIDTH,
    Line,
    Viewer,
    WorkerProcess,
    call,
    grant,
    published,
    stream_frames,
    until,
    until_async,
    view,
)

SECONDS = 2.0
MIN_VIDEO = int(30 * SECONDS / 2)
MIN_AUDIO = int(50 * SECONDS / 2)


def relay_grant(stream: str, origin: WorkerProcess | str, **extra: Any) -> str:
    """The grant the web app signs for B: the stream, A's address and a view grant for A."""
    addr = origin if isinstance(origin, str) else origin.addr
    fields: dict[str, Any] = {
        "stream": stream,
        "origin": addr,
        "origin_token": grant("view", user=0, stream=stream),
    }
    fields.update(extra)
    return grant("relay", **fields)


async def relay(b: WorkerProcess, stream: str, origin: WorkerProcess) -> dict[str, Any]:
    reply = await call(b.port, "relay", token=relay_grant(stream, origin))
    assert reply["ok"], reply
    return reply


async def steady_on(port: int, stream: str, frames: int = 30) -> None:
    async def enough() -> bool:
        return (await stream_frames(port, stream)).get("video", 0) >= frames

    assert await until_async(enough, timeout=10), f"no video of {stream} on worker {port}"


def test_two_viewers_on_b_decode_the_publisher_on_a_through_one_leg(
    worker: WorkerProcess, worker_b: WorkerProcess
) -> None:
    async def scenario() -> dict[str, Any]:
        async with published(worker.port) as stream:
            await steady_on(worker.port, stream.id)
            # Asked twice at once (two web workers placing viewers): still one leg.
            first, second = await asyncio.gather(
                relay(worker_b, stream.id, worker), relay(worker_b, stream.id, worker)
            )
            again = await relay(worker_b, stream.id, worker)
            await steady_on(worker_b.port, stream.id)
            viewers = [Viewer() for _ in range(2)]
            try:
                await asyncio.gather(*(view(worker_b.port, stream.id, v) for v in viewers))
                await asyncio.sleep(SECONDS)
                stats_a = await call(worker.port, "stats")
                stats_b = await call(worker_b.port, "stats")
            finally:
                await asyncio.gather(*(v.close() for v in viewers))
        return {
            "created": sorted([first["created"], second["created"], again["created"]]),
            "viewers": viewers,
            "a": stats_a,
            "b": stats_b,
            "stream": stream.id,
        }

    got = asyncio.run(scenario())

    assert got["created"] == [False, False, True]
    for viewer in got["viewers"]:
        assert viewer.frames["video"] >= MIN_VIDEO, viewer.frames
        assert viewer.frames["audio"] >= MIN_AUDIO, viewer.frames
        assert viewer.sizes == {(WIDTH, HEIGHT)}
    a, b = got["a"], got["b"]
    assert a["viewers"] == 1, a  # the one leg to B
    assert a["relays"] == []
    assert b["viewers"] == 2, b
    assert b["relays"] == [got["stream"]]
    assert b["capacity"] == 7
    assert a["capacity"] == 150
    assert a["encoders"] == a["decoders"] == b["encoders"] == b["decoders"] == 0


def test_a_late_viewer_on_b_gets_a_keyframe_from_a_within_a_second(
    worker: WorkerProcess, worker_b: WorkerProcess
) -> None:
    """aiortc's encoder makes a keyframe every 3,000 frames: B's PLI must reach A's publisher."""

    async def scenario() -> list[float]:
        waits = []
        async with published(worker.port) as stream:
            await relay(worker_b, stream.id, worker)
            await steady_on(worker_b.port, stream.id, frames=60)
            for _ in range(2):
                viewer = Viewer()
                try:
                    sent = time.monotonic()
                    await view(worker_b.port, stream.id, viewer)
                    await until(lambda v=viewer: v.first_video_at is not None, timeout=5)
                    assert viewer.first_video_at is not None, "no video frame in 5 s"
                    waits.append(viewer.first_video_at - sent)
                finally:
                    await viewer.close()
                await asyncio.sleep(0.5)  # past the hubs' keyframe-request interval
        return waits

    waits = asyncio.run(scenario())

    assert max(waits) < 1.0, waits


def test_ending_the_stream_on_a_ends_the_leg_and_the_viewers_on_b(
    worker: WorkerProcess, worker_b: WorkerProcess
) -> None:
    async def scenario() -> dict[str, Any]:
        viewer = Viewer()
        try:
            async with published(worker.port) as stream:
                await relay(worker_b, stream.id, worker)
                await view(worker_b.port, stream.id, viewer)
                assert await until(lambda: viewer.frames["video"] > 0, timeout=5)
            # published() closed the stream on A: A closes the leg, B notices and ends it.
            started = time.monotonic()

            async def gone() -> bool:
                stats = await call(worker_b.port, "stats")
                return stats["relays"] == [] and stats["viewers"] == 0

            ended = await until_async(gone, timeout=5)
            took = time.monotonic() - started
            tracks_ended = await until(lambda: viewer.ended == {"audio", "video"}, timeout=5)
        finally:
            await viewer.close()
        return {"ended": ended, "took": took, "tracks_ended": tracks_ended}

    got = asyncio.run(scenario())

    assert got["ended"], "B kept serving a stream its origin ended"
    assert got["tracks_ended"]


def test_closing_the_relay_on_b_closes_its_leg_on_a(
    worker: WorkerProcess, worker_b: WorkerProcess
) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with published(worker.port) as stream:
            await relay(worker_b, stream.id, worker)
            before = await call(worker.port, "stats")
            closed = await call(worker_b.port, "close_stream", stream=stream.id)

            async def leg_gone() -> bool:
                return (await call(worker.port, "stats"))["viewers"] == 0

            assert await until_async(leg_gone, timeout=5), "A still feeds the closed leg"
            after = await call(worker.port, "stats")
        return before, closed, after

    before, closed, after = asyncio.run(scenario())

    assert before["viewers"] == 1
    assert closed == {"ok": True, "closed": 1}
    assert after["streams"] == 1  # the stream itself goes on at its origin


# -- refused relays ---------------------------------------------------------------------------
def unreachable() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there


REFUSALS: list[tuple[str, Any, str]] = [
    ("forged", lambda s, a: relay_grant(s, a)[:-4] + "beef", "refused: bad signature"),
    ("expired", lambda s, a: relay_grant(s, a, exp=int(time.time()) - 5), "refused: expired"),
    ("a view grant", lambda s, a: grant("view", stream=s), "refused: not a relay token"),
    ("no origin", lambda s, a: grant("relay", stream=s, origin_token="x"), "origin worker"),
    ("bad port", lambda s, a: relay_grant(s, "127.0.0.1:99999"), "port out of range"),
    ("no port", lambda s, a: relay_grant(s, "127.0.0.1:http"), "bad request"),
    ("no stream", lambda s, a: relay_grant("", a), "the stream id"),
    ("long stream", lambda s, a: relay_grant("x" * 65, a), "the stream id"),
    ("no view token", lambda s, a: relay_grant(s, a, origin_token=""), "view token"),
    (
        "a forged view token",
        lambda s, a: relay_grant(s, a, origin_token=grant("view", stream=s, secret="x")),
        "the origin worker refused: refused: bad signature",
    ),
    (
        "another room's stream",
        lambda s, a: relay_grant(
            s, a, origin_token=grant("view", room="lesson:2", stream=s), room="lesson:2"
        ),
        "the origin worker refused: no such stream",
    ),
    ("an unknown stream", lambda s, a: relay_grant("f" * 32, a), "no such stream"),
    ("nobody at the origin", lambda s, a: relay_grant(s, unreachable()), "did not answer"),
]


@pytest.mark.parametrize(
    ("make", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_a_refused_relay_leaves_nothing_behind(
    worker: WorkerProcess, worker_b: WorkerProcess, make: Any, reason: str
) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with published(worker.port) as stream:
            line = await Line.open(worker_b.port)
            try:
                refused = await line.send("relay", token=make(stream.id, worker.addr))
                after_b = await line.send("stats")
                served = await line.send("relay", token=relay_grant(stream.id, worker))
            finally:
                await line.close()
            after_a = await call(worker.port, "stats")
            await call(worker_b.port, "close_stream", stream=stream.id)
        return refused, after_b, served, after_a

    refused, after_b, served, after_a = asyncio.run(scenario())

    assert refused["ok"] is False, refused
    assert reason in refused["error"], refused
    assert after_b["streams"] == 0 and after_b["viewers"] == 0, after_b
    assert served["ok"] is True, served  # the same connection still serves a genuine relay
    assert after_a["viewers"] == 1, after_a  # that one leg, none left by the refusal


def test_the_relay_grant_names_the_room(worker: WorkerProcess, worker_b: WorkerProcess) -> None:
    """B serves a relayed stream only in the grant's room, as A does a published one."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with published(worker.port) as stream:
            await relay(worker_b, stream.id, worker)
            other = grant("view", room="lesson:2", stream=stream.id)
            viewer = Viewer()
            try:
                refused = await call(worker_b.port, "view", token=other, sdp=await viewer.offer())
            finally:
                await viewer.close()
            again = await call(
                worker_b.port,
                "relay",
                token=relay_grant(stream.id, worker, room="lesson:2"),
            )
            await call(worker_b.port, "close_stream", stream=stream.id)
        return refused, again

    refused, again = asyncio.run(scenario())

    assert refused == {"ok": False, "error": "no such stream"}
    assert again == {"ok": False, "error": "no such stream"}


def test_h264_stream_crosses_a_leg_as_h264(worker: WorkerProcess, worker_b: WorkerProcess) -> None:
    """The leg offers every forwarded codec, the origin answers with the stream's (H.264):
    B knows it, serves it to its viewers as it is and refuses a viewer that cannot take it."""

    async def scenario() -> dict[str, Any]:
        async with published(worker.port, codec="video/H264") as stream:
            await steady_on(worker.port, stream.id)
            await relay(worker_b, stream.id, worker)
            await steady_on(worker_b.port, stream.id)
            viewer, vp8_only = Viewer(), Viewer("video/VP8")
            try:
                await view(worker_b.port, stream.id, viewer)
                token = grant("view", user=2, stream=stream.id)
                refused = await call(worker_b.port, "view", token=token, sdp=await vp8_only.offer())
                await until(lambda: viewer.frames["video"] >= MIN_VIDEO, timeout=5)
                stats_a = await call(worker.port, "stats")
                stats_b = await call(worker_b.port, "stats")
            finally:
                await asyncio.gather(viewer.close(), vp8_only.close())
        return {"viewer": viewer, "refused": refused, "a": stats_a, "b": stats_b, "id": stream.id}

    got = asyncio.run(scenario())

    assert got["viewer"].frames["video"] >= MIN_VIDEO, got["viewer"].frames
    assert got["viewer"].sizes == {(WIDTH, HEIGHT)}
    assert got["a"]["codecs"][got["id"]] == got["b"]["codecs"][got["id"]] == "H264"
    assert got["refused"]["error"] == "bad request: the viewer's browser cannot receive H264"
    for stats in (got["a"], got["b"]):
        assert stats["encoders"] == stats["decoders"] == 0
