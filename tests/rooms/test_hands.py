"""Hand raising: one server-ordered queue, idempotent raises, and calling on grants the mic."""

from __future__ import annotations

from sqlalchemy import select

from lectern.extensions import db
from rooms.log import timeline
from rooms.models import Grant, Hand


def queue_ids(queue):
    return [h["user_id"] for h in queue]


def test_raise_order_is_the_server_order_for_every_observer(room):
    teacher = room.join(room.instructor)
    students = [room.join(s) for s in room.students]
    for client in reversed(students):  # raise in the opposite order to joining
        assert client.emit("hand.raise")["ok"]
    expected = [s.id for s in reversed(room.students)]

    for observer in (teacher, *students):
        last = observer.got("hand.queue")[-1]
        assert queue_ids(last["queue"]) == expected
        assert queue_ids(observer.state()["hands"]["queue"]) == expected
    assert [c.state()["hands"]["position"] for c in students] == [3, 2, 1]


def test_each_observer_gets_one_queue_update_per_change(room):
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])
    teacher.drain()
    student.emit("hand.raise")
    assert [name for name, _ in teacher.drain()] == ["hand.raised", "hand.queue"]
    assert [name for name, _ in student.drain()] == ["hand.queue"]


def test_raising_twice_keeps_one_hand_and_its_place(room, rows):
    teacher = room.join(room.instructor)
    first, second = room.join(room.students[0]), room.join(room.students[1])
    assert first.emit("hand.raise") == {"ok": True, "position": 1}
    assert second.emit("hand.raise") == {"ok": True, "position": 2}
    teacher.drain()

    assert first.emit("hand.raise") == {"ok": True, "position": 1}
    assert rows(Hand) == 2
    assert teacher.got("hand.raised") == []
    raises = [e for e in timeline(room.room_id(room.lesson)) if e["type"] == "hand.raise"]
    assert [e["actor_id"] for e in raises] == [room.students[0].id, room.students[1].id]


def test_lowering_your_own_hand(room):
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])
    student.emit("hand.raise")
    teacher.drain()

    assert student.emit("hand.lower") == {"ok": True}
    assert teacher.got("hand.queue") == [{"queue": []}]
    assert student.got("hand.state") == [{"state": "lowered", "can_publish": False}]
    assert student.state()["hands"] == {"queue": [], "position": None}
    assert student.emit("hand.lower") == {"ok": False, "error": "that hand is not raised"}


def test_a_student_cannot_manage_other_hands(room):
    teacher = room.join(room.instructor)
    mine, other = room.join(room.students[0]), room.join(room.students[1])
    other.emit("hand.raise")
    for client in (teacher, mine, other):
        client.drain()
    before = room.dump()

    attempts = [
        ("hand.lower", {"user_id": room.students[1].id}),
        ("hand.lower_all", {}),
        ("hand.call", {}),
        ("hand.call", {"user_id": room.students[1].id}),
    ]
    for event, payload in attempts:
        reply = mine.emit(event, payload)
        assert reply == {"ok": False, "error": "your role (student) may not do this"}, event

    assert room.dump() == before
    for client in (teacher, mine, other):
        assert client.drain() == []
    assert queue_ids(mine.state()["hands"]["queue"]) == [room.students[1].id]


def test_calling_on_the_first_hand_grants_publishing_until_lowered(room):
    teacher = room.join(room.instructor)
    first, second = room.join(room.students[0]), room.join(room.students[1])
    first.emit("hand.raise")
    second.emit("hand.raise")
    assert first.state()["me"]["can_publish"] is False

    assert teacher.emit("hand.call", {}) == {"ok": True, "user_id": room.students[0].id}
    assert first.got("hand.state") == [{"state": "called", "can_publish": True}]
    assert second.got("hand.state") == []
    assert first.state()["me"]["can_publish"] is True
    assert second.state()["me"]["can_publish"] is False
    assert [h["state"] for h in teacher.state()["hands"]["queue"]] == ["called", "raised"]

    assert teacher.emit("hand.lower", {"user_id": room.students[0].id}) == {"ok": True}
    assert first.got("hand.state") == [{"state": "done", "can_publish": False}]
    assert first.state()["me"]["can_publish"] is False
    assert db.session.scalars(select(Grant)).all() == []
    assert queue_ids(teacher.state()["hands"]["queue"]) == [room.students[1].id]


def test_calling_a_named_student_and_their_lowering_revokes(room):
    teacher = room.join(room.instructor)
    first, second = room.join(room.students[0]), room.join(room.students[1])
    first.emit("hand.raise")
    second.emit("hand.raise")

    reply = teacher.emit("hand.call", {"user_id": room.students[1].id})
    assert reply == {"ok": True, "user_id": room.students[1].id}
    assert second.state()["me"]["can_publish"] is True
    assert first.state()["me"]["can_publish"] is False

    assert second.emit("hand.lower") == {"ok": True}  # "I'm done"
    assert second.state()["me"]["can_publish"] is False
    hand = db.session.scalar(select(Hand).where(Hand.user_id == room.students[1].id))
    assert (hand.state, hand.ended_by) == ("done", room.students[1].id)


def test_calling_on_nobody(room):
    teacher = room.join(room.instructor)
    assert teacher.emit("hand.call", {}) == {"ok": False, "error": "no raised hand to call on"}
    reply = teacher.emit("hand.call", {"user_id": room.students[0].id})
    assert reply == {"ok": False, "error": "no raised hand to call on"}


def test_lower_all(room):
    teacher = room.join(room.instructor)
    students = [room.join(s) for s in room.students]
    for client in students:
        client.emit("hand.raise")
    teacher.emit("hand.call", {})
    for client in (teacher, *students):
        client.drain()

    assert teacher.emit("hand.lower_all") == {"ok": True, "lowered": 3}
    assert students[0].got("hand.state") == [{"state": "done", "can_publish": False}]
    for client in students[1:]:
        assert client.got("hand.state") == [{"state": "lowered", "can_publish": False}]
    assert teacher.got("hand.queue") == [{"queue": []}]
    assert all(c.state()["hands"] == {"queue": [], "position": None} for c in students)
    assert students[0].state()["me"]["can_publish"] is False
    assert teacher.emit("hand.lower_all") == {"ok": True, "lowered": 0}


def test_broadcast_queue_is_seen_by_the_host_only(room):
    host, panelist = room.join(room.host), room.join(room.panelist)
    first, second = room.join(room.attendees[0]), room.join(room.attendees[1])
    for client in (host, panelist, first, second):
        client.drain()

    assert first.emit("hand.raise") == {"ok": True, "position": 1}
    assert second.emit("hand.raise") == {"ok": True, "position": 2}

    expected = [room.attendees[0].id, room.attendees[1].id]
    assert queue_ids(host.got("hand.queue")[-1]["queue"]) == expected
    assert queue_ids(host.state()["hands"]["queue"]) == expected
    for client in (panelist, first, second):  # a panelist is on stage to speak, not to moderate
        assert client.got("hand.queue") == []
    assert second.state()["hands"]["position"] == 2
    assert queue_ids(second.state()["hands"]["queue"]) == [room.attendees[1].id]
