"""The stage: a presenter promotes a participant to panelist, or demotes them to attendee.

The room's kind keeps the role (``RoomKind.set_stage_role``: a broadcast's registration). The
runtime gives or takes the right to publish at once, then closes the user's connections to the
room (``rooms.access.changed``): an actor's permissions are fixed for its connection, so the
client reconnects and is resolved afresh with its new role.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lectern.extensions import db
from rooms import access, log
from rooms.access import Lost
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import Grant
from rooms.policy import Perm
from rooms.registry import StageHook, kind_named
from rooms.validate import Int

# event -> the role it gives
ROLES = {"promote": "panelist", "demote": "attendee"}


def stage_hook(actor: Actor) -> StageHook:
    """The hook that keeps roles for the actor's kind of room; refused where there is none."""
    kind = kind_named(actor.kind)
    if kind is None or kind.set_stage_role is None:
        raise Refused("this room has no stage")
    return kind.set_stage_role


def grant(actor: Actor, user_id: int) -> None:
    """Let ``user_id`` publish now, before they reconnect with a role that publishes."""
    existing = db.session.scalar(
        select(Grant).where(Grant.room_id == actor.room_id, Grant.user_id == user_id)
    )
    if existing is not None:  # called on: the grant stays when their hand is lowered
        existing.reason = "promoted"
        return
    db.session.add(
        Grant(room_id=actor.room_id, user_id=user_id, reason="promoted", granted_by=actor.user_id)
    )


def change(actor: Actor, data: dict[str, Any], out: Outbox, action: str) -> dict[str, Any]:
    """Move ``data["user_id"]`` on to the stage (promote) or off it (demote)."""
    actor.require(Perm.MANAGE_STAGE)
    set_role = stage_hook(actor)
    user_id, role = data["user_id"], ROLES[action]
    refusal = set_role(actor.ref_id, user_id, role)
    if refusal is not None:
        raise Refused(refusal)
    if action == "promote":
        grant(actor, user_id)
    log.record(actor.room_id, actor.user_id, f"stage.{action}", user_id=user_id)
    db.session.commit()
    can_publish = action == "promote" or actor.policy.allows(role, Perm.PUBLISH)
    out.to_user(actor.room_id, user_id, "stage.role", {"role": role, "can_publish": can_publish})
    out.to_mods(actor.room_id, "presence.role", {"user_id": user_id, "role": role})
    # Off the stage: every grant (called on too) and stream ends. Either way they reconnect.
    lost = Lost.NOTHING if action == "promote" else Lost.PUBLISHING
    access.changed(actor.room_id, user_id, out, lost, by=actor.user_id)
    return {"user_id": user_id, "role": role}


def promote(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    return change(actor, data, out, "promote")


def demote(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    return change(actor, data, out, "demote")


TARGET = {"user_id": Int()}

EVENTS = [
    Event("stage.promote", TARGET, promote),
    Event("stage.demote", TARGET, demote),
]
