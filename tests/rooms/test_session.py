"""Ending the session for everyone: streams, hands and grants end, everyone is disconnected and
kept out until a presenter comes back, which opens the room again."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lectern.extensions import db
from rooms.log import timeline
from rooms.models import Grant, Hand, MediaStream, Room

from .test_stage import stream


def room_row(room, key: str) -> Room:
    db.session.rollback()  # read what is committed
    found = db.session.get(Room, room.room_id(key))
    assert found is not None
    return found


def test_ending_closes_the_room_for_everyone(room):
    teacher = room.join(room.instructor)
    ann, ben = (room.join(s) for s in room.students[:2])
    assert ann.emit("hand.raise")["ok"] and teacher.emit("hand.call", {})["ok"]
    for client in (teacher, ann, ben):
        client.drain()

    assert teacher.emit("room.end") == {"ok": True}
    for client in (ann, ben):
        assert ("room.ended", {"by": "Iris Instructor"}) in client.drain()
        assert not client.connected
    assert not teacher.connected

    row = room_row(room, room.lesson)
    assert row.ended_at is not None
    assert db.session.scalars(select(Hand.state)).all() == ["done"]
    assert db.session.scalars(select(Grant)).all() == []
    assert "room.end" in [e["type"] for e in timeline(row.id)]

    # Students are kept out, and told why, until the instructor comes back.
    refused = room.connect(room.students[0], {"room": room.lesson})
    assert not refused.connected
    page = room.http(room.students[0]).get(f"/rooms/lesson/{room.lesson_id}")
    assert page.status_code == 410 and "This session has ended" in page.data.decode()

    back = room.join(room.instructor)
    assert room_row(room, room.lesson).ended_at is None
    assert "room.reopen" in [e["type"] for e in timeline(row.id)]
    assert room.join(room.students[0]).state()["me"]["role"] == "student"
    back.close()


def test_ending_stops_the_streams(room):
    host, abe = room.join(room.host), room.join(room.attendees[0])
    assert host.emit("stage.promote", {"user_id": room.attendees[0].id})["ok"]
    abe = room.join(room.attendees[0])
    stream(room, abe)
    assert host.emit("room.end")["ok"]
    db.session.rollback()
    assert db.session.scalars(select(MediaStream)).all() == []


@pytest.mark.parametrize("who", ["student", "panelist", "attendee"])
def test_only_presenters_end_the_session(room, who):
    person, key = room.role(who)
    client = room.join(person, key)
    reply = client.emit("room.end")
    assert reply == {"ok": False, "error": f"your role ({who}) may not do this"}
    assert client.connected and room_row(room, key).ended_at is None
