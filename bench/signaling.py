"""Signaling load on one web worker: N attendees in one broadcast room, measured end to end.

    python bench/signaling.py --clients N [--procs K] [--green] [--weighted]
    DATABASE_URL=postgresql+psycopg://... python bench/signaling.py --clients N --green \
        --web-workers 2 --nginx

With ``--web-workers W`` (W > 1) it starts W web workers on the same database (PostgreSQL,
from DATABASE_URL) and a ``redis-server`` of its own on a free loopback port as their message
queue; ``--nginx`` puts Debian's nginx in front of them, configured as deploy/ configures it (the
site of ``deploy/nginx/lectern.conf``, TLS with a throwaway certificate, sticky routing by a
route cookie), and every client connects through it with a random route cookie of its own, so
the audience spreads over the workers as browsers would (``per_worker``: attendees per web
worker, from the presence rows). A hand raised on one worker then reaches the host on another
through Redis, and a question's fan-out crosses every worker.

Builds its own data folder and SQLite database (or uses DATABASE_URL), one host and N attendees
registered for one broadcast, starts one ``python app.py`` worker (eventlet) on a free loopback
port, and connects N real Socket.IO clients from K processes. aiohttp is not installed, so
``socketio.AsyncClient`` cannot run: each process drives its share with the sync client, on OS
threads (two per client) or, with ``--green``, on eventlet green threads in the client processes
(the same client code without thousands of OS threads contending for the GIL). Session cookies
are signed here, so no password is ever hashed.

Figures (the last line of output is one JSON object with them):

- ``connect_s``: wall time until all N are connected and have their ``state.get`` reply.
- ``hand_p50_ms``/``hand_p99_ms``: one attendee at a time raises a hand (then lowers it); time
  from its emit to the host receiving ``hand.raised``. The host and these attendees share a
  process, so both ends use one clock.
- ``qa_fanout_ms``: the host approves an attendee's question; time from the approval's emit
  until the last of the N attendees has received ``question.update`` (median of ``--rounds``).
  Every process reads the same machine clock (``time.time()``).

Then the **vote storm**: the host opens a poll with two options (``poll.open``); once every
attendee has its ``poll.update``, all N vote at once: each client process fires all its
clients' ``poll.vote`` together at an agreed moment, each with an ack callback.

- ``vote_storm_s``: wall time from the first vote sent to the last ack received; ``votes_per_s``
  is N / that. Every ack must be ok: ``vote_failures`` counts refusals and missing acks.
- ``vote_results_ms``: time from the last ack until the host receives a ``poll.results`` with
  ``ballots`` == N (the server coalesces results every 250 ms). Negative when the results beat
  the last ack home, i.e. the client processes lagged behind reading their acks.
- ``vote_checks_ok``: afterwards the database holds exactly N ``PollVote`` rows and N ``cast``
  ``PollAudit`` rows for the poll, and the results' counts are the sums of the acks' choices.

``--weighted`` makes the broadcast a shareholder meeting: every attendee's registration holds
``shares`` (random, 1..10,000) under holder id ``H-<n>`` and is verified (``verified_at``, as
the personal link leaves it), and the poll is opened with ``weighted: true``; the results'
``weight_total`` and the cast audit rows' weights must then add up to the sum of the shares.
"""

# ruff: noqa: E402  (a --green client process patches the standard library before other imports)
from __future__ import annotations

import multiprocessing as mp
import os
import warnings

GREEN_ENV = "LECTERN_BENCH_GREEN"
# A spawned client process imports this file as __mp_main__ before it runs anything else.
GREEN = os.environ.get(GREEN_ENV) == "1" and __name__ == "__mp_main__"
if GREEN:
    warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()

import argparse
import contextlib
import functools
import json
import logging
import math
import random
import resource
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the app's packages, imported lazily by the coordinator

from tests.live import LiveServer, Nginx, RedisServer, ServerError

NAMESPACE = "/room"
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0  # one ack, or one client's connection handshake
HAND_TIMEOUT_S = 5.0
PASSWORD = "lectern-bench"  # every bench account's; hashed once, cheaply (cookies are signed)
HAND_BURST = 10  # rooms.ratelimit: the "hand" bucket allows 10 at once, then 1 per second


class BenchError(RuntimeError):
    """The run cannot go on; the message says what happened."""


# --- Setup: database rows and signed cookies (coordinator only; imports the app lazily) ---


@dataclass
class Roster:
    """Who takes part: the room's key and a signed session cookie per participant."""

    room: str
    host: str  # the host's cookie
    attendees: list[tuple[int, str]]  # (user id, cookie), one per attendee
    share_total: int = 0  # the attendees' shares (--weighted), else 0
    app: Any = None  # the Flask app, to read the database afterwards
    cleanup: Callable[[], None] = lambda: None


