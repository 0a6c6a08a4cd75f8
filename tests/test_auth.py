"""Signing in and out: redirects, wrong passwords, rate limiting, CSRF, cookies and headers."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from accounts import throttle
from accounts.models import LoginFailure, User
from classroom.models import Course
from lectern.extensions import db
from lectern.timeutil import utcnow

WRONG = "Wrong e-mail or password."


def csrf_token(html: bytes) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "page has no csrf_token field"
    return match.group(1).decode()


def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"Sign in" in response.data
    assert b'name="password"' in response.data


def test_login_redirects_to_dashboard(client, auth, users):
    user = users.make("student")
    response = auth.login(user)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert user.name.encode() in page.data


def test_login_ignores_email_case(client, auth, users):
    user = users.make("student", email="mixed@example.com")
    assert auth.login("Mixed@Example.COM").status_code == 302
    assert user.name.encode() in client.get("/").data


def test_signed_in_user_is_sent_from_login_to_dashboard(client, auth, users):
    auth.login(users.make("student"))
    response = client.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("known", [True, False], ids=["wrong-password", "unknown-email"])
def test_failed_login_is_401_with_the_same_message(client, auth, users, known):
    user = users.make("student")
    response = auth.login(user, "not the password") if known else auth.login("nobody@example.com")
    assert response.status_code == 401
    assert WRONG.encode() in response.data
    assert client.get("/").status_code == 302  # still signed out


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "", "password": "x"}, b"email"),
        ({"email": "not-an-address", "password": "x"}, b"email"),
        ({"email": "a@example.com", "password": ""}, b"password"),
    ],
)
def test_incomplete_login_form_is_400(client, rows, data, field):
    response = client.post("/login", data=data)
    assert response.status_code == 400
    assert b'aria-invalid="true"' in response.data
    assert rows(LoginFailure) == 0  # a malformed form is not a guess


def test_password_is_stored_hashed(app, users):
    user = users.make("student")
    user.set_password("plain-text-secret")
    db.session.commit()
    stored = db.session.scalar(
        text("SELECT password_hash FROM users WHERE id = :id"), {"id": user.id}
    )
    assert "plain-text-secret" not in stored
    assert stored.startswith(("scrypt:", "pbkdf2:"))  # werkzeug's salted hash formats
    assert user.check_password("plain-text-secret")
    assert not user.check_password("plain-text-secreT")


def test_same_password_hashes_differently():
    a, b = User(), User()
    a.set_password("same password")
    b.set_password("same password")
    assert a.password_hash != b.password_hash  # salted
    assert a.check_password("same password") and b.check_password("same password")


def test_account_without_password_cannot_sign_in(auth, users):
    user = users.make("student")
    user.password_hash = None
    db.session.commit()
    assert auth.login(user, "").status_code == 400
    assert auth.login(user, "anything").status_code == 401


@pytest.mark.parametrize(
    "app_config", [{}, {"LOGIN_MAX_FAILURES": 3}], indirect=True, ids=["default", "three"]
)
def test_rate_limit_locks_after_max_failures(app, app_config, client, auth, users):
    user = users.make("student")
    limit = app.config["LOGIN_MAX_FAILURES"]
    assert limit == app_config.get("LOGIN_MAX_FAILURES", 5)
    for _ in range(limit):
        assert auth.login(user, "guess").status_code == 401
    response = auth.login(user)  # the right password, too late
    assert response.status_code == 429
    message = re.search(rb"Try again in (\d+) seconds", response.data)
    assert message, response.data
    assert 1 <= int(message.group(1)) <= app.config["LOGIN_LOCK_SECONDS"] + 1
    assert client.get("/").status_code == 302  # not signed in


def test_rate_limit_default_is_five(app, auth, users):
    user = users.make("student")
    assert app.config["LOGIN_MAX_FAILURES"] == 5
    for _ in range(4):
        auth.login(user, "guess")
    assert auth.login(user).status_code == 302  # four failures do not lock


def test_rate_limit_counts_unknown_addresses_too(auth, users):
    for _ in range(5):
        assert auth.login("ghost@example.com", "guess").status_code == 401
    assert auth.login("ghost@example.com", "guess").status_code == 429


def test_lock_is_per_account(auth, users):
    locked, other = users.make("student"), users.make("student")
    for _ in range(5):
        auth.login(locked, "guess")
    assert auth.login(locked).status_code == 429
    assert auth.login(other).status_code == 302


def test_successful_login_clears_failures(app, auth, users):
    user = users.make("student")
    for _ in range(4):
        auth.login(user, "guess")
    assert throttle.failure_count(user.email) == 4
    assert auth.login(user).status_code == 302
    assert throttle.failure_count(user.email) == 0
    auth.logout()
    for _ in range(4):
        assert auth.login(user, "guess").status_code == 401
    assert auth.login(user).status_code == 302  # 8 failures in all, never 5 in a row


def test_failures_outside_the_window_do_not_count(app, users):
    email = "old@example.com"
    old = utcnow() - timedelta(seconds=app.config["LOGIN_WINDOW_SECONDS"] + 5)
    db.session.add_all(LoginFailure(email=email, remote_addr="10.0.0.1", at=old) for _ in range(9))
    db.session.commit()
    assert throttle.seconds_locked(email, "10.0.0.1") == 0
    db.session.add_all(LoginFailure(email=email, remote_addr="10.0.0.1") for _ in range(5))
    db.session.commit()
    assert throttle.seconds_locked(email, "10.0.0.1") > 0


def test_one_address_guessing_many_accounts_is_slowed(app):
    addr = "10.0.0.2"
    for n in range(app.config["LOGIN_ADDRESS_FAILURES"] - 1):
        throttle.record_failure(f"victim{n}@example.com", addr)
    assert throttle.seconds_locked("fresh@example.com", addr) == 0
    throttle.record_failure("one-more@example.com", addr)
    assert throttle.seconds_locked("fresh@example.com", addr) > 0
    assert throttle.seconds_locked("fresh@example.com", "10.0.0.3") == 0


# --- lockout that slows a guesser without locking the owner out ---------------------------


def login_from(client, addr, email, password):
    """Sign in through the form as if from the client address ``addr`` (in an app context of
    its own: Flask-Login caches the user in ``g``, and these tests use several browsers)."""
    data = {"email": email, "password": password}
    with client.application.app_context():
        return client.post("/login", data=data, environ_base={"REMOTE_ADDR": addr})


def add_failures(email, addr, count, seconds_ago=0):
    """``count`` failures of ``email`` from ``addr``, the last ``seconds_ago`` seconds ago."""
    at = utcnow() - timedelta(seconds=seconds_ago)
    db.session.add_all(LoginFailure(email=email, remote_addr=addr, at=at) for _ in range(count))
    db.session.commit()


def test_guesser_does_not_lock_the_owner_out(app, users):
    owner = users.make("student")
    attacker, home = app.test_client(), app.test_client()
    statuses = [
        login_from(attacker, "203.0.113.9", owner.email, f"guess{n}").status_code for n in range(20)
    ]
    assert statuses[:5] == [401] * 5  # the free failures
    assert set(statuses[5:]) == {429}  # then the attacker's address waits
    refused = login_from(attacker, "203.0.113.9", owner.email, users.password)
    assert refused.status_code == 429  # even with the right password: no oracle while waiting
    assert int(refused.headers["Retry-After"]) >= 1
    assert throttle.failure_count(owner.email) == 5  # refused tries are not counted
    welcome = login_from(home, "198.51.100.7", owner.email, users.password)
    assert welcome.status_code == 302
    with app.app_context():
        assert home.get("/").status_code == 200
    # The owner's success does not forgive the attacker's address.
    assert login_from(attacker, "203.0.113.9", owner.email, "guess").status_code == 429


def test_backoff_doubles_with_each_failure(app, users):
    email, addr = "target@example.com", "203.0.113.10"
    base, free = app.config["LOGIN_BACKOFF_SECONDS"], app.config["LOGIN_MAX_FAILURES"]
    waits = []
    for extra in range(6):
        db.session.execute(LoginFailure.__table__.delete())
        add_failures(email, addr, free + extra)
        waits.append(throttle.seconds_locked(email, addr))
    # 2, 4, 8, 16, 32, 64 seconds, counted from the last failure: a second less when a slow
    # machine takes a second between writing the failures and asking
    expected = [base * 2**n for n in range(6)]
    assert all(want - 1 <= got <= want for got, want in zip(waits, expected, strict=True)), waits


def test_backoff_is_capped(app):
    email, addr = "target@example.com", "203.0.113.11"
    add_failures(email, addr, app.config["LOGIN_MAX_FAILURES"] + 40)
    assert throttle.seconds_locked(email, addr) == app.config["LOGIN_LOCK_SECONDS"]


def test_backoff_ends_after_its_wait(app):
    email, addr = "target@example.com", "203.0.113.12"
    free, base = app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_BACKOFF_SECONDS"]
    add_failures(email, addr, free + 1, seconds_ago=base * 2 + 1)
    assert throttle.seconds_locked(email, addr) == 0  # may try once more


def guess_from_many_addresses(email, count):
    for n in range(count):
        throttle.record_failure(email, f"192.0.2.{n + 1}")


def test_distributed_guessing_spaces_tries_on_the_account(app, users):
    owner = users.make("student")
    spread = app.config["LOGIN_ACCOUNT_ADDRESSES"]
    guess_from_many_addresses(owner.email, spread - 1)
    assert throttle.seconds_locked(owner.email, "198.51.100.20") == 0  # a few addresses: no wait
    guess_from_many_addresses(owner.email, spread)
    wait = throttle.seconds_locked(owner.email, "198.51.100.20")
    assert 1 <= wait <= app.config["LOGIN_ACCOUNT_SPACING"]
    assert throttle.seconds_locked("other@example.com", "198.51.100.20") == 0


def test_browser_that_signed_in_before_skips_the_account_wait(app, users):
    owner = users.make("student")
    home = app.test_client()
    assert login_from(home, "198.51.100.30", owner.email, users.password).status_code == 302
    with app.app_context():
        home.post("/logout")
    guess_from_many_addresses(owner.email, app.config["LOGIN_ACCOUNT_ADDRESSES"])
    stranger = app.test_client()
    assert login_from(stranger, "198.51.100.31", owner.email, users.password).status_code == 429
    # The owner's own browser, even from a new address (a phone moving between networks).
    assert login_from(home, "198.51.100.32", owner.email, users.password).status_code == 302


def test_known_browser_cookie_cannot_be_made_up(app, users):
    owner = users.make("student")
    guess_from_many_addresses(owner.email, app.config["LOGIN_ACCOUNT_ADDRESSES"])
    forger = app.test_client()
    forger.set_cookie("lectern_known", "0123456789abcdef01234567")
    assert login_from(forger, "198.51.100.33", owner.email, users.password).status_code == 429


def test_logout_needs_post(client, auth, users):
    auth.login(users.make("student"))
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200  # still signed in
    response = auth.logout()
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def login_with_next(client, users, target):
    """Sign a new user in through ``/login?next=target``; returns the response."""
    data = {"email": users.make("student").email, "password": users.password}
    return client.post("/login", query_string={"next": target}, data=data)


@pytest.mark.parametrize("target", ["/courses/", "/broadcasts/?x=1", "/courses/1/lessons/2"])
def test_next_follows_local_paths(client, users, target):
    response = login_with_next(client, users, target)
    assert response.status_code == 302
    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "///evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "",
    ],  # with a tab or line break it is refused: see test_hardening_http
)
def test_next_never_leaves_the_site(client, users, target):
    response = login_with_next(client, users, target)
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert location.startswith("/") and not location.startswith("//"), location
    assert not parts.scheme and not parts.netloc and "\\" not in location
    assert client.get(location).status_code in {200, 404}  # somewhere on this site


def test_login_required_page_sends_back_after_login(client, auth, users):
    response = client.get("/courses/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    user = users.make("student")
    followed = client.post(
        response.headers["Location"], data={"email": user.email, "password": users.password}
    )
    assert followed.headers["Location"] == "/courses/"


# --- CSRF ------------------------------------------------------------------------------------

csrf_on = pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}], indirect=True)


@csrf_on
def test_login_without_csrf_token_is_400(client, users, rows):
    user = users.make("student")
    response = client.post("/login", data={"email": user.email, "password": users.password})
    assert response.status_code == 400
    assert b"Reload the page" in response.data
    assert rows(LoginFailure) == 0
    assert client.get("/").status_code == 302  # not signed in


@csrf_on
def test_login_with_csrf_token_works(client, users):
    user = users.make("student")
    token = csrf_token(client.get("/login").data)
    data = {"email": user.email, "password": users.password, "csrf_token": token}
    assert client.post("/login", data=data).status_code == 302
    assert client.get("/").status_code == 200


@csrf_on
def test_wrong_csrf_token_is_400(client, users):
    user = users.make("student")
    client.get("/login")
    data = {"email": user.email, "password": users.password, "csrf_token": "forged"}
    assert client.post("/login", data=data).status_code == 400


@csrf_on
@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/courses/new", {"title": "Smuggled"}),
        ("/courses/{course}/enroll", {"emails": "{student}"}),
        (
            "/courses/{course}/lessons",
            {"title": "Smuggled", "starts_at": "2030-01-01T10:00", "duration_minutes": "60"},
        ),
        ("/logout", {}),
    ],
)
def test_post_without_csrf_token_writes_nothing(client, users, courses, rows, path, data):
    instructor, student = users.make("instructor"), users.make("student")
    course = courses.make(instructor, title="Kept")
    token = csrf_token(client.get("/login").data)
    login = {"email": instructor.email, "password": users.password, "csrf_token": token}
    assert client.post("/login", data=login).status_code == 302
    fill = {"course": course.id, "student": student.email}
    response = client.post(path.format(**fill), data={k: v.format(**fill) for k, v in data.items()})
    assert response.status_code == 400
    assert rows(Course) == 1
    assert course.enrollments == [] and course.lessons == []
    assert client.get("/").status_code == 200  # the logout did not happen either


# --- cookies and headers ---------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(auth, users):
    response = auth.login(users.make("student"))
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, response.headers
    assert "HttpOnly" in cookies[0]
    assert "SameSite=Lax" in cookies[0]


@pytest.mark.parametrize("path", ["/login", "/does-not-exist"])
def test_security_headers(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_error_page_shows_no_stack_trace(client):
    response = client.get("/courses/not-a-number")
    assert response.status_code == 404
    assert b"Traceback" not in response.data
    assert b"There is nothing here" in response.data


def test_user_loader_ignores_garbage_ids(app):
    from accounts.routes import load_user

    assert load_user("abc") is None
    assert load_user("999999") is None
    user = User(email="u@example.com", name="U", role="student")
    db.session.add(user)
    db.session.commit()
    assert load_user(str(user.id)) == user
