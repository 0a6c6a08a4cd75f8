"""Forgot password (same answer for every address, rate-limited), the reset link (once, one
hour, dead when the password changes), changing the password, the profile, and the browser's
time zone taken at first sign-in."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from accounts import notify
from accounts.models import AccountToken, User
from lectern.extensions import db
from lectern.timeutil import utcnow

NEW = {"password": "a brand new password", "confirm": "a brand new password"}


def forgot(client, email):
    return client.post("/password/forgot", data={"email": email})


def body_without_email(response, email):
    return response.data.replace(email.encode(), b"EMAIL")


def test_forgot_answers_the_same_for_known_and_unknown_addresses(client, users, outbox):
    user = users.make("student", email="known@example.com")
    known, unknown = forgot(client, user.email), forgot(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert body_without_email(known, user.email) == body_without_email(
        unknown, "nobody@example.com"
    )
    assert outbox.link(user.email).startswith("/password/reset/")
    assert outbox.to("nobody@example.com", wait=0.3) == []


def test_forgot_takes_as_long_for_known_and_unknown_addresses(client, users, outbox, monkeypatch):
    """The e-mail goes out in the background: neither answer waits for the mail server."""
    user = users.make("student")

    def slow_send(mails):
        time.sleep(0.5)
        return outbox.send(mails)

    monkeypatch.setattr(notify, "send", slow_send)
    took = {}
    for email in (user.email, "nobody@example.com"):
        started = time.monotonic()
        assert forgot(client, email).status_code == 200
        took[email] = time.monotonic() - started
    assert max(took.values()) < 0.4, took
    assert outbox.to(user.email, wait=2)  # it did go out, later


def test_forgot_is_rate_limited_per_email_whoever_asks(client, users, outbox):
    user = users.make("student")
    statuses = [forgot(client, user.email).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    ghost = [forgot(client, "ghost@example.com").status_code for _ in range(4)]
    assert ghost == [200, 200, 200, 429]  # the same for an address without an account


def test_forgot_is_rate_limited_per_client_address(client):
    statuses = [forgot(client, f"a{n}@example.com").status_code for n in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429


@pytest.mark.parametrize("email", ["", "not-an-address", "x" * 250 + "@example.com"])
def test_forgot_validates_the_address(client, email, rows):
    assert forgot(client, email).status_code == 400
    assert rows(AccountToken) == 0


@pytest.fixture
def reset_link(client, users, outbox):
    user = users.make("student", email="forgetful@example.com")
    forgot(client, user.email)
    return user, outbox.link(user.email)


def test_reset_link_sets_the_password_once(client, reset_link):
    user, link = reset_link
    assert client.get(link).status_code == 200
    response = client.post(link, data=NEW)
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password(NEW["password"])
    client.post("/logout")
    assert client.post(link, data={**NEW}).status_code == 410


def test_reset_link_expires_after_an_hour(client, reset_link, rows):
    user, link = reset_link
    row = db.session.scalar(select(AccountToken))
    assert row.expires_at - utcnow() <= timedelta(hours=1)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.post(link, data=NEW)
    assert response.status_code == 410 and b"expired" in response.data
    db.session.expire_all()
    assert not db.session.get(User, user.id).check_password(NEW["password"])


def test_reset_link_dies_when_the_password_changes_otherwise(client, reset_link):
    user, link = reset_link
    user.set_password("changed by the admin meanwhile")
    db.session.commit()
    assert client.post(link, data=NEW).status_code == 410


def test_a_newer_reset_link_replaces_the_older(client, reset_link, outbox):
    user, first = reset_link
    forgot(client, user.email)
    deadline = time.monotonic() + 2
    while len(outbox.to(user.email)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    second = outbox.link(user.email)
    assert first != second
    assert client.post(first, data=NEW).status_code == 410
    assert client.post(second, data=NEW).status_code == 302


@pytest.mark.parametrize(
    "data",
    [
        {"password": "short", "confirm": "short"},
        {"password": "a brand new password", "confirm": "a different password"},
        {"password": "p" * 201, "confirm": "p" * 201},
    ],
)
def test_reset_refuses_bad_passwords_and_keeps_the_link(client, reset_link, data):
    _user, link = reset_link
    assert client.post(link, data=data).status_code == 400
    assert client.post(link, data=NEW).status_code == 302


@pytest.mark.parametrize("token", ["nope", "A" * 43, "A" * 101])
def test_wrong_reset_tokens_are_404(client, token):
    assert client.post(f"/password/reset/{token}", data=NEW).status_code == 404


def test_change_password_needs_the_current_one(client, users, auth):
    user = users.make("student")
    auth.login(user)
    wrong = client.post("/account/password", data={"current": "guess", **NEW})
    assert wrong.status_code == 400 and b"not your current password" in wrong.data
    right = client.post("/account/password", data={"current": users.password, **NEW})
    assert right.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password(NEW["password"])


def test_pages_need_a_sign_in(client):
    for path in ("/account", "/account/password"):
        assert client.get(path).headers["Location"].startswith("/login")


def test_profile_saves_name_zone_and_language(client, users, auth):
    user = users.make("student")
    auth.login(user)
    assert client.get("/account").status_code == 200
    data = {"name": "  New   Name ", "timezone": "Asia/Seoul", "locale": "ko"}
    assert client.post("/account", data=data).status_code == 302
    db.session.expire_all()
    saved = db.session.get(User, user.id)
    assert (saved.name, saved.timezone, saved.locale) == ("New Name", "Asia/Seoul", "ko")


@pytest.mark.parametrize(
    "data",
    [
        {"name": "X", "timezone": "Mars/Olympus", "locale": ""},
        {"name": "X", "timezone": "", "locale": "fr"},
        {"name": "", "timezone": "", "locale": ""},
        {"name": "N" * 121, "timezone": "", "locale": ""},
    ],
)
def test_profile_refuses_bad_values(client, users, auth, data):
    user = users.make("student")
    auth.login(user)
    assert client.post("/account", data=data).status_code == 400
    db.session.expire_all()
    assert db.session.get(User, user.id).name == user.name


@pytest.mark.parametrize(
    ("before", "sent", "after"),
    [
        (None, "Europe/Berlin", "Europe/Berlin"),
        (None, "Not/AZone", None),
        (None, "", None),
        ("Asia/Seoul", "Europe/Berlin", "Asia/Seoul"),  # the user's own choice stays
    ],
)
def test_browser_zone_is_kept_at_first_sign_in(client, users, before, sent, after):
    user = users.make("student")
    user.timezone = before
    db.session.commit()
    data = {"email": user.email, "password": users.password, "tz": sent}
    assert client.post("/login", data=data).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).timezone == after


def test_login_page_has_the_zone_field_and_its_script(client):
    page = client.get("/login").data
    assert b'name="tz"' in page and b"js/accounts/zone.js" in page


@pytest.mark.parametrize(
    ("before", "sent", "status", "after"),
    [
        (None, "Europe/Berlin", 204, "Europe/Berlin"),
        (None, "Not/AZone", 422, None),  # the page does not reload for nothing
        ("Asia/Seoul", "Europe/Berlin", 200, "Asia/Seoul"),  # the user's own choice stays
    ],
)
def test_pages_send_the_browser_zone_once(client, users, auth, before, sent, status, after):
    """Someone who came in through a link, not the sign-in form: their pages carry the script
    that sends the zone, until the account has one."""
    user = users.make("student")
    user.timezone = before
    db.session.commit()
    auth.login(user)
    carries_script = b"js/accounts/zone.js" in client.get("/").data
    assert carries_script is (before is None)
    assert client.post("/account/timezone", data={"tz": sent}).status_code == status
    db.session.expire_all()
    assert db.session.get(User, user.id).timezone == after
    if after is not None:
        assert b"js/accounts/zone.js" not in client.get("/").data


def test_the_browser_zone_needs_a_signed_in_user(client):
    assert client.post("/account/timezone", data={"tz": "Europe/Berlin"}).status_code in (302, 401)
