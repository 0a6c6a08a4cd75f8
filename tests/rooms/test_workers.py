"""Two real web worker processes serve one live room, joined through Redis.

Each worker is ``python app.py`` (eventlet) on its own loopback port, both on the test database,
the same secret key and one Redis channel unique to this run. A participant on one worker must
see what a participant on the other one does; what the server refuses must reach no one.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import redis
import socketio
from flask import Flask

from accounts.models import User
from tests.live import LiveServer

from .conftest import in_ci

pytestmark = [pytest.mark.redis, pytest.mark.server]

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = secrets.token_hex(16)  # shared by the workers and the cookies signed here
CHANNEL = f"lectern-test-{uuid.uuid4().hex}"  # this run's own: parallel runs never cross-talk
NAMESPACE = "/room"
EVENT_TIMEOUT_S = 5.0


def require_redis() -> None:
    """Skip without Redis on a developer's machine; CI must have it."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if in_ci():
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")


@pytest.fixture(scope="module")
def workers(migrated: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    """Two workers on the migrated test database and one Redis channel of their own."""
    require_redis()
    base = tmp_path_factory.mktemp("workers")
    env = {
        "DATABASE_URL": migrated,
        "SECRET_KEY": SECRET,
        "REDIS_URL": REDIS_URL,
        "SOCKETIO_CHANNEL": CHANNEL,
        "DEMO_DATA": "false",
        "MEDIA_WORKERS": "0",  # signaling only: no media worker processes
    }
    started = [LiveServer(base / name, env) for name in ("worker1", "worker2")]
    try:
        for worker in started:
            worker.launch()  # both start at once
        for worker in started:
            worker.wait_until_serving()
        yield started
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture(autouse=True)
def worker_output(request: pytest.FixtureRequest, workers: list[LiveServer]) -> Iterator[None]:
    """Show both workers' output when a test here fails."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        for worker in workers:
            print(f"--- output of the worker on port {worker.port} ---\n{worker.output()}")


@pytest.fixture
def app_config() -> dict[str, object]:
    """The test app signs session cookies with the workers' secret key."""
    return {"SECRET_KEY": SECRET}


def session_cookie(app: Flask, user: User) -> str:
    """A signed Flask-Login session for ``user``, as the browser would hold it after sign-in."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return serializer.dumps({"_user_id": str(user.id), "_fresh": True})


@dataclass
class Participant:
    """A real Socket.IO client in one live room that records every event it receives."""

    sio: socketio.Client = field(default_factory=lambda: socketio.Client(reconnection=False))
    events: list[tuple[str, Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def join(self, url: str, cookie: str, room: str) -> dict[str, Any]:
        """Connect to ``room`` and return its state, as the browser client does."""
        self.sio.on("*", self.record, namespace=NAMESPACE)
        self.sio.connect(
            url,
            headers={"Cookie": f"session={cookie}"},
            transports=["websocket"],
            namespaces=[NAMESPACE],
            auth={"room": room},
            wait_timeout=EVENT_TIMEOUT_S,
        )
        reply = self.call("state.get")
        assert reply["ok"], reply
        return reply["state"]

    def record(self, event: str, data: Any = None) -> None:
        with self.arrived:
            self.events.append((event, data))
            self.arrived.notify_all()

    def call(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Emit ``event`` and return its acknowledgement."""
        return self.sio.call(event, data or {}, namespace=NAMESPACE, timeout=EVENT_TIMEOUT_S)

    def wait_for(self, event: str, match: Callable[[Any], bool] = lambda _: True) -> int:
        """Index of the first ``event`` whose data matches; fails after EVENT_TIMEOUT_S."""

        def found() -> int | None:
            return next(
                (i for i, (e, d) in enumerate(self.events) if e == event and match(d)), None
            )

        with self.arrived:
            self.arrived.wait_for(lambda: found() is not None, timeout=EVENT_TIMEOUT_S)
            index = found()
        assert index is not None, f"no {event} within {EVENT_TIMEOUT_S} s; got {self.events}"
        return index

    def named(self, prefix: str) -> list[str]:
        with self.arrived:
            return [e for e, _ in self.events if e.startswith(prefix)]


@pytest.fixture
def lesson_room(app: Flask, users: Any, courses: Any) -> tuple[str, User, User]:
    """A lesson's room key, its instructor and one enrolled student."""
    instructor = users.make("instructor")
    student = users.make("student")
    course = courses.make(instructor, students=(student,))
    lesson = courses.lesson(course, starts_in=-timedelta(minutes=5))
    return f"lesson:{lesson.id}", instructor, student


@dataclass
class Pair:
    """The lesson's instructor on worker 2 and its student on worker 1, both in its room."""

    teacher: Participant
    learner: Participant
    student_id: int


@pytest.fixture
def pair(
    app: Flask, workers: list[LiveServer], lesson_room: tuple[str, User, User]
) -> Iterator[Pair]:
    key, instructor, student = lesson_room
    teacher, learner = Participant(), Participant()
    try:
        teacher.join(workers[1].url, session_cookie(app, instructor), key)
        learner.join(workers[0].url, session_cookie(app, student), key)
        yield Pair(teacher, learner, student.id)
    finally:
        for participant in (learner, teacher):
            participant.sio.disconnect()


def test_both_workers_listen_on_this_runs_redis_channel(pair: Pair) -> None:
    """A worker subscribes once it has had a client: each has one here."""
    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while (listeners := client.pubsub_numsub(CHANNEL)[0][1]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the subscription is made by a background thread: poll for it

    assert listeners == 2


def test_hand_raised_on_one_worker_reaches_the_instructor_on_the_other(pair: Pair) -> None:
    reply = pair.learner.call("hand.raise")

    assert reply == {"ok": True, "position": 1}
    pair.teacher.wait_for("hand.raised", lambda d: d["user_id"] == pair.student_id)


def test_question_asked_on_one_worker_reaches_the_instructor_on_the_other(pair: Pair) -> None:
    reply = pair.learner.call("question.ask", {"text": "Who has seen a standing wave?"})

    assert reply["ok"], reply
    asked = reply["question"]["id"]
    pair.teacher.wait_for("question.update", lambda d: d["id"] == asked)


def test_refused_event_reaches_no_one(pair: Pair) -> None:
    refused = pair.learner.call("hand.lower_all")
    # A later allowed event from the same worker travels the same Redis channel, in order:
    # anything the refused one had sent would arrive before it.
    pair.learner.call("hand.raise")
    raised = pair.teacher.wait_for("hand.raised", lambda d: d["user_id"] == pair.student_id)

    assert refused["ok"] is False
    assert "may not" in refused["error"]
    assert [e for e, _ in pair.teacher.events[:raised] if e.startswith("hand.")] == []
    assert "hand.state" not in pair.learner.named("hand.")
