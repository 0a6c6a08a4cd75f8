"""Self sign-up: off by default; allowed domains; a confirmation link that creates the account."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db

ON = {"SIGNUP_ENABLED": True, "SIGNUP_DOMAINS": ["school.example"]}
PASSWORD = {"password": "my own long password", "confirm": "my own long password"}


def test_off_by_default(client, app):
    assert app.config["SIGNUP_ENABLED"] is False
    assert client.get("/signup").status_code == 404
    assert b"/signup" not in client.get("/login").data


@pytest.mark.parametrize("app_config", [ON], indirect=True)
def test_sign_up_confirm_and_sign_in(client, outbox, rows):
    response = client.post("/signup", data={"email": "Kim@School.example", "name": "Kim"})
    assert response.status_code == 200
    assert rows(User) == 0  # nothing until the address is confirmed
    link = outbox.link("kim@school.example")
    assert client.get(link).status_code == 200
    assert client.post(link, data=PASSWORD).status_code == 302
    kim = db.session.scalar(select(User))
    assert (kim.email, kim.name, kim.role) == ("kim@school.example", "Kim", "student")
    assert client.get("/").status_code == 200
    client.post("/logout")
    assert client.post(link, data=PASSWORD).status_code == 410


@pytest.mark.parametrize("app_config", [ON], indirect=True)
def test_other_domains_are_refused(client, outbox, rows):
    response = client.post("/signup", data={"email": "kim@elsewhere.example", "name": "Kim"})
    assert response.status_code == 400
    assert b"school.example" in response.data
    assert outbox.to("kim@elsewhere.example", wait=0.2) == []


@pytest.mark.parametrize("app_config", [ON], indirect=True)
def test_existing_account_gets_the_same_answer_and_no_link(client, users, outbox):
    users.make("student", email="old@school.example")
    known = client.post("/signup", data={"email": "old@school.example", "name": "Old"})
    fresh = client.post("/signup", data={"email": "new@school.example", "name": "Old"})
    assert known.status_code == fresh.status_code == 200
    assert known.data.replace(b"old@", b"X@") == fresh.data.replace(b"new@", b"X@")
    assert outbox.to("new@school.example", wait=1)
    assert outbox.to("old@school.example") == []
