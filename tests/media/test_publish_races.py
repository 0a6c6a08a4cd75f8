"""A publish never outlives its grant or its connection: the races seen with real clients.

``python app.py`` talks to its media worker through a gate in this process that can hold a
``publish`` request while the room changes, then let it through: the grant is withdrawn (the
hand lowered) or the publisher disconnects while the worker is answering. Before the fix
the stream was then recorded and announced anyway (a few milliseconds' window with real
clients; the gate makes it every time). Now the web app re-checks as it records the stream,
closes it on the worker and announces nothing. Malformed offers never get as far as the gate.
"""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from media import sdp
from media.channel import MediaChannel
from tests.live import LiveServer

from .conftest import SECRET, Publisher, WorkerProcess, start_worker, stop_process, until
from .test_app_media import (
    NAMESPACE,
    SECRET_KEY,
    Participant,
    cookies,
    joining,
    publish,
    stream_ids,
)
from .test_sdp import offers, port_zero, without

pytestmark = pytest.mark.server

__all__ = ["cookies"]  # the fixture, shared with test_app_media
INSTRUCTOR, SPEAKER = 1, 2
HOLD_TIMEOUT_S = 20.0


class Gate(socketserver.ThreadingTCPServer):
    """A forwarder to the worker that, while armed, holds each ``publish`` until released."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, worker: str) -> None:
        super().__init__(("127.0.0.1", 0), GateHandler)
        self.worker = worker
        self.armed = False
        self.arrived = threading.Event()  # an armed publish is being held
        self.release = threading.Event()  # let it through
        self.answered = threading.Event()  # the worker's answer to it went back

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def arm(self) -> None:
        for event in (self.arrived, self.release, self.answered):
            event.clear()
        self.armed = True

    def hold(self, line: bytes) -> bool:
        """Called for each request: hold an armed publish until the test releases it."""
        if not (self.armed and json.loads(line).get("op") == "publish"):
            return False
        self.armed = False
        self.arrived.set()
        self.release.wait(HOLD_TIMEOUT_S)
        return True


class GateHandler(socketserver.StreamRequestHandler):
    server: Gate

    def handle(self) -> None:
        line = self.rfile.readline()
        if not line:
            return
        held = self.server.hold(line)
        host, _, port = self.server.worker.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=HOLD_TIMEOUT_S) as upstream:
            upstream.sendall(line)
            self.wfile.write(upstream.makefile("rb").readline())
        if held:
            self.server.answered.set()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    started = start_worker(tmp_path_factory.mktemp("races") / "worker.log")
    try:
        yield started
    finally:
        stop_process(started.proc)


@pytest.fixture(scope="module")
def gate(worker: WorkerProcess) -> Iterator[Gate]:
    server = Gate(worker.addr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gate: Gate) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("races-app") / "data"
    env = {
        "SECRET_KEY": SECRET_KEY,
        "DEMO_DATA": "true",
        "MEDIA_WORKER_ADDRS": gate.addr,
        "MEDIA_SECRET": SECRET,
    }
    with LiveServer(data, env) as started:
        yield started


@pytest.fixture
def join(
    server: LiveServer, cookies: Callable[[int], str]
) -> Iterator[Callable[[int], Participant]]:
    with joining(server.url, cookies, Participant) as connect:
        yield connect


def worker_streams(worker: WorkerProcess) -> int:
    return int(MediaChannel([worker.addr], timeout=5).call(worker.addr, "stats")["streams"])


async def held_publish(
    gate: Gate, who: Participant, publisher: Publisher, meanwhile: Callable[[], None]
) -> dict[str, Any]:
    """``who`` publishes; while the request is held at the gate, ``meanwhile`` runs."""
    gate.arm()
    sending = asyncio.ensure_future(publish(who, publisher))
    try:
        assert await asyncio.to_thread(gate.arrived.wait, HOLD_TIMEOUT_S), "no publish came"
        await asyncio.to_thread(meanwhile)
    finally:
        gate.release.set()
    return await sending


def speakers_streams(watcher: Participant, since: int) -> set[str]:
    """Every stream of the speaker's that ``media.streams`` announced to ``watcher``."""
    return {
        s["id"]
        for event, data in watcher.events[since:]
        if event == "media.streams"
        for s in data["streams"]
        if s["user_id"] == SPEAKER
    }


def call_on(teacher: Participant, speaker: Participant) -> None:
    teacher.call("hand.lower", {"user_id": SPEAKER})  # whatever an earlier test left
    assert speaker.call("hand.raise")["ok"]
    assert teacher.call("hand.call", {"user_id": SPEAKER})["ok"]


