"""Every account form refuses a POST without the CSRF token, and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from accounts.models import AccountToken, User
from accounts.setup import first_admin_link
from lectern.extensions import db
from tests.test_auth import csrf_token

pytestmark = pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}], indirect=True)

NEW = {"password": "a long password here", "confirm": "a long password here"}


def sign_in(client, user, password):
    token = csrf_token(client.get("/login").data)
    data = {"email": user.email, "password": password, "csrf_token": token}
    assert client.post("/login", data=data).status_code == 302


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/admin/users/new", {"email": "n@example.com", "name": "N", "role": "admin"}),
        ("/admin/users/{victim}/role", {"role": "admin"}),
        ("/admin/users/{victim}/deactivate", {}),
        ("/admin/users/{victim}/reset", {}),
        ("/account", {"name": "Renamed", "timezone": "", "locale": ""}),
        ("/account/password", {"current": "correct horse battery", **NEW}),
        ("/courses/{course}/enroll", {"emails": "z@example.com", "step": "apply"}),
    ],
)
def test_signed_in_forms_need_the_token(app, client, users, courses, app_config, path, data):
    admin = users.make("admin")
    victim = users.make("student")
    course = courses.make(admin)
    sign_in(client, admin, users.password)
    before = db.session.execute(select(User.name, User.role, User.active, User.password_hash)).all()
    url = path.format(victim=victim.id, course=course.id)
    assert client.post(url, data=data).status_code == 400
    db.session.expire_all()
    assert (
        db.session.execute(select(User.name, User.role, User.active, User.password_hash)).all()
        == before
    )
    assert db.session.scalar(select(AccountToken.id)) is None
    assert course.enrollments == []


def test_link_forms_need_the_token(app, client, app_config, rows):
    path = "/" + first_admin_link(app).split("/", 3)[3]
    data = {"name": "A", "email": "a@example.com", **NEW}
    assert client.post(path, data=data).status_code == 400
    assert client.post("/password/forgot", data={"email": "a@example.com"}).status_code == 400
    assert rows(User) == 0
    assert client.get(path).status_code == 200  # the link still works
