"""Broadcast reports: attendance figures from a scripted session, the chart, the CSV exports,
anonymity, and who may see any of it."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from accounts.models import User
from lectern.extensions import db, socketio
from rooms import namespace
from rooms.models import Poll, PollAudit, Question, Room, RoomEvent
from webinar import attendance
from webinar.attendance import Presence
from webinar.reports import build, cell

T0 = datetime(2024, 3, 1, 10, 0)  # the scripted broadcast's scheduled start (naive UTC)
START = T0.replace(tzinfo=UTC).timestamp()


def at(minutes: float) -> float:
    """Unix time ``minutes`` after the broadcast's start."""
    return START + minutes * 60


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the pure computation ----------------------------------------------------------------------


def test_sessions_pair_each_join_with_the_next_leave_and_merge():
    log = [
        Presence(0, 1, True),
        Presence(10, 1, True),  # a second join before any leave (logged twice): overlaps
        Presence(30, 1, False),
        Presence(31, 1, False),  # a leave with no join open: ignored
        Presence(40, 1, True),
        Presence(50, 1, False),
        Presence(5, 2, True),  # never leaves: runs to ``until``
        Presence(3, 3, False),  # only a leave: never joined
    ]
    found = attendance.sessions(sorted(log, key=lambda p: p.ts), until=64)
    assert found == {1: [(0, 30), (40, 50)], 2: [(5, 64)]}
    assert attendance.watched(found[1]) == 40
    assert attendance.bounds(sorted(log, key=lambda p: p.ts)) == {1: (0, 50), 2: (5, None)}


def test_merge_joins_touching_and_overlapping_intervals():
    assert attendance.merge([(10, 20), (0, 10), (15, 25), (30, 30), (40, 41)]) == [
        (0, 25),
        (40, 41),
    ]


def test_peak_counts_a_leave_before_a_join_at_the_same_moment():
    assert attendance.peak({1: [(0, 10)], 2: [(10, 20)]}) == 1
    assert attendance.peak({1: [(0, 10)], 2: [(9, 20)], 3: [(5, 9.5)]}) == 3
    assert attendance.peak({}) == 0


@pytest.mark.parametrize(
    ("span", "size"),
    [
        (1800, 60),  # 30 minutes: 30 one-minute buckets
        (3600, 60),
        (7200, 60),  # two hours: 120
        (7260, 120),  # past 120 minutes: two-minute buckets
        (3 * 3600, 120),
        (10 * 3600, 300),
        (1799, 30),  # under 30 minutes: finer, at least 30 buckets
        (600, 20),
        (60, 2),
        (5, 1),
    ],
)
def test_bucket_size(span, size):
    assert attendance.bucket_seconds(span) == size
    assert span / size <= attendance.MAX_BUCKETS


def test_a_bucket_holds_the_most_present_at_once():
    # Ten minutes of attendance: 20-second buckets. In the first bucket A leaves before B joins
    # and C joins while B is there: at most two at once, though three people came and went.
    by_user = {1: [(0.0, 5.0)], 2: [(10.0, 15.0)], 3: [(12.0, 600.0)]}
    found = attendance.buckets(by_user)
    assert len(found) == 30 and {b.size for b in found} == {20}
    assert [b.viewers for b in found[:3]] == [2, 1, 1]
    assert found[0].start == 0 and found[-1].start == 580


def test_buckets_start_on_the_clock():
    found = attendance.buckets({1: [(at(3.6), at(40.25))]})
    assert found[0].start == at(3) and found[-1].start == at(40)
    assert len(found) == 38 and {b.viewers for b in found} == {1}


def test_time_marks_fall_on_round_times():
    chart = attendance.layout(attendance.buckets({1: [(at(-5), at(64))]}))
    assert [t.label for t in chart.x_ticks] == ["10:00", "10:15", "10:30", "10:45", "11:00"]
    short = attendance.layout(attendance.buckets({1: [(at(0), at(10))]}))  # 20-second buckets
    assert short.step == "20 seconds" and short.seconds
    assert [t.label for t in short.x_ticks] == ["10:00", "10:02", "10:04", "10:06", "10:08"]


