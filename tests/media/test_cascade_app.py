"""Viewers placed over two media workers through the whole app: ``python app.py`` with
``MEDIA_WORKERS=2`` and ``MEDIA_CAPACITY=2``, real Socket.IO clients and aiortc peers.

The publisher's stream enters its room's worker (the origin); each new viewer goes to the worker
with the most spare capacity, another worker receiving the stream over one leg; when both are
full a viewer is refused with a message. A worker SIGKILLed moves its viewers: they are told
``media.moved`` and view again (as the page does) elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from media.channel import MediaChannel
from rooms.placement import worker_id

from .conftest import SECRET, Publisher, Viewer, start_worker, stop_process, until, until_async
from .test_app_media import (  # noqa: F401  # fixtures: the server's cookies and joins
    INSTRUCTOR,
    SECRET_KEY,
    STUDENT1,
    STUDENT2,
    Participant,
    Server,
    cookies,
    decoded,
    join,
    publish,
    server_output,
)

pytestmark = pytest.mark.server

CAPACITY = 2
HEALTH_S = 2.5  # a listed worker started again is placed on after its next ping (every 1 s)


class CascadeServer(Server):
    """The app and its two media workers; ``revive()`` starts again the listed ones killed."""

    def revive(self) -> bool:
        """Whether a worker had to be started again (an embedded one restarts by itself)."""
        return False


MOVED_WITHIN_S = 3.0  # media.moved -> the viewer decodes again, without a reload


@pytest.fixture(scope="module", params=["embedded", "listed"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CascadeServer]:
    """The app with two media workers: its own (restarted when they die), or two running ones
    named in ``MEDIA_WORKER_ADDRS`` (watched by the web worker's pings; not restarted)."""
    data = tmp_path_factory.mktemp("cascade-app") / "data"
    env = {"SECRET_KEY": SECRET_KEY, "MEDIA_CAPACITY": str(CAPACITY), "DEMO_DATA": "true"}
    if request.param == "embedded":
        with CascadeServer(data, {**env, "MEDIA_WORKERS": "2"}) as started:
            found = started.wait_for_output(r"^Media workers: (.+)$").group(1)
            started.media = found.replace(" ", "")
            yield started
        return
    logs = tmp_path_factory.mktemp("cascade-workers")
    workers = [start_worker(logs / f"{n}.log", MEDIA_CAPACITY=str(CAPACITY)) for n in "ab"]
    try:
        addrs = ",".join(w.addr for w in workers)
        listed = {**env, "MEDIA_WORKER_ADDRS": addrs, "MEDIA_SECRET": SECRET}
        with CascadeServer(data, listed) as started:
            started.media = addrs

            def revive() -> bool:
                dead = [n for n, w in enumerate(workers) if w.proc.poll() is not None]
                for n in dead:
                    workers[n] = start_worker(
                        workers[n].log, port=workers[n].port, MEDIA_CAPACITY=str(CAPACITY)
                    )
                return bool(dead)

            started.revive = revive  # type: ignore[method-assign]
            yield started
    finally:
        for worker in workers:
            stop_process(worker.proc)


def stats(addr: str) -> dict[str, Any]:
    return MediaChannel([addr], timeout=5).call(addr, "stats")


async def view_reply(who: Participant, stream: str, viewer: Viewer) -> dict[str, Any]:
    """``media.view`` with ``viewer``'s offer; the answer is applied when it is given."""
    request = {"stream": stream, "sdp": await viewer.offer()}
    reply = await asyncio.to_thread(who.call, "media.view", request)
    if reply.get("ok"):
        await viewer.answer(reply["sdp"])
    return reply


async def idle(server: CascadeServer) -> list[str]:
    """Wait until both workers run and serve nothing (the previous test's peers are gone);
    their addresses."""
    addrs = server.media.split(",")
    if server.revive():
        await asyncio.sleep(HEALTH_S)

    async def quiet() -> bool:
        found = await asyncio.gather(*(asyncio.to_thread(stats, a) for a in addrs))
        return all(s["viewers"] == 0 and s["streams"] == 0 for s in found)

    deadline = time.monotonic() + 10
    while not await quiet():
        assert time.monotonic() < deadline, "the workers still serve the last test's peers"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.1)  # the web app's cached loads are refreshed
    return addrs


def test_viewers_spread_by_spare_capacity_and_are_refused_when_all_are_full(
    server: CascadeServer,
    join: Callable[[int], Participant],  # noqa: F811  # test_app_media's fixture
) -> None:
    addrs = server.media.split(",")
    teacher, student, other = join(INSTRUCTOR), join(STUDENT1), join(STUDENT2)

    async def scenario() -> dict[str, Any]:
        await idle(server)
        publisher = Publisher()
        viewers = [Viewer() for _ in range(4)]
        try:
            published = await publish(teacher, publisher)
            assert published["ok"], published
            stream = published["stream"]
            replies = []
            for who, viewer in zip((student, other, student, other), viewers, strict=True):
                replies.append(await view_reply(who, stream, viewer))
            got_frames = [await decoded(v, video=10, audio=10) for v in viewers[:3]]
            loads = {addr: stats(addr) for addr in addrs}
            stopped = await asyncio.to_thread(teacher.call, "media.unpublish", {"stream": stream})
            ended = await until(
                lambda: all(v.ended == {"audio", "video"} for v in viewers[:3]), timeout=5
            )
            after = {addr: stats(addr) for addr in addrs}
        finally:
            for peer in (*viewers, publisher):
                await peer.close()
        return {
            "stream": stream,
            "replies": replies,
            "got_frames": got_frames,
            "loads": loads,
            "stopped": stopped,
            "ended": ended,
            "after": after,
        }

    got = asyncio.run(scenario())

    stream = got["stream"]
    [origin] = [a for a, s in got["loads"].items() if stream in s["frames"] and not s["relays"]]
    [other_worker] = [a for a in addrs if a != origin]
    placed = [r.get("worker") for r in got["replies"]]
    # Both empty: the tie goes to the origin; then the other worker (a leg from the origin
    # takes the origin's last place); then the other again; then nobody.
    assert placed[:3] == [worker_id(origin), worker_id(other_worker), worker_id(other_worker)]
    refused = got["replies"][3]
    assert refused == {
        "ok": False,
        "error": "every media server is full; try again in a minute",
        "code": "full",
    }
    assert all(got["got_frames"]), [v for v in got["got_frames"]]
    assert got["loads"][origin]["viewers"] == 2  # one viewer and the one leg
    assert got["loads"][other_worker]["viewers"] == 2
    assert got["loads"][other_worker]["relays"] == [stream]
    assert got["stopped"] == {"ok": True}
    assert got["ended"], "the viewers' tracks did not end with the stream"
    for addr in addrs:
        assert got["after"][addr]["relays"] == []
        assert got["after"][addr]["viewers"] == 0


