"""Presence: moderators see who comes and goes; everyone else sees how many are in the room."""

from __future__ import annotations

from rooms.log import timeline


def test_moderators_see_joins_and_leaves_with_names(room):
    teacher = room.join(room.instructor)
    first = room.join(room.students[0])
    teacher.drain()
    first.drain()

    second = room.join(room.students[1])
    joined = {"user_id": room.students[1].id, "name": "Student Ben", "role": "student"}
    assert teacher.got("presence.join") == [joined]
    assert first.got("presence.join") == []  # students are not told who joined

    second.close()
    assert teacher.got("presence.leave") == [
        {"user_id": room.students[1].id, "name": "Student Ben"}
    ]
    assert first.got("presence.leave") == []


def test_moderators_get_the_list_and_students_only_the_count(room):
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])

    listed = teacher.state()["presence"]
    assert listed["count"] == 2
    # joined_at has whole seconds, so both may tie: compare without the order
    assert sorted((p["user_id"], p["name"], p["role"]) for p in listed["people"]) == [
        (room.instructor.id, "Iris Instructor", "instructor"),
        (room.students[0].id, "Student Ann", "student"),
    ]
    assert student.state()["presence"] == {"count": 2, "people": None}


def test_broadcast_attendees_get_only_the_count(room):
    host, panelist = room.join(room.host), room.join(room.panelist)
    attendee = room.join(room.attendees[0])

    assert attendee.state()["presence"] == {"count": 3, "people": None}
    assert panelist.state()["presence"] == {"count": 3, "people": None}  # on stage, not a host
    people = host.state()["presence"]["people"]
    assert {p["name"]: p["role"] for p in people} == {
        "Hugo Host": "host",
        "Pia Panelist": "panelist",
        "Attendee Abe": "attendee",
    }
    host.drain()
    room.join(room.attendees[1])
    assert [j["name"] for j in host.got("presence.join")] == ["Attendee Bea"]
    assert panelist.got("presence.join") == []
    assert attendee.got("presence.join") == []


def test_the_count_reaches_everyone_coalesced(room):
    teacher = room.join(room.instructor)
    room.flush()
    teacher.drain()
    students = [room.join(s) for s in room.students]
    assert teacher.got("presence.count") == []  # nothing until the flush

    room.flush()
    assert teacher.got("presence.count") == [{"count": 4}]  # three joins, one update
    for client in students:
        assert client.got("presence.count") == [{"count": 4}]

    students[0].close()
    room.flush()
    assert teacher.got("presence.count") == [{"count": 3}]


def test_two_tabs_of_one_user_count_once(room):
    teacher = room.join(room.instructor)
    teacher.drain()
    tab1 = room.join(room.students[0])
    tab2 = room.join(room.students[0])

    assert len(teacher.got("presence.join")) == 1
    state = teacher.state()["presence"]
    assert state["count"] == 2
    assert [p["user_id"] for p in state["people"]].count(room.students[0].id) == 1

    tab1.close()
    assert teacher.got("presence.leave") == []
    assert tab2.state()["presence"]["count"] == 2
    tab2.close()
    assert teacher.got("presence.leave") == [
        {"user_id": room.students[0].id, "name": "Student Ann"}
    ]
    assert teacher.state()["presence"]["count"] == 1

    types = [
        (e["type"], e["actor_id"])
        for e in timeline(room.room_id(room.lesson))
        if e["type"].startswith("presence.")
    ]
    assert types == [
        ("presence.join", room.instructor.id),
        ("presence.join", room.students[0].id),
        ("presence.leave", room.students[0].id),
    ]


def test_a_tab_of_each_user_receives_room_messages(room):
    teacher = room.join(room.instructor)
    tab1, tab2 = room.join(room.students[0]), room.join(room.students[0])
    teacher.emit("chat.send", {"text": "both tabs"})
    assert [m["text"] for m in tab1.got("chat.message")] == ["both tabs"]
    assert [m["text"] for m in tab2.got("chat.message")] == ["both tabs"]
