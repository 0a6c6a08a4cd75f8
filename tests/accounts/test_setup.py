"""The first administrator's setup link: works once, and not at all once an admin exists."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from accounts.models import AccountToken, User
from accounts.setup import first_admin_link
from lectern.extensions import db

FORM = {
    "name": "Grace Admin",
    "email": "Grace@School.example",
    "password": "a long admin password",
    "confirm": "a long admin password",
}


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_link_creates_the_admin_signs_in_and_works_once(app, client, rows):
    path = path_of(first_admin_link(app))
    assert client.get(path).status_code == 200
    response = client.post(path, data=FORM)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users"
    admin = db.session.query(User).one()
    assert (admin.email, admin.role, admin.name) == ("grace@school.example", "admin", "Grace Admin")
    assert admin.check_password("a long admin password")
    assert client.get("/admin/users").status_code == 200  # signed in as the admin
    client.post("/logout")
    again = client.post(path, data={**FORM, "email": "mallory@example.com"})
    assert again.status_code == 410
    assert b"already used" in again.data
    assert client.get(path).status_code == 410
    assert rows(User) == 1


def test_no_link_while_an_admin_exists(app, users):
    users.make("admin")
    assert first_admin_link(app) is None


def test_a_new_start_replaces_the_old_link(app, client):
    old = path_of(first_admin_link(app))
    new = path_of(first_admin_link(app))
    assert client.get(old).status_code == 410
    assert client.get(new).status_code == 200


def test_link_stops_working_once_an_admin_exists_otherwise(app, client, users, rows):
    path = path_of(first_admin_link(app))
    users.make("admin", email="cli-made@example.com")  # e.g. by 'flask users create'
    assert client.post(path, data=FORM).status_code == 410
    assert rows(User) == 1


@pytest.mark.parametrize("token", ["x", "A" * 43, "A" * 500])
def test_wrong_tokens_are_404_and_write_nothing(app, client, rows, token):
    first_admin_link(app)
    response = client.post(f"/setup/{token}", data=FORM)
    assert response.status_code == 404
    assert b"not valid" in response.data
    assert rows(User) == 0


def test_bad_form_keeps_the_link_usable(app, client, rows):
    path = path_of(first_admin_link(app))
    short = {**FORM, "password": "short", "confirm": "short"}
    assert client.post(path, data=short).status_code == 400
    assert rows(User) == 0
    assert rows(AccountToken, AccountToken.used_at.is_(None)) == 1
    assert client.post(path, data=FORM).status_code == 302


def test_only_a_hash_of_the_token_is_stored(app):
    token = path_of(first_admin_link(app)).rsplit("/", 1)[1]
    stored = db.session.query(AccountToken).one()
    assert token not in stored.token_hash and len(stored.token_hash) == 64
