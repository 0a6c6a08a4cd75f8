"""Starting Lectern as a user would: ``python app.py`` on a fresh data folder, then again."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lectern import ROOT
from lectern.config import build_config
from lectern.demo import DEMO_PASSWORD, DEMO_USERS

START_TIMEOUT_S = 20.0
# Settings a developer's shell might carry that would point the server somewhere else.
FOREIGN_SETTINGS = ("DATABASE_URL", "DATA_DIR", "DEMO_DATA", "SECRET_KEY", "REDIS_URL", "PORT")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One ``python app.py`` process and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(data_dir: Path, log: Path) -> Server:
    """Run ``python app.py`` on a free port and wait until it answers ``/login``."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS}
    # app.py flushes only its first line; without this the rest sits in the pipe's buffer
    # while the server runs, and SIGTERM discards it.
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    command = [sys.executable, "app.py", "--port", str(port), "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(f"{server.url}/login", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)  # not listening yet
    stop(server)
    pytest.fail(f"app.py did not answer within {START_TIMEOUT_S} s:\n{server.output()}")


def stop(server: Server) -> None:
    """Terminate the server as a service manager would, and reap it."""
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=5)


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
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers started by a test; stopped even when it fails."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        stop(server)


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
    stop(first)
    assert first.proc.returncode is not None

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
