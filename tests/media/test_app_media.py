"""Media through the whole app: ``python app.py`` with one media worker, real Socket.IO clients.

The server runs on its own demo data (instructor user 1, student1 user 2, student2 user 3,
lesson 1 live); the clients carry session cookies signed here with the server's secret key.
Offers and answers travel over Socket.IO (``media.publish``, ``media.view``), media over
loopback between the aiortc peers here and the server's media worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pytest
import socketio

from lectern import create_app
from media.channel import MediaChannel
from tests.live import LiveServer

from .conftest import Publisher, Viewer, until

pytestmark = pytest.mark.server

SECRET_KEY = secrets.token_hex(16)
NAMESPACE = "/room"
ROOM = "lesson:1"
INSTRUCTOR, STUDENT1, STUDENT2 = 1, 2, 3
EVENT_TIMEOUT_S = 10.0
MEDIA_CALL_TIMEOUT_S = 20.0  # the server waits up to 15 s for its media worker
BACK_WITHIN_S = 5.0  # the bound: a media worker SIGKILLed -> viewers decode again


class Server(LiveServer):
    """``python app.py`` with one media worker, whose address it printed in ``media``."""

    media = ""

    def media_stats(self) -> dict[str, Any]:
        return MediaChannel([self.media], timeout=5).call(self.media, "stats")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("app-media") / "data"
    env = {"SECRET_KEY": SECRET_KEY, "MEDIA_WORKERS": "1", "DEMO_DATA": "true"}
    with Server(data, env) as started:
        started.media = started.wait_for_output(r"^Media workers: (\S+)$").group(1)
        yield started


@pytest.fixture(autouse=True)
def server_output(request: pytest.FixtureRequest, server: Server) -> Iterator[None]:
    """Show the server's output when a test here fails."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        print(f"--- output of the server on port {server.port} ---\n{server.output()}")


