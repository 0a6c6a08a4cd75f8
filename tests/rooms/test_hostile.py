"""Hostile clients: malformed payloads, other rooms' ids, floods and markup change nothing they
should not, and the room keeps working for everyone afterwards."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from accounts.models import User
from classroom.models import Course
from lectern.extensions import db, socketio
from rooms import namespace, ratelimit, wire
from rooms.models import ChatMessage, Question, SlideDeck

MB = 1_000_000

# (event, payload, error): the instructor may send every event, so only the payload is wrong
MALFORMED = [
    ("question.ask", ["Why?"], "payload must be an object"),
    ("question.ask", "Why?", "payload must be an object"),
    ("question.ask", 42, "payload must be an object"),
    ("question.ask", True, "payload must be an object"),
    ("question.ask", {"text": ["Why?"]}, "text must be text"),
    ("question.ask", {"text": {"$ne": ""}}, "text must be text"),
    ("question.ask", {"text": [[[[["deep"]]]]]}, "text must be text"),
    ("question.ask", {"text": "x" * MB}, "text is longer than 1000 characters"),
    ("question.ask", {"text": "Why?", "anonymous": "yes"}, "anonymous must be true or false"),
    ("question.ask", {"text": "Why?", "author_id": 1}, "unexpected field: author_id"),
    ("question.upvote", {"id": True}, "id must be a whole number"),
    ("question.upvote", {"id": "1"}, "id must be a whole number"),
    ("question.upvote", {"id": 1.5}, "id must be a whole number"),
    ("question.upvote", {"id": {"id": 1}}, "id must be a whole number"),
    ("question.upvote", {}, "id must be a whole number"),
    ("question.upvote", {"id": 0}, "id must be between 1 and 2147483647"),
    ("question.upvote", {"id": 2**64}, "id must be between 1 and 2147483647"),
    ("question.upvote", {"id": 2**31}, "id must be between 1 and 2147483647"),
    ("question.ask", {"text": "nul\x00byte"}, "text contains a character that is not allowed"),
    ("chat.send", {"text": "bell\x07"}, "text contains a character that is not allowed"),
    ("question.answer", {"id": 1, "text": "y" * MB}, "text is longer than 4000 characters"),
    ("hand.lower", {"user_id": False}, "user_id must be a whole number"),
    ("hand.call", {"user_id": [1]}, "user_id must be a whole number"),
    ("hand.raise", {"user_id": 1}, "unexpected field: user_id"),
    ("chat.send", {"text": "z" * MB}, "text is longer than 500 characters"),
    ("chat.send", {"text": "hi", "x" * MB: 1}, "unexpected field: " + "x" * 40),
    ("chat.send", None, "text must be text"),
    ("chat.mode", {"mode": ["off"]}, "mode must be one of: everyone, hosts, off"),
    ("chat.mode", {"mode": None}, "mode must be one of: everyone, hosts, off"),
    ("poll.open", {"question": "Q", "options": ["a", 2]}, "options[1] must be text"),
    (
        "poll.open",
        {"question": "Q", "options": ["o"] * MB},
        "options must be a list of 2 to 10 items",
    ),
    ("poll.vote", {"id": 1, "choices": [0] * MB}, "choices must be a list of 1 to 10 numbers"),
    ("poll.vote", {"id": 1, "choices": {"0": True}}, "choices must be a list of 1 to 10 numbers"),
    ("slides.goto", {"deck_id": 1, "page": 10**6}, "page must be between 1 and 10000"),
    ("slides.goto", {"deck_id": None, "page": 1}, "deck_id must be a whole number"),
]


@pytest.fixture
def lesson(room):
    """The instructor and two students connected, inboxes empty."""
    clients = [room.join(room.instructor), room.join(room.students[0]), room.join(room.students[1])]
    room.flush()
    for client in clients:
        client.drain()
    return clients


def still_works(room, clients) -> None:
    """Nobody heard anything, and the next valid event succeeds and reaches everyone."""
    for client in clients:
        assert client.drain() == []
    reply = clients[1].emit("chat.send", {"text": "still here"})
    assert reply["ok"], reply
    for client in clients:
        assert [m["text"] for m in client.got("chat.message")] == ["still here"]


@pytest.mark.parametrize(
    ("event", "payload", "error"),
    MALFORMED,
    ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(MALFORMED)],
)
def test_malformed_payloads_are_refused_and_change_nothing(room, lesson, event, payload, error):
    before = room.dump()
    assert lesson[0].emit(event, payload) == {"ok": False, "error": error}
    assert room.dump() == before
    still_works(room, lesson)


@pytest.mark.parametrize("args", [({"text": "a"}, {"text": "b"}), ("a", "b", "c")])
def test_more_than_one_payload_is_refused(room, lesson, args):
    before = room.dump()
    assert lesson[1].emit("chat.send", *args) == {"ok": False, "error": "send one payload object"}
    assert room.dump() == before
    still_works(room, lesson)


def ask_approved(asker, host, text: str) -> int:
    """An attendee's question, approved by the host (presenters do not ask): its id."""
    qid = asker.emit("question.ask", {"text": text})["question"]["id"]
    assert host.emit("question.approve", {"id": qid})["ok"]
    return qid


