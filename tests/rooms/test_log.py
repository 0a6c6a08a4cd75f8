"""The room's event log: every state change is appended with its actor, type and payload."""

from __future__ import annotations

from lectern.extensions import db
from rooms.log import timeline
from rooms.models import SlideDeck


def test_each_change_is_logged_in_order_and_refusals_are_not(room):
    teacher, student, other = (room.join(p) for p in (room.instructor, *room.students[:2]))
    room_id = room.room_id(room.lesson)
    deck = SlideDeck(room_id=room_id, filename="a.pdf", pages=4, rendered=4, status="ready")
    db.session.add(deck)
    db.session.commit()
    t, s, o = room.instructor.id, room.students[0].id, room.students[1].id
    start = len(timeline(room_id))

    teacher.drain()
    student.emit("hand.raise")
    hand_id = teacher.got("hand.raised")[0]["hand_id"]
    teacher.emit("hand.call", {})
    student.emit("hand.lower")
    q = student.emit("question.ask", {"text": "Q", "anonymous": True})["question"]["id"]
    other.emit("question.upvote", {"id": q})
    teacher.emit("question.answer", {"id": q, "text": "A"})
    teacher.emit("question.pin", {"id": q})
    teacher.emit("chat.mode", {"mode": "hosts"})
    assert not student.emit("chat.send", {"text": "refused"})["ok"]
    m = teacher.emit("chat.send", {"text": "hello"})["message"]["id"]
    p = teacher.emit("poll.open", {"question": "?", "options": ["a", "b"]})["poll"]["id"]
    student.emit("poll.vote", {"id": p, "choices": [1]})
    teacher.emit("poll.close", {"id": p})
    teacher.emit("poll.reveal", {"id": p})
    teacher.emit("slides.goto", {"deck_id": deck.id, "page": 2})
    teacher.emit("question.dismiss", {"id": q})
    other.close()

    events = timeline(room_id)[start:]
    assert [(e["type"], e["actor_id"], e["payload"]) for e in events] == [
        ("hand.raise", s, {"hand_id": hand_id}),
        ("hand.called", t, {"hand_id": hand_id, "user_id": s}),
        ("hand.done", s, {"hand_id": hand_id, "user_id": s}),
        ("question.ask", s, {"id": q, "text": "Q", "anonymous": True, "status": "open"}),
        ("question.upvote", o, {"id": q, "on": True}),
        ("question.answer", t, {"id": q, "answer": "A", "pinned": False}),
        ("question.pin", t, {"id": q, "answer": "A", "pinned": True}),
        ("chat.mode", t, {"mode": "hosts"}),
        ("chat.message", t, {"id": m, "text": "hello"}),
        (
            "poll.open",
            t,
            {
                "id": p,
                "question": "?",
                "options": ["a", "b"],
                "multiple": False,
                "weighted": False,
                "anonymous": False,
            },
        ),
        ("poll.vote", s, {"id": p, "choices": [1]}),
        ("poll.close", t, {"id": p, "results": {"id": p, "counts": [0, 1], "ballots": 1}}),
        ("poll.reveal", t, {"id": p, "revealed": True}),
        ("slides.page", t, {"deck_id": deck.id, "page": 2}),
        ("question.dismiss", t, {"id": q, "answer": "A", "pinned": False}),
        ("presence.leave", o, {}),
    ]
    times = [e["ts"] for e in events]
    assert times == sorted(times)


def test_presence_is_logged_once_per_user(room):
    teacher = room.join(room.instructor)
    room.join(room.students[0])
    room.join(room.students[0])  # a second tab
    teacher.close()
    events = timeline(room.room_id(room.lesson))
    assert [(e["type"], e["actor_id"], e["payload"]) for e in events] == [
        ("presence.join", room.instructor.id, {"role": "instructor"}),
        ("presence.join", room.students[0].id, {"role": "student"}),
        ("presence.leave", room.instructor.id, {}),
    ]


def test_since_returns_the_tail(room):
    teacher = room.join(room.instructor)
    room_id = room.room_id(room.lesson)
    cut = timeline(room_id)[-1]["ts"]
    teacher.emit("chat.send", {"text": "later"})
    later = [e for e in timeline(room_id, since=cut) if e["type"] == "chat.message"]
    assert [e["payload"]["text"] for e in later] == ["later"]
    assert all(e["ts"] >= cut for e in timeline(room_id, since=cut))
