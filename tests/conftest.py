"""Shared fixtures: an app on a migrated database (SQLite, or PostgreSQL via DATABASE_URL),
a test client, users of each role and a helper that signs them in; and for tests that go
outside the process: ``live_server`` (real ``python app.py`` processes, see tests/live.py),
``browser`` (headless Chromium) and ``mailbox`` (a real SMTP server on loopback)."""

from __future__ import annotations

import contextlib
import email
import functools
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine, func, select, text
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from accounts.models import User
from classroom.models import Course, Enrollment, Lesson
from lectern import create_app
from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms import namespace
from tests.live import CHROMIUM, LiveServer, free_port, in_ci, launch_chromium
from webinar.models import Broadcast, Registration

PASSWORD = "correct horse battery"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test fails the run: it is a check CI did not make (Chromium, ffmpeg,
    PostgreSQL and Redis are all there). Each skip's reason is in pytest's summary."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if in_ci() and skipped and exitstatus == pytest.ExitCode.OK:
        reporter.ensure_newline()
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every test must run.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def unavailable(reason: str) -> None:
    """A service the test needs is missing: skip on a developer's machine, fail in CI (which
    has every service and must run the test)."""
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on DATABASE_URL's server (else the loopback one),
    named ``prefix`` plus a random tail; its URL, and it is dropped afterwards."""
    server = make_url(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES)
    if not server.drivername.startswith("postgresql"):
        server = make_url(DEFAULT_POSTGRES)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach it: no PostgreSQL
        admin.dispose()
        unavailable(f"PostgreSQL is not reachable at {server.host}:{server.port}: {exc}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
    namespace.stop_flusher(application)
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


# --- outside the process: live servers, a browser, a mail server ---


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Starts ``python app.py`` processes for one test and stops them after it:
    ``live_server({"DEMO_DATA": "false", "MEDIA_WORKERS": "0", **mailbox.env})``.

    Each gets a fresh data folder under the test's ``tmp_path`` (SQLite unless ``env`` sets
    ``DATABASE_URL``); further keyword arguments go to ``LiveServer``. The settings of the
    shell that would point it elsewhere are dropped (``tests.live.FOREIGN_SETTINGS``). It has
    answered ``/login`` when returned; ``.url``, ``.output()``, ``.wait_for_output(regex)``.
    """
    started: list[LiveServer] = []

    def start(env: Mapping[str, str] | None = None, **options: Any) -> LiveServer:
        server = LiveServer(tmp_path / f"server{len(started) + 1}", env, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian; skipped without it on a developer's machine, never in CI.

    Module-scoped: Playwright's sync API keeps an event loop running while it is open, and
    later test modules that call ``asyncio.run`` must not find one.
    """
    if not CHROMIUM.exists():
        if in_ci():
            pytest.fail(f"{CHROMIUM} is required in CI")
        pytest.skip(f"{CHROMIUM} is not installed")
    with launch_chromium() as chromium:
        yield chromium


LINK = re.compile(r"https?://\S+/broadcasts/join/(\S+)")
CODE = re.compile(r"verification code: (\d{8})")


class Mailbox:
    """An aiosmtpd handler: every message the app sends lands in ``messages``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []

    @property
    def env(self) -> dict[str, str]:
        """Settings that send a live server's e-mail here."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port)}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        """Addresses starting with "refused" do not exist on this server."""
        if address.startswith("refused"):
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def text(self, message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content())

    def last_link(self, address: str) -> tuple[str, str | None]:
        """(token, code or None) of the join link in the newest message to ``address``."""
        found = self.to(address)
        assert found, f"no e-mail to {address}"
        text = self.text(found[-1])
        link = LINK.search(text)
        assert link, text
        code = CODE.search(text)
        return link.group(1), code.group(1) if code else None


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on loopback for one test; the ``app`` fixture does not use it unless
    the test's ``app_config`` says so (``{"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port}``), a
    live server when started with ``mailbox.env``."""
    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()