def test_ids_from_another_room_are_refused(room, lesson):
    host, attendee = room.join(room.host), room.join(room.attendees[0])
    pending = attendee.emit("question.ask", {"text": "Mine"})["question"]["id"]
    public = ask_approved(room.join(room.attendees[1]), host, "Theirs")
    poll = host.emit("poll.open", {"question": "Q?", "options": ["a", "b"]})["poll"]["id"]
    attendee.emit("hand.raise")
    deck = SlideDeck(
        room_id=room.room_id(room.broadcast), filename="b.pdf", pages=2, rendered=2, status="ready"
    )
    db.session.add(deck)
    db.session.commit()
    for client in (host, attendee, *lesson):
        client.drain()
    teacher, student = lesson[0], lesson[1]
    before = room.dump()

    no_question = {"ok": False, "error": "no such question in this room"}
    no_poll = {"ok": False, "error": "no such poll in this room"}
    attempts = [
        (teacher, "question.approve", {"id": pending}, no_question),
        (teacher, "question.answer", {"id": public, "text": "A"}, no_question),
        (teacher, "question.pin", {"id": public}, no_question),
        (teacher, "question.dismiss", {"id": public}, no_question),
        (student, "question.upvote", {"id": public}, no_question),
        (student, "poll.vote", {"id": poll, "choices": [0]}, no_poll),
        (teacher, "poll.close", {"id": poll}, no_poll),
        (teacher, "poll.reveal", {"id": poll}, no_poll),
        (
            teacher,
            "slides.goto",
            {"deck_id": deck.id, "page": 1},
            {"ok": False, "error": "no such slide deck in this room"},
        ),
        (
            teacher,
            "hand.lower",
            {"user_id": room.attendees[0].id},
            {"ok": False, "error": "that hand is not raised"},
        ),
        (
            teacher,
            "hand.call",
            {"user_id": room.attendees[0].id},
            {"ok": False, "error": "no raised hand to call on"},
        ),
    ]
    for client, event, payload, expected in attempts:
        assert client.emit(event, payload) == expected, event

    assert room.dump() == before
    assert host.drain() == [] and attendee.drain() == []
    still_works(room, lesson)


def test_a_client_that_is_not_connected_is_ignored(room, lesson):
    outsider = room.connect(None, {"room": room.lesson})
    assert not outsider.connected
    before = room.dump()
    with pytest.raises(RuntimeError, match="not connected"):
        outsider.emit("chat.send", {"text": "let me in"})

    outsider.sio.connected["/room"] = True  # bypass the test client's own check
    assert outsider.emit("chat.send", {"text": "let me in"}) is None  # dropped, no reply
    assert room.dump() == before

    assert namespace.dispatch("chat.send", "no-such-sid", ({"text": "x"},)) == {
        "ok": False,
        "error": "not connected to a room",
    }
    assert room.dump() == before
    still_works(room, lesson)


