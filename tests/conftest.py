"""Shared fixtures: an app on a migrated database (SQLite, or PostgreSQL via DATABASE_URL),
a test client, users of each role and a helper that signs them in."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine, func, select, text
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from accounts.models import User
from classroom.models import Course, Enrollment, Lesson
from lectern import create_app
from lectern.extensions import db
from lectern.timeutil import utcnow
from webinar.models import Broadcast, Registration

PASSWORD = "correct horse battery"


def in_ci() -> bool:
    """CI must run the PostgreSQL, Redis and browser tests rather than skip them."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """DATABASE_URL when set (PostgreSQL in CI), else a SQLite file for this test run."""
    return os.environ.get("DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'lectern-test.db'}"
    )


def drop_everything(url: str) -> None:
    """Empty the database, including Alembic's version table, so upgrades start from nothing."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def test_config(database_url: str, data_dir: Path, **extra: object) -> dict[str, object]:
    """Settings for a test app: quiet, no demo data, CSRF off unless a test turns it on."""
    config: dict[str, object] = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "DATA_DIR": str(data_dir),
        "DEMO_DATA": False,
        "WTF_CSRF_ENABLED": False,
        "REDIS_URL": None,
    }
    config.update(extra)
    return config


@pytest.fixture(scope="session")
def migrated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database, emptied and upgraded once per run through the real migrations."""
    drop_everything(database_url)
    app = create_app(test_config(database_url, tmp_path_factory.mktemp("migrate")))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


def clear_tables(app: Flask) -> None:
    """Delete every row, children first, leaving the schema in place."""
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def app(migrated: str, tmp_path: Path, app_config: dict[str, object]) -> Iterator[Flask]:
    """A fresh app on the migrated database; tables are emptied afterwards.

    A test can pass extra settings with ``@pytest.mark.parametrize("app_config", [...],
    indirect=True)`` or by overriding the ``app_config`` fixture.
    """
    application = create_app(test_config(migrated, tmp_path / "data", **app_config))
    with application.app_context():
        yield application
        db.session.remove()
    clear_tables(application)
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def app_config(request: pytest.FixtureRequest) -> dict[str, object]:
    """Extra settings for the ``app`` fixture: the indirect parameter, else none."""
    return getattr(request, "param", {})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@functools.cache
def password_hash() -> str:
    """PASSWORD hashed once, cheaply: the app's slow default hash would make every sign-in in
    the suite cost a tenth of a second. Sign-in still runs the real check on this hash, and
    test_auth checks what the app itself stores."""
    return generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


class UserFactory:
    """Creates users with a known password: ``users.make("student")``."""

    password = PASSWORD  # every user's password, for tests that fill in the form themselves

    def __init__(self) -> None:
        self.count = 0

    def make(self, role: str, email: str | None = None, name: str | None = None) -> User:
        self.count += 1
        user = User(
            email=email or f"{role}{self.count}@example.com",
            name=name or f"{role.title()} {self.count}",
            role=role,
        )
        user.password_hash = password_hash()
        db.session.add(user)
        db.session.commit()
        return user


@pytest.fixture
def users(app: Flask) -> UserFactory:
    return UserFactory()


class Auth:
    """Signs users in and out through the real login form."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, user: User | str, password: str = PASSWORD) -> TestResponse:
        email = user if isinstance(user, str) else user.email
        return self.client.post("/login", data={"email": email, "password": password})

    def logout(self) -> TestResponse:
        return self.client.post("/logout")

    def switch(self, user: User) -> None:
        """Sign out whoever is signed in and sign ``user`` in (one client, one identity)."""
        self.logout()
        response = self.login(user)
        assert response.status_code == 302, f"could not sign in {user.email}"


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    return Auth(client)


class CourseFactory:
    """Creates courses and lessons: ``courses.make(owner, students=[s])``."""

    def __init__(self) -> None:
        self.count = 0

    def make(
        self, owner: User, title: str | None = None, students: tuple[User, ...] = ()
    ) -> Course:
        self.count += 1
        course = Course(title=title or f"Course {self.count}", description="", owner_id=owner.id)
        db.session.add(course)
        db.session.flush()
        db.session.add_all(Enrollment(course_id=course.id, user_id=s.id) for s in students)
        db.session.commit()
        return course

    def lesson(
        self,
        course: Course,
        title: str | None = None,
        starts_in: timedelta = timedelta(days=1),
        minutes: int = 60,
    ) -> Lesson:
        """A lesson starting ``starts_in`` from now (negative: it started in the past)."""
        self.count += 1
        lesson = Lesson(
            course_id=course.id,
            title=title or f"Lesson {self.count}",
            starts_at=utcnow() + starts_in,
            duration_minutes=minutes,
        )
        db.session.add(lesson)
        db.session.commit()
        return lesson


@pytest.fixture
def courses(app: Flask) -> CourseFactory:
    return CourseFactory()


class BroadcastFactory:
    """Creates broadcasts and registrations: ``broadcasts.make(host, mode="invite")``."""

    def __init__(self) -> None:
        self.count = 0

    def make(
        self,
        host: User,
        mode: str = "open",
        kind: str = "webinar",
        title: str | None = None,
        starts_in: timedelta = timedelta(days=1),
        minutes: int = 60,
    ) -> Broadcast:
        self.count += 1
        broadcast = Broadcast(
            host_id=host.id,
            title=title or f"Broadcast {self.count}",
            description="",
            kind=kind,
            registration_mode=mode,
            starts_at=utcnow() + starts_in,
            duration_minutes=minutes,
        )
        db.session.add(broadcast)
        db.session.commit()
        return broadcast

    def register(
        self,
        broadcast: Broadcast,
        user: User | None = None,
        email: str | None = None,
        status: str = "approved",
    ) -> Registration:
        """A registration for ``user``, or an unclaimed invitation for ``email``."""
        reg = Registration(
            broadcast_id=broadcast.id,
            user_id=user.id if user else None,
            email=user.email if user else email,
            name=user.name if user else "",
            status=status,
            invited=user is None,
        )
        db.session.add(reg)
        db.session.commit()
        return reg


@pytest.fixture
def broadcasts(app: Flask) -> BroadcastFactory:
    return BroadcastFactory()


@pytest.fixture
def rows(app: Flask) -> Callable[..., int]:
    """Counts rows as the database has them: ``rows(Course)``, ``rows(Lesson, Lesson.id == 1)``."""

    def count(model: type, *where: object) -> int:
        return db.session.scalar(select(func.count()).select_from(model).where(*where))

    return count
