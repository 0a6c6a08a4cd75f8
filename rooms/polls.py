"""Polls: open, vote once, close; results live for hosts and revealed to all on request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import log
from rooms.coalesce import Coalescer
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import POLL_OPTION_MAX, POLL_QUESTION_MAX, Poll, PollVote
from rooms.policy import Perm
from rooms.validate import Bool, Int, IntList, Text, TextList

# Results reach the room coalesced, not once per ballot.
results_coalescer = Coalescer()


def results(poll: Poll) -> dict[str, Any]:
    """Votes per option and the number of ballots."""
    counts = [0] * len(poll.options)
    ballots = db.session.scalars(select(PollVote.choices).where(PollVote.poll_id == poll.id)).all()
    for choices in ballots:
        for i in choices:
            counts[i] += 1
    return {"id": poll.id, "counts": counts, "ballots": len(ballots)}


def view(poll: Poll) -> dict[str, Any]:
    return {
        "id": poll.id,
        "question": poll.question,
        "options": poll.options,
        "multiple": poll.multiple,
        "state": poll.state,
        "revealed": poll.revealed,
    }


def visible(actor: Actor) -> list[dict[str, Any]]:
    """The room's polls, with results where ``actor`` may see them, and their own ballot."""
    polls = db.session.scalars(select(Poll).where(Poll.room_id == actor.room_id).order_by(Poll.id))
    mine = dict(
        db.session.execute(
            select(PollVote.poll_id, PollVote.choices)
            .join(Poll)
            .where(Poll.room_id == actor.room_id, PollVote.user_id == actor.user_id)
        ).all()
    )
    # Unrevealed results go live to the moderators' room (results_update), so they see them here.
    sees_results = actor.may(Perm.MANAGE_POLLS) or actor.may(Perm.MODERATE)
    shown = []
    for poll in polls:
        item = view(poll) | {"my_choices": mine.get(poll.id)}
        if poll.revealed or sees_results:
            item["results"] = results(poll)
        shown.append(item)
    return shown


def find(actor: Actor, poll_id: int) -> Poll:
    poll = db.session.get(Poll, poll_id)
    if poll is None or poll.room_id != actor.room_id:
        raise Refused("no such poll in this room")
    return poll


def open_poll(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.MANAGE_POLLS)
    if len(set(data["options"])) != len(data["options"]):
        raise Refused("options must differ")
    poll = Poll(
        room_id=actor.room_id,
        question=data["question"],
        options=data["options"],
        multiple=data["multiple"],
        created_by=actor.user_id,
    )
    db.session.add(poll)
    db.session.flush()
    log.record(
        actor.room_id,
        actor.user_id,
        "poll.open",
        id=poll.id,
        question=poll.question,
        options=poll.options,
        multiple=poll.multiple,
    )
    db.session.commit()
    out.to_all(actor.room_id, "poll.update", view(poll))
    return {"poll": view(poll)}


def results_update(room_id: int, poll_id: int) -> Any:
    def build(out: Outbox) -> None:
        poll = db.session.get(Poll, poll_id)
        if poll is not None:
            target = out.to_all if poll.revealed else out.to_mods
            target(room_id, "poll.results", results(poll))

    return build


def vote(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.VOTE)
    poll = find(actor, data["id"])
    choices = data["choices"]
    if poll.state != "open":
        raise Refused("this poll is closed")
    if not poll.multiple and len(choices) != 1:
        raise Refused("choose exactly one option")
    if any(i >= len(poll.options) for i in choices):
        raise Refused("no such option")
    if db.session.get(PollVote, (poll.id, actor.user_id)) is not None:
        raise Refused("you have already voted in this poll")
    db.session.add(PollVote(poll_id=poll.id, user_id=actor.user_id, choices=sorted(choices)))
    log.record(actor.room_id, actor.user_id, "poll.vote", id=poll.id, choices=sorted(choices))
    db.session.commit()
    results_coalescer.mark(("poll", actor.room_id, poll.id), results_update(actor.room_id, poll.id))
    return {"id": poll.id, "choices": sorted(choices)}


def close(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.MANAGE_POLLS)
    poll = find(actor, data["id"])
    if poll.state == "closed":
        raise Refused("this poll is already closed")
    poll.state, poll.closed_at = "closed", utcnow()
    log.record(actor.room_id, actor.user_id, "poll.close", id=poll.id, results=results(poll))
    db.session.commit()
    out.to_all(actor.room_id, "poll.update", view(poll))
    return {"results": results(poll)}


def reveal(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.MANAGE_POLLS)
    poll = find(actor, data["id"])
    poll.revealed = data["revealed"]
    log.record(actor.room_id, actor.user_id, "poll.reveal", id=poll.id, revealed=poll.revealed)
    db.session.commit()
    out.to_all(actor.room_id, "poll.update", view(poll))
    if poll.revealed:
        out.to_all(actor.room_id, "poll.results", results(poll))
    return {}


ID = {"id": Int()}

EVENTS = [
    Event(
        "poll.open",
        {
            "question": Text(max=POLL_QUESTION_MAX),
            "options": TextList(Text(max=POLL_OPTION_MAX), min=2, max=10),
            "multiple": Bool(),
        },
        open_poll,
    ),
    Event("poll.vote", {**ID, "choices": IntList(max=10)}, vote),
    Event("poll.close", ID, close),
    Event("poll.reveal", {**ID, "revealed": Bool(default=True)}, reveal),
]