def build_roster(url: str, data_dir: Path, secret: str, clients: int, weighted: bool) -> Roster:
    """Migrate the database, insert the host, attendees, broadcast and registrations in bulk."""
    from flask_migrate import upgrade

    from lectern import create_app
    from lectern.extensions import db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "DATA_DIR": str(data_dir),
            "SECRET_KEY": secret,
            "DEMO_DATA": False,
            "REDIS_URL": None,
        }
    )
    tag = f"bench-{secrets.token_hex(4)}"
    with app.app_context():
        upgrade()
        host_id, attendee_ids, broadcast_id, shares = insert_people(tag, clients, weighted)
        sign = app.session_interface.get_signing_serializer(app).dumps  # type: ignore[attr-defined]

        def cookie(user_id: int) -> str:
            return sign({"_user_id": str(user_id), "_fresh": True})

        roster = Roster(
            room=f"broadcast:{broadcast_id}",
            host=cookie(host_id),
            attendees=[(uid, cookie(uid)) for uid in attendee_ids],
            share_total=shares,
            app=app,
        )
        db.session.remove()
        db.engine.dispose()
    roster.cleanup = lambda: delete_people(app, tag, broadcast_id)
    return roster


def insert_people(tag: str, clients: int, weighted: bool) -> tuple[int, list[int], int, int]:
    """Bulk-insert ``tag``'s host and attendees and the broadcast they registered for (a
    shareholder meeting when ``weighted``); returns the ids and the attendees' total shares."""
    from sqlalchemy import insert, select
    from werkzeug.security import generate_password_hash

    from accounts.models import User
    from lectern.extensions import db
    from lectern.timeutil import utcnow
    from webinar.models import Broadcast, Kind, Registration

    def person(n: int, role: str) -> dict[str, Any]:
        email = f"{tag}-{role}-{n}@example.com"
        return {"email": email, "name": f"{role.title()} {n}", "role": role}

    rows = [person(0, "host")] + [person(n, "attendee") for n in range(1, clients + 1)]
    hashed = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    db.session.execute(insert(User), [{**r, "password_hash": hashed} for r in rows])
    found = db.session.execute(select(User.email, User.id).where(User.email.like(f"{tag}-%")))
    ids = {email: uid for email, uid in found}
    host_id = ids[rows[0]["email"]]
    attendees = [(ids[r["email"]], r) for r in rows[1:]]
    broadcast = Broadcast(
        host_id=host_id,
        title=f"Signaling bench ({clients} attendees)",
        description="",
        kind=Kind.SHAREHOLDER if weighted else Kind.ALL_HANDS,
        registration_mode="invite",
        starts_at=utcnow(),
        duration_minutes=60,
    )
    db.session.add(broadcast)
    db.session.flush()
    regs = [
        {
            "broadcast_id": broadcast.id,
            "user_id": uid,
            "email": r["email"],
            "name": r["name"],
            "status": "approved",
            "role": "attendee",
            **(holding(n, utcnow()) if weighted else {}),
        }
        for n, (uid, r) in enumerate(attendees, start=1)
    ]
    db.session.execute(insert(Registration), regs)
    db.session.commit()
    shares = sum(reg.get("shares", 0) for reg in regs)
    return host_id, [uid for uid, _ in attendees], broadcast.id, shares


def holding(n: int, now: Any) -> dict[str, Any]:
    """Attendee ``n``'s place in the share register, verified as if through the personal link."""
    return {"holder_id": f"H-{n}", "shares": random.randint(1, 10_000), "verified_at": now}


def delete_people(app: Any, tag: str, broadcast_id: int) -> None:
    """Remove what this run added to a shared database (rows cascade from these)."""
    from sqlalchemy import delete

    from accounts.models import User
    from lectern.extensions import db
    from rooms.models import Room
    from webinar.models import Broadcast

    with app.app_context():
        db.session.execute(
            delete(Room).where(Room.kind == "broadcast", Room.ref_id == broadcast_id)
        )
        db.session.execute(delete(Broadcast).where(Broadcast.id == broadcast_id))
        db.session.execute(delete(User).where(User.email.like(f"{tag}-%")))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


# --- The servers: `python app.py` web workers (and Redis, nginx: see Stack) ---


def start_server(
    url: str, data_dir: Path, secret: str, extra: dict[str, str], name: str = "server"
) -> LiveServer:
    """Start one web worker on a free port and wait until it serves the sign-in page;
    ``extra``: more settings (the message queue, the proxy in front)."""
    env: dict[str, str | None] = {
        "DATABASE_URL": url,
        "SECRET_KEY": secret,
        "DEMO_DATA": "false",
        "MEDIA_WORKERS": "0",  # signaling only: no media worker processes beside the server
        # Every simulated attendee connects from 127.0.0.1: lift the per-address bounds (one
        # address normally stands for one household or school, not a whole audience).
        "SOCKETIO_CONNECTIONS_PER_ADDRESS": "1000000",
        "SOCKETIO_HANDSHAKE_RATE": "1000000",
        GREEN_ENV: None,
        **extra,
    }
    log = data_dir / f"{name}.log"
    server = LiveServer(data_dir, env, log, timeout=START_TIMEOUT_S, die_with_parent=True)
    try:
        return server.start()
    except ServerError as error:
        raise BenchError(str(error)) from None


def server_problems(log: Path, limit: int = 20) -> list[str]:
    """Lines of the server's output that look like errors, for the report."""
    words = ("Traceback", "Error", "ERROR", "Exception", "error:")
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if any(w in line for w in words)][:limit]