def test_open_until():
    end = at(60)
    assert attendance.open_until(at(64), now=at(90), scheduled_end=end) == at(90)  # may run on
    assert attendance.open_until(at(64), now=at(121), scheduled_end=end) == at(64)  # long over


def test_chart_layout():
    found = attendance.buckets({1: [(0.0, 3600.0)], 2: [(600.0, 1200.0)]})
    chart = attendance.layout(found)
    assert len(chart.bars) == 60 and chart.step == "1 minute" and not chart.seconds
    assert [t.label for t in chart.y_ticks] == ["0", "1", "2"]
    tall = [b for b in chart.bars if b.bucket.viewers == 2]
    assert len(tall) == 10 and all(b.y == chart.top for b in tall)
    assert all(b.y + b.height == chart.bottom for b in chart.bars)
    assert chart.x_ticks[0].label == "00:00" and len(chart.x_ticks) == 6
    assert attendance.layout([]).bars == []


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_csv_cells_never_start_a_formula(value, written):
    assert cell(value) == written


# --- a scripted session --------------------------------------------------------------------------


@dataclass
class Scripted:
    """The scripted broadcast's people, and the ids of the broadcast, its room and polls."""

    broadcast_id: int
    room_id: int
    host: User
    admin: User
    alice: User
    bob: User
    carol: User
    dave: User
    outsider: User
    budget: int  # a weighted poll
    board: int  # an anonymous poll
    other_poll: int  # a poll of another broadcast


def event(room_id: int, minutes: float, user: User | None, kind: str) -> RoomEvent:
    return RoomEvent(
        room_id=room_id, ts=at(minutes), actor_id=user and user.id, type=kind, payload={}
    )


@pytest.fixture
def scripted(users, broadcasts) -> Scripted:
    """A shareholder meeting, 10:00-11:00 UTC on 1 March 2024, invite only:

    ======  ===========================================  =================
    who     presence (minutes from 10:00)                 minutes watched
    ======  ===========================================  =================
    host    -5 .. 60                                      65
    alice   0 .. 30, again 10 .. 30 (overlap), 40 .. 50   40
    bob     5 .. (no leave: the room's last event, 64)    59
    dave    15 .. 45 (panelist)                           30
    admin   52 .. 55 (not registered)                     3
    carol   registered, never joined                      0
    gina    registered by e-mail only, no account         0
    erin    registration pending: not counted
    ======  ===========================================  =================
    """
    host = users.make("host", name="Hugo Host")
    admin = users.make("admin", name="Ada <b>Admin</b>")
    alice, bob, carol = (users.make("attendee", name=n) for n in ("Alice", "Bob Secret", "Carol"))
    dave = users.make("attendee", name="=cmd|' /C calc'!A0")
    erin, outsider = users.make("attendee", name="Erin"), users.make("attendee", name="Otto")
    cast = broadcasts.make(host, mode="invite", kind="shareholder", title='Q1 "AGM" — Zürich/..')
    cast.starts_at, cast.duration_minutes = T0, 60
    shares = {alice: ("H-001", 100), bob: ("H-002", 250), carol: ("H-003", 70), dave: ("H-004", 50)}
    for person, (holder, count) in shares.items():
        reg = broadcasts.register(cast, person)
        reg.holder_id, reg.shares = holder, count
        reg.role = "panelist" if person is dave else "attendee"
    broadcasts.register(cast, erin, status="pending")
    broadcasts.register(cast, email="gina@example.com").name = "Gina Guest"
    room = Room(kind="broadcast", ref_id=cast.id, moderated=True, anonymous_questions=True)
    db.session.add(room)
    db.session.flush()
    timeline = [
        (-5, host, "presence.join"),
        (0, alice, "presence.join"),
        (5, bob, "presence.join"),
        (10, alice, "presence.join"),
        (15, dave, "presence.join"),
        (30, alice, "presence.leave"),
        (40, alice, "presence.join"),
        (45, dave, "presence.leave"),
        (50, alice, "presence.leave"),
        (52, admin, "presence.join"),
        (55, admin, "presence.leave"),
        (60, host, "presence.leave"),
        (64, host, "poll.close"),  # the room's last event
    ]
    db.session.add_all(event(room.id, m, u, kind) for m, u, kind in timeline)
    add_questions(room.id, alice, bob, dave)
    budget, board = add_polls(room.id, alice, bob, dave, admin)
    other = broadcasts.make(host, mode="invite")
    other_room = Room(kind="broadcast", ref_id=other.id)
    db.session.add(other_room)
    db.session.flush()
    other_poll = Poll(room_id=other_room.id, question="Elsewhere?", options=["a", "b"])
    db.session.add(other_poll)
    db.session.commit()
    return Scripted(
        broadcast_id=cast.id,
        room_id=room.id,
        host=host,
        admin=admin,
        alice=alice,
        bob=bob,
        carol=carol,
        dave=dave,
        outsider=outsider,
        budget=budget,
        board=board,
        other_poll=other_poll.id,
    )


