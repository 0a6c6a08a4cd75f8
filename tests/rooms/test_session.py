"""A session's life: scheduled, live, ended. Ending is for everyone and final (no page, lookup or
reconnect reopens it); a presenter may start it again before its scheduled end; members keep
their recordings of it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from classroom.models import Lesson
from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms.log import timeline
from rooms.models import Grant, Hand, MediaStream, Recording, Room
from rooms.session import SessionState, state_of

from .test_stage import stream

NOW = datetime(2026, 3, 2, 10, 0)
HOUR = timedelta(hours=1)


def room_row(room, key: str) -> Room:
    db.session.rollback()  # read what is committed
    found = db.session.get(Room, room.room_id(key))
    assert found is not None
    return found


def lesson_now(room, starts_in: timedelta = timedelta(minutes=-5), minutes: int = 60) -> None:
    """Put the world's lesson on the schedule given (by default: on now)."""
    lesson = db.session.get(Lesson, room.lesson_id)
    lesson.starts_at, lesson.duration_minutes = utcnow() + starts_in, minutes
    db.session.commit()


def ended(room, teacher=None):
    """The instructor ends the lesson's session; returns their reply."""
    teacher = teacher or room.join(room.instructor)
    reply = teacher.emit("room.end")
    assert reply["ok"], reply
    teacher.close()
    return reply


def get(room, who, path: str):
    """GET ``path`` as ``who``, in an app context of its own (Flask-Login caches the user in g)."""
    with room.app.app_context():
        return room.http(who).get(path)


def post(room, who, path: str):
    with room.app.app_context():
        return room.http(who).post(path)


def events(room, key: str) -> list[str]:
    return [e["type"] for e in timeline(room.room_id(key))]


@pytest.mark.parametrize(
    ("starts", "ends", "ended_at", "on_air", "state"),
    [
        (NOW + HOUR, NOW + 2 * HOUR, None, False, SessionState.SCHEDULED),
        (NOW + 72 * HOUR, NOW + 73 * HOUR, None, False, SessionState.SCHEDULED),  # days away
        (NOW, NOW + HOUR, None, False, SessionState.LIVE),  # the start is inside the window
        (NOW - HOUR + timedelta(seconds=1), NOW + timedelta(seconds=1), None, False, "live"),
        (NOW - HOUR, NOW, None, False, SessionState.ENDED),  # the end is not
        (NOW - 3 * HOUR, NOW - 2 * HOUR, None, False, SessionState.ENDED),
        (NOW + HOUR, NOW + 2 * HOUR, None, True, SessionState.LIVE),  # started early, on air
        (NOW - 2 * HOUR, NOW - HOUR, None, True, SessionState.LIVE),  # running over, on air
        (NOW - HOUR, NOW + HOUR, NOW - timedelta(minutes=1), False, SessionState.ENDED),
        (NOW - HOUR, NOW + HOUR, NOW, True, SessionState.ENDED),  # ended beats on air
        (NOW + HOUR, NOW + 2 * HOUR, NOW, False, SessionState.ENDED),  # ended early stays so
    ],
)
def test_the_one_state_rule(starts, ends, ended_at, on_air, state):
    assert state_of(starts, ends, ended_at, on_air, NOW) == state


def test_ending_tells_everyone_the_final_state_and_closes_their_connections(room):
    lesson_now(room)
    teacher, other_tab = room.join(room.instructor), room.join(room.instructor)
    students = [room.join(s) for s in room.students]
    assert students[0].emit("hand.raise")["ok"] and teacher.emit("hand.call", {})["ok"]
    for client in (teacher, other_tab, *students):
        client.drain()

    reply = teacher.emit("room.end")
    assert reply["ok"] and reply["session"]["state"] == "ended"
    for client in (teacher, other_tab, *students):
        (payload,) = client.got("room.ended")
        assert payload["by"] == "Iris Instructor"
        assert payload["session"]["state"] == "ended"
        assert payload["session"]["ended_by"] == "Iris Instructor"
        assert payload["session"]["recordings"] == []
    for client in (other_tab, *students):
        assert not client.connected
    # The sender's connection stays for its reply; its page closes it.
    assert teacher.connected

    row = room_row(room, room.lesson)
    assert row.ended_at is not None
    assert db.session.scalars(select(Hand.state)).all() == ["done"]
    assert db.session.scalars(select(Grant)).all() == []
    assert "room.end" in events(room, room.lesson)