# --- Client processes: each runs its share of the attendees (process 0 also the host) ---


def new_client() -> socketio.Client:
    # Through --nginx the certificate is a throwaway one made for the run.
    return socketio.Client(reconnection=False, request_timeout=CALL_TIMEOUT_S, ssl_verify=False)


def join(client: socketio.Client, url: str, cookie: str, room: str) -> None:
    """Connect to ``room`` and wait for its state, as the browser does. Each client carries a
    route cookie of its own, as each browser gets one from nginx (without nginx it is unused)."""
    client.connect(
        url,
        headers={"Cookie": f"session={cookie}; lectern_route={secrets.token_hex(8)}"},
        transports=["websocket"],
        namespaces=[NAMESPACE],
        auth={"room": room},
        wait_timeout=CALL_TIMEOUT_S,
    )
    reply = client.call("state.get", namespace=NAMESPACE, timeout=CALL_TIMEOUT_S)
    if not reply.get("ok"):
        raise BenchError(f"state.get refused: {reply}")


def run_jobs(jobs: Sequence[Callable[[], object]], concurrency: int, timeout: float) -> list[str]:
    """Run ``jobs`` on ``concurrency`` threads (green ones with --green); the errors raised.

    Jobs not started by the deadline are dropped; one already running finishes on its own.
    """
    todo = deque(jobs)
    errors: list[str] = []

    def work() -> None:
        while True:
            try:
                job = todo.popleft()
            except IndexError:
                return
            try:
                job()
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    todo.clear()
    return errors