def add_questions(room_id: int, alice: User, bob: User, dave: User) -> None:
    def ask(minutes: float, author: User, text: str, **extra: object) -> Question:
        q = Question(
            room_id=room_id,
            author_id=author.id,
            text=text,
            created_at=T0 + timedelta(minutes=minutes),
            **{"status": "open", "anonymous": False, **extra},
        )
        db.session.add(q)
        db.session.flush()
        return q

    ask(3, alice, "When is the dividend paid?", status="answered", answer="In May.", votes=3)
    why = ask(8, alice, "Why did costs rise in Zürich?", anonymous=True, votes=1)
    ask(
        9,
        bob,
        '=HYPERLINK("http://x.example","go")',
        anonymous=True,
        status="merged",
        merged_into_id=why.id,
    )
    ask(20, dave, "@SUM(A1) please", status="answered", answered_live=True)


def add_polls(room_id: int, alice: User, bob: User, dave: User, admin: User) -> tuple[int, int]:
    budget = Poll(
        room_id=room_id,
        question="Approve the budget?",
        options=["For", "Against", "Abstain"],
        weighted=True,
        state="closed",
    )
    board = Poll(
        room_id=room_id,
        question="Re-elect the board?",
        options=["Yes", "No"],
        anonymous=True,
        multiple=False,
    )
    db.session.add_all([budget, board])
    db.session.flush()

    def audit(poll: Poll, minutes: float, user: User | None, outcome: str, **extra: object) -> None:
        at_ = T0 + timedelta(minutes=minutes)
        db.session.add(
            PollAudit(poll_id=poll.id, user_id=user and user.id, outcome=outcome, at=at_, **extra)
        )

    audit(budget, 20, alice, "cast", holder_id="H-001", choices=[0], weight=100)
    audit(budget, 21, bob, "cast", holder_id="H-002", choices=[1], weight=250)
    audit(
        budget,
        22,
        bob,
        "refused",
        holder_id="H-002",
        choices=[0],
        weight=250,
        reason="you have already voted in this poll",
    )
    audit(budget, 23, dave, "cast", holder_id="H-004", choices=[0], weight=50)
    audit(budget, 24, admin, "refused", reason="not entitled to vote in this poll")
    # Anonymous: cast ballots name nobody; a refused attempt keeps who tried, not the choices.
    audit(board, 41, None, "cast", choices=[0], weight=1)
    audit(board, 42, None, "cast", choices=[1], weight=1)
    audit(board, 43, None, "cast", choices=[0], weight=1)
    audit(board, 44, alice, "refused", reason="you have already voted in this poll")
    return budget.id, board.id


def rows_of(response) -> list[dict[str, str]]:
    """The CSV in ``response`` as dicts, after checking it is a safe UTF-8 CSV download."""
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="[a-z0-9-]+\.csv"', disposition), disposition
    return list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))


# --- the report page -----------------------------------------------------------------------------


