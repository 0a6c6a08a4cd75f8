"""Merging a duplicate question into another: votes move without double counting, the duplicate
leaves everyone's list but the moderators'."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lectern.extensions import db
from rooms.log import timeline
from rooms.models import Question, QuestionVote


def upvoters(question_id: int) -> set[int]:
    db.session.rollback()  # read what is committed
    return set(
        db.session.scalars(
            select(QuestionVote.user_id).where(QuestionVote.question_id == question_id)
        )
    )


@pytest.fixture
def cast(room):
    """Host, panelist and both attendees in the broadcast, inboxes empty."""
    clients = {
        "host": room.join(room.host),
        "panelist": room.join(room.panelist),
        "abe": room.join(room.attendees[0]),
        "bea": room.join(room.attendees[1]),
    }
    room.flush()
    for client in clients.values():
        client.drain()
    return clients


def ask(asker, moderator, text: str, approve: bool = True) -> int:
    """An attendee's question, approved by ``moderator`` unless told otherwise; its id."""
    qid = asker.emit("question.ask", {"text": text})["question"]["id"]
    if approve:
        assert moderator.emit("question.approve", {"id": qid})["ok"]
    return qid


def test_votes_move_once_each_and_the_source_author_counts(room):
    teacher = room.join(room.instructor)
    ann, ben, cid = (room.join(s) for s in room.students)
    target = ann.emit("question.ask", {"text": "When is the exam?"})["question"]["id"]
    source = ben.emit("question.ask", {"text": "Exam date?"})["question"]["id"]
    cid.emit("question.upvote", {"id": target})
    cid.emit("question.upvote", {"id": source})  # Cid voted for both: counted once
    ann.emit("question.upvote", {"id": source})  # the target's author voted for the duplicate

    reply = teacher.emit("question.merge", {"id": source, "into": target})

    assert reply["ok"], reply
    ann_id, ben_id, cid_id = (s.id for s in room.students)
    assert upvoters(target) == {cid_id, ann_id, ben_id}  # Ben wrote the duplicate
    assert reply["question"]["votes"] == 3  # not 1 + 2 + 1
    assert (reply["merged"]["status"], reply["merged"]["merged_into"]) == ("merged", target)
    assert reply["question"]["merged_into"] is None
    assert db.session.get(Question, target).votes == 3
    assert sorted(ben.state()["my_votes"]) == [target]  # the merged one is out of sight
    assert ann.emit("question.upvote", {"id": target})["votes"] == 2  # her vote is a real one


def test_the_target_author_is_not_counted_for_their_own_duplicate(room):
    teacher, ann = room.join(room.instructor), room.join(room.students[0])
    target = ann.emit("question.ask", {"text": "Is it on the exam?"})["question"]["id"]
    source = ann.emit("question.ask", {"text": "Is this on the exam?"})["question"]["id"]
    reply = teacher.emit("question.merge", {"id": source, "into": target})
    assert reply["question"]["votes"] == 0
    assert upvoters(target) == set()


def test_everyone_but_moderators_loses_the_duplicate(room, cast):
    host, panelist, abe, bea = cast.values()
    target = ask(abe, host, "Dividend this year?")
    source = ask(bea, host, "Will there be a dividend?")
    host.emit("question.pin", {"id": source})
    for client in cast.values():
        client.drain()

    reply = host.emit("question.merge", {"id": source, "into": target})

    merged, question = reply["merged"], reply["question"]
    assert (merged["status"], merged["pinned"], merged["merged_into"]) == ("merged", False, target)
    assert question["votes"] == 1  # Bea, the duplicate's author
    for client in (abe, panelist):  # a panelist is on stage to speak, not a moderator
        assert client.drain() == [
            ("question.remove", {"id": source}),
            ("question.update", question),
        ]
    for author_or_mod in (bea, host):  # the duplicate's update, then the rest
        assert author_or_mod.drain() == [
            ("question.update", merged),
            ("question.remove", {"id": source}),
            ("question.update", question),
        ]
    for client in (abe, bea, panelist):
        assert [q["id"] for q in client.state()["questions"]] == [target]
    assert host.state()["questions"] == [question, merged]
    last = timeline(room.room_id(room.broadcast))[-1]
    assert (last["type"], last["actor_id"], last["payload"]) == (
        "question.merge",
        room.host.id,
        {"id": source, "into": target},
    )


def test_a_pending_duplicate_is_merged_quietly(room, cast):
    host, _, abe, bea = cast.values()
    target = ask(abe, host, "Remote work?")
    source = ask(bea, host, "Working from home?", approve=False)
    for client in cast.values():
        client.drain()

    reply = host.emit("question.merge", {"id": source, "into": target})

    assert reply["ok"], reply
    assert [name for name, _ in abe.drain()] == ["question.update"]  # the target, nothing else
    assert bea.got("question.update") == [reply["merged"], reply["question"]]


def statuses(room, host, abe) -> dict[str, int]:
    """One question of each status, asked by Abe, approved or moderated by the host."""
    made = {status: ask(abe, host, f"A question now {status}") for status in ("open", "answered")}
    made["pending"] = ask(abe, host, "Still pending", approve=False)
    made["dismissed"] = ask(abe, host, "Dismissed soon")
    made["merged"] = ask(abe, host, "Merged soon")
    host.emit("question.answer", {"id": made["answered"], "text": "Yes."})
    host.emit("question.dismiss", {"id": made["dismissed"]})
    assert host.emit("question.merge", {"id": made["merged"], "into": made["open"]})["ok"]
    return made


@pytest.mark.parametrize(
    ("source", "target", "error"),
    [
        ("open", "open", "a question cannot be merged into itself"),
        ("answered", "open", "only pending or open questions can be merged"),
        ("dismissed", "open", "only pending or open questions can be merged"),
        ("merged", "answered", "only pending or open questions can be merged"),
        ("open", "pending", "approve the question you merge into first"),
        ("open", "dismissed", "questions can only be merged into open or answered ones"),
        ("open", "merged", "questions can only be merged into open or answered ones"),
        ("open", None, "no such question in this room"),
    ],
)
def test_merges_that_make_no_sense_are_refused(room, cast, source, target, error):
    host, abe = cast["host"], cast["abe"]
    made = statuses(room, host, abe)
    for client in cast.values():
        client.drain()
    before = room.dump()

    reply = host.emit("question.merge", {"id": made[source], "into": made.get(target, 999_999)})

    assert reply == {"ok": False, "error": error}
    assert room.dump() == before
    assert all(client.drain() == [] for client in cast.values())


def test_merging_into_an_answered_question(room, cast):
    host, abe, bea = cast["host"], cast["abe"], cast["bea"]
    target = ask(abe, host, "Office move?")
    host.emit("question.answer", {"id": target})
    source = ask(bea, host, "Are we moving?")
    reply = host.emit("question.merge", {"id": source, "into": target})
    assert (reply["question"]["status"], reply["question"]["votes"]) == ("answered", 1)


def test_a_question_of_another_room_cannot_be_merged(room, cast):
    teacher, student = room.join(room.instructor), room.join(room.students[0])
    elsewhere = student.emit("question.ask", {"text": "Lesson question"})["question"]["id"]
    target = ask(cast["abe"], cast["host"], "Broadcast question")
    for payload in ({"id": elsewhere, "into": target}, {"id": target, "into": elsewhere}):
        reply = cast["host"].emit("question.merge", payload)
        assert reply == {"ok": False, "error": "no such question in this room"}
    assert teacher.state()["questions"][0]["status"] == "open"