@dataclass
class Crowd:
    """One process's clients and what they received."""

    url: str
    room: str
    people: list[tuple[int, str]]
    host_cookie: str | None
    clients: dict[int, socketio.Client] = field(default_factory=dict)  # user id -> connected
    # receipts[(event, question or poll id)] = [time.time() of each attendee's copy, ...]
    receipts: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    host: socketio.Client | None = None
    raised: dict[int, float] = field(default_factory=dict)  # user id -> when the host heard
    heard: threading.Condition = field(default_factory=threading.Condition)
    dropped: list[int] = field(default_factory=list)  # attendees whose connection closed
    counts: list[int] = field(default_factory=lambda: [0])  # presence.count messages received
    results: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # host: poll.results

    def connect_host(self) -> dict[str, Any]:
        assert self.host_cookie is not None
        self.host = new_client()
        self.host.on("hand.raised", self.on_raised, namespace=NAMESPACE)
        self.host.on("poll.results", self.on_results, namespace=NAMESPACE)
        join(self.host, self.url, self.host_cookie, self.room)
        return {"ok": True}

    def on_raised(self, data: dict[str, Any]) -> None:
        at = time.perf_counter()
        with self.heard:
            self.raised[data["user_id"]] = at
            self.heard.notify_all()

    def on_count(self, data: dict[str, Any]) -> None:
        self.counts[0] += 1  # a lost increment between threads only blurs a diagnostic

    def on_update(self, data: dict[str, Any]) -> None:
        self.receipts[("question.update", data["id"])].append(time.time())  # atomic append

    def on_poll(self, data: dict[str, Any]) -> None:
        self.receipts[("poll.update", data["id"])].append(time.time())

    def on_results(self, data: dict[str, Any]) -> None:
        self.results.append((time.time(), data))

    def connect_one(self, user_id: int, cookie: str) -> None:
        client = new_client()
        client.on("question.update", self.on_update, namespace=NAMESPACE)
        client.on("poll.update", self.on_poll, namespace=NAMESPACE)
        client.on("presence.count", self.on_count, namespace=NAMESPACE)
        client.on("disconnect", lambda *_: self.dropped.append(user_id), namespace=NAMESPACE)
        join(client, self.url, cookie, self.room)
        self.clients[user_id] = client

    def connect_all(self, concurrency: int, timeout: float) -> dict[str, Any]:
        """Connect every attendee of this process, ``concurrency`` handshakes at a time."""
        jobs = [functools.partial(self.connect_one, uid, cookie) for uid, cookie in self.people]
        errors = run_jobs(jobs, concurrency, timeout)
        return {
            "connected": len(self.clients),
            "failed": len(errors),
            "unfinished": len(self.people) - len(self.clients) - len(errors),
            "errors": sorted(set(errors))[:5],
            **self.status(),
        }

    def status(self) -> dict[str, Any]:
        """Attendees here who lost their connection since joining; presence counts received."""
        return {"dropped": len(set(self.dropped)), "presence_counts": self.counts[0]}

    def sample_hands(self, samples: int, gap: float) -> dict[str, Any]:
        """Raise and lower one hand at a time, round-robin over this process's attendees."""
        latencies: list[float] = []
        errors: list[str] = []
        order = list(self.clients.items())
        for i in range(samples):
            user_id, client = order[i % len(order)]
            outcome = self.one_hand(user_id, client)
            if isinstance(outcome, str):
                errors.append(outcome)
            else:
                latencies.append(outcome)
            time.sleep(gap)  # pacing: stay inside each attendee's hand-raising rate limit
        return {"latencies_ms": latencies, "errors": errors[:10], "error_count": len(errors)}

    def one_hand(self, user_id: int, client: socketio.Client) -> float | str:
        """Milliseconds from the attendee's ``hand.raise`` to the host's ``hand.raised``."""
        acked: list[Any] = []
        with self.heard:
            self.raised.pop(user_id, None)
        sent = time.perf_counter()
        client.emit("hand.raise", {}, namespace=NAMESPACE, callback=acked.append)
        with self.heard:
            got = self.heard.wait_for(lambda: user_id in self.raised, timeout=HAND_TIMEOUT_S)
            at = self.raised.get(user_id)
        lowered = client.call("hand.lower", {}, namespace=NAMESPACE, timeout=CALL_TIMEOUT_S)
        if not got or at is None:
            return f"no hand.raised within {HAND_TIMEOUT_S} s (ack {acked}, lower {lowered})"
        if not lowered.get("ok"):
            return f"hand.lower refused: {lowered}"
        return (at - sent) * 1000.0

    def ask(self, text: str) -> dict[str, Any]:
        """An attendee asks (held for moderation: only moderators see it), then the host
        approves it, which every attendee is sent; returns when the approval was sent (wall
        clock) and the question's id. (Presenters answer questions rather than ask them.)"""
        assert self.host is not None
        asker = next(iter(self.clients.values()))
        reply = asker.call(
            "question.ask", {"text": text}, namespace=NAMESPACE, timeout=CALL_TIMEOUT_S
        )
        if not reply.get("ok"):
            raise BenchError(f"question.ask refused: {reply}")
        question_id = reply["question"]["id"]
        self.receipts.pop(("question.update", question_id), None)  # the asker's own copy
        sent = time.time()
        reply = self.host.call(
            "question.approve", {"id": question_id}, namespace=NAMESPACE, timeout=CALL_TIMEOUT_S
        )
        if not reply.get("ok"):
            raise BenchError(f"question.approve refused: {reply}")
        return {"sent": sent, "id": question_id}

    def receipts_of(self, item_id: int, timeout: float, event: str) -> dict[str, Any]:
        """Wait until every connected attendee here has ``event`` about the question or poll
        ``item_id``; the last arrival time."""
        times = self.receipts[(event, item_id)]
        deadline = time.monotonic() + timeout
        while len(times) < len(self.clients) and time.monotonic() < deadline:
            time.sleep(0.005)
        return {"count": len(times), "last": max(times, default=None), **self.status()}

    def open_poll(self, weighted: bool) -> dict[str, Any]:
        """The host opens a two-option poll; returns when it was sent (wall clock) and its id."""
        assert self.host is not None
        poll = {"question": "Bench vote", "options": ["Yes", "No"], "weighted": weighted}
        sent = time.time()
        reply = self.host.call(
            "poll.open",
            poll | {"multiple": False, "anonymous": False},
            namespace=NAMESPACE,
            timeout=CALL_TIMEOUT_S,
        )
        if not reply.get("ok"):
            raise BenchError(f"poll.open refused: {reply}")
        return {"sent": sent, "id": reply["poll"]["id"]}

    def vote_all(self, poll_id: int, start_at: float, timeout: float) -> dict[str, Any]:
        """At ``start_at`` (wall clock) every attendee here votes at once; wait for the acks.

        Attendee ``u`` chooses option ``u % 2``. ``emit`` only queues the packet for the
        client's writer thread, so the loop sends them all in a few milliseconds.
        """
        acks: list[tuple[float, Any]] = []  # (when, reply)
        voters = list(self.clients.items())
        time.sleep(max(0.0, start_at - time.time()))
        first = time.time()
        for user_id, client in voters:
            client.emit(
                "poll.vote",
                {"id": poll_id, "choices": [user_id % 2]},
                namespace=NAMESPACE,
                callback=lambda *reply: acks.append((time.time(), reply[0] if reply else None)),
            )
        sent = time.time()
        deadline = time.monotonic() + timeout
        while len(acks) < len(voters) and time.monotonic() < deadline:
            time.sleep(0.005)
        return {"first": first, "sent": sent, "votes": len(voters), **tally(list(acks))}

    def results_of(self, poll_id: int, ballots: int, within: float) -> dict[str, Any]:
        """Host: wait for a ``poll.results`` of ``poll_id`` with ``ballots`` ballots (or more);
        when it came (None if it did not) and the latest results of that poll."""
        deadline = time.monotonic() + within
        while True:
            mine = [(at, data) for at, data in list(self.results) if data["id"] == poll_id]
            done = [(at, data) for at, data in mine if data["ballots"] >= ballots]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        at, data = done[0] if done else (None, mine[-1][1] if mine else None)
        return {"at": at, "results": data, "messages": len(mine)}

    def close(self) -> dict[str, Any]:
        everyone = [*self.clients.values(), *([self.host] if self.host else [])]
        run_jobs([c.disconnect for c in everyone], 32, 20.0)
        return {"ok": True}


