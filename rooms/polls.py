"""Polls: open, vote once, close; results live for hosts and revealed to all on request.

A poll may be **weighted** (each ballot counts the voter's weight from the room kind's share
register, ``RoomKind.vote_weight``) and **anonymous** (nothing kept says who chose what). Every
attempt to vote is written to the audit trail (``PollAudit``): ballots cast and attempts
refused, with the reason; results are counted from the cast rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import log
from rooms.coalesce import Coalescer
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import POLL_OPTION_MAX, POLL_QUESTION_MAX, Poll, PollAudit, PollVote
from rooms.people import names
from rooms.policy import Perm
from rooms.registry import kind_named
from rooms.validate import N_, Bool, Int, IntList, Invalid, Text, TextList

# Results reach the room coalesced, not once per ballot.
results_coalescer = Coalescer()


@dataclass(frozen=True)
class Ballot(IntList):
    """A list of option indexes, checked as ``IntList`` but with repeats let through: ``vote``
    refuses those itself, so that the refusal reaches the audit trail."""

    def clean(self, name: str, value: Any) -> Any:
        if not isinstance(value, list) or not self.min <= len(value) <= self.max:
            raise Invalid(
                "%(field)s must be a list of %(min)s to %(max)s numbers",
                field=name,
                min=self.min,
                max=self.max,
            )
        return [Int(min=0, max=1000).clean(f"{name}[{i}]", v) for i, v in enumerate(value)]


def results(poll: Poll) -> dict[str, Any]:
    """Per option the weight of the ballots choosing it (one each unless weighted), and the
    number of ballots; counted from the audit trail's cast rows."""
    counts = [0] * len(poll.options)
    cast = db.session.execute(
        select(PollAudit.choices, PollAudit.weight).where(
            PollAudit.poll_id == poll.id, PollAudit.outcome == "cast"
        )
    ).all()
    total = 0
    for choices, weight in cast:
        weight = 1 if weight is None else weight
        total += weight
        for i in choices or ():
            counts[i] += weight
    found: dict[str, Any] = {"id": poll.id, "counts": counts, "ballots": len(cast)}
    if poll.weighted:
        found["weight_total"] = total
    return found


def view(poll: Poll) -> dict[str, Any]:
    return {
        "id": poll.id,
        "question": poll.question,
        "options": poll.options,
        "multiple": poll.multiple,
        "weighted": poll.weighted,
        "anonymous": poll.anonymous,
        "state": poll.state,
        "revealed": poll.revealed,
    }


def visible(actor: Actor) -> list[dict[str, Any]]:
    """The room's polls, with results where ``actor`` may see them, and their own ballot
    (``my_choices``: None before voting; [] after voting in an anonymous poll, whose ballots
    keep only that the user voted)."""
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


def find(actor: Actor, poll_id: int, lock: bool = False) -> Poll:
    """The room's poll; ``lock`` holds its row (PostgreSQL) so that a ballot and the closing of
    the poll cannot interleave."""
    poll = db.session.get(Poll, poll_id, with_for_update=lock)
    if poll is None or poll.room_id != actor.room_id:
        raise Refused("no such poll in this room")
    return poll


