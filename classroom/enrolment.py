"""Enrolling students by e-mail: a pasted list is first planned (who is enrolled, who is
invited, which lines are not addresses), shown, then applied; and course invitations for
addresses that have no account yet (a single-use link that creates the account)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from flask_login import login_user
from sqlalchemy import select

from accounts import notify, tokens
from accounts.emails import MAX_ADDRESSES, SEPARATORS, normalize_email
from accounts.models import AccountToken, Purpose, User
from accounts.users import AccountError, create
from classroom.models import Course, Enrollment, Lesson
from classroom.room import LESSON_ROOM
from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import access
from rooms.models import Room

STUDENT = "student"  # the site role of an account created by accepting an invitation


@dataclass
class Plan:
    """What applying a pasted list does; nothing is written while planning."""

    enrol: list[str] = field(default_factory=list)  # accounts to enrol
    invite: list[str] = field(default_factory=list)  # no account: a new invitation
    reinvite: list[str] = field(default_factory=list)  # invited before: the link is re-sent
    already: list[str] = field(default_factory=list)  # enrolled, or the course's teacher
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    too_many: bool = False

    @property
    def valid(self) -> list[str]:
        """Every address the list names (what the confirm form sends back)."""
        return self.enrol + self.invite + self.reinvite + self.already

    @property
    def clean(self) -> bool:
        """Nothing to ask about: no invitation to send and no bad line."""
        return not (self.invite or self.reinvite or self.bad or self.too_many)


def parse_lines(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Normalized addresses (in order, once each), and per line the pieces that are not
    addresses: (line number, those pieces)."""
    emails: list[str] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        wrong = []
        for piece in SEPARATORS.split(line):
            email = normalize_email(piece) if piece else ""
            if email is None:
                wrong.append(piece)
            elif email and email not in emails:
                emails.append(email)
        if wrong:
            bad.append((number, " ".join(wrong)[:80]))
    return emails, bad


def pending_invitation(course: Course, email: str) -> AccountToken | None:
    """The course's unused invitation for ``email`` (expired ones too: re-inviting renews)."""
    return db.session.scalar(
        select(AccountToken).where(
            AccountToken.purpose == Purpose.INVITE.value,
            AccountToken.course_id == course.id,
            AccountToken.email == email,
            AccountToken.used_at.is_(None),
        )
    )


def plan(course: Course, text: str) -> Plan:
    """Sort the pasted addresses by what applying them would do."""
    emails, bad = parse_lines(text)
    result = Plan(bad=bad, too_many=len(emails) > MAX_ADDRESSES)
    if result.too_many:
        return result
    accounts = {u.email: u for u in db.session.scalars(select(User).where(User.email.in_(emails)))}
    enrolled = set(
        db.session.scalars(select(Enrollment.user_id).where(Enrollment.course_id == course.id))
    )
    for email in emails:
        user = accounts.get(email)
        if user is not None and (user.id in enrolled or user.id == course.owner_id):
            result.already.append(email)
        elif user is not None:
            result.enrol.append(email)
        elif pending_invitation(course, email) is not None:
            result.reinvite.append(email)
        else:
            result.invite.append(email)
    return result


def apply(course: Course, text: str, inviter: User) -> Plan:
    """Enrol the accounts and invite (or re-invite) the others, then send the invitations.

    Bad lines are skipped (the preview showed them). Returns the plan that was applied.
    """
    result = plan(course, text)
    if result.too_many:
        return result
    accounts = db.session.scalars(select(User).where(User.email.in_(result.enrol)))
    db.session.add_all(Enrollment(course_id=course.id, user_id=u.id) for u in accounts)
    links = [(email, invite(course, email, inviter)) for email in result.invite + result.reinvite]
    db.session.commit()
    if links:
        notify.send_all(
            [notify.invite_mail(email, token, course.title, inviter.name) for email, token in links]
        )
    return result


def invite(course: Course, email: str, inviter: User) -> str:
    """A new or renewed invitation link for ``email`` (the caller commits and sends)."""
    row = pending_invitation(course, email)
    if row is not None:
        return tokens.renew(row)
    _row, token = tokens.issue(Purpose.INVITE, email, course_id=course.id, created_by=inviter.id)
    return token


def pending_invitations(course: Course) -> list[AccountToken]:
    """The course's invitations not yet accepted or cancelled, oldest first."""
    return list(
        db.session.scalars(
            select(AccountToken)
            .where(
                AccountToken.purpose == Purpose.INVITE.value,
                AccountToken.course_id == course.id,
                AccountToken.used_at.is_(None),
            )
            .order_by(AccountToken.id)
        )
    )


def course_invitation(course: Course, invitation_id: int) -> AccountToken | None:
    """One of the course's pending invitations, by id."""
    row = db.session.get(AccountToken, invitation_id) if 0 < invitation_id < 2**31 else None
    if row is None or row.course_id != course.id or row.purpose != Purpose.INVITE:
        return None
    return row if row.used_at is None else None


def cancel(row: AccountToken) -> None:
    """The link stops working (kept as used, so the page says so)."""
    row.used_at = utcnow()
    db.session.commit()


def resend(course: Course, row: AccountToken, inviter: User) -> bool:
    """A new link for the invitation (the old one stops working); True if the mail went out."""
    token = tokens.renew(row)
    db.session.commit()
    return bool(notify.send_all([notify.invite_mail(row.email, token, course.title, inviter.name)]))


def accept(row: AccountToken, name: str, password: str) -> User | None:
    """Create the student's account, enrol it and sign it in, all in one commit.

    Returns None when an account with the address exists by now: it is enrolled, and its owner
    signs in with their own password.

    :raises AccountError: the name or password is refused (nothing is written)
    """
    course_id = row.course_id
    existing = db.session.scalar(select(User).where(User.email == row.email))
    user = existing or create(row.email, name, STUDENT, password, commit=False)
    enrolled = db.session.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course_id, Enrollment.user_id == user.id
        )
    )
    if enrolled is None:
        db.session.add(Enrollment(course_id=course_id, user_id=user.id))
    if not tokens.consume(row):
        db.session.rollback()
        raise AccountError(_("This link was already used, or replaced by a newer one."))
    db.session.commit()
    if existing is not None:
        return None
    login_user(user)
    return user


def unenrol(course: Course, user_id: int, by: int | None = None) -> bool:
    """Remove one student from ``course``; False if they were not enrolled.

    Their access to the course's lesson rooms ends at once (``rooms.access``): grants, streams
    and hands end and their live connections close, on every web worker; reconnecting is
    refused.
    """
    enrolment = db.session.scalar(
        select(Enrollment).where(Enrollment.course_id == course.id, Enrollment.user_id == user_id)
    )
    if enrolment is None:
        return False
    db.session.delete(enrolment)
    db.session.commit()
    access.remove_now(user_id, among=lesson_rooms(course), by=by)
    return True


def lesson_rooms(course: Course) -> list[int]:
    """The live rooms ever opened for the course's lessons."""
    lessons = select(Lesson.id).where(Lesson.course_id == course.id)
    return list(
        db.session.scalars(
            select(Room.id).where(Room.kind == LESSON_ROOM.name, Room.ref_id.in_(lessons))
        )
    )