def tally(acks: list[tuple[float, Any]]) -> dict[str, Any]:
    """Sum up one process's vote acks: the last one's time, the ok ones per option (their
    weights: 1 each unless weighted) and the refusals by reason."""
    weights = [0, 0]
    refused: dict[str, int] = defaultdict(int)
    for _, reply in acks:
        if isinstance(reply, dict) and reply.get("ok"):
            for i in reply["choices"]:
                weights[i] += reply.get("weight", 1)
        else:
            refused[str(reply.get("error") if isinstance(reply, dict) else reply)] += 1
    return {
        "acks": len(acks),
        "last_ack": max((at for at, _ in acks), default=None),
        "ok": len(acks) - sum(refused.values()),
        "weights": weights,
        "refused": dict(refused),
    }


def crowd_main(conn: Connection, url: str, room: str, people: list, host: str | None) -> None:
    """A client process: answer the coordinator's commands until told to close (or orphaned)."""
    # A dropped connection is counted (Crowd.dropped); the client's own error line is noise.
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)
    crowd = Crowd(url, room, people, host)
    commands: dict[str, Callable[..., dict[str, Any]]] = {
        "host": crowd.connect_host,
        "connect": crowd.connect_all,
        "hands": crowd.sample_hands,
        "ask": crowd.ask,
        "receipts": crowd.receipts_of,
        "open_poll": crowd.open_poll,
        "vote": crowd.vote_all,
        "poll_results": crowd.results_of,
        "close": crowd.close,
    }
    conn.send({"ready": True})
    while True:
        try:
            while not conn.poll(0):  # never block in the pipe: green clients must keep running
                time.sleep(0.01)
            name, kwargs = conn.recv()
        except (EOFError, OSError):  # the coordinator is gone
            os._exit(1)
        try:
            conn.send(commands[name](**kwargs))
        except Exception as exc:
            conn.send({"error": repr(exc)})
        if name == "close":
            os._exit(0)  # skip joining hundreds of client threads