def test_report_figures(client, auth, scripted):
    auth.switch(scripted.host)
    response = client.get(f"/broadcasts/{scripted.broadcast_id}/report")
    assert response.status_code == 200
    page = response.data.decode()
    for label, value in [
        ("Registered", "5"),  # alice, bob, carol, dave, gina; erin is pending
        ("Joined", "5"),  # host, alice, bob, dave, admin
        ("Peak concurrent viewers", "4"),
        ("Median minutes watched", "40.0"),  # of 65, 40, 59, 30, 3
        ("Total minutes watched", "197.0"),
        ("Questions asked", "4"),
        ("Ballots cast", "6"),
    ]:
        assert f"<dt>{label}</dt><dd>{value}</dd>" in page, label
    assert "60%" in page and "3 of 5 registered joined" in page
    assert "Ada &lt;b&gt;Admin&lt;/b&gt;" in page and "<b>Admin" not in page
    # The CSP allows neither inline styles nor inline scripts (scripts only from files).
    assert "style=" not in page and not re.search(r"<script(?![^>]*\ssrc=)", page)


def hhmm(text: str) -> str:
    """An English clock time as the page writes it ("9:55 AM") in 24-hour form ("09:55")."""
    return datetime.strptime(text.replace("\u202f", " "), "%I:%M %p").strftime("%H:%M")


def test_report_chart_has_one_bar_per_minute(client, auth, scripted):
    auth.switch(scripted.host)
    page = client.get(f"/broadcasts/{scripted.broadcast_id}/report").data.decode()
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert '<title id="chart-title">' in svg and '<desc id="chart-desc">' in svg
    assert "Time (UTC)" in svg and ">Viewers<" in svg
    assert svg.count("<rect") == 69  # one-minute buckets from 09:55 to 11:04
    table = page[page.index("<caption>Viewers per 1 minute</caption>") :]
    table = table[: table.index("</table>")]
    found = re.findall(r"<tr><td>(\d{1,2}:\d\d\s[AP]M)</td><td>(\d+)</td></tr>", table)
    cells = [(hhmm(t), n) for t, n in found]
    viewers = dict(cells)
    assert len(cells) == 69 and cells[0] == ("09:55", "1") and cells[-1] == ("11:03", "1")
    expected = {
        "10:00": "2",  # alice joins on the minute
        "10:05": "3",
        "10:29": "4",
        "10:30": "3",  # alice's leave at 10:30 ends her presence then
        "10:45": "3",
        "10:50": "2",
        "10:52": "3",  # the admin drops in
        "11:00": "1",  # the host has left; bob's unclosed join runs to the last event
    }
    assert {minute: viewers[minute] for minute in expected} == expected


def test_report_of_a_broadcast_nobody_joined_shows_zeros(client, auth, users, broadcasts):
    host = users.make("host")
    cast = broadcasts.make(host)
    broadcasts.register(cast, users.make("attendee"))
    auth.switch(host)
    page = client.get(f"/broadcasts/{cast.id}/report").data.decode()
    assert "<dt>Registered</dt><dd>1</dd>" in page and "<dt>Joined</dt><dd>0</dd>" in page
    assert "<dt>Ballots cast</dt><dd>0</dd>" in page and "Nobody has joined" in page
    assert "<svg" not in page
    assert len(rows_of(client.get(f"/broadcasts/{cast.id}/attendance.csv"))) == 1
    assert rows_of(client.get(f"/broadcasts/{cast.id}/questions.csv")) == []


def test_live_broadcast_counts_an_open_join_until_now(users, broadcasts):
    host = users.make("host")
    cast = broadcasts.make(host, starts_in=timedelta(minutes=-10))
    room = Room(kind="broadcast", ref_id=cast.id)
    db.session.add(room)
    db.session.flush()
    now = cast.starts_at.replace(tzinfo=UTC).timestamp() + 600
    db.session.add(RoomEvent(room_id=room.id, ts=now - 300, actor_id=host.id, type="presence.join"))
    db.session.commit()
    (person,) = build(cast, now=now).people
    assert (person.role, person.minutes, person.last_leave) == ("host", 5.0, None)


