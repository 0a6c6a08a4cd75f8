"""Chat: messages reach the room; presenters limit it to hosts or turn it off."""

from __future__ import annotations

import pytest

from lectern.extensions import db
from rooms.models import ChatMessage


def test_a_message_reaches_everyone_and_stays_in_the_history(room):
    teacher = room.join(room.instructor)
    sender, other = room.join(room.students[0]), room.join(room.students[1])
    teacher.drain()

    reply = sender.emit("chat.send", {"text": "hello all"})
    assert reply["ok"]
    message = reply["message"]
    assert (message["author_id"], message["author"], message["text"]) == (
        room.students[0].id,
        "Student Ann",
        "hello all",
    )
    for client in (teacher, sender, other):
        assert client.got("chat.message") == [message]
        assert client.state()["chat"] == [message]


@pytest.mark.parametrize(
    ("text", "error"),
    [("", "text must not be empty"), ("z" * 501, "text is longer than 500 characters")],
)
def test_messages_out_of_bounds_are_refused(room, rows, text, error):
    student = room.join(room.students[0])
    assert student.emit("chat.send", {"text": text}) == {"ok": False, "error": error}
    assert rows(ChatMessage) == 0


@pytest.mark.parametrize(
    ("mode", "error"),
    [("hosts", "chat is limited to hosts"), ("off", "chat is turned off")],
)
def test_limited_chat_refuses_students_with_a_reason(room, rows, mode, error):
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])
    student.drain()

    assert teacher.emit("chat.mode", {"mode": mode}) == {"ok": True}
    assert student.got("chat.mode") == [{"mode": mode}]
    assert student.state()["room"]["chat_mode"] == mode

    assert student.emit("chat.send", {"text": "let me speak"}) == {"ok": False, "error": error}
    assert rows(ChatMessage) == 0
    assert teacher.emit("chat.send", {"text": "presenter still may"})["ok"]
    assert rows(ChatMessage) == 1

    assert teacher.emit("chat.mode", {"mode": "everyone"}) == {"ok": True}
    assert student.emit("chat.send", {"text": "thanks"})["ok"]


def test_broadcast_chat_to_hosts_only_lets_the_stage_speak(room, rows):
    host, attendee = room.join(room.host), room.join(room.attendees[0])
    panelist = room.join(room.panelist)  # on stage: speaks with the hosts, does not moderate
    assert host.emit("chat.mode", {"mode": "hosts"}) == {"ok": True}
    reply = attendee.emit("chat.send", {"text": "hi"})
    assert reply == {"ok": False, "error": "chat is limited to hosts"}
    assert panelist.emit("chat.send", {"text": "from the stage"})["ok"]
    assert host.emit("chat.send", {"text": "host speaking"})["ok"]
    assert host.emit("chat.mode", {"mode": "off"}) == {"ok": True}
    reply = panelist.emit("chat.send", {"text": "and now?"})
    assert reply == {"ok": False, "error": "chat is turned off"}
    assert rows(ChatMessage) == 2


@pytest.mark.parametrize("who", ["student", "panelist", "attendee"])
def test_only_presenters_change_the_mode(room, who):
    person, key = room.role(who)
    client = room.join(person, key)
    reply = client.emit("chat.mode", {"mode": "off"})
    assert reply == {"ok": False, "error": f"your role ({who}) may not do this"}
    assert client.state()["room"]["chat_mode"] == "everyone"


def test_an_unknown_mode_is_refused(room):
    teacher = room.join(room.instructor)
    reply = teacher.emit("chat.mode", {"mode": "loud"})
    assert reply == {"ok": False, "error": "mode must be one of: everyone, hosts, off"}
    assert teacher.state()["room"]["chat_mode"] == "everyone"


def test_history_keeps_the_last_hundred_oldest_first(room):
    """The chat bucket allows 10 at once, so the backlog is written directly."""
    teacher = room.join(room.instructor)
    room_id = room.room_id(room.lesson)
    db.session.add_all(
        ChatMessage(room_id=room_id, author_id=room.instructor.id, text=f"m{i}") for i in range(105)
    )
    db.session.commit()
    history = teacher.state()["chat"]
    assert [m["text"] for m in history] == [f"m{i}" for i in range(5, 105)]
