"""The demo stays tryable: on every start its live lesson and all-hands are live again (a fresh
window when theirs passed or they were ended for everyone); nothing but the demo's rows moves."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from classroom.models import Lesson
from lectern import demo
from lectern.extensions import db
from lectern.schema import prepare
from lectern.timeutil import utcnow
from rooms.models import Room
from rooms.session import SessionState, describe, room_of
from webinar.models import Broadcast

LIVE = ("Waves and oscillations", "Quarterly all-hands")


def demo_rows() -> dict[str, Lesson | Broadcast]:
    return {row.title: row for _, row in demo.demo_sessions()}


def state(kind: str, row: Lesson | Broadcast) -> SessionState:
    return describe(room_of(kind, row.id), row.starts_at, row.ends_at).state


def test_start_up_puts_the_demo_back_on_air(app, users, courses, broadcasts, capsys):
    demo.seed()
    capsys.readouterr()  # the invitation e-mail printed at seeding
    rows = demo_rows()
    assert set(rows) == {*demo.LESSONS, *demo.BROADCASTS}
    # Someone else's lesson with a demo title, and an old one of their own: never touched.
    other = courses.make(users.make("instructor"), title="Physics 101")
    lookalike = courses.lesson(other, title="Waves and oscillations", starts_in=timedelta(days=-2))
    old_cast = broadcasts.make(users.make("host"), title="Quarterly all-hands")
    untouched = {
        (Lesson, lookalike.id): lookalike.starts_at,
        (Broadcast, old_cast.id): old_cast.starts_at,
    }

    # Two days later: every demo session's time has passed; the lesson was also ended.
    for row in rows.values():
        row.starts_at -= timedelta(days=10)
    lesson = rows["Waves and oscillations"]
    ended = Room(kind="lesson", ref_id=lesson.id, ended_at=utcnow() - timedelta(days=2))
    db.session.add(ended)
    db.session.commit()
    assert state("lesson", lesson) == SessionState.ENDED

    app.config["DEMO_DATA"] = True
    prepare(app)
    db.session.rollback()  # read what the start-up committed

    rows = demo_rows()
    assert state("lesson", rows["Waves and oscillations"]) == SessionState.LIVE
    assert state("broadcast", rows["Quarterly all-hands"]) == SessionState.LIVE
    for title in ("Energy and momentum", "Annual shareholder meeting"):
        assert rows[title].starts_at > utcnow()
    assert db.session.scalar(select(Room.ended_at).where(Room.id == ended.id)) is None
    for (model, row_id), starts_at in untouched.items():
        assert db.session.get(model, row_id).starts_at == starts_at


def test_a_running_demo_session_is_left_alone(app):
    demo.seed()
    before = {title: row.starts_at for title, row in demo_rows().items()}
    assert demo.refresh() == 0
    assert {title: row.starts_at for title, row in demo_rows().items()} == before