@dataclass
class Proc:
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection

    def send(self, name: str, **kwargs: Any) -> None:
        self.conn.send((name, kwargs))

    def reply(self, timeout: float) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise BenchError(f"a client process gave no reply within {timeout:.0f} s")
        try:
            answer = self.conn.recv()
        except EOFError:
            raise BenchError(f"client process {self.process.pid} exited") from None
        if "error" in answer:
            raise BenchError(f"a client process failed: {answer['error']}")
        return answer

    def ask(self, name: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
        self.send(name, **kwargs)
        return self.reply(timeout)


def start_crowds(url: str, roster: Roster, procs: int, green: bool) -> list[Proc]:
    """Spawn ``procs`` client processes; process 0 also holds the host."""
    os.environ[GREEN_ENV] = "1" if green else "0"  # read by the children as they start
    ctx = mp.get_context("spawn")
    started = []
    for i in range(procs):
        parent, child = ctx.Pipe()
        share = (url, roster.room, roster.attendees[i::procs], roster.host if i == 0 else None)
        process = ctx.Process(target=crowd_main, args=(child, *share), daemon=True)
        process.start()
        started.append(Proc(process, parent))
    for proc in started:
        proc.reply(START_TIMEOUT_S)
    return started


def stop_crowds(crowds: list[Proc]) -> None:
    """Ask every client process to close its clients; kill those still there after 30 s."""
    for proc in crowds:
        with contextlib.suppress(OSError):  # already gone
            proc.send("close")
    deadline = time.monotonic() + 30
    for proc in crowds:
        proc.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if proc.process.is_alive():
            proc.process.kill()
            proc.process.join(timeout=5)


# --- Measurements ---


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU used by the web workers and by the client processes between ``start`` and
    ``report``."""

    servers: list[int]
    clients: list[int]
    marks: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def read(self) -> tuple[float, float, float]:
        return (
            time.monotonic(),
            sum(cpu_seconds(pid) for pid in self.servers),
            sum(cpu_seconds(pid) for pid in self.clients),
        )

    def start(self) -> None:
        self.marks = self.read()

    def report(self, phase: str) -> None:
        now, server, clients = self.read()
        wall, server0, clients0 = self.marks
        elapsed = max(now - wall, 1e-9)
        print(
            f"  cpu during {phase}: web workers {server - server0:.1f} s "
            f"({(server - server0) / elapsed:.0%} of a core), "
            f"client processes {clients - clients0:.1f} s",
            flush=True,
        )


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def measure_connect(
    crowds: list[Proc], clients: int, args: argparse.Namespace, cpu: CpuMeter
) -> float:
    """Seconds until every attendee is connected with its state; the host joins first."""
    crowds[0].ask("host", CALL_TIMEOUT_S * 2)
    cpu.start()
    started = time.monotonic()
    for proc in crowds:
        proc.send("connect", concurrency=args.concurrency, timeout=args.connect_timeout)
    results = [proc.reply(args.connect_timeout + 30) for proc in crowds]
    elapsed = time.monotonic() - started
    connected = sum(r["connected"] for r in results)
    dropped = sum(r["dropped"] for r in results)
    counts = sum(r["presence_counts"] for r in results)
    print(f"connected {connected}/{clients} in {elapsed:.2f} s, dropped since: {dropped}")
    print(f"  presence.count messages received by the attendees meanwhile: {counts}")
    cpu.report("connect")
    if connected < clients or dropped:
        for r in results:
            print(f"  process: {r}", flush=True)
        raise BenchError(f"{connected} of {clients} attendees connected, {dropped} dropped")
    return elapsed


def hand_gap(samples: int, samplers: int) -> float:
    """Seconds between samples so no attendee outruns the hand rate limit (raise + lower = 2)."""
    per_attendee = math.ceil(samples / samplers)
    return max(0.02, (2 * per_attendee - (HAND_BURST - 2)) / samples)


def measure_hands(crowds: list[Proc], roster: Roster, samples: int, cpu: CpuMeter) -> list[float]:
    samplers = len(roster.attendees[0 :: len(crowds)])
    gap = hand_gap(samples, samplers)
    timeout = samples * (gap + HAND_TIMEOUT_S) + 30
    cpu.start()
    result = crowds[0].ask("hands", timeout, samples=samples, gap=gap)
    print(
        f"hand samples: {len(result['latencies_ms'])} over {samplers} attendees "
        f"(gap {gap * 1000:.0f} ms), errors: {result['error_count']} {result['errors']}",
        flush=True,
    )
    cpu.report("hand samples")
    if not result["latencies_ms"]:
        raise BenchError("no hand sample succeeded")
    return result["latencies_ms"]


def measure_fanout(crowds: list[Proc], clients: int, round_no: int, timeout: float) -> float:
    """Milliseconds from the host's approval of a question to the last attendee's
    ``question.update``."""
    asked = crowds[0].ask("ask", CALL_TIMEOUT_S * 2, text=f"Bench question {round_no}")
    for proc in crowds:
        proc.send("receipts", item_id=asked["id"], timeout=timeout, event="question.update")
    results = [proc.reply(timeout + 30) for proc in crowds]
    count = sum(r["count"] for r in results)
    if count < clients:
        dropped = sum(r["dropped"] for r in results)
        raise BenchError(
            f"question {asked['id']} reached {count} of {clients} attendees ({dropped} dropped)"
        )
    last = max(r["last"] for r in results)
    return (last - asked["sent"]) * 1000.0


def open_poll(crowds: list[Proc], clients: int, args: argparse.Namespace) -> int:
    """The host opens the storm's poll; returns once every attendee has its ``poll.update``."""
    opened = crowds[0].ask("open_poll", CALL_TIMEOUT_S * 2, weighted=args.weighted)
    for proc in crowds:
        proc.send(
            "receipts", item_id=opened["id"], timeout=args.fanout_timeout, event="poll.update"
        )
    results = [proc.reply(args.fanout_timeout + 30) for proc in crowds]
    count = sum(r["count"] for r in results)
    if count < clients:
        raise BenchError(f"poll {opened['id']} reached {count} of {clients} attendees")
    last = max(r["last"] for r in results)
    kind = "weighted " if args.weighted else ""
    print(
        f"{kind}poll {opened['id']} opened: last of {clients} had it after "
        f"{(last - opened['sent']) * 1000:.1f} ms",
        flush=True,
    )
    return opened["id"]


def vote_storm(
    crowds: list[Proc], poll_id: int, args: argparse.Namespace, cpu: CpuMeter
) -> dict[str, Any]:
    """Every attendee votes at once; the processes' tallies summed, first vote to last ack."""
    start_at = time.time() + 0.5  # every process is waiting for it by then
    cpu.start()
    for proc in crowds:
        proc.send("vote", poll_id=poll_id, start_at=start_at, timeout=args.vote_timeout)
    tallies = [proc.reply(args.vote_timeout + 30) for proc in crowds]
    cpu.report("vote storm")
    refused: dict[str, int] = defaultdict(int)
    for t in tallies:
        for reason, n in t["refused"].items():
            refused[reason] += n
    votes = sum(t["votes"] for t in tallies)
    acks = [t["last_ack"] for t in tallies if t["last_ack"] is not None]
    total = {
        "first": min(t["first"] for t in tallies),
        "sent": max(t["sent"] for t in tallies),
        "last_ack": max(acks, default=None),
        "ok": sum(t["ok"] for t in tallies),
        "missing": votes - sum(t["acks"] for t in tallies),
        "weights": [sum(t["weights"][i] for t in tallies) for i in range(2)],
        "refused": dict(refused),
    }
    total["failures"] = votes - total["ok"]
    return total


def count_ballots(app: Any, poll_id: int) -> dict[str, int]:
    """What the database holds for the poll: ballots, audit rows cast and refused, weights cast."""
    from sqlalchemy import func, select

    from lectern.extensions import db
    from rooms.models import PollAudit, PollVote

    with app.app_context():
        votes = db.session.scalar(select(func.count()).where(PollVote.poll_id == poll_id))
        audit = dict(
            db.session.execute(
                select(PollAudit.outcome, func.count())
                .where(PollAudit.poll_id == poll_id)
                .group_by(PollAudit.outcome)
            ).all()
        )
        weight = db.session.scalar(
            select(func.coalesce(func.sum(PollAudit.weight), 0)).where(
                PollAudit.poll_id == poll_id, PollAudit.outcome == "cast"
            )
        )
        db.session.remove()
        db.engine.dispose()
    return {
        "votes": votes or 0,
        "cast": audit.get("cast", 0),
        "refused": audit.get("refused", 0),
        "weight": int(weight or 0),
    }


def vote_problems(
    storm: dict[str, Any], results: dict[str, Any] | None, stored: dict[str, int], roster: Roster
) -> list[str]:
    """What disagrees with N ballots all cast, each counted once (and the register's shares)."""
    n = len(roster.attendees)
    problems = []
    if storm["failures"]:
        problems.append(
            f"{storm['failures']} of {n} votes failed: {storm['missing']} without an ack, "
            f"refused {storm['refused']}"
        )
    if stored["votes"] != n or stored["cast"] != n:
        problems.append(
            f"the database holds {stored['votes']} PollVote rows and {stored['cast']} cast "
            f"PollAudit rows ({stored['refused']} refused) for {n} attendees"
        )
    if results is None:
        problems.append("the host received no poll.results for the poll")
    elif results["counts"] != storm["weights"]:
        problems.append(f"results count {results['counts']}, the acks {storm['weights']}")
    if roster.share_total:
        total = results.get("weight_total") if results else None
        if total != roster.share_total or stored["weight"] != roster.share_total:
            problems.append(
                f"weight_total {total} and cast audit weights {stored['weight']}, "
                f"but the attendees hold {roster.share_total} shares"
            )
    return problems


def measure_votes(
    crowds: list[Proc], roster: Roster, args: argparse.Namespace, cpu: CpuMeter
) -> dict[str, Any]:
    """The vote storm: open a poll, all N vote at once, then the host's results and the rows."""
    poll_id = open_poll(crowds, args.clients, args)
    storm = vote_storm(crowds, poll_id, args, cpu)
    if storm["last_ack"] is None:
        raise BenchError(f"no vote was acknowledged: {storm}")
    elapsed = storm["last_ack"] - storm["first"]
    print(
        f"vote storm: {storm['ok']}/{args.clients} ok in {elapsed:.2f} s "
        f"(all sent within {(storm['sent'] - storm['first']) * 1000:.0f} ms), "
        f"failures: {storm['failures']} {storm['refused']}",
        flush=True,
    )
    got = crowds[0].ask(
        "poll_results",
        args.vote_timeout + 30,
        poll_id=poll_id,
        ballots=storm["ok"],
        within=args.vote_timeout,
    )
    results_ms = None if got["at"] is None else (got["at"] - storm["last_ack"]) * 1000.0
    after = "never" if results_ms is None else f"{results_ms:.1f} ms after the last ack"
    print(
        f"  poll.results with every ballot: {after} "
        f"({got['messages']} poll.results messages): {got['results']}",
        flush=True,
    )
    stored = count_ballots(roster.app, poll_id)
    print(f"  in the database: {stored}; shares held: {roster.share_total}", flush=True)
    problems = vote_problems(storm, got["results"], stored, roster)
    for problem in problems:
        print(f"ERROR: vote storm: {problem}", flush=True)
    return {
        "vote_storm_s": round(elapsed, 3),
        "votes_per_s": round(args.clients / elapsed, 1),
        "vote_results_ms": None if results_ms is None else round(results_ms, 1) + 0.0,  # not -0.0
        "vote_failures": storm["failures"],
        "vote_checks_ok": not problems,
    }


# --- Running it ---


def raise_open_files() -> int:
    """Lift the soft open-file limit to the hard one (each client and connection is a file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def measure(
    url: str, servers: list[LiveServer], roster: Roster, args: argparse.Namespace
) -> dict[str, Any]:
    crowds = start_crowds(url, roster, args.procs, args.green)
    cpu = CpuMeter([s.proc.pid for s in servers if s.proc], [c.process.pid for c in crowds])
    try:
        connect_s = measure_connect(crowds, args.clients, args, cpu)
        per_worker = attendees_per_worker(roster)
        print(f"attendees per web worker: {per_worker}", flush=True)
        time.sleep(args.settle)  # let the joins' presence updates drain before timing
        hands = measure_hands(crowds, roster, args.samples, cpu)
        fanouts = []
        for n in range(1, args.rounds + 1):
            fanouts.append(measure_fanout(crowds, args.clients, n, args.fanout_timeout))
            print(f"question round {n}: last of {args.clients} after {fanouts[-1]:.1f} ms")
            time.sleep(0.5)
        votes = measure_votes(crowds, roster, args, cpu)
    finally:
        stop_crowds(crowds)
    return {
        "clients": args.clients,
        "per_worker": per_worker,
        "connect_s": round(connect_s, 3),
        "hand_p50_ms": round(percentile(hands, 50), 2),
        "hand_p99_ms": round(percentile(hands, 99), 2),
        "qa_fanout_ms": round(statistics.median(fanouts), 1),
        **votes,
    }


def attendees_per_worker(roster: Roster) -> list[int]:
    """How many of the room's connections each web worker holds (its presence rows), largest
    first; the host's one included."""
    from sqlalchemy import func, select

    from lectern.extensions import db
    from rooms.models import Connection, Room

    kind, _, ref = roster.room.partition(":")
    with roster.app.app_context():
        rows = db.session.execute(
            select(Connection.worker, func.count())
            .join(Room, Room.id == Connection.room_id)
            .where(Room.kind == kind, Room.ref_id == int(ref))
            .group_by(Connection.worker)
        ).all()
        db.session.remove()
        db.engine.dispose()
    return sorted((count for _, count in rows), reverse=True)


@dataclass
class Stack:
    """What ``run`` started: the web workers, and Redis and nginx when asked for."""

    servers: list[LiveServer] = field(default_factory=list)
    queue: RedisServer | None = None
    nginx: Nginx | None = None

    def start(self, url: str, data_dir: Path, secret: str, args: argparse.Namespace) -> str:
        """Start everything; the address the clients connect to."""
        extra: dict[str, str] = {}
        if args.web_workers > 1:
            self.queue = RedisServer(data_dir / "redis.log")
            self.queue.start()
            extra["REDIS_URL"] = self.queue.url
            print(f"redis-server on port {self.queue.port}", flush=True)
        if args.nginx:
            extra["PROXY_HOPS"] = "1"
        for n in range(args.web_workers):
            name = "server" if args.web_workers == 1 else f"server{n + 1}"
            self.servers.append(start_server(url, data_dir, secret, extra, name))
            server = self.servers[-1]
            print(f"web worker on {server.url} (pid {server.proc.pid})", flush=True)
        if not args.nginx:
            return self.servers[0].url
        # Each client and its upstream connection are two of nginx's connections.
        self.nginx = Nginx(data_dir / "nginx", [s.port for s in self.servers], args.clients * 3)
        try:
            self.nginx.start()
        except ServerError as error:
            raise BenchError(str(error)) from None
        print(f"nginx on {self.nginx.url}", flush=True)
        return self.nginx.url

    def stop(self) -> None:
        """Stop what was started and print the error lines of each web worker's log."""
        if self.nginx is not None:
            self.nginx.stop()
            text = self.nginx.output()
            errors = [line for line in text.splitlines() if line and "[warn]" not in line][:20]
            print(f"nginx error lines: {len(errors)}", flush=True)
            for line in errors:
                print(f"  {line}", flush=True)
        for server in self.servers:
            server.stop()
            problems = server_problems(server.log)
            print(f"{server.log.stem} error lines: {len(problems)}", flush=True)
            for line in problems:
                print(f"  {line}", flush=True)
        if self.queue is not None:
            self.queue.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_open_files()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"open-file limit: {limit}; load average: {load} on {os.cpu_count()} cores", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="lectern-bench-"))
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'lectern.db'}"
    if args.web_workers > 1 and not url.startswith("postgresql"):
        raise BenchError("several web workers need DATABASE_URL on PostgreSQL")
    secret = secrets.token_hex(32)
    stack = Stack()
    roster = None
    try:
        started = time.monotonic()
        roster = build_roster(url, data_dir, secret, args.clients, args.weighted)
        print(f"set up {args.clients} attendees in {time.monotonic() - started:.1f} s", flush=True)
        front = stack.start(url, data_dir, secret, args)
        return measure(front, stack.servers, roster, args)
    finally:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average at the end: {load}", flush=True)
        stack.stop()
        if roster is not None and os.environ.get("DATABASE_URL"):
            roster.cleanup()
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, required=True, help="attendees to connect")
    parser.add_argument("--procs", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--samples", type=int, default=200, help="hand samples (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="question rounds (default 3)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="handshakes in flight per process (default 8)"
    )
    parser.add_argument("--connect-timeout", type=float, default=180.0)
    parser.add_argument("--fanout-timeout", type=float, default=30.0)
    parser.add_argument(
        "--vote-timeout", type=float, default=180.0, help="for the storm's acks and results (s)"
    )
    parser.add_argument("--settle", type=float, default=2.0, help="pause after connecting (s)")
    parser.add_argument(
        "--green", action="store_true", help="clients on eventlet green threads, not OS threads"
    )
    parser.add_argument(
        "--weighted",
        action="store_true",
        help="a shareholder meeting (random shares per attendee) and a weighted poll",
    )
    parser.add_argument(
        "--web-workers", type=int, default=1, help="web workers (several: Redis, PostgreSQL)"
    )
    parser.add_argument(
        "--nginx", action="store_true", help="clients connect through nginx, as deploy/ sets it"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder and its log")
    args = parser.parse_args(argv)
    if args.web_workers > 1 and not args.nginx:
        parser.error("--web-workers above 1 needs --nginx in front of them")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up still runs
    figures: dict[str, Any] = {"clients": args.clients}
    code = 0
    try:
        figures = run(args)
        code = 0 if figures["vote_checks_ok"] else 1
    except BenchError as exc:
        print(f"bench failed: {exc}", flush=True)
        code = 1
    keys = (
        *("connect_s", "hand_p50_ms", "hand_p99_ms", "qa_fanout_ms"),
        *("vote_storm_s", "votes_per_s", "vote_results_ms", "vote_failures", "vote_checks_ok"),
    )
    line = {
        "clients": args.clients,
        "weighted": args.weighted,
        "web_workers": args.web_workers,
        "nginx": args.nginx,
        "per_worker": figures.get("per_worker"),
    }
    print(json.dumps(line | {k: figures.get(k) for k in keys}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
