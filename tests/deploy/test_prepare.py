"""Several web workers starting at once on one empty PostgreSQL database: ``prepare`` lets one
migrate and seed the demo data while the others wait, then finds it done (an advisory lock).
Without the lock the second would create the same tables or demo rows at the same time."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from accounts.models import User
from lectern import create_app
from lectern.extensions import db
from lectern.schema import prepare
from tests import conftest

pytestmark = [pytest.mark.postgres]
WORKERS = 3


def test_workers_starting_together_prepare_once(fresh_postgres: str, tmp_path: Path) -> None:
    apps = [
        create_app(conftest.test_config(fresh_postgres, tmp_path / f"w{n}", DEMO_DATA=True))
        for n in range(WORKERS)
    ]
    seeded: list[bool] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(WORKERS)

    def start(app: object) -> None:
        gate.wait()
        try:
            seeded.append(prepare(app))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(app,), daemon=True) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker is still preparing after 60 s"
    assert not errors, errors
    assert sorted(seeded) == [False] * (WORKERS - 1) + [True]
    with apps[0].app_context():
        emails = db.session.scalars(select(User.email)).all()
        assert len(emails) == len(set(emails)) > 0
        assert db.session.scalar(select(func.count()).select_from(User)) == len(emails)
        db.session.remove()
    for app in apps:
        with app.app_context():
            db.engine.dispose()
