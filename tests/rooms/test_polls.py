"""Polls: presenters open and close them, everyone votes once, results are revealed on request."""

from __future__ import annotations

import pytest

from rooms.models import Poll, PollVote

COLOURS = {"question": "Favourite colour?", "options": ["red", "green", "blue"]}


@pytest.fixture
def webinar(room):
    """Host, panelist and both attendees connected to the broadcast, inboxes empty."""
    clients = {
        "host": room.join(room.host),
        "panelist": room.join(room.panelist),
        "first": room.join(room.attendees[0]),
        "second": room.join(room.attendees[1]),
    }
    room.flush()  # the presence count of those joins
    for client in clients.values():
        client.drain()
    return clients


def open_poll(host, **extra):
    reply = host.emit("poll.open", COLOURS | extra)
    assert reply["ok"], reply
    return reply["poll"]["id"]


def test_the_host_opens_a_poll_for_everyone(room, webinar):
    reply = webinar["host"].emit("poll.open", COLOURS)
    poll = reply["poll"]
    assert poll == {
        "id": poll["id"],
        "question": "Favourite colour?",
        "options": ["red", "green", "blue"],
        "multiple": False,
        "weighted": False,
        "anonymous": False,
        "state": "open",
        "revealed": False,
    }
    for client in webinar.values():
        assert client.got("poll.update") == [poll]
    listed = webinar["first"].state()["polls"]
    assert listed == [poll | {"my_choices": None}]


@pytest.mark.parametrize("who", ["panelist", "first"])
def test_only_presenters_open_polls(room, webinar, rows, who):
    reply = webinar[who].emit("poll.open", COLOURS)
    role = "panelist" if who == "panelist" else "attendee"
    assert reply == {"ok": False, "error": f"your role ({role}) may not do this"}
    assert rows(Poll) == 0
    assert all(c.drain() == [] for c in webinar.values())


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"question": "Q?", "options": ["only"]}, "options must be a list of 2 to 10 items"),
        ({"question": "Q?", "options": ["a"] * 11}, "options must be a list of 2 to 10 items"),
        ({"question": "Q?", "options": ["a", "a"]}, "options must differ"),
        ({"question": "Q?", "options": ["a", ""]}, "options[1] must not be empty"),
        ({"question": "", "options": ["a", "b"]}, "question must not be empty"),
        ({"question": "Q?", "options": "a,b"}, "options must be a list of 2 to 10 items"),
    ],
)
def test_malformed_polls_are_refused(room, webinar, rows, payload, error):
    assert webinar["host"].emit("poll.open", payload) == {"ok": False, "error": error}
    assert rows(Poll) == 0


def test_single_choice_votes_once(room, webinar, rows):
    pid = open_poll(webinar["host"])
    voter = webinar["first"]
    assert voter.emit("poll.vote", {"id": pid, "choices": [1]}) == {
        "ok": True,
        "id": pid,
        "choices": [1],
    }
    again = voter.emit("poll.vote", {"id": pid, "choices": [2]})
    assert again == {"ok": False, "error": "you have already voted in this poll"}
    assert rows(PollVote) == 1
    assert voter.state()["polls"][0]["my_choices"] == [1]


@pytest.mark.parametrize(
    ("choices", "error"),
    [
        ([0, 1], "choose exactly one option"),
        ([], "choices must be a list of 1 to 10 numbers"),
        ([3], "no such option"),
        ([-1], "choices[0] must be between 0 and 1000"),
        ([True], "choices[0] must be a whole number"),
        (["0"], "choices[0] must be a whole number"),
        (1, "choices must be a list of 1 to 10 numbers"),
    ],
)
def test_bad_ballots_are_refused(room, webinar, rows, choices, error):
    pid = open_poll(webinar["host"])
    reply = webinar["first"].emit("poll.vote", {"id": pid, "choices": choices})
    assert reply == {"ok": False, "error": error}
    assert rows(PollVote) == 0


def test_multiple_choice(room, webinar):
    pid = open_poll(webinar["host"], multiple=True)
    assert webinar["first"].emit("poll.vote", {"id": pid, "choices": [2, 0]})["choices"] == [0, 2]
    assert webinar["second"].emit("poll.vote", {"id": pid, "choices": [2]})["ok"]
    dup = webinar["panelist"].emit("poll.vote", {"id": pid, "choices": [1, 1]})
    assert dup == {"ok": False, "error": "choices has the same choice twice"}
    results = webinar["host"].state()["polls"][0]["results"]
    assert results == {"id": pid, "counts": [1, 0, 2], "ballots": 2}


