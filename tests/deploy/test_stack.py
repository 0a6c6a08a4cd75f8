"""The deployment as users run it (deploy/): nginx in front of two web workers and two media
workers, on PostgreSQL and Redis, and the all-hands broadcast in Chromium through nginx.

The stack: a fresh PostgreSQL database made for this module; a ``redis-server`` of its own on
a free loopback port; two ``python -m media.worker --host 127.0.0.1 --port P`` with
``MEDIA_CAPACITY=3`` (so the viewers spread over both); two ``python app.py`` web workers with
``MEDIA_WORKER_ADDRS``, ``REDIS_URL``, ``DATABASE_URL``, ``PROXY_HOPS=1`` and
``SESSION_COOKIE_SECURE=true``, started at the same moment on the empty database with demo data
(they take turns migrating and seeding); and Debian's nginx with the site of
``deploy/nginx/lectern.conf`` filled in by ``deploy/render_nginx.py``, run as its own master
with everything in a temporary folder. TLS is real: nginx terminates HTTPS with a self-signed
certificate made here (``cryptography``) and Chromium runs with ``--ignore-certificate-errors``;
nothing reaches a web worker but through nginx.

First a Socket.IO client on the long-polling transport (many requests per connection) proves
the routing sticky. Then each person's browser gets a route cookie chosen so that nginx sends
them to the web worker the test wants (which route leads where is read from nginx's access
log), and the test proves where each landed from the presence rows the workers stamp with
their own id. Attendees on both web workers see each other's question, upvote, hand and poll
votes; viewers on both media workers decode the host's video; SIGKILL of the media worker that
relays the stream moves its viewers to the other, where they decode again within
``MOVED_WITHIN_S`` without a reload.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import socketio
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from accounts.models import User
from lectern import create_app
from lectern.extensions import db
from media.channel import MediaChannel, MediaUnavailable
from rooms.models import Connection, Room
from tests import conftest
from tests.browser.conftest import (
    LAPTOP,
    People,
    Person,
    join_from,
    no_problems,
    question,
    sees_slide,
    sees_video_of,
    show_tab,
    start_camera,
    wait_for,
)
from tests.browser.test_broadcast import BROADCAST, pending, present_slides, register_and_join
from tests.browser.test_cascade import NEW_FRAMES
from tests.conftest import unavailable
from tests.live import LiveServer, Nginx, RedisServer
from tests.media.conftest import WorkerProcess, start_worker, stop_process

pytestmark = [
    pytest.mark.browser,
    pytest.mark.server,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
]

MEDIA_CAPACITY = 3  # viewers per media worker: three viewers need both, and one worker holds all
# The kill to its viewers decoding again: each web worker's health loop pings every 1 s and
# gives a worker up after 2 misses, then the pages have 3 s to view again elsewhere.
MOVED_WITHIN_S = 6.0


@dataclass
class Stack:
    """Everything running, and what the test reads back."""

    url: str  # nginx's: the only address the browsers use
    nginx: Nginx
    web: list[LiveServer]
    media: list[WorkerProcess]
    app: Flask  # on the stack's database, for reading rows

    def output(self) -> str:
        """Every process's output, for the failure evidence (``People`` saves it)."""
        parts = [f"--- nginx ---\n{self.nginx.output()}"]
        parts += [f"--- web worker :{w.port} ---\n{w.output()}" for w in self.web]
        parts += [f"--- media worker :{m.port} ---\n{m.output()}" for m in self.media]
        return "\n".join(parts)

    def stats(self, worker: WorkerProcess) -> dict[str, Any]:
        return MediaChannel([]).call(worker.addr, "stats")

    def web_worker_of(self, email: str) -> set[str | None]:
        """The web worker ids on the demo all-hands' presence rows of the user ``email``."""
        with self.app.app_context():
            found = set(
                db.session.scalars(
                    select(Connection.worker)
                    .join(Room, Room.id == Connection.room_id)
                    .join(User, User.id == Connection.user_id)
                    .where(Room.kind == "broadcast", Room.ref_id == 1, User.email == email)
                )
            )
            db.session.remove()
        return found