def test_invitation_by_email_and_the_joined_account_are_one_person(client, auth, users, broadcasts):
    host, guest = users.make("host"), users.make("attendee", email="guest@example.com")
    cast = broadcasts.make(host, mode="invite")
    broadcasts.register(cast, email="Guest@Example.com")  # approved before it was claimed
    room = Room(kind="broadcast", ref_id=cast.id)
    db.session.add(room)
    db.session.flush()
    db.session.add(event(room.id, 0, guest, "presence.join"))
    db.session.add(event(room.id, 12, guest, "presence.leave"))
    db.session.commit()
    auth.switch(host)
    (row,) = rows_of(client.get(f"/broadcasts/{cast.id}/attendance.csv"))
    assert (row["email"], row["registered"], row["minutes watched"]) == (guest.email, "yes", "12.0")


def test_report_polls(client, auth, scripted):
    auth.switch(scripted.host)
    page = client.get(f"/broadcasts/{scripted.broadcast_id}/report").data.decode()
    found = re.findall(
        r'<tr><td>([^<]+)</td><td class="num">(\d+)</td><td class="num">([\d.]+)</td>', page
    )
    assert found == [
        ("For", "150", "37.5"),
        ("Against", "250", "62.5"),
        ("Abstain", "0", "0.0"),
        ("Yes", "2", "66.7"),
        ("No", "1", "33.3"),
    ]
    assert "weighted: 400 shares cast" in page
    for poll in (scripted.budget, scripted.board):
        assert f"/broadcasts/{scripted.broadcast_id}/polls/{poll}/audit.csv" in page
    for export in ("attendance.csv", "questions.csv"):
        assert f"/broadcasts/{scripted.broadcast_id}/{export}" in page


# --- the CSV exports -----------------------------------------------------------------------------


def test_attendance_csv(client, auth, scripted):
    auth.switch(scripted.admin)
    response = client.get(f"/broadcasts/{scripted.broadcast_id}/attendance.csv")
    rows = {r["email"]: r for r in rows_of(response)}
    assert (
        f"q1-agm-zurich-{scripted.broadcast_id}-attendance.csv"
        in (response.headers["Content-Disposition"])
    )
    s = scripted
    assert set(rows) == {p.email for p in (s.host, s.admin, s.alice, s.bob, s.carol, s.dave)} | {
        "gina@example.com"
    }
    alice = rows[s.alice.email]
    assert alice == {
        "name": "Alice",
        "email": s.alice.email,
        "role": "attendee",
        "registered": "yes",
        "first join": iso(0),
        "last leave": iso(50),
        "minutes watched": "40.0",
        "questions asked": "1",  # her anonymous question is not counted against her
        "votes cast": "1",  # the anonymous poll's ballots are nobody's
        "sessions": f"{iso(0)}/{iso(30)}; {iso(40)}/{iso(50)}",
        "holder id": "H-001",
        "shares": "100",
    }
    figures = {
        email: (r["role"], r["registered"], r["minutes watched"], r["last leave"])
        for email, r in rows.items()
    }
    assert figures == {
        s.host.email: ("host", "no", "65.0", iso(60)),
        s.admin.email: ("admin", "no", "3.0", iso(55)),
        s.alice.email: ("attendee", "yes", "40.0", iso(50)),
        s.bob.email: ("attendee", "yes", "59.0", ""),  # never left: counted to the last event
        s.carol.email: ("attendee", "yes", "0.0", ""),
        s.dave.email: ("panelist", "yes", "30.0", iso(45)),
        "gina@example.com": ("attendee", "yes", "0.0", ""),
    }
    assert rows[s.bob.email]["questions asked"] == "0"  # asked only anonymously
    assert rows[s.dave.email]["name"] == "'=cmd|' /C calc'!A0"  # defused
    assert rows["gina@example.com"]["name"] == "Gina Guest"
    assert rows[s.carol.email]["first join"] == "" and rows[s.carol.email]["sessions"] == ""