def test_results_reach_moderators_live_and_attendees_after_reveal(room, webinar):
    host, panelist, first, second = webinar.values()
    pid = open_poll(host)
    first.emit("poll.vote", {"id": pid, "choices": [0]})
    second.emit("poll.vote", {"id": pid, "choices": [2]})
    assert all(c.got("poll.results") == [] for c in webinar.values())  # not before a flush

    room.flush()
    expected = {"id": pid, "counts": [1, 0, 1], "ballots": 2}
    assert host.got("poll.results") == [expected]  # one update for both ballots
    assert panelist.drain() == [] and first.drain() == [] and second.drain() == []
    assert "results" not in first.state()["polls"][0]
    assert host.state()["polls"][0]["results"] == expected

    assert host.emit("poll.reveal", {"id": pid}) == {"ok": True}
    for client in (panelist, first, second):
        received = client.drain()
        assert [name for name, _ in received] == ["poll.update", "poll.results"]
        assert received[0][1]["revealed"] is True
        assert received[1][1] == expected
        assert client.state()["polls"][0]["results"] == expected

    panelist.emit("poll.vote", {"id": pid, "choices": [2]})
    room.flush()
    assert first.got("poll.results") == [{"id": pid, "counts": [1, 0, 2], "ballots": 3}]


def test_the_host_sees_in_the_snapshot_the_results_it_receives_live(room, webinar):
    """Unrevealed results reach the host live, so a reconnect must keep them; a panelist (on
    stage to speak, not a moderator) sees them once revealed, like the audience."""
    host, panelist, first, _ = webinar.values()
    pid = open_poll(host)
    first.emit("poll.vote", {"id": pid, "choices": [2]})
    room.flush()
    live = host.got("poll.results")
    assert live == [{"id": pid, "counts": [0, 0, 1], "ballots": 1}]
    assert host.state()["polls"][0]["results"] == live[0]
    assert panelist.got("poll.results") == []
    for audience in (panelist, first):
        assert "results" not in audience.state()["polls"][0]


def test_hiding_results_again(room, webinar):
    host, first = webinar["host"], webinar["first"]
    pid = open_poll(host)
    host.emit("poll.reveal", {"id": pid})
    assert host.emit("poll.reveal", {"id": pid, "revealed": False}) == {"ok": True}
    assert "results" not in first.state()["polls"][0]
    first.drain()
    first.emit("poll.vote", {"id": pid, "choices": [0]})
    room.flush()
    assert first.got("poll.results") == []


def test_closing_keeps_results_and_refuses_late_votes(room, webinar):
    host, _, first, second = webinar.values()
    pid = open_poll(host)
    first.emit("poll.vote", {"id": pid, "choices": [1]})
    first.drain()

    reply = host.emit("poll.close", {"id": pid})
    assert reply == {"ok": True, "results": {"id": pid, "counts": [0, 1, 0], "ballots": 1}}
    assert [u["state"] for u in first.got("poll.update")] == ["closed"]
    late = second.emit("poll.vote", {"id": pid, "choices": [0]})
    assert late == {"ok": False, "error": "this poll is closed"}
    assert host.emit("poll.close", {"id": pid}) == {
        "ok": False,
        "error": "this poll is already closed",
    }

    closed = host.state()["polls"][0]
    assert (closed["state"], closed["results"]) == ("closed", reply["results"])
    host.emit("poll.reveal", {"id": pid})
    assert second.state()["polls"][0]["results"] == reply["results"]
    assert first.state()["polls"][0]["my_choices"] == [1]


def test_students_see_lesson_results_only_after_reveal(room):
    teacher, student = room.join(room.instructor), room.join(room.students[0])
    pid = open_poll(teacher)
    student.emit("poll.vote", {"id": pid, "choices": [0]})
    student.drain()
    room.flush()
    assert student.got("poll.results") == []
    assert teacher.got("poll.results")[-1]["counts"] == [1, 0, 0]
    teacher.emit("poll.reveal", {"id": pid})
    assert student.got("poll.results") == [{"id": pid, "counts": [1, 0, 0], "ballots": 1}]


def test_a_poll_that_does_not_exist(room, webinar):
    for event, payload in [
        ("poll.vote", {"id": 999_999, "choices": [0]}),
        ("poll.close", {"id": 999_999}),
        ("poll.reveal", {"id": 999_999}),
    ]:
        reply = webinar["host"].emit(event, payload)
        assert reply == {"ok": False, "error": "no such poll in this room"}, event
