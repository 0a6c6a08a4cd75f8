"""Weighted, anonymous and audited polls: shareholders vote their shares, every attempt is in the
audit trail, and an anonymous ballot keeps nothing that says who chose what."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from lectern.extensions import db
from rooms.log import timeline
from rooms.models import Poll, PollAudit, PollVote
from rooms.polls import audit_rows

MOTION = {"question": "Approve the accounts?", "options": ["for", "against", "abstain"]}


def audit(poll_id: int) -> list[PollAudit]:
    db.session.rollback()  # read what is committed
    return list(
        db.session.scalars(
            select(PollAudit).where(PollAudit.poll_id == poll_id).order_by(PollAudit.id)
        )
    )


def ballots() -> int:
    return db.session.scalar(select(func.count()).select_from(PollVote))


@pytest.fixture
def meeting(room):
    """A shareholder meeting: Abe holds 100 shares (H-1), Bea 250 (H-2), the panelist is
    registered without shares; all connected with the host, inboxes empty."""
    key = room.meeting(
        {
            room.attendees[0]: (100, "H-1"),
            room.attendees[1]: (250, "H-2"),
            room.panelist: (None, None),
        }
    )
    clients = {
        "host": room.join(room.host, key),
        "abe": room.join(room.attendees[0], key),
        "bea": room.join(room.attendees[1], key),
        "pia": room.join(room.panelist, key),
    }
    room.flush()
    for client in clients.values():
        client.drain()
    return clients


def open_poll(host, **extra: Any) -> int:
    reply = host.emit("poll.open", MOTION | extra)
    assert reply["ok"], reply
    return reply["poll"]["id"]


def test_weighted_results_sum_the_shares(room, meeting):
    host, abe, bea = meeting["host"], meeting["abe"], meeting["bea"]
    pid = open_poll(host, weighted=True)
    assert host.state()["polls"][0]["weighted"] is True

    assert abe.emit("poll.vote", {"id": pid, "choices": [0]}) == {
        "ok": True,
        "id": pid,
        "choices": [0],
        "weight": 100,
    }
    assert bea.emit("poll.vote", {"id": pid, "choices": [1]})["weight"] == 250
    room.flush()

    expected = {"id": pid, "counts": [100, 250, 0], "ballots": 2, "weight_total": 350}
    assert host.got("poll.results") == [expected]
    assert host.emit("poll.close", {"id": pid})["results"] == expected
    cast = [(a.outcome, a.user_id, a.holder_id, a.choices, a.weight) for a in audit(pid)]
    assert cast == [
        ("cast", room.attendees[0].id, "H-1", [0], 100),
        ("cast", room.attendees[1].id, "H-2", [1], 250),
    ]
    stored = db.session.scalars(select(PollVote.weight).order_by(PollVote.user_id)).all()
    assert sorted(stored) == [100, 250]


def test_multiple_choice_weights_count_for_each_option(room, meeting):
    pid = open_poll(meeting["host"], weighted=True, multiple=True)
    meeting["abe"].emit("poll.vote", {"id": pid, "choices": [2, 0]})
    meeting["bea"].emit("poll.vote", {"id": pid, "choices": [2]})
    results = meeting["host"].state()["polls"][0]["results"]
    assert results == {"id": pid, "counts": [100, 0, 350], "ballots": 2, "weight_total": 350}


# refusal -> (how the poll is opened, what happens first, the refused attempt)
REFUSALS: dict[str, tuple[dict[str, Any], str, str, list[int], str]] = {
    "second ballot": ({}, "abe votes", "abe", [1], "you have already voted in this poll"),
    "after close": ({}, "host closes", "abe", [0], "this poll is closed"),
    "non-holder": ({"weighted": True}, "", "pia", [0], "not entitled to vote in this poll"),
    "host holds nothing": (
        {"weighted": True},
        "",
        "host",
        [0],
        "not entitled to vote in this poll",
    ),
    "out of range": ({}, "", "abe", [3], "no such option"),
    "two options": ({}, "", "abe", [0, 1], "choose exactly one option"),
    "same option twice": (
        {"multiple": True},
        "",
        "abe",
        [1, 1],
        "choices has the same choice twice",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_each_refusal_leaves_one_audit_row_and_no_ballot(room, meeting, case):
    options, first, who, choices, reason = REFUSALS[case]
    pid = open_poll(meeting["host"], **options)
    if first == "abe votes":
        assert meeting["abe"].emit("poll.vote", {"id": pid, "choices": [0]})["ok"]
    elif first == "host closes":
        assert meeting["host"].emit("poll.close", {"id": pid})["ok"]
    room.flush()
    ballots_before, log_before = ballots(), timeline(room.room_id(meeting["abe"].key["room"]))
    for client in meeting.values():
        client.drain()

    reply = meeting[who].emit("poll.vote", {"id": pid, "choices": choices})

    assert reply == {"ok": False, "error": reason}
    refused = [a for a in audit(pid) if a.outcome == "refused"]
    assert len(refused) == 1
    person = {"abe": room.attendees[0], "pia": room.panelist, "host": room.host}[who]
    assert (refused[0].reason, refused[0].user_id, refused[0].choices) == (
        reason,
        person.id,
        sorted(choices),
    )
    assert ballots() == ballots_before
    assert timeline(room.room_id(meeting["abe"].key["room"])) == log_before
    room.flush()
    assert all(client.drain() == [] for client in meeting.values())


def test_a_refused_holder_is_audited_with_their_holder_id(room, meeting):
    pid = open_poll(meeting["host"], weighted=True)
    meeting["abe"].emit("poll.vote", {"id": pid, "choices": [0]})
    meeting["abe"].emit("poll.vote", {"id": pid, "choices": [1]})
    rows = [(a.outcome, a.holder_id, a.weight, a.reason) for a in audit(pid)]
    assert rows == [
        ("cast", "H-1", 100, None),
        ("refused", "H-1", 100, "you have already voted in this poll"),
    ]


def test_an_anonymous_ballot_keeps_no_trace_of_its_voter(room, meeting):
    host, abe, bea = meeting["host"], meeting["abe"], meeting["bea"]
    pid = open_poll(host, anonymous=True)
    abe.emit("poll.vote", {"id": pid, "choices": [1]})
    bea.emit("poll.vote", {"id": pid, "choices": [1]})
    abe.emit("poll.vote", {"id": pid, "choices": [2]})  # refused: already voted

    rows = audit(pid)
    cast = [(a.user_id, a.holder_id, a.choices, a.weight) for a in rows if a.outcome == "cast"]
    assert cast == [(None, None, [1], 1), (None, None, [1], 1)]
    refused = [a for a in rows if a.outcome == "refused"]
    assert [(a.user_id, a.choices) for a in refused] == [(room.attendees[0].id, None)]
    poll = db.session.get(Poll, pid)
    votes = db.session.scalars(select(PollVote)).all()
    assert [(v.choices, v.created_at) for v in votes] == [([], poll.created_at)] * 2
    logged = [e for e in timeline(room.room_id(abe.key["room"])) if e["type"] == "poll.vote"]
    assert [(e["actor_id"], e["payload"]) for e in logged] == [(None, {"id": pid})] * 2
    assert abe.state()["polls"][0]["my_choices"] == []
    results = host.state()["polls"][0]["results"]
    assert results == {"id": pid, "counts": [0, 2, 0], "ballots": 2}


def test_a_weighted_poll_cannot_be_anonymous(room, meeting, rows):
    """Each ballot's weight is its holder's shares: it would name them."""
    reply = meeting["host"].emit("poll.open", MOTION | {"weighted": True, "anonymous": True})
    assert reply == {
        "ok": False,
        "error": "a weighted poll cannot be anonymous: each ballot's weight names its holder",
    }
    assert rows(Poll) == 0


def test_audit_rows_for_the_export(room, meeting):
    pid = open_poll(meeting["host"], weighted=True)
    meeting["abe"].emit("poll.vote", {"id": pid, "choices": [2]})
    meeting["pia"].emit("poll.vote", {"id": pid, "choices": [9]})
    rows = audit_rows(pid)
    for row in rows:
        assert row.pop("at").endswith("Z")
    assert rows == [
        {
            "outcome": "cast",
            "user_id": room.attendees[0].id,
            "name": "Attendee Abe",
            "holder_id": "H-1",
            "choices": ["abstain"],
            "weight": 100,
            "reason": None,
        },
        {
            "outcome": "refused",
            "user_id": room.panelist.id,
            "name": "Pia Panelist",
            "holder_id": None,
            "choices": ["(no option 9)"],
            "weight": None,
            "reason": "not entitled to vote in this poll",
        },
    ]
    assert audit_rows(999_999) == []


def test_anonymous_audit_rows_name_nobody(room, meeting):
    pid = open_poll(meeting["host"], anonymous=True)
    meeting["abe"].emit("poll.vote", {"id": pid, "choices": [0]})
    (row,) = audit_rows(pid)
    assert (row["user_id"], row["name"], row["holder_id"], row["choices"]) == (
        None,
        None,
        None,
        ["for"],
    )


def test_only_a_shareholder_meeting_weighs_votes(room, meeting, rows):
    """An all-hands has no share register: weighted polls are refused there, and the snapshot
    tells the host's page whether to offer them."""
    assert meeting["host"].state()["room"]["share_register"] is True
    host = room.join(room.host)  # the all-hands of the same host
    assert host.state()["room"]["share_register"] is False
    reply = host.emit("poll.open", MOTION | {"weighted": True})
    assert reply == {"ok": False, "error": "weighted votes need a share register"}
    assert rows(Poll) == 0


def test_a_lesson_has_no_share_register(room, rows):
    teacher = room.join(room.instructor)
    reply = teacher.emit("poll.open", MOTION | {"weighted": True})
    assert reply == {"ok": False, "error": "weighted votes need a share register"}
    assert rows(Poll) == 0
    anonymous = teacher.emit("poll.open", MOTION | {"anonymous": True})["poll"]
    assert (anonymous["anonymous"], anonymous["weighted"]) == (True, False)


def test_unweighted_polls_in_a_meeting_count_one_each(room, meeting):
    pid = open_poll(meeting["host"])
    for who in ("abe", "bea", "pia"):  # the host runs the poll and does not vote
        assert meeting[who].emit("poll.vote", {"id": pid, "choices": [1]})["ok"], who
    results = meeting["host"].state()["polls"][0]["results"]
    assert results == {"id": pid, "counts": [0, 3, 0], "ballots": 3}
    assert {a.holder_id for a in audit(pid)} == {None}  # the register is not asked
