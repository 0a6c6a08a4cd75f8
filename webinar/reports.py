"""The host's reports on a broadcast: attendance, Q&A and polls, as a page and as CSV files.

Everything is read from what the live room logged (``room_events``, ``questions``, ``polls``,
``poll_audit``) and from the registrations; the figures themselves are computed
by :mod:`webinar.attendance`. Anonymous questions and ballots in anonymous polls are counted in
the totals but never attributed to anyone, in the page or in any CSV.

The page shows times in the viewer's zone and language; the CSV files keep ISO 8601 UTC, every
value ending in ``Z`` (``2026-12-08T10:00:00Z``), so a spreadsheet or a script never has to
guess a zone.
"""

from __future__ import annotations

import csv
import io
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from flask import abort, render_template
from flask_login import login_required
from sqlalchemy import func, select
from sqlalchemy.sql import Executable
from werkzeug.wrappers import Response

from accounts.models import User
from lectern import timefmt
from lectern.extensions import db
from lectern.timeutil import to_local
from rooms import polls
from rooms.models import Poll, PollAudit, Question, Room, RoomEvent
from webinar import attendance, bp
from webinar.attendance import Bucket, Chart, Interval, Presence
from webinar.models import Broadcast, Kind, Registration, Status
from webinar.policy import Action, broadcast_role
from webinar.routes import broadcast_for

PRESENCE = ("presence.join", "presence.leave")


def unix(dt: datetime) -> float:
    """A stored (naive UTC) time as Unix seconds."""
    return dt.replace(tzinfo=UTC).timestamp()


def iso(ts: float | None) -> str:
    """Unix seconds as ISO 8601 UTC with a Z, to the second; empty for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stored(ts: float) -> datetime:
    """Unix seconds as a stored time (naive UTC)."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def local_clock(ts: float, seconds: bool = False) -> str:
    """Unix seconds as the viewer's wall-clock time (their zone, their language's format)."""
    return timefmt.local_clock(stored(ts), seconds=seconds)


def local_day(moment: datetime) -> date:
    """A stored time's date on the viewer's calendar."""
    return to_local(moment, timefmt.request_zone()).date()


def shown(ts: float, day: date) -> str:
    """Unix seconds as the page shows them: the viewer's clock time, with the date if not
    ``day`` (the broadcast's date on the viewer's calendar)."""
    if local_day(stored(ts)) == day:
        return local_clock(ts, seconds=True)
    return timefmt.local_moment(stored(ts), seconds=True)


# --- gathering the report ----------------------------------------------------------------------


@dataclass
class Person:
    """One row of the per-person table: an approved registrant, someone who joined, or both."""

    name: str
    email: str
    role: str
    registered: bool = False
    user_id: int | None = None
    first_join: float | None = None
    last_leave: float | None = None  # None when their last logged event is a join
    intervals: list[Interval] = field(default_factory=list)
    questions: int = 0  # attributed questions only: anonymous ones are not counted here
    votes: int = 0  # ballots cast in polls that are not anonymous
    holder_id: str | None = None
    shares: int | None = None

    @property
    def seconds(self) -> float:
        return attendance.watched(self.intervals)

    @property
    def minutes(self) -> float:
        return round(self.seconds / 60, 1)


@dataclass(frozen=True)
class Summary:
    registered: int  # approved registrations
    joined: int  # distinct users with a presence.join
    registered_joined: int  # approved registrants among them
    peak: int
    median_minutes: float  # over those who joined
    total_minutes: float
    questions: int  # every question, anonymous ones included
    ballots: int  # every ballot cast, in every poll

    @property
    def attendance_rate(self) -> float | None:
        """Percentage of approved registrants who joined; None with nobody registered."""
        return 100 * self.registered_joined / self.registered if self.registered else None


@dataclass(frozen=True)
class OptionTotal:
    text: str
    total: int  # ballots choosing it, or the sum of their weights when the poll is weighted
    percent: float  # of all ballots (weighted: of all weight cast)


@dataclass(frozen=True)
class PollResult:
    poll: Poll
    options: list[OptionTotal]
    ballots: int
    weight: int  # total weight cast (the number of ballots when not weighted)


@dataclass(frozen=True)
class Report:
    room: Room | None
    summary: Summary
    people: list[Person]
    buckets: list[Bucket]
    chart: Chart
    polls: list[PollResult]


