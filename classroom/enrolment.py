"""Enrolling students by e-mail: all of a pasted list, or none of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from accounts.emails import MAX_ADDRESSES, parse_email_list
from accounts.models import User
from classroom.models import Course, Enrollment
from lectern.extensions import db


@dataclass
class EnrolResult:
    """What an enrolment request did, or why it did nothing."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    too_many: bool = False

    @property
    def ok(self) -> bool:
        return not (self.invalid or self.unknown or self.too_many)


def enrol_emails(course: Course, text: str) -> EnrolResult:
    """Enrol every address in ``text``; if any is invalid or has no account, enrol nobody."""
    parsed = parse_email_list(text)
    result = EnrolResult(
        invalid=parsed.invalid or ([] if parsed.emails else ["(no e-mail address found)"]),
        too_many=len(parsed.emails) > MAX_ADDRESSES,
    )
    if result.too_many:
        return result
    users = {
        u.email: u for u in db.session.scalars(select(User).where(User.email.in_(parsed.emails)))
    }
    result.unknown = [e for e in parsed.emails if e not in users]
    if not result.ok:
        return result
    enrolled = set(
        db.session.scalars(select(Enrollment.user_id).where(Enrollment.course_id == course.id))
    )
    for email in parsed.emails:
        user = users[email]
        if user.id in enrolled or user.id == course.owner_id:
            result.already.append(email)
        else:
            db.session.add(Enrollment(course_id=course.id, user_id=user.id))
            enrolled.add(user.id)
            result.added.append(email)
    db.session.commit()
    return result


def unenrol(course: Course, user_id: int) -> bool:
    """Remove one student from ``course``; False if they were not enrolled."""
    enrolment = db.session.scalar(
        select(Enrollment).where(Enrollment.course_id == course.id, Enrollment.user_id == user_id)
    )
    if enrolment is None:
        return False
    db.session.delete(enrolment)
    db.session.commit()
    return True
