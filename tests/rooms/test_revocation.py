"""Someone loses their access to a room: every path ends it on their live connections at once.

Removed from the course, declined, their join link revoked, their account deactivated, or the
session ended: each closes every tab of theirs (their next event finds no room), ends their
publish grant, their stream (announced to the others) and their hand, and the room's messages
no longer reach them. Reconnecting is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
import socketio
from sqlalchemy import select

from accounts.models import User
from classroom.enrolment import unenrol
from classroom.models import Course
from lectern.extensions import db
from rooms import namespace, presence
from rooms.models import Connection, Grant, Hand, MediaStream
from webinar.models import Registration

from .conftest import Client, Person, World, user
from .test_workers import CHANNEL, REDIS_URL, SECRET, session_cookie, workers
from .test_workers import Participant as RealClient

__all__ = ["workers"]  # the fixture: two web workers joined through Redis


@dataclass
class Scene:
    """The person who loses access (two tabs), and a presenter who stays."""

    world: World
    key: str
    target: Person
    tabs: tuple[Client, Client]
    presenter: Client

    @property
    def room_id(self) -> int:
        return self.world.room_id(self.key)


def set_scene(room: World, broadcast: bool) -> Scene:
    """``target`` joins with two tabs, raises a hand, is called on (a publish grant) and
    publishes from the first tab."""
    if broadcast:
        key, target, presenter = room.broadcast, room.attendees[0], room.join(room.host)
    else:
        key, target, presenter = room.lesson, room.students[0], room.join(room.instructor)
    (first, sid), (second, _) = join_tab(room, target, key), join_tab(room, target, key)
    tabs = (first, second)
    assert first.emit("hand.raise")["ok"]
    assert presenter.emit("hand.call", {"user_id": target.id})["ok"]
    scene = Scene(room, key, target, tabs, presenter)
    db.session.add(
        MediaStream(
            id=f"s-{target.id}",
            room_id=scene.room_id,
            user_id=target.id,
            sid=sid,
            source="camera",
            worker="worker-a",
        )
    )
    db.session.commit()
    for client in (*tabs, presenter):
        client.drain()
    return scene


def join_tab(room: World, who: Person, key: str) -> tuple[Client, str]:
    """A new connection of ``who`` and its sid (this test process is its web worker)."""
    before = set(namespace.actors)
    client = room.join(who, key)
    (sid,) = set(namespace.actors) - before
    return client, sid


def registration_id(room: World, person: Person) -> int:
    found = db.session.scalar(
        select(Registration.id).where(
            Registration.broadcast_id == room.broadcast_id, Registration.user_id == person.id
        )
    )
    assert found is not None
    return found


def admin(room: World) -> Person:
    made = User(email="admin@example.com", name="Ada Admin", role="admin")
    made.password_hash = user(room.host).password_hash
    db.session.add(made)
    db.session.commit()
    return Person(made.id, made.email, made.name)


# -- the ways of losing access -----------------------------------------------------------------
def unenrolled(room: World, scene: Scene) -> None:
    url = f"/courses/{room.course_id}/students/{scene.target.id}/remove"
    assert room.http(room.instructor).post(url).status_code == 302


def declined(room: World, scene: Scene) -> None:
    reg = registration_id(room, scene.target)
    url = f"/broadcasts/{room.broadcast_id}/registrations/{reg}/decline"
    assert room.http(room.host).post(url).status_code == 302


def link_revoked(room: World, scene: Scene) -> None:
    """An account that exists only through its join link (no password) loses it."""
    user(scene.target).password_hash = None
    db.session.commit()
    reg = registration_id(room, scene.target)
    url = f"/broadcasts/{room.broadcast_id}/registrations/{reg}/link/revoke"
    assert room.http(room.host).post(url).status_code == 302


def deactivated(room: World, scene: Scene) -> None:
    url = f"/admin/users/{scene.target.id}/deactivate"
    assert room.http(admin(room)).post(url).status_code == 302


def session_ended(room: World, scene: Scene) -> None:
    assert scene.presenter.emit("room.end")["ok"]


PATHS: list[tuple[str, bool, Callable[[World, Scene], None]]] = [
    ("removed from the course", False, unenrolled),
    ("registration declined", True, declined),
    ("join link revoked", True, link_revoked),
    ("account deactivated", False, deactivated),
    ("session ended", False, session_ended),
]


@pytest.mark.parametrize(("broadcast", "revoke"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS])
def test_losing_access_ends_it_on_every_live_connection(room, broadcast, revoke):
    scene = set_scene(room, broadcast)
    sids = [a_sid for a_sid, a in namespace.actors.items() if a.user_id == scene.target.id]
    assert len(sids) == 2

    revoke(room, scene)

    assert not any(tab.connected for tab in scene.tabs)
    for sid in sids:  # what their next event finds, on this web worker
        reply = namespace.dispatch("chat.send", sid, ({"text": "still here?"},))
        assert reply == {"ok": False, "error": "not connected to a room"}
    db.session.rollback()  # read what is committed
    room_id = scene.room_id
    assert db.session.scalars(select(Grant).where(Grant.user_id == scene.target.id)).all() == []
    assert db.session.scalars(select(MediaStream).where(MediaStream.room_id == room_id)).all() == []
    hands = db.session.scalars(select(Hand.state).where(Hand.user_id == scene.target.id)).all()
    assert hands == ["done"]  # called on, then over
    got = scene.presenter.drain()
    assert ("media.streams", {"streams": []}) in got
    assert ("hand.queue", {"queue": []}) in got
    for tab in scene.tabs:
        tab.drain()

    if scene.presenter.connected:  # the room goes on without them
        assert scene.presenter.emit("chat.send", {"text": "carry on"})["ok"]
        assert [name for name, _ in scene.tabs[0].drain()] == []
    again = room.connect(scene.target, {"room": scene.key})
    assert not again.connected


def test_a_new_join_link_leaves_an_account_with_a_password_in_the_room(room):
    """Its access never depended on the link: nothing of theirs ends."""
    scene = set_scene(room, broadcast=True)
    reg = registration_id(room, scene.target)
    url = f"/broadcasts/{room.broadcast_id}/registrations/{reg}/link/reissue"
    assert room.http(room.host).post(url).status_code == 302
    assert all(tab.connected for tab in scene.tabs)
    db.session.rollback()
    assert db.session.scalars(select(Grant.reason).where(Grant.user_id == scene.target.id)).all()


def test_a_removal_while_connecting_closes_the_new_connection(room, monkeypatch):
    """The removal runs after the connect's admission check but before its connection row is
    recorded (another web worker, on PostgreSQL): looking for the student's connections, it
    finds none. The connect, checking again once its row is committed, ends it itself."""
    student = room.students[0]
    instructor = room.join(room.instructor)
    instructor.drain()
    record = presence.connect

    def removed_meanwhile(actor, sid, out):
        assert unenrol(db.session.get(Course, room.course_id), student.id)
        record(actor, sid, out)

    monkeypatch.setattr(presence, "connect", removed_meanwhile)
    late = room.connect(student, {"room": room.lesson})

    assert not late.connected
    assert [a for a in namespace.actors.values() if a.user_id == student.id] == []
    db.session.rollback()  # read what is committed
    assert (
        db.session.scalars(select(Connection).where(Connection.user_id == student.id)).all() == []
    )
    got = [name for name, data in instructor.drain() if data.get("user_id") == student.id]
    assert got == ["presence.join", "presence.leave"]  # as logged: nobody stays present


# -- across web workers ------------------------------------------------------------------------
QUEUE = {"SECRET_KEY": SECRET, "REDIS_URL": REDIS_URL, "SOCKETIO_CHANNEL": CHANNEL}


@pytest.mark.redis
@pytest.mark.server
@pytest.mark.parametrize("app_config", [QUEUE], indirect=True)
def test_removal_reaches_a_connection_on_another_web_worker(app, workers, users, courses):
    """The student is connected to worker 1, the instructor to worker 2, and the removal runs in
    a third process (as an HTTP request on any worker would): the close crosses Redis."""
    instructor, student = users.make("instructor"), users.make("student")
    course = courses.make(instructor, students=(student,))
    key = f"lesson:{courses.lesson(course, starts_in=-timedelta(minutes=5)).id}"
    teacher, learner = RealClient(), RealClient()
    try:
        teacher.join(workers[1].url, session_cookie(app, instructor), key)
        learner.join(workers[0].url, session_cookie(app, student), key)
        assert learner.call("hand.raise")["ok"]
        assert teacher.call("hand.call", {"user_id": student.id})["ok"]

        assert unenrol(course, student.id, by=instructor.id)

        teacher.wait_for("hand.queue", lambda d: d["queue"] == [])
        teacher.wait_for("presence.leave", lambda d: d["user_id"] == student.id)
        deadline = time.monotonic() + 5
        while learner.sio.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not learner.sio.connected
        db.session.rollback()
        assert db.session.scalars(select(Grant).where(Grant.user_id == student.id)).all() == []
        with pytest.raises(socketio.exceptions.ConnectionError):
            RealClient().join(workers[0].url, session_cookie(app, student), key)
    finally:
        for participant in (learner, teacher):
            participant.sio.disconnect()