def room_of(broadcast: Broadcast) -> Room | None:
    """The broadcast's live room, if anyone ever joined it."""
    return db.session.scalar(
        select(Room).where(Room.kind == "broadcast", Room.ref_id == broadcast.id)
    )


def presence_log(room_id: int) -> list[Presence]:
    """The room's joins and leaves in log order (users since deleted are left out)."""
    rows = db.session.execute(
        select(RoomEvent.ts, RoomEvent.actor_id, RoomEvent.type)
        .where(
            RoomEvent.room_id == room_id,
            RoomEvent.type.in_(PRESENCE),
            RoomEvent.actor_id.is_not(None),
        )
        .order_by(RoomEvent.ts, RoomEvent.id)
    )
    return [Presence(ts, uid, kind == "presence.join") for ts, uid, kind in rows if uid is not None]


def cutoff(broadcast: Broadcast, room_id: int, now: float) -> float:
    """Where an unclosed join ends (see :func:`webinar.attendance.open_until`)."""
    last = db.session.scalar(select(func.max(RoomEvent.ts)).where(RoomEvent.room_id == room_id))
    return attendance.open_until(last or now, now, unix(broadcast.ends_at))


def counts_by_user(query: Executable) -> dict[int, int]:
    """user id -> count, from a ``select(user_id, count)`` grouped by user."""
    return {uid: n for uid, n in db.session.execute(query)}


def approved(broadcast: Broadcast) -> list[Registration]:
    """The broadcast's approved registrations: who counts as registered."""
    query = select(Registration).where(
        Registration.broadcast_id == broadcast.id, Registration.status == Status.APPROVED
    )
    return list(db.session.scalars(query.order_by(Registration.id)))


def people(
    broadcast: Broadcast, room_id: int | None, log: Sequence[Presence], until: float
) -> list[Person]:
    """The per-person table: approved registrants and joiners, first joiners first."""
    by_user = attendance.sessions(log, until)
    seen = attendance.bounds(log)
    regs = approved(broadcast)
    ids = set(by_user) | {r.user_id for r in regs if r.user_id is not None}
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}
    # user id -> row; an approved registrant without an account: "r<registration id>" -> row
    rows: dict[int | str, Person] = {
        uid: joiner(users[uid], intervals, *seen[uid])
        for uid, intervals in by_user.items()
        if uid in users
    }
    by_email = {p.email.casefold(): p for p in rows.values()}
    for reg in regs:
        row = rows.get(reg.user_id or 0) or by_email.get(reg.email.casefold())
        if row is None:
            row = rows.setdefault(f"r{reg.id}", registrant(reg, users.get(reg.user_id or 0)))
        row.registered, row.role = True, reg.role
        row.holder_id, row.shares = reg.holder_id, reg.shares
    for row in rows.values():
        row.role = row.role or unregistered_role(users[row.user_id or 0], broadcast)
    if room_id is not None:
        add_activity(list(rows.values()), room_id)
    return sorted(rows.values(), key=order)


def order(p: Person) -> tuple[bool, float, str]:
    """First joiners first; those who never joined last, by name."""
    return p.first_join is None, p.first_join or 0.0, p.name.casefold()


def joiner(user: User, intervals: list[Interval], first: float, last: float | None) -> Person:
    """A joiner's row (the role comes from their registration, else unregistered_role)."""
    return Person(
        name=user.name,
        email=user.email,
        role="",
        user_id=user.id,
        first_join=first,
        last_leave=last,
        intervals=intervals,
    )


def registrant(reg: Registration, user: User | None) -> Person:
    """The row of an approved registrant who never joined."""
    if user is None:
        return Person(name=reg.name, email=reg.email, role=reg.role)
    return Person(name=user.name, email=user.email, role=reg.role, user_id=user.id)


def unregistered_role(user: User, broadcast: Broadcast) -> str:
    """The role of someone who joined without an approved registration (host, admin, ...)."""
    if user.id == broadcast.host_id:
        return "host"
    return "admin" if user.role == "admin" else broadcast_role(user, broadcast) or "none"


