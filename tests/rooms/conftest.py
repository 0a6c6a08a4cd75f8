"""Fixtures for the live-room runtime: a lesson and a broadcast with their people, and ``join``,
which signs a user in over HTTP and connects a Socket.IO test client to the ``/room`` namespace.

Coalesced updates are never sent by a background thread here (``ROOMS_FLUSH_INTERVAL`` 0): a
test calls ``room.flush()`` where the periodic flush would have run.

The ``app`` fixture keeps one app context pushed for the whole test, and Flask-Login caches the
current user in ``g``; so each sign-in and each connection runs in its own app context, or every
client would be the first user signed in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio.test_client import SocketIOTestClient
from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db, socketio
from lectern.timeutil import utcnow
from rooms import namespace
from rooms.models import (
    ChatMessage,
    Connection,
    Grant,
    Hand,
    MediaStream,
    Poll,
    PollAudit,
    PollVote,
    Question,
    QuestionVote,
    Recording,
    RecordingSegment,
    Room,
    RoomEvent,
    SlideDeck,
)
from rooms.state import forget_snapshots

NS = "/room"

# Every table of the runtime, for comparing the database before and after an event.
RUNTIME_TABLES = (
    Room,
    Connection,
    Hand,
    Grant,
    Question,
    QuestionVote,
    ChatMessage,
    Poll,
    PollVote,
    PollAudit,
    SlideDeck,
    MediaStream,
    Recording,
    RecordingSegment,
    RoomEvent,
)


def in_ci() -> bool:
    """As in tests/conftest.py. Test modules here that write ``from conftest import in_ci`` get
    this module (pytest imports the nearest conftest.py last, under the same name)."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class Person:
    """A user as plain data (ORM objects expire and belong to one session)."""

    id: int
    email: str
    name: str


class Client:
    """One participant's Socket.IO connection to a room."""

    def __init__(self, sio: SocketIOTestClient, person: Person | None, key: Any) -> None:
        self.sio = sio
        self.person = person
        self.key = key

    @property
    def connected(self) -> bool:
        return self.sio.is_connected(NS)

    def emit(self, event: str, *args: Any) -> Any:
        """Send ``event`` with ``args`` and return the server's acknowledgement."""
        return self.sio.emit(event, *args, namespace=NS, callback=True)

    def state(self) -> dict[str, Any]:
        """The room snapshot from ``state.get``."""
        reply = self.emit("state.get")
        assert reply["ok"], reply
        return reply["state"]

    def drain(self) -> list[tuple[str, Any]]:
        """Every (event, payload) received since the last drain, oldest first; what arrived
        before the server closed the connection too (``get_received`` refuses after that)."""
        received = [m for m in self.sio.queue if m["namespace"] == NS]
        self.sio.queue = [m for m in self.sio.queue if m["namespace"] != NS]
        return [(m["name"], m["args"][0]) for m in received]

    def got(self, event: str) -> list[Any]:
        """Drain, keeping the payloads of ``event`` only."""
        return [data for name, data in self.drain() if name == event]

    def close(self) -> None:
        if self.connected:
            self.sio.disconnect(NS)