def test_attendance_csv_outside_shareholder_meetings_has_no_holdings(
    client, auth, users, broadcasts
):
    host = users.make("host")
    cast = broadcasts.make(host, kind="all_hands")
    broadcasts.register(cast, users.make("attendee"))
    auth.switch(host)
    (row,) = rows_of(client.get(f"/broadcasts/{cast.id}/attendance.csv"))
    assert "holder id" not in row and "shares" not in row


def test_questions_csv(client, auth, scripted):
    auth.switch(scripted.host)
    response = client.get(f"/broadcasts/{scripted.broadcast_id}/questions.csv")
    rows = rows_of(response)
    assert [list(r.values()) for r in rows] == [
        [
            rows[0]["id"],
            iso(3),
            "Alice",
            "When is the dividend paid?",
            "answered",
            "3",
            "In May.",
            "no",
            "",
        ],
        [rows[1]["id"], iso(8), "", "Why did costs rise in Zürich?", "open", "1", "", "no", ""],
        [
            rows[2]["id"],
            iso(9),
            "",
            '\'=HYPERLINK("http://x.example","go")',
            "merged",
            "0",
            "",
            "no",
            rows[1]["id"],
        ],
        [
            rows[3]["id"],
            iso(20),
            "'=cmd|' /C calc'!A0",
            "'@SUM(A1) please",
            "answered",
            "0",
            "",
            "yes",
            "",
        ],
    ]
    assert list(rows[0]) == [
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
    assert b"Bob Secret" not in response.data  # bob asked only anonymously


def test_poll_audit_csv_weighted(client, auth, scripted):
    auth.switch(scripted.host)
    url = f"/broadcasts/{scripted.broadcast_id}/polls/{scripted.budget}/audit.csv"
    rows = rows_of(client.get(url))
    s = scripted
    assert [list(r.values()) for r in rows] == [
        [iso(20), "cast", "Alice", s.alice.email, "H-001", "For", "100", ""],
        [iso(21), "cast", "Bob Secret", s.bob.email, "H-002", "Against", "250", ""],
        [
            iso(22),
            "refused",
            "Bob Secret",
            s.bob.email,
            "H-002",
            "For",
            "250",
            "you have already voted in this poll",
        ],
        [iso(23), "cast", "'=cmd|' /C calc'!A0", s.dave.email, "H-004", "For", "50", ""],
        [
            iso(24),
            "refused",
            "Ada <b>Admin</b>",
            s.admin.email,
            "",
            "",
            "",
            "not entitled to vote in this poll",
        ],
    ]
    assert list(rows[0]) == [
        "at",
        "outcome",
        "voter",
        "voter email",
        "holder id",
        "choices",
        "weight",
        "reason",
    ]


def test_poll_audit_csv_anonymous_names_no_voter(client, auth, scripted):
    auth.switch(scripted.host)
    url = f"/broadcasts/{scripted.broadcast_id}/polls/{scripted.board}/audit.csv"
    rows = rows_of(client.get(url))
    cast = [r for r in rows if r["outcome"] == "cast"]
    assert [(r["choices"], r["voter"], r["voter email"], r["holder id"]) for r in cast] == [
        ("Yes", "", "", ""),
        ("No", "", "", ""),
        ("Yes", "", "", ""),
    ]
    assert [r["reason"] for r in rows if r["outcome"] == "refused"] == [
        "you have already voted in this poll"
    ]


def test_anonymous_cast_ballot_is_never_attributed_even_if_stored(client, auth, scripted):
    """Defence in depth: a cast row of an anonymous poll that did keep its voter names nobody."""
    db.session.add(
        PollAudit(
            poll_id=scripted.board,
            user_id=scripted.bob.id,
            holder_id="H-002",
            outcome="cast",
            choices=[1],
            weight=1,
        )
    )
    db.session.commit()
    auth.switch(scripted.host)
    url = f"/broadcasts/{scripted.broadcast_id}/polls/{scripted.board}/audit.csv"
    response = client.get(url)
    assert b"Bob Secret" not in response.data and b"H-002" not in response.data
    page = client.get(f"/broadcasts/{scripted.broadcast_id}/attendance.csv")
    bob = next(r for r in rows_of(page) if r["email"] == scripted.bob.email)
    assert bob["votes cast"] == "1"  # only the weighted poll's ballot


def test_poll_of_another_broadcast_is_404(client, auth, scripted):
    auth.switch(scripted.host)
    base = f"/broadcasts/{scripted.broadcast_id}/polls"
    assert client.get(f"{base}/{scripted.other_poll}/audit.csv").status_code == 404
    assert client.get(f"{base}/999999/audit.csv").status_code == 404


def test_poll_audit_without_a_room_is_404(client, auth, users, broadcasts, scripted):
    cast = broadcasts.make(scripted.host)
    auth.switch(scripted.host)
    assert client.get(f"/broadcasts/{cast.id}/polls/{scripted.budget}/audit.csv").status_code == 404


# --- who may see reports -------------------------------------------------------------------------

ROUTES = ["report", "attendance.csv", "questions.csv", "polls/{budget}/audit.csv"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("who", "status"),
    [("host", 200), ("admin", 200), ("dave", 403), ("alice", 403), ("outsider", 404)],
)
def test_only_managers_see_reports(client, auth, scripted, route, who, status):
    auth.switch(getattr(scripted, who))
    url = f"/broadcasts/{scripted.broadcast_id}/" + route.format(budget=scripted.budget)
    assert client.get(url).status_code == status


@pytest.mark.parametrize("route", ROUTES)
def test_signed_out_is_sent_to_sign_in(client, scripted, route):
    url = f"/broadcasts/{scripted.broadcast_id}/" + route.format(budget=scripted.budget)
    response = client.get(url)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("route", ROUTES[:3])
def test_another_hosts_open_broadcast_is_403(client, auth, users, broadcasts, route):
    cast = broadcasts.make(users.make("host"), mode="open")  # visible to all, managed by one
    auth.switch(users.make("host"))
    assert client.get(f"/broadcasts/{cast.id}/{route}").status_code == 403


def test_unknown_broadcast_is_404(client, auth, users):
    auth.switch(users.make("admin"))
    assert client.get("/broadcasts/999999/report").status_code == 404


# --- through the live room -----------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"ROOMS_FLUSH_INTERVAL": 0}], indirect=True)
def test_report_counts_real_socketio_joins(app: Flask, client, auth, users, broadcasts):
    host, alice, bob = users.make("host"), users.make("attendee"), users.make("attendee")
    cast = broadcasts.make(host, starts_in=timedelta(minutes=-5))
    for person in (alice, bob):
        broadcasts.register(cast, person)
    connected = []

    def join(user: User):
        """Sign ``user`` in on a client of their own and connect it to the live room; each in an
        app context of its own, as Flask-Login caches the signed-in user in ``g``."""
        with app.app_context():
            http = app.test_client()
            assert type(auth)(http).login(user).status_code == 302
            sio = socketio.test_client(
                app,
                namespace="/room",
                auth={"room": f"broadcast:{cast.id}"},
                flask_test_client=http,
            )
        assert sio.is_connected("/room")
        connected.append(sio)
        return sio

    try:
        join(host)
        join(alice).disconnect("/room")
        join(bob)
        join(bob)  # a second tab: still one join
        auth.switch(host)
        rows = {r["email"]: r for r in rows_of(client.get(f"/broadcasts/{cast.id}/attendance.csv"))}
        assert rows[alice.email]["last leave"] != "" and rows[bob.email]["last leave"] == ""
        assert {e: r["first join"] != "" for e, r in rows.items()} == {
            host.email: True,
            alice.email: True,
            bob.email: True,
        }
        page = client.get(f"/broadcasts/{cast.id}/report").data.decode()
        assert "<dt>Joined</dt><dd>3</dd>" in page and "<dt>Registered</dt><dd>2</dd>" in page
        assert "<dt>Peak concurrent viewers</dt><dd>" in page
    finally:
        for sio in connected:
            if sio.is_connected("/room"):
                sio.disconnect("/room")
        namespace.actors.clear()
        namespace.limiter.reset()