def add_activity(rows: list[Person], room_id: int) -> None:
    """Fill in each person's attributed questions and their ballots in polls not anonymous."""
    asked = counts_by_user(
        select(Question.author_id, func.count())
        .where(Question.room_id == room_id, Question.anonymous.is_(False))
        .group_by(Question.author_id)
    )
    voted = counts_by_user(
        select(PollAudit.user_id, func.count())
        .join(Poll, Poll.id == PollAudit.poll_id)
        .where(
            Poll.room_id == room_id,
            Poll.anonymous.is_(False),
            PollAudit.outcome == "cast",
            PollAudit.user_id.is_not(None),
        )
        .group_by(PollAudit.user_id)
    )
    for row in rows:
        if row.user_id is not None:
            row.questions, row.votes = asked.get(row.user_id, 0), voted.get(row.user_id, 0)


def poll_results(room_id: int) -> list[PollResult]:
    """Each poll of the room with its totals per option, counted as the live room counts them
    (:func:`rooms.polls.results`: from the audit trail's cast rows)."""
    query = select(Poll).where(Poll.room_id == room_id).order_by(Poll.id)
    return [result_of(poll, polls.results(poll)) for poll in db.session.scalars(query)]


def result_of(poll: Poll, found: dict[str, Any]) -> PollResult:
    """Totals with their share of all ballots (weighted: of all weight cast)."""
    ballots = found["ballots"]
    cast = found.get("weight_total", ballots)
    options = [
        OptionTotal(text, total, round(100 * total / cast, 1) if cast else 0.0)
        for text, total in zip(poll.options, found["counts"], strict=True)
    ]
    return PollResult(poll, options, ballots, cast)


def build(
    broadcast: Broadcast,
    now: float | None = None,
    label: Callable[[float, bool], str] = attendance.clock,
) -> Report:
    """Everything the report page shows; zeros when the live room was never opened. ``label``
    writes the chart's time marks."""
    room = room_of(broadcast)
    if room is None:
        rows = people(broadcast, None, [], 0.0)
        return Report(None, summarize(rows, 0, 0), rows, [], attendance.layout([]), [])
    until = cutoff(broadcast, room.id, time.time() if now is None else now)
    rows = people(broadcast, room.id, presence_log(room.id), until)
    polls = poll_results(room.id)
    asked = db.session.scalar(select(func.count()).where(Question.room_id == room.id)) or 0
    summary = summarize(rows, asked, sum(p.ballots for p in polls))
    found = attendance.buckets({n: p.intervals for n, p in enumerate(rows)})
    return Report(room, summary, rows, found, attendance.layout(found, label), polls)


def summarize(rows: Sequence[Person], questions: int, ballots: int) -> Summary:
    """The summary cards' figures from the per-person rows."""
    joined = [p for p in rows if p.first_join is not None]
    return Summary(
        registered=sum(p.registered for p in rows),
        joined=len(joined),
        registered_joined=sum(p.registered for p in joined),
        peak=attendance.peak({n: p.intervals for n, p in enumerate(joined)}),
        median_minutes=round(attendance.median_minutes([p.seconds for p in joined]), 1),
        total_minutes=round(sum(p.seconds for p in joined) / 60, 1),
        questions=questions,
        ballots=ballots,
    )


# --- CSV ---------------------------------------------------------------------------------------

# A spreadsheet runs a cell that starts with one of these as a formula: such a cell is written
# with a leading apostrophe, which makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """``value`` as a CSV cell that no spreadsheet will run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def filename(broadcast: Broadcast, what: str) -> str:
    """``<title in ASCII letters and digits>-<id>-<what>.csv``: safe in a header and on any disk."""
    ascii_title = unicodedata.normalize("NFKD", broadcast.title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:40].strip("-")
    return f"{slug or 'broadcast'}-{broadcast.id}-{what}.csv"


