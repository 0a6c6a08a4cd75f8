"""The dashboard: what is live now and what comes next, for the signed-in user."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from flask import Blueprint, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from classroom.routes import visible_courses
from lectern.timeutil import utcnow
from recordings.player import entries
from rooms.session import SessionState, states
from webinar.policy import Action, broadcast_allows
from webinar.routes import visible_broadcasts

bp = Blueprint("dashboard", __name__)

UPCOMING_LIMIT = 10
RECORDINGS_LIMIT = 5


@dataclass(frozen=True)
class Session:
    """One lesson or broadcast as the dashboard lists it."""

    kind: str  # "Lesson" or a broadcast's kind label
    title: str
    context: str  # the course title, or the host's name
    starts_at: datetime
    ends_at: datetime
    url: str  # the lesson's or broadcast's page
    room: tuple[str, int]  # its live room: (kind, ref_id)
    state: SessionState = SessionState.SCHEDULED


def lesson_sessions() -> list[Session]:
    """Every lesson of the user's courses."""
    return [
        Session(
            _("Lesson"),
            lesson.title,
            course.title,
            lesson.starts_at,
            lesson.ends_at,
            url_for("classroom.lesson", course_id=course.id, lesson_id=lesson.id),
            ("lesson", lesson.id),
        )
        for course in visible_courses()
        for lesson in course.lessons
    ]


def broadcast_sessions() -> list[Session]:
    """Broadcasts the user hosts or may join."""
    return [
        Session(
            b.kind_label,
            b.title,
            _("hosted by %(name)s", name=b.host.name),
            b.starts_at,
            b.ends_at,
            url_for("webinar.detail", broadcast_id=b.id),
            ("broadcast", b.id),
        )
        for b in visible_broadcasts()
        if broadcast_allows(current_user, b, Action.JOIN)
        or broadcast_allows(current_user, b, Action.REGISTER)
    ]


def with_states(sessions: list[Session]) -> list[Session]:
    """The sessions, each with its state (rooms.session.state_of), a few queries in all."""
    found: dict[tuple[str, int], SessionState] = {}
    for kind in {s.room[0] for s in sessions}:
        schedules = {s.room[1]: (s.starts_at, s.ends_at) for s in sessions if s.room[0] == kind}
        found.update({(kind, ref): st for ref, st in states(kind, schedules).items()})
    return [replace(s, state=found[s.room]) for s in sessions]


@bp.get("/")
@login_required
def index() -> str:
    """Live now, sessions ended for everyone while still scheduled, then the next sessions in
    start order, then the newest recordings."""
    now = utcnow()
    sessions = sorted(lesson_sessions() + broadcast_sessions(), key=lambda s: s.starts_at)
    sessions = with_states(sessions)
    live = [s for s in sessions if s.state == SessionState.LIVE]
    ended = [
        s for s in sessions if s.state == SessionState.ENDED and s.starts_at <= now < s.ends_at
    ]
    upcoming = [s for s in sessions if s.state == SessionState.SCHEDULED][:UPCOMING_LIMIT]
    recordings = entries(current_user, limit=RECORDINGS_LIMIT)
    return render_template(
        "dashboard.html",
        live=live,
        ended=ended,
        upcoming=upcoming,
        now=now,
        recordings=recordings,
    )
