"""A lesson's live room: the instructor presents, students raise hands, ask, chat and vote."""

from __future__ import annotations

from datetime import datetime

from accounts.models import User
from classroom.models import Lesson
from classroom.policy import course_role
from lectern.extensions import db
from rooms.policy import PRESENTER, Perm, RoomPolicy
from rooms.registry import Membership, RoomKind

LESSON_POLICY = RoomPolicy(
    roles={
        "instructor": PRESENTER,
        "student": frozenset({Perm.RAISE_HAND, Perm.ASK, Perm.UPVOTE, Perm.CHAT, Perm.VOTE}),
    },
    moderated=False,
    anonymous_questions=True,
    hand_queue_public=True,
)


def resolve(user: User, lesson_id: int) -> Membership | None:
    """The instructor and enrolled students of the lesson's course may join."""
    lesson = db.session.get(Lesson, lesson_id)
    if lesson is None:
        return None
    role = course_role(user, lesson.course)
    if role is None:
        return None
    return Membership(role=role, title=f"{lesson.course.title}: {lesson.title}")


def schedule(lesson_id: int) -> tuple[datetime, datetime] | None:
    """When the lesson is on: its scheduled start and end."""
    lesson = db.session.get(Lesson, lesson_id)
    return None if lesson is None else (lesson.starts_at, lesson.ends_at)


LESSON_ROOM = RoomKind(name="lesson", policy=LESSON_POLICY, resolve=resolve, schedule=schedule)
