"""Who may do what with a course: course roles as data."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select

from accounts.models import User
from classroom.models import Course, Enrollment
from lectern.extensions import db


class Action(StrEnum):
    VIEW = "view"
    MANAGE = "manage"  # enrol students, schedule lessons, edit the course
    TEACH = "teach"  # run the live room


# course role -> actions it allows
COURSE_PERMISSIONS: dict[str, frozenset[Action]] = {
    "instructor": frozenset({Action.VIEW, Action.MANAGE, Action.TEACH}),
    "student": frozenset({Action.VIEW}),
}


def course_role(user: User, course: Course) -> str | None:
    """The user's role in ``course``: its owner (or an admin) teaches, the enrolled learn."""
    if user.role == "admin" or course.owner_id == user.id:
        return "instructor"
    enrolled = db.session.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course.id, Enrollment.user_id == user.id
        )
    )
    return "student" if enrolled else None


def course_allows(user: User, course: Course, action: Action) -> bool:
    """Whether ``user`` may perform ``action`` on ``course``."""
    role = course_role(user, course)
    return role is not None and action in COURSE_PERMISSIONS[role]
