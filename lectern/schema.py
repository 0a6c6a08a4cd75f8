"""Bringing the database up to date on start, and seeding demo data on the first one."""

from __future__ import annotations

from flask import Flask
from flask_migrate import upgrade

from lectern import demo
from lectern.extensions import db


def prepare(app: Flask) -> bool:
    """Create or upgrade the schema; seed demo data on a first start. True if it seeded."""
    with app.app_context():
        upgrade()
        if app.config["DEMO_DATA"] and demo.needs_seed():
            demo.seed()
            return True
        db.session.remove()
    return False
