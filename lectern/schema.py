"""Bringing the database up to date on start, seeding demo data on the first one and putting the
demo's sessions back on a current schedule on later ones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text

from lectern import demo
from lectern.extensions import db
from rooms import media, presence, recording

# PostgreSQL advisory lock key held while one web worker prepares the database ("LECTPREP").
PREPARE_LOCK = 0x4C45435450524550


def prepare(app: Flask) -> bool:
    """Create or upgrade the schema; seed demo data on a first start. True if it seeded.

    Several web workers starting at once on one PostgreSQL database take turns (an advisory
    lock): the first migrates and seeds, the others find it done."""
    with app.app_context(), one_at_a_time():
        upgrade()
        if not app.config["REDIS_URL"]:
            # A lone web worker starting up holds no connections: presence starts empty.
            presence.forget_all()
            media.forget_all()
            recording.interrupt_all()
        if app.config["DEMO_DATA"] and demo.needs_seed():
            demo.seed()
            return True
        if app.config["DEMO_DATA"]:
            demo.refresh()  # the demo's live lesson and all-hands are live again
        db.session.remove()
    return False


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """Hold ``PREPARE_LOCK`` on its own connection while the block runs (PostgreSQL; SQLite is
    one file that one process at a time writes anyway). The lock is the connection's, so a
    worker that dies while preparing releases it."""
    if db.engine.dialect.name != "postgresql":
        yield
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PREPARE_LOCK})
        conn.commit()
        try:
            yield
        finally:
            db.session.remove()
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PREPARE_LOCK})
            conn.commit()