def test_a_killed_worker_moves_its_viewers_who_view_again_within_3_s(
    server: CascadeServer,
    join: Callable[[int], Participant],  # noqa: F811  # test_app_media's fixture
) -> None:
    addrs = server.media.split(",")
    teacher, student, other = join(INSTRUCTOR), join(STUDENT1), join(STUDENT2)

    async def scenario() -> dict[str, Any]:
        await idle(server)
        publisher = Publisher()
        first, second, again = Viewer(), Viewer(), Viewer()
        try:
            published = await publish(teacher, publisher)
            assert published["ok"], published
            stream = published["stream"]
            on_origin = await view_reply(other, stream, first)
            on_other = await view_reply(student, stream, second)
            assert on_other["worker"] != on_origin["worker"], (on_origin, on_other)
            assert await decoded(second, video=5, audio=5)
            [victim] = [a for a in addrs if worker_id(a) == on_other["worker"]]
            since = (student.mark(), other.mark(), teacher.mark())
            os.kill(stats(victim)["pid"], signal.SIGKILL)
            killed = time.monotonic()
            moved = await asyncio.to_thread(
                student.wait_for,
                "media.moved",
                lambda d: d == {"worker": on_other["worker"]},
                since[0],
            )
            moved_at = time.monotonic()
            # As the page does: its view was on the moved worker, so it views again.
            viewed = await view_reply(student, stream, again)
            back = await decoded(again, video=1, audio=1, timeout=MOVED_WITHIN_S)
            back_at = time.monotonic()
            still = first.frames["video"]
            await asyncio.sleep(0.5)
            origin_kept = first.frames["video"] > still
        finally:
            for peer in (first, second, again, publisher):
                await peer.close()
        return {
            "moved": moved,
            "moved_after": moved_at - killed,
            "back_after": back_at - moved_at,
            "viewed": viewed,
            "back": back,
            "origin_kept": origin_kept,
            "teacher_events": [e for e, _ in teacher.events[since[2] :]],
            "other_events": [e for e, _ in other.events[since[1] :]],
        }

    got = asyncio.run(scenario())

    print(
        f"worker killed: media.moved after {got['moved_after']:.2f} s, the moved viewer "
        f"decoding again {got['back_after']:.2f} s after that"
    )
    assert got["viewed"]["ok"], got["viewed"]
    assert got["back"], "the moved viewer got no video"
    assert got["back_after"] <= MOVED_WITHIN_S
    assert got["origin_kept"], "the viewer on the origin lost its video"
    # The stream lives on at its origin: no reset, nobody's stream list changed.
    assert "media.reset" not in got["teacher_events"] + got["other_events"]


def test_a_killed_origin_resets_the_room_and_its_legs_are_closed(
    server: CascadeServer,
    join: Callable[[int], Participant],  # noqa: F811  # test_app_media's fixture
) -> None:
    addrs = server.media.split(",")
    teacher, student, other = join(INSTRUCTOR), join(STUDENT1), join(STUDENT2)

    async def scenario() -> dict[str, Any]:
        await idle(server)
        publisher, first, second = Publisher(), Viewer(), Viewer()
        try:
            published = await publish(teacher, publisher)
            assert published["ok"], published
            stream = published["stream"]
            on_origin = await view_reply(other, stream, first)
            on_other = await view_reply(student, stream, second)
            assert await decoded(second, video=5, audio=5)
            [origin] = [a for a in addrs if worker_id(a) == on_origin["worker"]]
            [relaying] = [a for a in addrs if worker_id(a) == on_other["worker"]]
            assert origin != relaying
            since = student.mark()
            os.kill(stats(origin)["pid"], signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.to_thread(student.wait_for, "media.reset", since=since)
            reset_after = time.monotonic() - killed

            async def leg_closed() -> bool:
                load = await asyncio.to_thread(stats, relaying)
                return load["relays"] == [] and load["viewers"] == 0

            closed = await until_async(leg_closed, timeout=5)
            ended = await until(lambda: second.ended == {"audio", "video"}, timeout=5)
        finally:
            for peer in (first, second, publisher):
                await peer.close()
        return {"reset_after": reset_after, "closed": closed, "ended": ended}

    got = asyncio.run(scenario())

    print(f"origin killed: media.reset after {got['reset_after']:.2f} s")
    assert got["closed"], "the other worker kept the dead origin's leg"
    assert got["ended"], "the viewer on the other worker was not ended"
