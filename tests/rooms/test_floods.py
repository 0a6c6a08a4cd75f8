"""One client cannot stall the server: floods, junk frames, binary attachments, connection
attempts and a reconnect storm against a real ``python app.py`` (eventlet), while honest
participants' raised hands still reach the instructor fast.

Hostile clients are hand-written engine.io/Socket.IO over websocket-client, some from other
loopback addresses (127.0.0.2 and up: Linux routes all of 127/8 to the loopback interface), so
that per-address limits do not touch the honest clients on 127.0.0.1. Honest clients are
python-socketio's. The server shares the test database and secret key; users are made here and
signed in with a session cookie, as in test_workers.py.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import secrets
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
import websocket
from flask import Flask

from accounts.models import User
from rooms import namespace, wire
from tests.live import LiveServer

pytestmark = [pytest.mark.server]

SECRET = secrets.token_hex(16)
NS = "/room"
HAND_P99_S = 0.100


@pytest.fixture(scope="module")
def server(migrated: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "DATABASE_URL": migrated,
        "SECRET_KEY": SECRET,
        "DEMO_DATA": "false",
        "MEDIA_WORKERS": "0",
    }
    with LiveServer(tmp_path_factory.mktemp("floods") / "data", env) as live:
        yield live


@pytest.fixture
def app_config() -> dict[str, object]:
    return {"SECRET_KEY": SECRET}


def cookie_of(app: Flask, user: User) -> str:
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return serializer.dumps({"_user_id": str(user.id), "_fresh": True})


class Lesson:
    """A lesson's room key, its instructor and ``n`` students, with their session cookies.

    The server bars a user it closed for a while, and SQLite gives the ids of the users an
    earlier test deleted to the next ones: so each lesson's people get ids none before had."""

    made = 0  # users made by earlier lessons in this module

    def __init__(self, app: Flask, users: Any, courses: Any, n: int) -> None:
        while users.make("student").id <= Lesson.made:
            pass
        self.instructor = users.make("instructor")
        self.students = [users.make("student") for _ in range(n)]
        course = courses.make(self.instructor, students=tuple(self.students))
        self.key = f"lesson:{courses.lesson(course, starts_in=-timedelta(minutes=5)).id}"
        self.teacher_cookie = cookie_of(app, self.instructor)
        self.cookies = [cookie_of(app, s) for s in self.students]
        self.ids = [s.id for s in self.students]
        Lesson.made = max(self.ids)


class Raw:
    """A hand-written Socket.IO client over one websocket, from ``source``."""

    def __init__(self, server: LiveServer, cookie: str | None, source: str = "127.0.0.1") -> None:
        sock = socket.create_connection(
            ("127.0.0.1", server.port), timeout=10, source_address=(source, 0)
        )
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
            socket=sock,
            cookie=f"session={cookie}" if cookie else None,
            timeout=10,
        )
        assert self.ws.recv().startswith("0{")

    def join(self, key: str) -> None:
        self.ws.send(f"40{NS},{json.dumps({'room': key})}")
        reply = self.ws.recv()
        assert reply.startswith(f"40{NS},"), reply

    def call(self, event: str, data: Any = None, ack: int = 1) -> Any:
        self.ws.send(f"42{NS},{ack}{json.dumps([event, data or {}])}")
        while True:
            frame = self.ws.recv()
            if frame == "2":  # engine.io ping
                self.ws.send("3")
            elif frame.startswith(f"43{NS},{ack}["):
                return json.loads(frame[len(f"43{NS},{ack}") :])[0]

    def closed_within(self, seconds: float) -> bool:
        """Whether the server closes the connection within ``seconds`` (reading what comes)."""
        deadline = time.monotonic() + seconds
        self.ws.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError):
                return True
            if frame in ("", None) or frame == "41" + NS or frame.startswith("1"):
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self.ws.close(timeout=1)


class Honest:
    """A python-socketio client in the room; the instructor's records when hands arrive."""

    def __init__(self, server: LiveServer, cookie: str, key: str) -> None:
        self.sio = socketio.Client(reconnection=False)
        self.raised: dict[int, float] = {}
        self.sio.on("hand.raised", self.on_raised, namespace=NS)
        self.sio.connect(
            server.url,
            headers={"Cookie": f"session={cookie}"},
            transports=["websocket"],
            namespaces=[NS],
            auth={"room": key},
            wait_timeout=10,
        )
        assert self.sio.call("state.get", {}, namespace=NS, timeout=10)["ok"]

    def on_raised(self, data: dict[str, Any]) -> None:
        self.raised[data["user_id"]] = time.monotonic()