def test_ended_stays_ended_after_the_presenters_visits_and_reconnects(room):
    lesson_now(room)
    ended(room)
    lesson_page = f"/courses/{room.course_id}/lessons/{room.lesson_id}"
    for path in ("/", "/recordings/", lesson_page, f"/rooms/lesson/{room.lesson_id}"):
        assert get(room, room.instructor, path).status_code in (200, 410), path

    for who in (room.instructor, room.students[0], room.students[1]):
        assert not room.connect(who, {"room": room.lesson}).connected
    assert room_row(room, room.lesson).ended_at is not None
    assert "room.start" not in events(room, room.lesson)

    page = get(room, room.students[0], f"/rooms/lesson/{room.lesson_id}")
    text = page.data.decode()
    assert page.status_code == 410 and "This session has ended" in text
    assert "Iris Instructor ended it for everyone" in text and "Start again" not in text
    dashboard = get(room, room.students[0], "/").data.decode()
    assert "ENDED" in dashboard and 'data-session="live"' not in dashboard
    lesson = get(room, room.students[0], lesson_page).data.decode()
    assert "This lesson has ended." in lesson and "Join the live room" not in lesson
    teacher_view = get(room, room.instructor, f"/rooms/lesson/{room.lesson_id}").data.decode()
    assert "Start again" in teacher_view


def test_a_presenter_starts_it_again(room):
    lesson_now(room)
    ended(room)
    reply = post(room, room.instructor, f"/rooms/lesson/{room.lesson_id}/start")
    assert reply.status_code == 302 and reply.location.endswith(f"/rooms/lesson/{room.lesson_id}")
    assert room_row(room, room.lesson).ended_at is None
    assert "room.start" in events(room, room.lesson)
    ann = room.join(room.students[0])
    assert ann.state()["session"]["state"] == "live"


@pytest.mark.parametrize("who", ["student", "outsider"])
def test_others_cannot_start_it_again(room, who):
    lesson_now(room)
    ended(room)
    person = room.students[0] if who == "student" else room.outsider
    reply = post(room, person, f"/rooms/lesson/{room.lesson_id}/start")
    assert reply.status_code == (403 if who == "student" else 404)
    assert room_row(room, room.lesson).ended_at is not None


def test_starting_again_is_refused_after_the_scheduled_end(room):
    lesson_now(room)
    ended(room)
    lesson_now(room, starts_in=timedelta(hours=-3))  # its time is over now
    reply = post(room, room.instructor, f"/rooms/lesson/{room.lesson_id}/start")
    assert reply.status_code == 409 and "scheduled time is over" in reply.data.decode()
    assert room_row(room, room.lesson).ended_at is not None


def test_starting_again_is_rate_limited(room):
    lesson_now(room)
    ended(room)
    path = f"/rooms/lesson/{room.lesson_id}/start"
    lesson_now(room, starts_in=timedelta(hours=-3))  # refused, so it stays ended: 409 or 429
    codes = [post(room, room.instructor, path).status_code for _ in range(25)]
    assert 429 in codes


def test_members_watch_the_recordings_of_an_ended_session(room, app):
    lesson_now(room)
    teacher = room.join(room.instructor)
    recording = Recording(
        room_id=room.room_id(room.lesson),
        title="Waves, recorded",
        status="ready",
        directory="recordings/x",
        worker="127.0.0.1:1",
        started_ts=1.0,
        ended_ts=2.0,
    )
    db.session.add(recording)
    db.session.commit()
    recording_id = recording.id
    reply = ended(room, teacher)
    assert [r["id"] for r in reply["session"]["recordings"]] == [recording_id]

    for who in (room.students[0], room.instructor):
        assert get(room, who, f"/recordings/{recording_id}").status_code == 200
        assert "Waves, recorded" in get(room, who, "/recordings/").data.decode()
        ended_page = get(room, who, f"/rooms/lesson/{room.lesson_id}").data.decode()
        assert "Waves, recorded" in ended_page
    assert get(room, room.outsider, f"/recordings/{recording_id}").status_code == 404
    assert room_row(room, room.lesson).ended_at is not None


def test_ending_stops_the_streams(room):
    host, abe = room.join(room.host), room.join(room.attendees[0])
    assert host.emit("stage.promote", {"user_id": room.attendees[0].id})["ok"]
    abe = room.join(room.attendees[0])
    stream(room, abe)
    assert host.emit("room.end")["ok"]
    db.session.rollback()
    assert db.session.scalars(select(MediaStream)).all() == []


def test_the_snapshot_says_scheduled_before_the_start(room):
    ann = room.join(room.students[0])  # the lesson starts tomorrow
    assert ann.state()["session"]["state"] == "scheduled"


@pytest.mark.parametrize("who", ["student", "panelist", "attendee"])
def test_only_presenters_end_the_session(room, who):
    person, key = room.role(who)
    client = room.join(person, key)
    reply = client.emit("room.end")
    assert reply == {"ok": False, "error": f"your role ({who}) may not do this"}
    assert client.connected and room_row(room, key).ended_at is None
