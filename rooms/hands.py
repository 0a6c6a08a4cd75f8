"""Hand raising: one queue per room in server-assigned order; calling on grants the mic."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import log, media
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import Grant, Hand
from rooms.people import names
from rooms.policy import Perm, RoomPolicy
from rooms.validate import Int

ACTIVE = ("raised", "called")


def queue(room_id: int) -> list[dict[str, Any]]:
    """Raised and called hands in raise order (hand id order), with names."""
    hands = list(
        db.session.scalars(
            select(Hand).where(Hand.room_id == room_id, Hand.state.in_(ACTIVE)).order_by(Hand.id)
        )
    )
    who = names(h.user_id for h in hands)
    return [
        {
            "hand_id": h.id,
            "user_id": h.user_id,
            "name": who.get(h.user_id, "?"),
            "state": h.state,
            "raised_at": h.raised_at.isoformat() + "Z",
        }
        for h in hands
    ]


def active_hand(room_id: int, user_id: int) -> Hand | None:
    return db.session.scalar(
        select(Hand).where(Hand.room_id == room_id, Hand.user_id == user_id, Hand.state.in_(ACTIVE))
    )


def publish_queue(actor: Actor, out: Outbox) -> list[dict[str, Any]]:
    """Send the queue to moderators, or to everyone where the policy shows it."""
    return send_queue(actor.room_id, actor.policy, out)


def send_queue(room_id: int, policy: RoomPolicy, out: Outbox) -> list[dict[str, Any]]:
    """The room's queue to its moderators, or to everyone where ``policy`` shows it (moderators
    are in the room too: sending to both would reach them twice)."""
    current = queue(room_id)
    if policy.hand_queue_public:
        out.to_all(room_id, "hand.queue", {"queue": current})
    else:
        out.to_mods(room_id, "hand.queue", {"queue": current})
    return current


def finish(hand: Hand, by: int | None) -> str:
    """End ``hand``: lowered while it was raised, done once it was called on. Its new state."""
    hand.state = "lowered" if hand.state == "raised" else "done"
    hand.ended_at = utcnow()
    hand.ended_by = by
    return hand.state


def position(current: list[dict[str, Any]], user_id: int) -> int | None:
    """1-based place of ``user_id`` in the queue, None if their hand is down."""
    return next((i + 1 for i, h in enumerate(current) if h["user_id"] == user_id), None)


def raise_hand(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.RAISE_HAND)
    if active_hand(actor.room_id, actor.user_id) is None:
        hand = Hand(room_id=actor.room_id, user_id=actor.user_id)
        db.session.add(hand)
        db.session.flush()
        log.record(actor.room_id, actor.user_id, "hand.raise", hand_id=hand.id)
        db.session.commit()
        out.to_mods(
            actor.room_id,
            "hand.raised",
            {"user_id": actor.user_id, "name": actor.name, "hand_id": hand.id},
        )
    current = publish_queue(actor, out)
    return {"position": position(current, actor.user_id)}


def end_hand(actor: Actor, hand: Hand, out: Outbox) -> None:
    """Lower (or finish) ``hand``, revoking a publish grant that calling on gave."""
    state = finish(hand, actor.user_id)
    log.record(actor.room_id, actor.user_id, f"hand.{state}", hand_id=hand.id, user_id=hand.user_id)
    grant = db.session.scalar(
        select(Grant).where(
            Grant.room_id == actor.room_id, Grant.user_id == hand.user_id, Grant.reason == "called"
        )
    )
    if grant is not None:  # the microphone goes back: their streams end too
        db.session.delete(grant)
        # Committed before looking for their streams: a publish in flight re-checks the grant
        # when it records its stream, so one of the two always sees the other.
        db.session.commit()
        media.stop_streams(actor.room_id, out, user_id=hand.user_id)
    out.to_user(actor.room_id, hand.user_id, "hand.state", {"state": state, "can_publish": False})


def lower_hand(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    user_id = data["user_id"] or actor.user_id
    if user_id != actor.user_id:
        actor.require(Perm.MANAGE_HANDS)
    hand = active_hand(actor.room_id, user_id)
    if hand is None:
        raise Refused("that hand is not raised")
    end_hand(actor, hand, out)
    db.session.commit()
    publish_queue(actor, out)
    return {}


def lower_all(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    actor.require(Perm.MANAGE_HANDS)
    hands = db.session.scalars(
        select(Hand).where(Hand.room_id == actor.room_id, Hand.state.in_(ACTIVE))
    ).all()
    for hand in hands:
        end_hand(actor, hand, out)
    db.session.commit()
    publish_queue(actor, out)
    return {"lowered": len(hands)}


def call_on(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Call on ``user_id`` (or the first raised hand): they may publish until done."""
    actor.require(Perm.MANAGE_HANDS)
    query = select(Hand).where(Hand.room_id == actor.room_id, Hand.state == "raised")
    if data["user_id"] is not None:
        query = query.where(Hand.user_id == data["user_id"])
    hand = db.session.scalar(query.order_by(Hand.id).limit(1))
    if hand is None:
        raise Refused("no raised hand to call on")
    hand.state = "called"
    if (
        db.session.scalar(
            select(Grant.id).where(Grant.room_id == actor.room_id, Grant.user_id == hand.user_id)
        )
        is None
    ):
        db.session.add(
            Grant(
                room_id=actor.room_id,
                user_id=hand.user_id,
                reason="called",
                granted_by=actor.user_id,
            )
        )
    log.record(actor.room_id, actor.user_id, "hand.called", hand_id=hand.id, user_id=hand.user_id)
    db.session.commit()
    out.to_user(actor.room_id, hand.user_id, "hand.state", {"state": "called", "can_publish": True})
    publish_queue(actor, out)
    return {"user_id": hand.user_id}


TARGET = {"user_id": Int(required=False)}

EVENTS = [
    Event("hand.raise", {}, raise_hand, "hand"),
    Event("hand.lower", TARGET, lower_hand, "hand"),
    Event("hand.lower_all", {}, lower_all, "hand"),
    Event("hand.call", TARGET, call_on, "hand"),
]