def hand_latencies(
    server: LiveServer, lesson: Lesson, teacher: Honest, cycles: int, until: threading.Event
) -> list[float]:
    """Honest students raise and lower their hands, one after another, ``cycles`` times each
    (their bucket of 10 allows 5): seconds from each raise to the instructor hearing it."""
    students = [Honest(server, c, lesson.key) for c in lesson.cookies[:10]]
    samples = []
    try:
        for _ in range(cycles):
            for student, uid in zip(students, lesson.ids, strict=False):
                teacher.raised.pop(uid, None)
                sent = time.monotonic()
                assert student.sio.call("hand.raise", {}, namespace=NS, timeout=10)["ok"]
                deadline = time.monotonic() + 5
                while uid not in teacher.raised and time.monotonic() < deadline:
                    time.sleep(0.001)
                samples.append(teacher.raised.get(uid, sent + 5) - sent)
                assert student.sio.call("hand.lower", {}, namespace=NS, timeout=10)["ok"]
            time.sleep(0.2)
    finally:
        until.set()
        for student in students:
            student.sio.disconnect()
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def rss_mb(server: LiveServer) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def lesson(app: Flask, users: Any, courses: Any) -> Lesson:
    return Lesson(app, users, courses, 11)


def test_junk_frames_close_the_sender_and_log_no_traceback(server, lesson):
    before = server.output()
    junk = Raw(server, lesson.cookies[0])
    junk.join(lesson.key)
    for i in range(2_000):
        try:
            junk.ws.send(["4x", "4" + "9" * 50, f"42{NS},[", f"42{NS},{{}}", "45-/x,"][i % 5])
        except (websocket.WebSocketException, OSError):
            break
    assert junk.closed_within(10)
    time.sleep(0.5)
    new = server.output()[len(before) :]
    assert "Traceback" not in new
    assert new.count("strikes") == 1, new[-2000:]
    with pytest.raises(websocket.WebSocketBadStatusException):  # kept out for a while
        Raw(server, lesson.cookies[0])
    assert Raw(server, lesson.cookies[1]).ws.connected  # nobody else is


def attach_flood(server: LiveServer, cookie: str, key: str, frames: int) -> int:
    """Announce 999,999 binary attachments, then send ``frames`` 60 kB parts; bytes sent."""
    attacker = Raw(server, cookie)
    attacker.join(key)
    attacker.ws.send(f'45999999-{NS},["chat.send",{{"_placeholder":true,"num":0}}]')
    sent = 0
    with contextlib.suppress(websocket.WebSocketException, OSError):
        for _ in range(frames):
            attacker.ws.send_binary(b"\0" * 60_000)
            sent += 60_000
    assert attacker.closed_within(10)
    return sent


def test_too_many_attachments_are_refused_without_memory_growth(server, lesson):
    # Two floods first pay the code paths' own cost. The frames read before the refusal (about
    # 4 MB) may still show in RSS where the allocator keeps them, so the bound is a tenth of
    # what was offered: keeping the attachments would grow it by all 120 MB.
    for warm_up in (3, 4):
        attach_flood(server, lesson.cookies[warm_up], lesson.key, 2000)
    baseline = rss_mb(server)
    sent = attach_flood(server, lesson.cookies[0], lesson.key, 2000)  # 120 MB offered
    assert sent < 20_000_000  # refused long before the end
    assert rss_mb(server) - baseline < 12, (baseline, rss_mb(server), sent)


@pytest.mark.parametrize("signed_in", [False, True])
def test_the_default_namespace_and_anonymous_handshakes_are_refused(server, lesson, signed_in):
    headers = {"Cookie": f"session={lesson.cookies[1]}"} if signed_in else {}
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server.url, headers=headers, transports=["websocket"], namespaces=["/"])
    if not signed_in:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/socket.io/?EIO=4&transport=polling")
        assert refused.value.code == 401


EVENT_NAMES = ["state.get", "connect", "disconnect", *namespace.EVENTS]


def flood(port: int, cookie: str, key: str, seconds: float, closed: Any, refused: Any) -> None:
    """One student floods each event in turn without waiting for replies (2,000 packets a
    connection, about 0.03 s of traffic), reconnecting whenever closed, for ``seconds``; in a
    process of its own, so that its loop does not hold this process's GIL."""
    server = LiveServer.__new__(LiveServer)
    server.port = port
    i, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            flooder = Raw(server, cookie, source="127.0.0.2")
            flooder.join(key)
        except (websocket.WebSocketException, OSError, AssertionError):
            refused.value += 1  # barred after being closed
            time.sleep(0.05)
            continue
        try:
            for n in range(2_000):
                flooder.ws.send(f"42{NS},{n}{json.dumps([EVENT_NAMES[i % len(EVENT_NAMES)], {}])}")
                i += 1
            if flooder.closed_within(5):
                closed.value += 1
        except (websocket.WebSocketException, OSError):
            closed.value += 1  # the server stopped reading
        flooder.close()


