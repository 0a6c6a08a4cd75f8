"""Models and the rules the database itself enforces (on the schema the migrations built)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from accounts.models import User
from accounts.roles import ROLES, Perm
from classroom.models import Enrollment, Lesson
from classroom.policy import Action, course_allows
from lectern.extensions import db
from lectern.timeutil import utcnow
from webinar.models import Broadcast, Registration

T0 = datetime(2030, 1, 1, 10, 0)


@pytest.mark.parametrize(
    ("now", "live"),
    [
        (T0 - timedelta(seconds=1), False),
        (T0, True),
        (T0 + timedelta(minutes=59, seconds=59), True),
        (T0 + timedelta(minutes=60), False),
    ],
)
@pytest.mark.parametrize("model", [Lesson, Broadcast])
def test_is_live_covers_start_but_not_end(model, now, live):
    session = model(starts_at=T0, duration_minutes=60)
    assert session.ends_at == datetime(2030, 1, 1, 11, 0)
    assert session.is_live(now) is live


def test_is_live_defaults_to_now():
    now = utcnow()
    assert Lesson(starts_at=now - timedelta(minutes=1), duration_minutes=5).is_live()
    assert not Lesson(starts_at=now + timedelta(minutes=1), duration_minutes=5).is_live()


# role -> the site-wide permissions it should grant
CAN = {
    "admin": {Perm.CREATE_COURSE, Perm.CREATE_BROADCAST, Perm.MANAGE_USERS},
    "instructor": {Perm.CREATE_COURSE},
    "host": {Perm.CREATE_BROADCAST},
    "student": set(),
    "attendee": set(),
}


@pytest.mark.parametrize("perm", list(Perm))
@pytest.mark.parametrize("role", list(CAN))
def test_user_can(role, perm):
    assert User(role=role).can(perm) is (perm in CAN[role])


def test_every_role_is_in_the_table():
    assert set(ROLES) == set(CAN)


@pytest.mark.parametrize("role", ["superuser", "", "Admin"])
def test_database_rejects_an_unknown_role(app, role, rows):
    db.session.add(User(email="x@example.com", name="X", role=role))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert rows(User) == 0


def test_database_rejects_a_duplicate_email(users):
    users.make("student", email="same@example.com")
    with pytest.raises(IntegrityError):
        users.make("host", email="same@example.com")
    db.session.rollback()


def test_enrolment_is_unique(users, courses, rows):
    student = users.make("student")
    course = courses.make(users.make("instructor"), students=(student,))
    db.session.add(Enrollment(course_id=course.id, user_id=student.id))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert rows(Enrollment) == 1


def test_registration_is_unique_per_broadcast_and_email(users, broadcasts, rows):
    b = broadcasts.make(users.make("host"))
    broadcasts.register(b, email="a@example.com", status="pending")
    with pytest.raises(IntegrityError):
        broadcasts.register(b, email="a@example.com", status="approved")
    db.session.rollback()
    other = broadcasts.make(b.host)
    broadcasts.register(other, email="a@example.com", status="pending")  # fine elsewhere
    assert rows(Registration) == 2


@pytest.mark.parametrize(("column", "value"), [("kind", "party"), ("registration_mode", "lottery")])
def test_database_rejects_unknown_broadcast_kind_and_mode(users, broadcasts, column, value):
    b = broadcasts.make(users.make("host"))
    setattr(b, column, value)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


@pytest.mark.parametrize(("column", "value"), [("status", "maybe"), ("role", "moderator")])
def test_database_rejects_unknown_registration_status_and_role(users, broadcasts, column, value):
    reg = broadcasts.register(broadcasts.make(users.make("host")), email="a@example.com")
    setattr(reg, column, value)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_registration_defaults(users, broadcasts):
    b = broadcasts.make(users.make("host"))
    reg = Registration(broadcast_id=b.id, email="a@example.com")
    db.session.add(reg)
    db.session.commit()
    assert (reg.status, reg.role, reg.name) == ("pending", "attendee", "")
    assert reg.created_at is not None


def test_large_share_counts_fit(users, broadcasts):
    b = broadcasts.make(users.make("host"), kind="shareholder", mode="invite")
    reg = broadcasts.register(b, email="fund@example.com")
    reg.shares = 5_000_000_000  # more than a 32-bit integer holds
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Registration, reg.id).shares == 5_000_000_000


def test_deleting_a_course_deletes_its_lessons_and_enrolments(users, courses, rows):
    course = courses.make(users.make("instructor"), students=(users.make("student"),))
    courses.lesson(course)
    db.session.delete(course)
    db.session.commit()
    assert (rows(Lesson), rows(Enrollment)) == (0, 0)


@pytest.mark.parametrize(
    ("who", "view", "manage"),
    [
        ("owner", True, True),
        ("student", True, False),
        ("admin", True, True),
        ("other", False, False),
    ],
)
def test_course_policy(users, courses, who, view, manage):
    owner, student = users.make("instructor"), users.make("student")
    course = courses.make(owner, students=(student,))
    user = {"owner": owner, "student": student}.get(who) or users.make(
        "admin" if who == "admin" else "instructor"
    )
    assert course_allows(user, course, Action.VIEW) is view
    assert course_allows(user, course, Action.MANAGE) is manage
    assert course_allows(user, course, Action.TEACH) is manage