def open_poll(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.MANAGE_POLLS)
    if len(set(data["options"])) != len(data["options"]):
        raise Refused("options must differ")
    kind = kind_named(actor.kind)
    if data["weighted"] and (kind is None or kind.vote_weight is None or not actor.share_register):
        raise Refused("weighted votes need a share register")
    if data["weighted"] and data["anonymous"]:
        raise Refused("a weighted poll cannot be anonymous: each ballot's weight names its holder")
    poll = Poll(
        room_id=actor.room_id,
        question=data["question"],
        options=data["options"],
        multiple=data["multiple"],
        weighted=data["weighted"],
        anonymous=data["anonymous"],
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
        weighted=poll.weighted,
        anonymous=poll.anonymous,
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


def entitlement(actor: Actor, poll: Poll) -> tuple[int, str | None] | None:
    """(weight, holder id) ``actor`` votes with in ``poll``, or None if they may not vote: an
    unweighted poll gives everyone with ``poll.vote`` one vote; a weighted one asks the room
    kind's register."""
    if not actor.may(Perm.VOTE):
        return None
    if not poll.weighted:
        return 1, None
    kind = kind_named(actor.kind)
    found = kind.vote_weight(actor.ref_id, actor.user_id) if kind and kind.vote_weight else None
    return found if found is not None and found[0] > 0 else None


def problem(actor: Actor, poll: Poll, choices: list[int], entitled: bool) -> str | None:
    """Why this ballot may not be cast, or None."""
    if poll.state != "open":
        return N_("this poll is closed")
    if not entitled:
        return N_("not entitled to vote in this poll")
    if db.session.get(PollVote, (poll.id, actor.user_id)) is not None:
        return N_("you have already voted in this poll")
    if not poll.multiple and len(choices) != 1:
        return N_("choose exactly one option")
    if any(i >= len(poll.options) for i in choices):
        return N_("no such option")
    if len(set(choices)) != len(choices):
        return N_("choices has the same choice twice")
    return None


def refuse(
    actor: Actor, poll: Poll, choices: list[int], held: tuple[int, str | None] | None, reason: str
) -> NoReturn:
    """Commit the refused attempt to the audit trail, alone, and refuse the event.

    In an anonymous poll the attempt keeps who tried but not the choices, which would tell
    how that person meant to vote."""
    poll_id, anonymous = poll.id, poll.anonymous
    db.session.rollback()  # nothing else of this event is written
    db.session.add(
        PollAudit(
            poll_id=poll_id,
            user_id=actor.user_id,
            holder_id=held[1] if held else None,
            outcome="refused",
            reason=reason,
            choices=None if anonymous else choices,
            weight=held[0] if held else None,
        )
    )
    db.session.commit()
    raise Refused(reason)


def cast(actor: Actor, poll: Poll, choices: list[int], weight: int, holder: str | None) -> None:
    """Write the ballot: ``PollVote`` says that the user voted (and, unless anonymous, what);
    the audit row carries the choices (and, unless anonymous, who)."""
    anonymous = poll.anonymous
    db.session.add(
        PollVote(
            poll_id=poll.id,
            user_id=actor.user_id,
            choices=[] if anonymous else choices,
            weight=weight,
            # an anonymous ballot's time would pair it with its audit row: the poll's time it is
            created_at=poll.created_at if anonymous else utcnow(),
        )
    )
    db.session.add(
        PollAudit(
            poll_id=poll.id,
            user_id=None if anonymous else actor.user_id,
            holder_id=None if anonymous else holder,
            outcome="cast",
            choices=choices,
            weight=weight,
        )
    )
    if anonymous:
        log.record(actor.room_id, None, "poll.vote", id=poll.id)
    else:
        extra = {"weight": weight} if poll.weighted else {}
        log.record(actor.room_id, actor.user_id, "poll.vote", id=poll.id, choices=choices, **extra)


def vote(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Cast the sender's one ballot; every attempt, cast or refused, is audited."""
    poll = find(actor, data["id"], lock=True)
    choices = sorted(data["choices"])
    held = entitlement(actor, poll)
    reason = problem(actor, poll, choices, held is not None)
    if reason is not None:
        refuse(actor, poll, choices, held, reason)
    assert held is not None
    cast(actor, poll, choices, *held)
    try:
        db.session.commit()
    except IntegrityError:  # a second ballot from another tab, at the same moment
        refuse(actor, poll, choices, held, "you have already voted in this poll")
    results_coalescer.mark(("poll", actor.room_id, poll.id), results_update(actor.room_id, poll.id))
    reply: dict[str, Any] = {"id": poll.id, "choices": choices}
    if poll.weighted:
        reply["weight"] = held[0]
    return reply


def close(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.MANAGE_POLLS)
    poll = find(actor, data["id"], lock=True)
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


def option_text(poll: Poll, index: int) -> str:
    return poll.options[index] if 0 <= index < len(poll.options) else f"(no option {index})"


def audit_rows(poll_id: int) -> list[dict[str, Any]]:
    """The poll's audit trail, oldest first, as flat rows for an export (CSV): every ballot cast
    and every attempt refused.

    Each row: ``at`` (UTC ISO-8601 with ``Z``), ``outcome`` (``cast`` | ``refused``),
    ``user_id`` and ``name`` (None for an anonymous ballot or a deleted account),
    ``holder_id``, ``choices`` (the option texts; None where not kept: an anonymous poll's
    refused attempts), ``weight`` and ``reason`` (why it was refused; None when cast).
    An unknown poll gives [].
    """
    poll = db.session.get(Poll, poll_id)
    if poll is None:
        return []
    rows = list(
        db.session.scalars(
            select(PollAudit).where(PollAudit.poll_id == poll_id).order_by(PollAudit.id)
        )
    )
    who = names(r.user_id for r in rows if r.user_id is not None)
    return [
        {
            "at": r.at.isoformat() + "Z",
            "outcome": r.outcome,
            "user_id": r.user_id,
            "name": who.get(r.user_id) if r.user_id is not None else None,
            "holder_id": r.holder_id,
            "choices": None if r.choices is None else [option_text(poll, i) for i in r.choices],
            "weight": r.weight,
            "reason": r.reason,
        }
        for r in rows
    ]


ID = {"id": Int()}

EVENTS = [
    Event(
        "poll.open",
        {
            "question": Text(max=POLL_QUESTION_MAX),
            "options": TextList(Text(max=POLL_OPTION_MAX), min=2, max=10),
            "multiple": Bool(),
            "weighted": Bool(),
            "anonymous": Bool(),
        },
        open_poll,
    ),
    Event("poll.vote", {**ID, "choices": Ballot(max=10)}, vote),
    Event("poll.close", ID, close),
    Event("poll.reveal", {**ID, "revealed": Bool(default=True)}, reveal),
]