class World:
    """A lesson (instructor, three enrolled students) and a broadcast (host, a panelist, two
    approved attendees), plus an outsider tied to neither."""

    def __init__(self, app: Flask, auth_class: type, users: Any, courses: Any, casts: Any) -> None:
        self.app = app
        self.auth_class = auth_class
        self.casts = casts
        self.clients: list[Client] = []
        self._http: dict[int, FlaskClient] = {}

        def person(role: str, name: str) -> Person:
            user = users.make(role, name=name)
            return Person(user.id, user.email, user.name)

        self.instructor = person("instructor", "Iris Instructor")
        self.students = tuple(person("student", f"Student {n}") for n in ("Ann", "Ben", "Cid"))
        self.host = person("host", "Hugo Host")
        self.panelist = person("attendee", "Pia Panelist")
        self.attendees = tuple(person("attendee", f"Attendee {n}") for n in ("Abe", "Bea"))
        self.outsider = person("student", "Otto Outsider")

        course = courses.make(user(self.instructor), students=tuple(map(user, self.students)))
        self.course_id = course.id
        self.lesson_id = courses.lesson(course).id
        self.lesson = f"lesson:{self.lesson_id}"

        cast = casts.make(user(self.host), kind="all_hands")
        self.broadcast_id = cast.id
        self.broadcast = f"broadcast:{cast.id}"
        casts.register(cast, user(self.panelist)).role = "panelist"
        for attendee in self.attendees:
            casts.register(cast, user(attendee))
        db.session.commit()

    # -- roles by name, for the tables of role x action ------------------------------------
    def role(self, name: str) -> tuple[Person, str]:
        """(person, room key) of the participant playing ``name``."""
        return {
            "instructor": (self.instructor, self.lesson),
            "student": (self.students[0], self.lesson),
            "host": (self.host, self.broadcast),
            "panelist": (self.panelist, self.broadcast),
            "attendee": (self.attendees[0], self.broadcast),
        }[name]

    def meeting(self, holdings: dict[Person, tuple[int | None, str | None]]) -> str:
        """A shareholder meeting of the host's where each person holds (shares, holder id) on an
        approved, verified registration; its room key."""
        meeting = self.casts.make(user(self.host), kind="shareholder")
        for person, (shares, holder_id) in holdings.items():
            registration = self.casts.register(meeting, user(person))
            registration.shares, registration.holder_id = shares, holder_id
            registration.verified_at = utcnow()
        db.session.commit()
        return f"broadcast:{meeting.id}"

    # -- connecting --------------------------------------------------------------------------
    def http(self, who: Person | None) -> FlaskClient:
        """A test client signed in as ``who`` (one per person), or signed out for None."""
        if who is None:
            return self.app.test_client()
        if who.id not in self._http:
            with self.app.app_context():
                client = self.app.test_client()
                response = self.auth_class(client).login(who.email)
                assert response.status_code == 302, f"could not sign in {who.email}"
            self._http[who.id] = client
        return self._http[who.id]

    def connect(self, who: Person | None, auth: Any) -> Client:
        """Open a connection with the raw ``auth`` payload; it may be refused."""
        http = self.http(who)
        with self.app.app_context():
            sio = socketio.test_client(self.app, namespace=NS, auth=auth, flask_test_client=http)
        client = Client(sio, who, auth)
        self.clients.append(client)
        return client

    def join(self, who: Person, key: str | None = None) -> Client:
        """Connect ``who`` to room ``key`` (their lesson or broadcast by default)."""
        key = key or (
            self.broadcast if who in (self.host, self.panelist, *self.attendees) else self.lesson
        )
        client = self.connect(who, {"room": key})
        assert client.connected, f"{who.name} was refused from {key}"
        return client

    # -- the database --------------------------------------------------------------------------
    def room_id(self, key: str) -> int:
        kind, _, ref = key.partition(":")
        found = db.session.scalar(select(Room.id).where(Room.kind == kind, Room.ref_id == int(ref)))
        assert found is not None, f"no room row for {key}"
        return found

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every runtime table, in primary-key order."""
        db.session.rollback()  # read what is committed, not a stale transaction
        return {
            model.__tablename__: [
                tuple(row)
                for row in db.session.execute(
                    select(model.__table__).order_by(*model.__table__.primary_key.columns)
                )
            ]
            for model in RUNTIME_TABLES
        }

    def flush(self) -> None:
        """Send the coalesced updates now, as the periodic flusher would."""
        namespace.flush(self.app)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.flush()


def user(person: Person) -> User:
    """The User row of ``person``, in the current session."""
    found = db.session.get(User, person.id)
    assert found is not None
    return found


@pytest.fixture
def app_config(request: pytest.FixtureRequest) -> dict[str, object]:
    """No background flusher: tests flush coalesced updates by hand."""
    return {"ROOMS_FLUSH_INTERVAL": 0, **getattr(request, "param", {})}


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Empty rate-limit buckets and no connections or snapshots left over from another test."""
    namespace.limiter.reset()
    forget_snapshots()
    yield
    namespace.actors.clear()
    namespace.limiter.reset()
    forget_snapshots()


@pytest.fixture
def room(app: Flask, auth: Any, users: Any, courses: Any, broadcasts: Any) -> Iterator[World]:
    """The lesson and broadcast world; every client it connected is disconnected afterwards."""
    world = World(app, type(auth), users, courses, broadcasts)
    world.flush()  # nothing pending from an earlier test
    yield world
    world.close()
