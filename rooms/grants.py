"""Publish permission: a role that publishes, or a grant from a presenter (called on, promoted).

This is the question the media side asks of the live-room runtime.
"""

from __future__ import annotations

from sqlalchemy import select

from lectern.extensions import db
from rooms.context import Actor
from rooms.models import Grant
from rooms.policy import Perm


def may_publish(actor: Actor, lock: bool = False) -> bool:
    """Whether the actor's role publishes, or a presenter granted it (called on, promoted).

    With ``lock`` the grant row is read ``FOR SHARE`` (PostgreSQL; SQLite's writer holds its
    lock already): withdrawing it then waits for the caller's commit, or the caller sees it gone.
    """
    if actor.may(Perm.PUBLISH):
        return True
    query = select(Grant.id).where(Grant.room_id == actor.room_id, Grant.user_id == actor.user_id)
    if lock:
        query = query.with_for_update(read=True)
    return db.session.scalar(query) is not None
