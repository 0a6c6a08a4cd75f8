"""Starting Lectern as a user would: ``python app.py`` on a fresh data folder, then again."""

from __future__ import annotations

import http.cookiejar
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lectern.config import build_config
from lectern.demo import DEMO_PASSWORD, DEMO_USERS
from tests.live import LiveServer, ServerError


def start(data_dir: Path, log: Path) -> LiveServer:
    """``python app.py`` with the app's own defaults (demo data, media workers), as a user
    starts it; the shell's settings that would point it elsewhere are dropped."""
    try:
        return LiveServer(data_dir, log=log).start()
    except ServerError as error:
        pytest.fail(str(error))


class Browser:
    """A minimal browser: keeps cookies, follows redirects, fills in the CSRF token."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def open(self, url: str, data: dict[str, str] | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(url, body, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def sign_in(self, base: str, email: str, password: str) -> tuple[int, str]:
        status, page = self.open(f"{base}/login")
        assert status == 200
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        assert token, "the sign-in form has no CSRF token"
        form = {"csrf_token": token.group(1), "email": email, "password": password}
        return self.open(f"{base}/login", form)


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    """Servers started by a test; stopped even when it fails."""
    servers: list[LiveServer] = []
    yield servers
    for server in servers:
        server.stop()


def count(db_file: Path, sql: str) -> int:
    with sqlite3.connect(db_file) as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.mark.server
def test_first_start_seeds_demo_data_and_a_restart_keeps_it(tmp_path, servers):
    data_dir = tmp_path / "data"

    first = start(data_dir, tmp_path / "first.log")
    servers.append(first)
    output = first.output()
    assert f"Lectern is running on http://127.0.0.1:{first.port}/" in output
    assert "(demo data created)" in output
    assert f"Demo logins (password: {DEMO_PASSWORD}):" in output
    for email, _name, role in DEMO_USERS:
        assert re.search(rf"{role}\s+{re.escape(email)}", output), f"{email} not listed"

    browser = Browser()
    status, page = browser.sign_in(first.url, "instructor@example.com", "wrong password")
    assert status == 401
    status, page = browser.sign_in(first.url, "instructor@example.com", DEMO_PASSWORD)
    assert status == 200 and "Ada Instructor" in page  # redirected to the dashboard
    assert "Waves and oscillations" in page  # the demo's live lesson
    status, page = browser.open(f"{first.url}/courses/")
    assert status == 200 and "Physics 101" in page
    first.stop()
    assert first.proc is not None and first.proc.returncode is not None

    db_file = data_dir / "lectern.db"
    assert db_file.exists() and (data_dir / "secret_key").exists()
    second = start(data_dir, tmp_path / "second.log")
    servers.append(second)
    output = second.output()
    assert f"Lectern is running on http://127.0.0.1:{second.port}/" in output
    assert "demo data created" not in output
    status, page = browser.open(f"{second.url}/courses/")  # the old session still holds
    assert status == 200 and page.count("Physics 101") == 1
    assert count(db_file, "SELECT count(*) FROM courses WHERE title = 'Physics 101'") == 1
    assert count(db_file, "SELECT count(*) FROM users") == len(DEMO_USERS)


def test_secret_key_is_kept_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = build_config({"DATA_DIR": str(tmp_path)})["SECRET_KEY"]
    again = build_config({"DATA_DIR": str(tmp_path)})["SECRET_KEY"]
    elsewhere = build_config({"DATA_DIR": str(tmp_path / "other")})["SECRET_KEY"]
    assert first == again != elsewhere
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0  # readable by the owner only


def test_database_defaults_to_sqlite_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = build_config({"DATA_DIR": str(tmp_path), "SECRET_KEY": "x"})
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path.resolve() / 'lectern.db'}"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db.example/lectern")
    config = build_config({"DATA_DIR": str(tmp_path), "SECRET_KEY": "x"})
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db.example/lectern"


def test_behind_a_proxy_the_visitor_address_is_used(migrated, tmp_path):
    from lectern import create_app
    from tests.conftest import test_config

    app = create_app(test_config(migrated, tmp_path / "data", PROXY_HOPS=1))
    seen = []

    @app.get("/_whoami")
    def whoami() -> str:
        from flask import request

        seen.append(request.remote_addr)
        return ""

    app.test_client().get("/_whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert seen == ["203.0.113.9"]


@pytest.mark.server
def test_without_demo_data_the_first_start_seeds_nothing(live_server):
    server = live_server({"DEMO_DATA": "false", "MEDIA_WORKERS": "0"})
    assert "demo data created" not in server.output()
    assert "Demo logins" not in server.output()
