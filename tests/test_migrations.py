"""The Alembic migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import CheckConstraint, create_engine, inspect, text

from lectern import create_app
from lectern.extensions import db, migrate

SERVER_URL = os.environ.get("DATABASE_URL", "")
# Where to try a full downgrade: a fresh SQLite file always, and a scratch schema on the
# PostgreSQL server when the suite runs against one (the shared test schema stays as it is).
SCRATCH = ["sqlite"] + (["postgresql"] if SERVER_URL.startswith("postgresql") else [])


def schema_diff() -> list:
    """What autogenerate would put in a new migration (empty when models and schema agree)."""
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), db.metadata)


def tables() -> set[str]:
    """The tables in the database."""
    return set(inspect(db.engine).get_table_names())


def model_tables() -> set[str]:
    """The tables the models describe, plus Alembic's own (read once the app has loaded them)."""
    return set(db.metadata.tables) | {"alembic_version"}


def current_revision() -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(app: Flask) -> str:
    heads = ScriptDirectory.from_config(migrate.get_config()).get_heads()
    assert len(heads) == 1, f"migrations have {len(heads)} heads: {heads}"
    return heads[0]


def test_models_match_the_migrated_schema(app):
    assert schema_diff() == []


def test_migrated_database_is_at_the_single_head(app):
    assert current_revision() == head_revision(app)
    assert tables() == model_tables()


def test_check_constraints_were_migrated(app):
    """Autogenerate does not compare CHECK constraints, so look for each one by name."""
    inspector = inspect(db.engine)
    checked, missing = set(), {}
    for table in db.metadata.sorted_tables:
        expected = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
        found = {c["name"] for c in inspector.get_check_constraints(table.name)}
        checked |= expected
        if expected - found:
            missing[table.name] = expected - found
    assert {"ck_users_role", "ck_broadcasts_kind", "ck_registrations_status"} <= checked
    assert missing == {}


@pytest.fixture(params=SCRATCH)
def scratch_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """An app on an empty database of its own: a new SQLite file or a new PostgreSQL schema."""
    options: dict[str, object] = {}
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scratch.db'}"
    else:
        url = SERVER_URL
        run_on_server(f"CREATE SCHEMA {schema}")
        options = {"connect_args": {"options": f"-csearch_path={schema}"}}
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": options,
            "DATA_DIR": str(tmp_path / "data"),
            "DEMO_DATA": False,
            "REDIS_URL": None,
        }
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    if request.param != "sqlite":
        run_on_server(f"DROP SCHEMA {schema} CASCADE")


def run_on_server(sql: str) -> None:
    engine = create_engine(SERVER_URL)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(scratch_app):
    assert tables() == set()
    upgrade()
    assert tables() == model_tables()
    assert current_revision() == head_revision(scratch_app)

    downgrade(revision="base")
    assert tables() <= {"alembic_version"}
    assert current_revision() is None

    upgrade()
    assert tables() == model_tables()
    assert schema_diff() == []


def test_upgrade_twice_is_harmless(scratch_app):
    """Every start runs the upgrade; on an up-to-date database it must change nothing."""
    upgrade()
    db.session.execute(
        text("INSERT INTO login_failures (email, remote_addr, at) VALUES ('a@b.c', 'x', :at)"),
        {"at": "2030-01-01 00:00:00"},
    )
    db.session.commit()
    upgrade()
    assert db.session.scalar(text("SELECT count(*) FROM login_failures")) == 1