@pytest.fixture(scope="module")
def stack(fresh_postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, two media workers, two web workers (both at once on the empty database), nginx."""
    for program in ("nginx", "redis-server"):
        if shutil.which(program) is None:
            unavailable(f"{program} is not installed")
    root = tmp_path_factory.mktemp("stack")
    secret, media_secret = secrets.token_hex(32), secrets.token_hex(32)
    started: list[Any] = []
    try:
        queue = RedisServer(root / "redis.log")
        queue.start()
        started.append(queue)
        capacity = str(MEDIA_CAPACITY)
        media = [
            start_worker(root / f"media{n}.log", MEDIA_SECRET=media_secret, MEDIA_CAPACITY=capacity)
            for n in (1, 2)
        ]
        started += media
        env = {
            "DATABASE_URL": fresh_postgres,
            "REDIS_URL": queue.url,
            "SOCKETIO_CHANNEL": f"lectern-deploy-{secrets.token_hex(4)}",
            "SECRET_KEY": secret,
            "MEDIA_SECRET": media_secret,
            "MEDIA_WORKER_ADDRS": ",".join(m.addr for m in media),
            "MEDIA_HOST_ADDRESSES": "127.0.0.1",
            "PROXY_HOPS": "1",
            "SESSION_COOKIE_SECURE": "true",
            "DEMO_DATA": "true",
        }
        data = root / "data"  # one data folder: slides uploaded through one worker, served by both
        web = [LiveServer(data, env, log=root / f"web{n}.log") for n in (1, 2)]
        started += web
        for worker in web:  # at the same moment: the first migrates and seeds, the other waits
            worker.launch()
        for worker in web:
            worker.wait_until_serving()
        nginx = Nginx(root / "nginx", [w.port for w in web])
        nginx.start()
        started.append(nginx)
        app = create_app(conftest.test_config(fresh_postgres, root / "reader", SECRET_KEY=secret))
        yield Stack(nginx.url, nginx, web, media, app)
        with app.app_context():
            db.engine.dispose()
    finally:
        for thing in reversed(started):
            if isinstance(thing, WorkerProcess):
                stop_process(thing.proc)
            else:
                thing.stop()


def sign_in_via(people: People, stack: Stack, email: str, worker: LiveServer) -> Person:
    """Sign ``email`` in through nginx and pin their browser to ``worker`` with a route
    cookie nginx hashes to it (the cookie nginx set on the first visit is replaced)."""
    person = people.sign_in(email, LAPTOP)
    route = stack.nginx.route_to(worker.port)
    cookie = {"name": "lectern_route", "value": route, "url": stack.url, "secure": True}
    person.page.context.add_cookies([cookie])
    return person


def test_long_polling_keeps_to_one_web_worker(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Socket.IO's fallback for networks that block WebSocket: many HTTP requests per
    connection, each of which must reach the worker holding it. A client that takes the route
    cookie nginx gives it on its first request stays on one worker for eight round trips;
    were the requests spread over the workers, the other would refuse the unknown session."""
    with stack.app.app_context():
        host = db.session.scalar(select(User).where(User.email == "host@example.com"))
        assert host is not None
        sign = stack.app.session_interface.get_signing_serializer(stack.app).dumps  # type: ignore[attr-defined]
        cookie = sign({"_user_id": str(host.id), "_fresh": True})
        db.session.remove()
    # The polling transport's HTTP client verifies nginx's certificate against this file.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.nginx.certificate))
    client = socketio.Client(reconnection=False, request_timeout=10)
    client.connect(
        stack.url,
        headers={"Cookie": f"session={cookie}"},
        transports=["polling"],
        namespaces=["/room"],
        auth={"room": "broadcast:1"},
        wait_timeout=10,
    )
    try:
        assert client.transport() == "polling"
        for _ in range(8):  # within the state.get burst (10)
            reply = client.call("state.get", {}, namespace="/room", timeout=10)
            assert reply["ok"], reply
    finally:
        client.disconnect()
    routes = re.findall(
        r"/socket\.io/\?\S*transport=polling\S* .* route=(\S+) upstream=(\S+)",
        stack.nginx.access_log.read_text(),
    )
    upstreams = {upstream for _, upstream in routes}
    assert len(routes) > 8 and len(upstreams) == 1, routes


def test_all_hands_through_nginx(
    stack: Stack, people_on: Any, pdf_file: Path, artifacts: Path
) -> None:
    started = time.monotonic()
    web_a, web_b = stack.web
    people = people_on(stack)

    # The host and one attendee on web worker A, two attendees on B.
    host = sign_in_via(people, stack, "host@example.com", web_a)
    join_from(host, BROADCAST)
    present_slides(host, pdf_file)  # an upload through nginx, rendered into the shared folder
    start_camera(host)
    ben = sign_in_via(people, stack, "student1@example.com", web_a)
    register_and_join(ben)
    eli = sign_in_via(people, stack, "employee@example.com", web_b)
    join_from(eli, BROADCAST)
    sam = sign_in_via(people, stack, "shareholder@example.com", web_b)
    register_and_join(sam)
    attendees = (ben, eli, sam)

    # Where each landed, by the ids the web workers stamp on their presence rows.
    on = {p.email: stack.web_worker_of(p.email) for p in (host, *attendees)}
    assert all(len(ids) == 1 and None not in ids for ids in on.values()), on
    assert on["host@example.com"] == on["student1@example.com"], on
    assert on["employee@example.com"] == on["shareholder@example.com"], on
    assert on["host@example.com"] != on["employee@example.com"], on

    for attendee in attendees:
        sees_video_of(attendee, "Hana Host")
        sees_slide(attendee, 2, 3)  # the page rendered by A's upload, served to B's attendees too
    expect(host.page.locator("#presence-count")).to_have_text("4 people here")

    # Viewers on both media workers: three viewers, three places each, so placement used both.
    stats = {m.addr: stack.stats(m) for m in stack.media}
    serving = {addr: s["viewers"] for addr, s in stats.items()}
    assert all(n >= 1 for n in serving.values()), stats
    relays = [m for m in stack.media if stats[m.addr]["relays"]]
    assert len(relays) == 1, stats  # the other one is the origin the host publishes to

    # Q&A across the web workers: asked on B, approved on A, seen and upvoted on both.
    asked = "Will the dashboards stay on one server?"
    sam.page.get_by_label("Your question").fill(asked)
    sam.page.get_by_role("button", name="Ask", exact=True).click()
    expect(pending(host, asked)).to_have_count(1)
    pending(host, asked).get_by_role("button", name="Approve").click()
    for attendee in attendees:
        expect(question(attendee, asked)).to_have_count(1)
    question(ben, asked).get_by_role("button", name=re.compile("^Upvote")).click()
    for person in (host, eli, sam):
        expect(question(person, asked).locator(".vote")).to_have_text("▲ 1")

    # A hand raised on B reaches the host on A.
    eli.page.get_by_role("button", name="Raise hand").click()
    expect(eli.page.locator("#hand-status")).to_contain_text("1st in line")
    expect(host.page.locator("#tab-hands .count")).to_have_text("1")
    show_tab(host, "Hands")
    expect(host.page.locator("#hand-queue li")).to_contain_text("Eli Employee")

    # A poll opened on A, voted on from both, revealed to all.
    show_tab(host, "Polls")
    host.page.get_by_text("New poll").click()
    host.page.get_by_label("Poll question").fill("One region or two?")
    host.page.get_by_role("textbox", name="Option 1").fill("One")
    host.page.get_by_role("textbox", name="Option 2").fill("Two")
    host.page.get_by_role("button", name="Open poll").click()
    for attendee, choice in zip(attendees, ("Two", "Two", "One"), strict=True):
        show_tab(attendee, "Polls")
        attendee.page.get_by_label(choice, exact=True).check()
        attendee.page.get_by_role("button", name="Vote").click()
        expect(attendee.page.locator(".voted")).to_have_text(f"You voted: {choice}")
    expect(host.page.locator(".result-label").nth(1)).to_have_text("Two: 2 (67%)")
    host.page.get_by_role("button", name="Reveal results").click()
    for person in (host, *attendees):
        expect(person.page.locator(".result-label")).to_have_text(["One: 1 (33%)", "Two: 2 (67%)"])

    # SIGKILL the media worker that relays the stream: its viewers move to the origin and
    # decode again on a new connection, each in the page they had (no reload).
    doomed = relays[0]
    survivor = next(m for m in stack.media if m is not doomed)
    moving = stats[doomed.addr]["viewers"]  # pages only: a relaying worker feeds no leg
    peers_before = {}
    for attendee in attendees:
        attendee.page.evaluate("() => { window.__sameDocument = true; }")
        peers_before[attendee.email] = attendee.page.evaluate("() => window.__peers.length")
    killed_at = time.monotonic()
    doomed.proc.send_signal(signal.SIGKILL)

    def moved() -> list[Person]:
        """The attendees decoding video on a connection opened after the kill."""
        return [a for a in attendees if a.page.evaluate(NEW_FRAMES, peers_before[a.email]) > 0]

    wait_for(lambda: len(moved()) >= moving, MOVED_WITHIN_S, f"{moving} viewers to move")
    moved_s = time.monotonic() - killed_at
    doomed.proc.wait(timeout=10)
    for attendee in attendees:
        assert attendee.page.evaluate("() => window.__sameDocument === true"), attendee.email
        sees_video_of(attendee, "Hana Host")
    wait_for(
        lambda: stack.stats(survivor)["viewers"] == len(attendees),
        10,
        "the surviving media worker to serve every viewer",
    )
    with pytest.raises(MediaUnavailable):
        stack.stats(doomed)

    no_problems(host, *attendees)
    took = time.monotonic() - started
    print(f"{moving} viewers moved in {moved_s:.1f} s; the scenario took {took:.1f} s")