def test_a_hand_lowered_while_the_worker_answers_leaves_no_stream(
    worker: WorkerProcess, gate: Gate, join: Callable[[int], Participant]
) -> None:
    teacher, speaker = join(INSTRUCTOR), join(SPEAKER)
    call_on(teacher, speaker)
    since = teacher.mark()

    def lower() -> None:
        assert teacher.call("hand.lower", {"user_id": SPEAKER}) == {"ok": True}

    async def scenario() -> dict[str, Any]:
        first, second = Publisher(), Publisher()
        try:
            raced = await held_publish(gate, speaker, first, lower)
            closed = await until(lambda: worker_streams(worker) == 0, timeout=5)
            # Called on again, the same speaker publishes: the gate lets an unraced one through.
            await asyncio.to_thread(call_on, teacher, speaker)
            again = await publish(speaker, second)
            assert again["ok"], again
            await asyncio.to_thread(
                teacher.wait_for,
                "media.streams",
                lambda d: again["stream"] in stream_ids(d),
                since,
            )
            state = await asyncio.to_thread(teacher.state)
        finally:
            await first.close()
            await second.close()
        return {"raced": raced, "closed": closed, "again": again, "state": state}

    got = asyncio.run(scenario())

    assert got["raced"]["ok"] is False
    assert "may not publish" in got["raced"]["error"]
    assert got["closed"], "the raced stream was left running on the worker"
    assert stream_ids(got["state"]) == {got["again"]["stream"]}
    assert speakers_streams(teacher, since) == {got["again"]["stream"]}  # never the raced one


def test_a_publisher_gone_while_the_worker_answers_leaves_no_stream(
    worker: WorkerProcess, gate: Gate, join: Callable[[int], Participant]
) -> None:
    teacher, speaker = join(INSTRUCTOR), join(SPEAKER)
    call_on(teacher, speaker)  # the grant stays: only the closed connection stops it
    since = teacher.mark()

    async def scenario() -> dict[str, Any]:
        publisher = Publisher()
        try:
            offer = {"sdp": await publisher.offer(), "source": "camera"}
            gate.arm()
            # No acknowledgement is awaited: the connection it would come back on is closed.
            speaker.sio.emit("media.publish", offer, namespace=NAMESPACE)
            assert await asyncio.to_thread(gate.arrived.wait, HOLD_TIMEOUT_S), "no publish came"
            await asyncio.to_thread(speaker.sio.disconnect)
            await asyncio.to_thread(
                teacher.wait_for, "presence.leave", lambda d: d["user_id"] == SPEAKER, since
            )
            gate.release.set()
            assert await asyncio.to_thread(gate.answered.wait, HOLD_TIMEOUT_S), "no answer"
            closed = await until(lambda: worker_streams(worker) == 0, timeout=5)
            await asyncio.sleep(0.3)  # an announcement would have arrived by now
            state = await asyncio.to_thread(teacher.state)
        finally:
            gate.release.set()
            await publisher.close()
        return {"closed": closed, "state": state}

    got = asyncio.run(scenario())

    assert got["closed"], "the raced stream was left running on the worker"
    assert got["state"]["streams"] == []
    assert speakers_streams(teacher, since) == set()


def test_malformed_offers_are_refused_before_the_worker_or_the_room_hear_of_them(
    worker: WorkerProcess, gate: Gate, join: Callable[[int], Participant]
) -> None:
    teacher, student = join(INSTRUCTOR), join(SPEAKER)
    since = student.mark()
    answer = asyncio.run(offers())["answer"]

    async def scenario() -> list[dict[str, Any]]:
        publisher = Publisher()
        try:
            good = await publisher.offer()
            gate.arm()  # a publish that reached the worker would be held here
            replies = []
            for broken in (without("a=fingerprint:")(good), answer, port_zero(good)):
                request = {"sdp": broken, "source": "camera"}
                replies.append(await asyncio.to_thread(teacher.call, "media.publish", request))
            return replies
        finally:
            gate.armed = False
            await publisher.close()

    replies = asyncio.run(scenario())

    assert [r["ok"] for r in replies] == [False, False, False]
    assert [r["error"] for r in replies] == [sdp.NO_FINGERPRINT, sdp.NOT_AN_OFFER, sdp.PORT_ZERO]
    assert not gate.arrived.is_set()
    assert worker_streams(worker) == 0
    assert student.state()["streams"] == []
    assert [e for e, _ in student.events[since:] if e == "media.streams"] == []