def test_a_disconnected_client_leaves_no_actor_behind(room, lesson):
    gone = room.join(room.students[2])
    sid = next(s for s, a in namespace.actors.items() if a.user_id == room.students[2].id)
    gone.close()
    assert sid not in namespace.actors
    reply = namespace.dispatch("hand.raise", sid, ())
    assert reply == {"ok": False, "error": "not connected to a room"}
    assert room.dump()["hands"] == []


def test_a_huge_room_key_is_refused(room):
    client = room.connect(room.students[0], {"room": "lesson:" + "1" * MB})
    assert not client.connected
    assert room.dump()["rooms"] == []


MARKUP = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def test_markup_is_stored_and_sent_verbatim(room, lesson):
    teacher, student = lesson[0], lesson[1]
    db.session.get(User, room.students[2].id).name = MARKUP
    db.session.commit()
    marked = room.join(room.students[2])
    assert teacher.got("presence.join")[0]["name"] == MARKUP

    question = marked.emit("question.ask", {"text": MARKUP})["question"]
    assert (question["text"], question["author"]) == (MARKUP, MARKUP)
    assert student.got("question.update") == [question]
    assert db.session.scalar(select(Question.text)) == MARKUP

    message = marked.emit("chat.send", {"text": MARKUP})["message"]
    assert (message["text"], message["author"]) == (MARKUP, MARKUP)
    assert db.session.scalar(select(ChatMessage.text)) == MARKUP
    marked.emit("hand.raise")
    assert teacher.got("hand.raised")[0]["name"] == MARKUP
    assert student.state()["hands"]["queue"][0]["name"] == MARKUP