def csv_response(name: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
    """A CSV download: UTF-8 with a byte-order mark (so spreadsheets read it as UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([cell(h) for h in header])
    writer.writerows([cell(v) for v in row] for row in rows)
    return Response(
        "\ufeff" + out.getvalue(),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def attendance_rows(broadcast: Broadcast, rows: Iterable[Person]) -> Iterable[list[object]]:
    """The attendance CSV's rows; shareholder meetings add each holder's id and shares."""
    shareholders = broadcast.kind == Kind.SHAREHOLDER
    for p in rows:
        sessions = "; ".join(f"{iso(start)}/{iso(end)}" for start, end in p.intervals)
        row: list[object] = [p.name, p.email, p.role, yes_no(p.registered), iso(p.first_join)]
        row += [iso(p.last_leave), p.minutes, p.questions, p.votes, sessions]
        yield row + ([p.holder_id, p.shares] if shareholders else [])


ATTENDANCE_HEADER = [
    "name",
    "email",
    "role",
    "registered",
    "first join",
    "last leave",
    "minutes watched",
    "questions asked",
    "votes cast",
    "sessions",
]


def question_rows(room: Room | None) -> list[list[object]]:
    """One row per question in asking order; an anonymous question's author stays empty."""
    if room is None:
        return []
    query = select(Question).where(Question.room_id == room.id).order_by(Question.id)
    found = list(db.session.scalars(query))
    who = names_of(q.author_id for q in found if not q.anonymous)
    return [
        [
            q.id,
            iso(unix(q.created_at)),
            "" if q.anonymous else who.get(q.author_id, ("", ""))[0],
            q.text,
            q.status,
            q.votes,
            q.answer or "",
            yes_no(q.answered_live),
            q.merged_into_id or "",
        ]
        for q in found
    ]


QUESTIONS_HEADER = [
    "id",
    "asked at",
    "author",
    "text",
    "status",
    "votes",
    "answer",
    "answered live",
    "merged into",
]


def names_of(user_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """user id -> (name, e-mail) for the given ids, in one query."""
    ids = set(user_ids)
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.name, User.email).where(User.id.in_(ids)))
    return {uid: (name, email) for uid, name, email in rows}


def audit_rows(poll: Poll) -> list[list[object]]:
    """The poll's audit trail in the order it was written (from :func:`rooms.polls.audit_rows`),
    with each voter's e-mail. A ballot cast in an anonymous poll names nobody, even if a voter
    were somehow recorded with it."""
    trail = polls.audit_rows(poll.id)
    who = names_of(row["user_id"] for row in trail if row["user_id"] is not None)
    return [audit_row(row, who, hide=poll.anonymous and row["outcome"] == "cast") for row in trail]


def audit_row(row: dict[str, Any], who: dict[int, tuple[str, str]], hide: bool) -> list[object]:
    """One audit CSV row; ``hide``: leave out who voted."""
    name, email = ("", "") if hide else who.get(row["user_id"] or 0, ("", ""))
    return [
        row["at"],
        row["outcome"],
        name,
        email,
        "" if hide else row["holder_id"] or "",
        "; ".join(row["choices"] or []),
        "" if row["weight"] is None else row["weight"],
        row["reason"] or "",
    ]


AUDIT_HEADER = ["at", "outcome", "voter", "voter email", "holder id", "choices", "weight", "reason"]


# --- routes ------------------------------------------------------------------------------------


@bp.get("/<int:broadcast_id>/report")
@login_required
def report(broadcast_id: int) -> str:
    """The host's report: summary, attendance over time, per person, polls."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    return render_template(
        "webinar/report.html",
        broadcast=broadcast,
        report=build(broadcast, label=local_clock),
        shareholders=broadcast.kind == Kind.SHAREHOLDER,
        clock=local_clock,
        day=local_day(broadcast.starts_at),
        iso=iso,
        shown=shown,
    )


@bp.get("/<int:broadcast_id>/attendance.csv")
@login_required
def attendance_csv(broadcast_id: int) -> Response:
    """One row per approved registrant or joiner."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    report = build(broadcast)
    header = ATTENDANCE_HEADER + (
        ["holder id", "shares"] if broadcast.kind == Kind.SHAREHOLDER else []
    )
    rows = attendance_rows(broadcast, report.people)
    return csv_response(filename(broadcast, "attendance"), header, rows)


@bp.get("/<int:broadcast_id>/questions.csv")
@login_required
def questions_csv(broadcast_id: int) -> Response:
    """Every question asked in the live room."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    rows = question_rows(room_of(broadcast))
    return csv_response(filename(broadcast, "questions"), QUESTIONS_HEADER, rows)


@bp.get("/<int:broadcast_id>/polls/<int:poll_id>/audit.csv")
@login_required
def poll_audit_csv(broadcast_id: int, poll_id: int) -> Response:
    """A poll's audit trail; the poll must belong to this broadcast's room."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    room, poll = room_of(broadcast), db.session.get(Poll, poll_id)
    if room is None or poll is None or poll.room_id != room.id:
        abort(404)
    name = filename(broadcast, f"poll-{poll.id}-audit")
    return csv_response(name, AUDIT_HEADER, audit_rows(poll))
