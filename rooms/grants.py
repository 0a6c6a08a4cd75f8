"""Publish permission: a role that publishes, or a grant from a presenter (called on, promoted).

This is the question the media side asks of the live-room runtime.
"""

from __future__ import annotations

from sqlalchemy import select

from lectern.extensions import db
from rooms.context import Actor
from rooms.models import Grant
from rooms.policy import Perm


def may_publish(actor: Actor) -> bool:
    """Whether the actor's role publishes, or a presenter granted it (called on, promoted)."""
    if actor.may(Perm.PUBLISH):
        return True
    return (
        db.session.scalar(
            select(Grant.id).where(Grant.room_id == actor.room_id, Grant.user_id == actor.user_id)
        )
        is not None
    )
