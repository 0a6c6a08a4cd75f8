"""Q&A: asking, limits, upvotes, moderation (approve, answer, pin, dismiss) and anonymity."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from lectern.extensions import db
from rooms.models import Question, QuestionVote


def ids(questions):
    return [q["id"] for q in questions]


def test_asking_reaches_everyone_with_sort_data(room):
    teacher = room.join(room.instructor)
    asker, other = room.join(room.students[0]), room.join(room.students[1])
    teacher.drain()

    reply = asker.emit("question.ask", {"text": "  Why is the sky blue?  "})
    assert reply["ok"]
    question = reply["question"]
    assert question["text"] == "Why is the sky blue?"  # trimmed
    assert question["status"] == "open"
    assert (question["author"], question["author_id"]) == ("Student Ann", room.students[0].id)
    assert question["votes"] == 0
    assert question["created_at"].endswith("Z")
    for client in (teacher, asker, other):
        assert client.got("question.update") == [question]
        assert client.state()["questions"] == [question]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "text must not be empty"),
        ("   \n ", "text must not be empty"),
        ("x" * 1001, "text is longer than 1000 characters"),
        (None, "text must be text"),
        (42, "text must be text"),
    ],
)
def test_questions_out_of_bounds_are_refused(room, rows, text, error):
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])
    teacher.drain()
    assert student.emit("question.ask", {"text": text}) == {"ok": False, "error": error}
    assert rows(Question) == 0
    assert teacher.drain() == []


def test_a_question_of_exactly_1000_characters_is_accepted(room):
    student = room.join(room.students[0])
    reply = student.emit("question.ask", {"text": "y" * 1000})
    assert reply["ok"] and len(reply["question"]["text"]) == 1000


def test_upvotes_toggle_count_once_per_user_and_arrive_coalesced(room, rows):
    teacher = room.join(room.instructor)
    asker, second, third = (room.join(s) for s in room.students)
    qid = asker.emit("question.ask", {"text": "Exam date?"})["question"]["id"]

    assert second.emit("question.upvote", {"id": qid}) == {
        "ok": True,
        "id": qid,
        "voted": True,
        "votes": 1,
    }
    assert second.emit("question.upvote", {"id": qid})["votes"] == 0  # toggled off
    assert second.emit("question.upvote", {"id": qid})["voted"] is True
    assert third.emit("question.upvote", {"id": qid})["votes"] == 2
    assert rows(QuestionVote) == 2
    for client in (teacher, asker, second, third):
        assert client.got("question.votes") == []  # nothing until the flush

    room.flush()
    for client in (teacher, asker, second, third):
        assert client.got("question.votes") == [{"id": qid, "votes": 2}]  # one, the latest
    assert second.state()["my_votes"] == [qid]
    assert asker.state()["my_votes"] == []
    assert teacher.state()["questions"][0]["votes"] == 2


def test_sort_data_lets_clients_order_by_votes_then_age(room):
    student, other = room.join(room.students[0]), room.join(room.students[1])
    first = student.emit("question.ask", {"text": "first"})["question"]["id"]
    second = student.emit("question.ask", {"text": "second"})["question"]["id"]
    other.emit("question.upvote", {"id": second})

    questions = other.state()["questions"]
    ranked = sorted(questions, key=lambda q: (-q["votes"], q["created_at"], q["id"]))
    assert ids(ranked) == [second, first]
    assert ids(questions) == [first, second]  # the snapshot itself is in asking order


def test_moderated_broadcast_holds_attendee_questions_until_approved(room):
    host, panelist = room.join(room.host), room.join(room.panelist)
    asker, other = room.join(room.attendees[0]), room.join(room.attendees[1])
    for client in (host, panelist, asker, other):
        client.drain()

    question = asker.emit("question.ask", {"text": "Dividends?"})["question"]
    assert question["status"] == "pending"
    for client in (host, asker):
        assert client.got("question.update") == [question]
        assert ids(client.state()["questions"]) == [question["id"]]
    for client in (panelist, other):  # a panelist is on stage to speak, not a moderator
        assert client.drain() == []
        assert client.state()["questions"] == []
    reply = other.emit("question.upvote", {"id": question["id"]})
    assert reply == {"ok": False, "error": "only visible questions can be upvoted"}

    approved = host.emit("question.approve", {"id": question["id"]})["question"]
    assert approved["status"] == "open"
    for client in (host, panelist, asker, other):
        assert client.got("question.update") == [approved]
        assert client.state()["questions"] == [approved]
    again = host.emit("question.approve", {"id": question["id"]})
    assert again == {"ok": False, "error": "only pending questions can be approved"}


def test_answering_with_text_and_live(room):
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])
    first = student.emit("question.ask", {"text": "One?"})["question"]["id"]
    second = student.emit("question.ask", {"text": "Two?"})["question"]["id"]
    student.drain()

    answered = teacher.emit("question.answer", {"id": first, "text": "Yes, one."})["question"]
    assert (answered["status"], answered["answer"], answered["answered_live"]) == (
        "answered",
        "Yes, one.",
        False,
    )
    live = teacher.emit("question.answer", {"id": second})["question"]
    assert (live["status"], live["answer"], live["answered_live"]) == ("answered", None, True)
    assert student.got("question.update") == [answered, live]
    assert student.state()["questions"] == [answered, live]


def test_pinning_and_unpinning(room):
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])
    qid = student.emit("question.ask", {"text": "Pin me"})["question"]["id"]
    student.drain()

    assert teacher.emit("question.pin", {"id": qid})["question"]["pinned"] is True
    assert [q["pinned"] for q in student.got("question.update")] == [True]
    assert teacher.emit("question.pin", {"id": qid, "pinned": False})["question"]["pinned"] is False
    assert student.state()["questions"][0]["pinned"] is False


def test_dismissing_removes_the_question_for_everyone_but_moderators(room):
    host, panelist = room.join(room.host), room.join(room.panelist)
    asker, other = room.join(room.attendees[0]), room.join(room.attendees[1])
    qid = other.emit("question.ask", {"text": "Off topic"})["question"]["id"]
    host.emit("question.approve", {"id": qid})
    host.emit("question.pin", {"id": qid})
    for client in (host, panelist, asker, other):
        client.drain()

    dismissed = host.emit("question.dismiss", {"id": qid})["question"]
    assert (dismissed["status"], dismissed["pinned"]) == ("dismissed", False)
    for client in (panelist, asker):  # a panelist is on stage to speak, not a moderator
        assert client.got("question.remove") == [{"id": qid}]
        assert client.state()["questions"] == []
    assert host.state()["questions"] == [dismissed]
    assert host.got("question.update") == [dismissed]


def test_anonymous_questions_never_carry_their_author(room):
    host, panelist = room.join(room.host), room.join(room.panelist)
    asker, other = room.join(room.attendees[0]), room.join(room.attendees[1])
    clients = (host, panelist, asker, other)
    for client in clients:
        client.drain()

    replies = [asker.emit("question.ask", {"text": "Layoffs?", "anonymous": True})]
    qid = replies[0]["question"]["id"]
    replies.append(host.emit("question.approve", {"id": qid}))
    replies.append(other.emit("question.upvote", {"id": qid}))
    replies.append(host.emit("question.answer", {"id": qid, "text": "None planned."}))
    room.flush()

    seen = [reply["question"] for reply in replies if "question" in reply]
    for client in clients:
        messages = [data for name, data in client.drain() if name.startswith("question.")]
        assert messages, "every participant heard about the question"
        assert room.attendees[0].name not in json.dumps(messages)
        seen += [m for m in messages if "text" in m]  # the question.update payloads
        seen += client.state()["questions"]
    assert len(seen) == 3 + (3 + 2 + 3 + 2) + 4  # replies, updates received, snapshots
    for question in seen:
        assert question["anonymous"] is True
        assert question["author"] is None and question["author_id"] is None
    stored = db.session.scalar(select(Question).where(Question.id == qid))
    assert stored.author_id == room.attendees[0].id  # kept for the record, never sent


def test_the_author_of_a_pending_anonymous_question_still_sees_it(room):
    host, asker = room.join(room.host), room.join(room.attendees[0])
    question = asker.emit("question.ask", {"text": "Quietly", "anonymous": True})["question"]
    assert asker.state()["questions"] == [question]
    assert host.state()["questions"] == [question]
    assert question["author_id"] is None


def test_anonymous_questions_are_refused_at_a_shareholder_meeting(room, rows):
    key = room.meeting({room.attendees[0]: (100, "H-1")})
    holder = room.join(room.attendees[0], key)
    assert holder.state()["room"]["anonymous_questions"] is False

    reply = holder.emit("question.ask", {"text": "Who am I?", "anonymous": True})
    assert reply == {"ok": False, "error": "this room does not allow anonymous questions"}
    assert rows(Question) == 0
    named = holder.emit("question.ask", {"text": "On the record"})["question"]
    assert named["author_id"] == room.attendees[0].id


def test_moderating_a_question_that_does_not_exist(room):
    teacher = room.join(room.instructor)
    for event in ("question.approve", "question.answer", "question.pin", "question.dismiss"):
        reply = teacher.emit(event, {"id": 999_999})
        assert reply == {"ok": False, "error": "no such question in this room"}, event
