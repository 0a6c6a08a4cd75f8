"""Bringing the database up to date on start, seeding demo data on the first one and putting the
demo's sessions back on a current schedule on later ones."""

from __future__ import annotations

from flask import Flask
from flask_migrate import upgrade

from lectern import demo
from lectern.extensions import db
from rooms import media, presence, recording


def prepare(app: Flask) -> bool:
    """Create or upgrade the schema; seed demo data on a first start. True if it seeded."""
    with app.app_context():
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
