"""Demo data for a first start: accounts, a course with a live lesson, and two broadcasts; on every
later start, :func:`refresh` puts the demo's sessions back on a current schedule."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from accounts.models import User
from classroom.models import Course, Enrollment, Lesson
from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import log
from rooms.session import room_of
from webinar.links import issue
from webinar.models import Broadcast, Kind, Mode, Registration, Status
from webinar.notify import send_join_links

DEMO_PASSWORD = "lectern-demo"

# (e-mail, name, role)
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("instructor@example.com", "Ada Instructor", "instructor"),
    ("student1@example.com", "Ben Student", "student"),
    ("student2@example.com", "Chloe Student", "student"),
    ("student3@example.com", "Dev Student", "student"),
    ("host@example.com", "Hana Host", "host"),
    ("employee@example.com", "Eli Employee", "attendee"),
    ("shareholder@example.com", "Sam Shareholder", "attendee"),
    ("admin@example.com", "Alex Admin", "admin"),  # last: tests know the others' ids
)


# The demo's sessions, found by their owner's demo account and their title (never by id, never
# anything else): title -> how far from now a fresh start is. Negative: live now.
INSTRUCTOR, HOST, COURSE = "instructor@example.com", "host@example.com", "Physics 101"
LESSONS = {
    "Waves and oscillations": timedelta(minutes=-5),
    "Energy and momentum": timedelta(days=7),
}
BROADCASTS = {
    "Quarterly all-hands": timedelta(minutes=-2),
    "Annual shareholder meeting": timedelta(days=3),
}


def needs_seed() -> bool:
    """True on a first start: the database has no users yet."""
    return not db.session.scalar(select(func.count()).select_from(User))


def seed() -> dict[str, User]:
    """Create the demo accounts and sessions; returns the users by e-mail."""
    users = {email: _user(email, name, role) for email, name, role in DEMO_USERS}
    db.session.flush()
    _course(users)
    _broadcasts(users)
    db.session.commit()
    return users


def _user(email: str, name: str, role: str) -> User:
    user = User(email=email, name=name, role=role)
    user.set_password(DEMO_PASSWORD)
    db.session.add(user)
    return user


def _course(users: dict[str, User]) -> None:
    now = utcnow()
    course = Course(
        title="Physics 101",
        description="Mechanics and waves for first-year students.",
        owner_id=users["instructor@example.com"].id,
    )
    db.session.add(course)
    db.session.flush()
    for n in (1, 2, 3):
        db.session.add(Enrollment(course_id=course.id, user_id=users[f"student{n}@example.com"].id))
    db.session.add_all(
        [
            Lesson(
                course_id=course.id,
                title="Waves and oscillations",
                starts_at=now - timedelta(minutes=5),
                duration_minutes=120,
            ),
            Lesson(
                course_id=course.id,
                title="Energy and momentum",
                starts_at=now + timedelta(days=7),
                duration_minutes=60,
            ),
        ]
    )


def _invite_holder(agm: Broadcast) -> None:
    """A holder without an account, invited from the share register: her invitation e-mail (link
    and code) is printed on the console at first start, to try the join link."""
    reg = Registration(
        broadcast_id=agm.id,
        email="olga.holder@example.com",
        name="Olga Holder",
        status=Status.PENDING.value,
        invited=True,
        holder_id="H-0002",
        shares=800,
    )
    reg.broadcast = agm
    db.session.add(reg)
    db.session.flush()
    code = issue(reg)
    db.session.commit()
    send_join_links([(reg, code)])


def _broadcasts(users: dict[str, User]) -> None:
    now = utcnow()
    host = users["host@example.com"]
    all_hands = Broadcast(
        host_id=host.id,
        title="Quarterly all-hands",
        kind=Kind.ALL_HANDS.value,
        registration_mode=Mode.OPEN.value,
        starts_at=now - timedelta(minutes=2),
        duration_minutes=60,
        description="Results, roadmap and open questions.",
        allowed_domain="example.com",
    )
    agm = Broadcast(
        host_id=host.id,
        title="Annual shareholder meeting",
        kind=Kind.SHAREHOLDER.value,
        registration_mode=Mode.INVITE.value,
        starts_at=now + timedelta(days=3),
        duration_minutes=90,
        description="Accounts, dividend and board elections.",
    )
    db.session.add_all([all_hands, agm])
    db.session.flush()
    holder = users["shareholder@example.com"]
    db.session.add(
        Registration(
            broadcast_id=agm.id,
            user_id=holder.id,
            email=holder.email,
            name=holder.name,
            status=Status.APPROVED.value,
            holder_id="H-0001",
            shares=1200,
            verified_at=now,  # the demo holder skips the link; Olga below shows it
        )
    )
    db.session.add(
        Registration(
            broadcast_id=all_hands.id,
            user_id=users["employee@example.com"].id,
            email="employee@example.com",
            name="Eli Employee",
            status=Status.APPROVED.value,
        )
    )
    _invite_holder(agm)


def demo_sessions() -> list[tuple[str, Lesson | Broadcast]]:
    """The demo's lessons and broadcasts as (room kind, row): only those of the demo accounts,
    in the demo course, with the demo titles."""
    lessons = db.session.scalars(
        select(Lesson)
        .join(Course)
        .join(User, Course.owner_id == User.id)
        .where(User.email == INSTRUCTOR, Course.title == COURSE, Lesson.title.in_(LESSONS))
    )
    casts = db.session.scalars(
        select(Broadcast)
        .join(User, Broadcast.host_id == User.id)
        .where(User.email == HOST, Broadcast.title.in_(BROADCASTS))
    )
    return [("lesson", row) for row in lessons] + [("broadcast", row) for row in casts]


def refresh(now: datetime | None = None) -> int:
    """Keep the demo tryable on every start: its live lesson and all-hands get a fresh window
    when theirs has passed or they were ended for everyone (their rooms open again), upcoming
    ones move ahead once their start has passed. Returns how many sessions moved."""
    now = now or utcnow()
    moved = 0
    for kind, row in demo_sessions():
        offset = {**LESSONS, **BROADCASTS}[row.title]
        room = room_of(kind, row.id)
        ended = room is not None and room.ended_at is not None
        live_now = offset < timedelta(0)
        passed = row.ends_at <= now if live_now else row.starts_at <= now
        if not (passed or ended):
            continue
        row.starts_at = now + offset
        moved += 1
        if room is not None and ended:
            room.ended_at = None
            log.record(room.id, None, "room.start")
    db.session.commit()
    return moved