@pytest.fixture(scope="module")
def cookies(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], str]:
    """Session cookies for the server's users, signed with its secret key."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "DATA_DIR": str(tmp_path_factory.mktemp("cookie-app")),
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "REDIS_URL": None,
            "DEMO_DATA": False,
        }
    )
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    name = app.config["SESSION_COOKIE_NAME"]

    def cookie(user_id: int) -> str:
        return f"{name}={serializer.dumps({'_user_id': str(user_id), '_fresh': True})}"

    return cookie


@dataclass
class Participant:
    """A Socket.IO client in a room (the lesson's, unless a subclass names another) that
    records every event it receives."""

    room: ClassVar[str] = ROOM
    user_id: int
    sio: socketio.Client = field(default_factory=lambda: socketio.Client(reconnection=False))
    events: list[tuple[str, Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def join(self, url: str, cookie: str) -> None:
        self.sio.on("*", self.record, namespace=NAMESPACE)
        self.sio.connect(
            url,
            headers={"Cookie": cookie},
            transports=["websocket"],
            namespaces=[NAMESPACE],
            auth={"room": self.room},
            wait_timeout=EVENT_TIMEOUT_S,
        )

    def record(self, event: str, data: Any = None) -> None:
        with self.arrived:
            self.events.append((event, data))
            self.arrived.notify_all()

    def call(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Emit ``event`` and return its acknowledgement."""
        timeout = MEDIA_CALL_TIMEOUT_S if event.startswith("media.") else EVENT_TIMEOUT_S
        reply: dict[str, Any] = self.sio.call(
            event, data or {}, namespace=NAMESPACE, timeout=timeout
        )
        return reply

    def state(self) -> dict[str, Any]:
        reply = self.call("state.get")
        assert reply["ok"], reply
        state: dict[str, Any] = reply["state"]
        return state

    def mark(self) -> int:
        """Where the events received from now on begin."""
        with self.arrived:
            return len(self.events)

    def wait_for(
        self,
        event: str,
        match: Callable[[Any], bool] = lambda _: True,
        since: int = 0,
        timeout: float = EVENT_TIMEOUT_S,
    ) -> Any:
        """The data of the first ``event`` from ``since`` on that matches; fails on timeout."""

        def found() -> tuple[str, Any] | None:
            return next((e for e in self.events[since:] if e[0] == event and match(e[1])), None)

        with self.arrived:
            self.arrived.wait_for(lambda: found() is not None, timeout=timeout)
            hit = found()
        assert hit is not None, f"no matching {event} in {timeout} s; got {self.events[since:]}"
        return hit[1]


P = TypeVar("P", bound=Participant)


@contextlib.contextmanager
def joining(url: str, cookies: Callable[[int], str], kind: type[P]) -> Iterator[Callable[[int], P]]:
    """``connect(user_id)`` joins a user to ``kind``'s room on the server at ``url``; every
    one still connected is disconnected at the end."""
    joined: list[P] = []

    def connect(user_id: int) -> P:
        participant = kind(user_id)
        participant.join(url, cookies(user_id))
        joined.append(participant)
        return participant

    yield connect
    for participant in joined:
        if participant.sio.connected:
            participant.sio.disconnect()


@pytest.fixture
def join(server: Server, cookies: Callable[[int], str]) -> Iterator[Callable[[int], Participant]]:
    """Connects users to the lesson's room; every one is disconnected after the test."""
    with joining(server.url, cookies, Participant) as connect:
        yield connect


def stream_ids(data: dict[str, Any]) -> set[str]:
    return {s["id"] for s in data["streams"]}


async def publish(who: Participant, publisher: Publisher) -> dict[str, Any]:
    """``media.publish`` with ``publisher``'s offer; the answer is applied when it is given."""
    offer = {"sdp": await publisher.offer(), "source": "camera"}
    reply = await asyncio.to_thread(who.call, "media.publish", offer)
    if reply.get("ok"):
        await publisher.answer(reply["sdp"])
    return reply


async def watch(who: Participant, stream: str, viewer: Viewer) -> dict[str, Any]:
    """``media.view`` of ``stream`` with ``viewer``'s offer; the answer is applied."""
    request = {"stream": stream, "sdp": await viewer.offer()}
    reply = await asyncio.to_thread(who.call, "media.view", request)
    assert reply.get("ok"), reply
    await viewer.answer(reply["sdp"])
    return reply


async def decoded(viewer: Viewer, video: int, audio: int, timeout: float = 8) -> bool:
    return await until(
        lambda: viewer.frames["video"] >= video and viewer.frames["audio"] >= audio, timeout
    )


def test_instructor_publishes_and_a_student_decodes_it(join: Callable[[int], Participant]) -> None:
    teacher, student = join(INSTRUCTOR), join(STUDENT1)
    since = student.mark()

    async def scenario() -> dict[str, Any]:
        publisher, viewer = Publisher(), Viewer()
        try:
            published = await publish(teacher, publisher)
            assert published["ok"], published
            announced = await asyncio.to_thread(
                student.wait_for,
                "media.streams",
                lambda d: published["stream"] in stream_ids(d),
                since,
            )
            state = await asyncio.to_thread(student.state)
            await watch(student, published["stream"], viewer)
            got_frames = await decoded(viewer, video=30, audio=25)
        finally:
            await viewer.close()
            await publisher.close()
        return {
            "stream": published["stream"],
            "announced": announced,
            "state": state,
            "got_frames": got_frames,
            "frames": viewer.frames,
            "sizes": viewer.sizes,
        }

    got = asyncio.run(scenario())

    [stream] = [s for s in got["announced"]["streams"] if s["id"] == got["stream"]]
    assert stream["user_id"] == INSTRUCTOR
    assert stream["source"] == "camera"
    assert got["stream"] in stream_ids(got["state"])
    assert got["state"]["ice_servers"] == []
    assert got["got_frames"], got["frames"]
    assert got["sizes"] == {(320, 240)}


def test_student_may_not_publish_uncalled(join: Callable[[int], Participant]) -> None:
    student = join(STUDENT1)

    async def scenario() -> dict[str, Any]:
        publisher = Publisher()
        try:
            return await publish(student, publisher)
        finally:
            await publisher.close()

    reply = asyncio.run(scenario())

    assert reply["ok"] is False
    assert "may not publish" in reply["error"]


def test_called_on_student_publishes_until_the_hand_is_lowered(
    join: Callable[[int], Participant],
) -> None:
    teacher, speaker, listener = join(INSTRUCTOR), join(STUDENT1), join(STUDENT2)
    assert speaker.call("hand.raise")["ok"]
    called = teacher.call("hand.call", {"user_id": STUDENT1})
    assert called == {"ok": True, "user_id": STUDENT1}

    async def scenario() -> dict[str, Any]:
        publisher, viewer, again = Publisher(), Viewer(), Publisher()
        try:
            published = await publish(speaker, publisher)
            assert published["ok"], published
            await watch(listener, published["stream"], viewer)
            got_frames = await decoded(viewer, video=15, audio=15)
            since = listener.mark()
            lowered = await asyncio.to_thread(teacher.call, "hand.lower", {"user_id": STUDENT1})
            removed = await asyncio.to_thread(
                listener.wait_for,
                "media.streams",
                lambda d: published["stream"] not in stream_ids(d),
                since,
            )
            tracks_ended = await until(lambda: viewer.ended == {"video", "audio"}, timeout=5)
            refused = await publish(speaker, again)
        finally:
            for peer in (viewer, publisher, again):
                await peer.close()
        return {
            "got_frames": got_frames,
            "frames": viewer.frames,
            "lowered": lowered,
            "removed": removed,
            "tracks_ended": tracks_ended,
            "refused": refused,
        }

    got = asyncio.run(scenario())

    assert got["got_frames"], got["frames"]
    assert got["lowered"] == {"ok": True}
    assert all(s["user_id"] != STUDENT1 for s in got["removed"]["streams"])
    assert got["tracks_ended"], "the listener's tracks did not end"
    assert got["refused"]["ok"] is False  # the grant went with the hand
    assert "may not publish" in got["refused"]["error"]


def test_publishers_disconnect_removes_the_stream(join: Callable[[int], Participant]) -> None:
    teacher, student = join(INSTRUCTOR), join(STUDENT1)
    since = student.mark()

    async def scenario() -> tuple[str, dict[str, Any], dict[str, Any]]:
        publisher = Publisher()
        try:
            published = await publish(teacher, publisher)
            assert published["ok"], published
            stream = published["stream"]
            await asyncio.to_thread(
                student.wait_for, "media.streams", lambda d: stream in stream_ids(d), since
            )
            left = student.mark()
            await asyncio.to_thread(teacher.sio.disconnect)
            removed = await asyncio.to_thread(
                student.wait_for, "media.streams", lambda d: stream not in stream_ids(d), left
            )
            state = await asyncio.to_thread(student.state)
        finally:
            await publisher.close()
        return stream, removed, state

    stream, removed, state = asyncio.run(scenario())

    assert stream not in stream_ids(removed)
    assert stream not in stream_ids(state)


def test_killed_media_worker_resets_the_room(
    server: Server, join: Callable[[int], Participant]
) -> None:
    teacher, student = join(INSTRUCTOR), join(STUDENT1)
    before = server.media_stats()

    async def scenario() -> dict[str, Any]:
        first, second, viewer = Publisher(), Publisher(), Viewer()
        try:
            published = await publish(teacher, first)
            assert published["ok"], published
            # The room's announcement of this stream may reach the student after the ack
            # reached the teacher: let it arrive before marking where the reset begins.
            await asyncio.to_thread(
                student.wait_for, "media.streams", lambda d: published["stream"] in stream_ids(d)
            )
            since = (teacher.mark(), student.mark())
            os.kill(before["pid"], signal.SIGKILL)
            started = time.monotonic()
            for who, mark in zip((teacher, student), since, strict=True):
                await asyncio.to_thread(who.wait_for, "media.reset", since=mark)
            reset_after = time.monotonic() - started
            state = await asyncio.to_thread(student.state)
            again = await publish(teacher, second)
            assert again["ok"], again
            await watch(student, again["stream"], viewer)
            await decoded(viewer, video=1, audio=1)
            back_after = time.monotonic() - started  # the kill -> the viewer decodes again
            got_frames = await decoded(viewer, video=10, audio=10)
        finally:
            for peer in (viewer, first, second):
                await peer.close()
        return {
            "stream": published["stream"],
            "reset_after": reset_after,
            "back_after": back_after,
            "state": state,
            "again": again,
            "got_frames": got_frames,
            "frames": viewer.frames,
            "last_streams": student.wait_for("media.streams", since=since[1]),
        }

    got = asyncio.run(scenario())
    after = server.media_stats()

    print(
        f"media worker killed: reset after {got['reset_after']:.2f} s, viewer decoding again "
        f"after {got['back_after']:.2f} s"
    )
    assert got["reset_after"] < 8.0, got["reset_after"]
    assert got["back_after"] <= BACK_WITHIN_S, got["back_after"]
    assert got["last_streams"] == {"streams": []}  # announced with the reset
    assert got["state"]["streams"] == []
    assert got["again"]["stream"] != got["stream"]
    assert got["got_frames"], got["frames"]
    assert after["pid"] != before["pid"]


def test_a_room_set_to_record_automatically_starts_when_someone_publishes(
    join: Callable[[int], Participant],
) -> None:
    teacher, student = join(INSTRUCTOR), join(STUDENT1)
    refused = student.call("recording.auto", {"on": True})
    assert refused["ok"] is False  # students do not decide about recording
    assert teacher.call("recording.auto", {"on": True}) == {"ok": True, "on": True}
    assert student.state()["room"]["auto_record"] is True
    since = student.mark()

    async def scenario() -> dict[str, Any]:
        publisher = Publisher()
        try:
            published = await publish(teacher, publisher)
            assert published["ok"], published
            started = await asyncio.to_thread(
                student.wait_for, "recording.state", lambda d: d["recording"] is not None, since
            )
            await asyncio.sleep(1.5)
            stopped = await asyncio.to_thread(teacher.call, "recording.stop")
        finally:
            await publisher.close()
        return {"started": started, "stopped": stopped}

    try:
        got = asyncio.run(scenario())
    finally:
        teacher.call("recording.auto", {"on": False})
    assert got["started"]["recording"]["status"] == "recording"
    assert got["stopped"]["ok"] and got["stopped"]["recording"]["status"] == "ready"
    assert teacher.state()["room"]["auto_record"] is False
