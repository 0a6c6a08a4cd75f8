"""Reconnecting: the snapshot replaces all client state, so nothing missed while away is lost
or doubled; and the database, not the web process, holds that state."""

from __future__ import annotations

from typing import Any

from lectern import create_app
from lectern.extensions import db, socketio
from lectern.schema import prepare
from rooms import namespace
from rooms.models import SlideDeck

# What differs between two students' snapshots of the same room: their own view.
PERSONAL = ("me", "my_votes")


def shared(state: dict[str, Any]) -> dict[str, Any]:
    """The snapshot without what is personal to its receiver."""
    common = {k: v for k, v in state.items() if k not in PERSONAL}
    common["hands"] = {"queue": state["hands"]["queue"]}
    common["polls"] = [{k: v for k, v in p.items() if k != "my_choices"} for p in state["polls"]]
    return common


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [i["id"] for i in items]


def test_a_reconnecting_student_gets_exactly_the_current_state(room):
    teacher = room.join(room.instructor)
    away, witness = room.join(room.students[0]), room.join(room.students[1])
    room_id = room.room_id(room.lesson)
    deck = SlideDeck(room_id=room_id, filename="s.pdf", pages=5, rendered=5, status="ready")
    db.session.add(deck)
    db.session.commit()

    q1 = away.emit("question.ask", {"text": "one"})["question"]["id"]
    q2 = away.emit("question.ask", {"text": "two"})["question"]["id"]
    away.emit("question.upvote", {"id": q1})
    away.emit("hand.raise")
    away.emit("chat.send", {"text": "before"})
    p1 = teacher.emit("poll.open", {"question": "?", "options": ["a", "b"]})["poll"]["id"]
    away.emit("poll.vote", {"id": p1, "choices": [1]})
    teacher.emit("slides.goto", {"deck_id": deck.id, "page": 1})
    away.close()

    # while the student is away
    teacher.emit("question.answer", {"id": q1, "text": "answered"})
    teacher.emit("question.dismiss", {"id": q2})
    q3 = witness.emit("question.ask", {"text": "three"})["question"]["id"]
    witness.emit("question.upvote", {"id": q3})
    teacher.emit("slides.goto", {"deck_id": deck.id, "page": 3})
    teacher.emit("poll.close", {"id": p1})
    p2 = teacher.emit("poll.open", {"question": "!", "options": ["x", "y"]})["poll"]["id"]
    witness.emit("hand.raise")
    teacher.emit("hand.call", {"user_id": room.students[0].id})
    teacher.emit("chat.send", {"text": "while away"})
    teacher.emit("chat.mode", {"mode": "hosts"})

    back = room.join(room.students[0])
    state = back.state()
    assert ids(state["questions"]) == [q1, q3]  # q2 was dismissed
    assert [(q["status"], q["answer"], q["votes"]) for q in state["questions"]] == [
        ("answered", "answered", 1),
        ("open", None, 1),
    ]
    assert state["my_votes"] == [q1]
    assert [m["text"] for m in state["chat"]] == ["before", "while away"]
    assert state["room"]["chat_mode"] == "hosts"
    assert state["slides"]["page"] == 3 and state["slides"]["deck"]["id"] == deck.id
    assert [(p["id"], p["state"], p["my_choices"]) for p in state["polls"]] == [
        (p1, "closed", [1]),
        (p2, "open", None),
    ]
    assert all("results" not in p for p in state["polls"])  # never revealed
    queue = state["hands"]["queue"]
    assert [(h["user_id"], h["state"]) for h in queue] == [
        (room.students[0].id, "called"),
        (room.students[1].id, "raised"),
    ]
    assert state["hands"]["position"] == 1
    assert state["me"]["can_publish"] is True
    assert state["presence"]["count"] == 3

    assert shared(state) == shared(witness.state())
    again = back.state()
    assert again == state  # asking twice changes nothing


def test_a_restarted_web_process_serves_the_same_state(room, app, rows):
    teacher, student = room.join(room.instructor), room.join(room.students[0])
    qid = student.emit("question.ask", {"text": "persist me"})["question"]["id"]
    student.emit("hand.raise")
    teacher.emit("hand.call", {})
    teacher.emit("chat.send", {"text": "kept"})
    pid = teacher.emit("poll.open", {"question": "?", "options": ["a", "b"]})["poll"]["id"]
    student.emit("poll.vote", {"id": pid, "choices": [0]})
    teacher.emit("poll.reveal", {"id": pid})
    teacher.emit("question.pin", {"id": qid})
    before = student.state()
    db.session.commit()

    # The process dies: its sockets and memory go; its connection rows stay behind.
    for client in room.clients:
        client.sio.connected.clear()
    namespace.actors.clear()
    namespace.limiter.reset()
    settings = (
        "TESTING",
        "SECRET_KEY",
        "SQLALCHEMY_DATABASE_URI",
        "DATA_DIR",
        "DEMO_DATA",
        "WTF_CSRF_ENABLED",
        "REDIS_URL",
        "ROOMS_FLUSH_INTERVAL",
    )
    fresh = create_app({k: app.config[k] for k in settings})
    prepare(fresh)  # as the server does on start: a lone worker owns no connections
    try:
        with fresh.app_context():
            http = fresh.test_client()
            signed_in = room.auth_class(http).login(room.students[0].email)
            assert signed_in.status_code == 302
        with fresh.app_context():
            sio = socketio.test_client(
                fresh, namespace="/room", auth={"room": room.lesson}, flask_test_client=http
            )
        try:
            reply = sio.emit("state.get", namespace="/room", callback=True)
            after = reply["state"]
            assert after.pop("presence") == {"count": 1, "people": None}
            assert before.pop("presence")["count"] == 2
            assert after == before
            assert after["me"]["can_publish"] is True
            assert after["polls"][0]["results"] == {"id": pid, "counts": [1, 0], "ballots": 1}

            asked = sio.emit(
                "question.ask", {"text": "new process"}, namespace="/room", callback=True
            )
            assert asked["ok"]
        finally:
            sio.disconnect("/room")
    finally:
        with fresh.app_context():
            db.session.remove()
            db.engine.dispose()