class Clock:
    """A stand-in for ``time`` in the rate limiter: still unless a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    return clock


def test_a_flood_of_questions_is_cut_to_the_bucket(room, lesson, rows, clock):
    flooder, other = lesson[1], lesson[2]
    replies = [flooder.emit("question.ask", {"text": f"spam {i}"}) for i in range(50)]
    accepted = [r for r in replies if r["ok"]]
    assert len(accepted) == 5
    assert replies[:5] == accepted  # the first five, then nothing
    assert replies[5:] == [{"ok": False, "error": "too many requests: slow down"}] * 45
    assert rows(Question) == 5

    assert other.emit("question.ask", {"text": "a real question"})["ok"]
    assert flooder.emit("chat.send", {"text": "other buckets are separate"})["ok"]
    assert rows(Question) == 6

    clock.now += 4.9
    assert not flooder.emit("question.ask", {"text": "again"})["ok"]
    clock.now += 0.2  # one token every five seconds
    assert flooder.emit("question.ask", {"text": "again"})["ok"]
    assert not flooder.emit("question.ask", {"text": "and again"})["ok"]


def test_a_flood_of_chat_is_cut_to_the_bucket(room, lesson, rows, clock):
    replies = [lesson[1].emit("chat.send", {"text": f"{i}"}) for i in range(30)]
    assert [r["ok"] for r in replies] == [True] * 10 + [False] * 20
    assert rows(ChatMessage) == 10
    assert lesson[2].emit("chat.send", {"text": "me too"})["ok"]


# -- the transport: reserved names, depth, junk frames, the default namespace ----------------


def sid_of(person) -> str:
    return next(s for s, a in namespace.actors.items() if a.user_id == person.id)


def raw(client, text: str) -> Any:
    """Hand ``text`` to the server as one Socket.IO packet of ``client``'s connection (what a
    hand-written client can send); the acknowledgement it got, if any."""
    client.sio.acks = None
    socketio.server._handle_eio_message(client.sio.eio_sid, text)
    return client.sio.acks["args"][0] if client.sio.acks else None


def test_an_event_named_disconnect_is_refused_and_the_connection_stays_counted(room, lesson):
    teacher, student = lesson[0], lesson[1]
    sid = sid_of(room.students[0])
    before = room.dump()

    assert student.emit("disconnect", "client namespace disconnect") == {
        "ok": False,
        "error": "disconnect is not an event",
    }
    assert namespace.actors[sid].user_id == room.students[0].id
    assert room.dump() == before  # presence row kept, no presence.leave logged
    assert teacher.drain() == []
    assert student.emit("hand.raise") == {"ok": True, "position": 1}
    assert [p["user_id"] for p in teacher.state()["presence"]["people"]] == [
        room.instructor.id,
        room.students[0].id,
        room.students[1].id,
    ]


def test_an_event_named_connect_cannot_move_the_connection_to_another_room(room, lesson, courses):
    student = lesson[1]
    other = courses.lesson(db.session.get(Course, room.course_id))
    sid = sid_of(room.students[0])
    before = room.dump()

    reply = student.emit("connect", {}, {"room": f"lesson:{other.id}"})
    assert reply == {"ok": False, "error": "connect is not an event"}
    assert namespace.actors[sid].room_id == room.room_id(room.lesson)
    assert room.dump() == before  # no room row for the other lesson, no second presence row
    still_works(room, lesson)


def test_a_payload_nested_a_thousand_deep_gets_a_clear_error(room, lesson):
    deep = "[" * 1000 + "]" * 1000
    before = room.dump()
    assert raw(lesson[1], f'2/room,7["chat.send",{deep}]') == {
        "ok": False,
        "error": "the payload is nested too deeply",
    }
    text = '{"text":' * 1000 + '"x"' + "}" * 1000
    assert raw(lesson[1], f'2/room,8["state.get",{text}]') == {
        "ok": False,
        "error": "the payload is nested too deeply",
    }
    assert room.dump() == before
    still_works(room, lesson)


def test_brackets_inside_text_are_not_depth(room, lesson):
    reply = lesson[1].emit("chat.send", {"text": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ {{{{{{{{{{{{{{{"})
    assert reply["ok"], reply


def test_junk_frames_close_the_connection_without_a_traceback(room, lesson, caplog):
    junk = ["x", "9", "2/room,", "2/room,[", '2/room,{"a":1}', "5999999-/room,", "\x00", "2[1]"]
    sid = sid_of(room.students[0])
    with caplog.at_level(logging.DEBUG):
        for i in range(wire.MAX_STRIKES + 5):
            assert raw(lesson[1], junk[i % len(junk)]) is None
    assert sid not in namespace.actors  # closed after MAX_STRIKES
    assert not any(r.exc_info for r in caplog.records)
    closing = [r for r in caplog.records if "strikes" in r.getMessage()]
    assert len(closing) == 1
    lesson[0].drain()
    lesson.pop(1)
    still_works(room, lesson)


def test_too_many_binary_attachments_are_refused(room, lesson):
    sid = sid_of(room.students[0])
    eio_sid = lesson[1].sio.eio_sid
    assert raw(lesson[1], '5999999-/room,9["chat.send",{"_placeholder":true,"num":0}]') is None
    assert eio_sid not in socketio.server._binary_packet  # nothing kept for the parts to come
    assert raw(lesson[1], f'5{wire.MAX_ATTACHMENTS}-/room,9["chat.send",{{}}]') is None
    assert eio_sid in socketio.server._binary_packet  # up to the cap a packet waits for its parts
    assert sid in namespace.actors


@pytest.mark.parametrize("who", ["nobody", "student"])
def test_the_default_namespace_refuses_everyone(room, who):
    person = room.students[0] if who == "student" else None
    http = room.http(person)
    with room.app.app_context():
        client = socketio.test_client(room.app, flask_test_client=http)
    assert not client.is_connected("/")
    assert namespace.actors == {}


def test_state_get_is_rate_limited_per_user(room, lesson, clock):
    replies = [lesson[1].emit("state.get") for _ in range(30)]
    assert [r["ok"] for r in replies] == [True] * 10 + [False] * 20
    assert replies[-1] == {"ok": False, "error": "too many requests: slow down"}
    assert replies[0]["state"] == replies[9]["state"]
    assert lesson[2].emit("state.get")["ok"]  # another user's bucket
    clock.now += 1.0
    assert lesson[1].emit("state.get")["ok"]


def test_a_snapshot_is_rebuilt_after_any_change(room, lesson):
    first = lesson[1].state()
    assert lesson[1].state() == first
    assert lesson[2].emit("hand.raise")["ok"]
    assert [h["user_id"] for h in lesson[1].state()["hands"]["queue"]] == [room.students[1].id]