@pytest.mark.slow
def test_a_flood_of_every_event_is_throttled_and_hands_stay_fast(server, lesson):
    teacher = Honest(server, lesson.teacher_cookie, lesson.key)
    context = multiprocessing.get_context("fork")
    closed, refused = context.Value("i", 0), context.Value("i", 0)
    flooder = context.Process(
        target=flood, args=(server.port, lesson.cookies[10], lesson.key, 8.0, closed, refused)
    )
    flooder.start()
    try:
        time.sleep(1)
        samples = hand_latencies(server, lesson, teacher, 4, threading.Event())
    finally:
        flooder.join(15)
        flooder.kill()
        teacher.sio.disconnect()
    print(f"flood: closed {closed.value}, refused {refused.value}; hand p99 {p99(samples):.3f} s")
    assert closed.value >= 1 and refused.value >= 10  # closed, then kept out for a while
    assert p99(samples) <= HAND_P99_S, sorted(samples)[-5:]
    assert "Traceback" not in server.output()


@pytest.mark.slow
def test_a_thousand_connection_attempts_from_one_address_are_capped(server, lesson):
    codes: dict[int, int] = {}
    started = time.monotonic()
    for i in range(1_000):
        cookie = lesson.cookies[2] if i % 2 else None
        conn = socket.create_connection(
            ("127.0.0.1", server.port), timeout=10, source_address=("127.0.0.3", 0)
        )
        headers = f"Cookie: session={cookie}\r\n" if cookie else ""
        conn.sendall(
            f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n{headers}"
            "Connection: close\r\n\r\n".encode()
        )
        status = int(conn.makefile("rb").readline().split()[1])
        codes[status] = codes.get(status, 0) + 1
        conn.close()
    elapsed = time.monotonic() - started
    # Only signed-in attempts can be admitted, at most the user's cap of open connections.
    assert codes.get(200, 0) <= 20, (codes, elapsed)
    assert codes.get(401, 0) >= 980, codes
    honest = Honest(server, lesson.teacher_cookie, lesson.key)
    honest.sio.disconnect()


@pytest.mark.slow
def test_a_reconnect_storm_keeps_hands_fast_and_memory_returns(server, app, users, courses):
    """A storm of 1,200 connections (150 students with 4 tabs each, from 30 loopback
    addresses, connecting, asking state.get and closing, twice over) while ten honest students
    raise hands: about a classroom's worth of reconnects per second that two shared cores
    serve in about 20 s."""
    storm = Lesson(app, users, courses, 150)
    teacher = Honest(server, storm.teacher_cookie, storm.key)
    done, served, refused = threading.Event(), [0], [0]

    def reconnect_storm(rounds: int) -> None:
        for _ in range(rounds):
            clients = []
            for _tab in range(4):
                for n, cookie in enumerate(storm.cookies):
                    try:
                        client = Raw(server, cookie, source=f"127.0.1.{n % 30 + 1}")
                        client.join(storm.key)
                        clients.append(client)
                    except (websocket.WebSocketException, OSError, AssertionError):
                        refused[0] += 1
            for client in clients:
                try:
                    if client.call("state.get")["ok"]:
                        served[0] += 1
                finally:
                    client.close()

    # The baseline: the server's memory once it has seen storms. The allocator keeps the high
    # water mark of the first ones (measured: 146, 156, 160, 161, 161 MB after rounds 1-5).
    reconnect_storm(4)
    time.sleep(2.5)  # snapshots kept expire
    baseline, served[0] = rss_mb(server), 0
    storm_thread = threading.Thread(target=reconnect_storm, args=(2,), daemon=True)
    storm_thread.start()
    samples = hand_latencies(server, storm, teacher, 4, done)
    storm_thread.join(60)
    peak = rss_mb(server)
    teacher.sio.disconnect()
    time.sleep(3)
    after = rss_mb(server)
    print(
        f"storm: {served[0]} served, {refused[0]} refused; RSS {baseline:.0f} -> {peak:.0f}"
        f" -> {after:.0f} MB; hand p99 {p99(samples) * 1000:.0f} ms"
    )
    assert not storm_thread.is_alive()
    assert served[0] >= 1_000
    assert p99(samples) <= HAND_P99_S, sorted(samples)[-5:]
    # A second storm keeps nothing: a leak would keep what 1,200 connections took. One CI run
    # saw 10.0 MB kept after three warm-up storms (the allocator's high water mark still rising).
    assert after - baseline < 15, (baseline, peak, after)


def test_too_deep_check_is_cheap_and_exact() -> None:
    assert not wire.too_deep("[" * 20 + "]" * 20)
    assert wire.too_deep("[" * 21 + "]" * 21)
    assert not wire.too_deep(json.dumps({"text": "[" * 5000}))
    started = time.perf_counter()
    assert wire.too_deep("[" * 50_000 + "]" * 50_000)
    assert time.perf_counter() - started < 0.05
