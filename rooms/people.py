"""Names of users, fetched in one query for a batch of ids."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db


def names(user_ids: Iterable[int]) -> dict[int, str]:
    """user id -> display name for the given ids."""
    ids = set(user_ids)
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.name).where(User.id.in_(ids)))
    return {uid: name for uid, name in rows}
