"""Admin pages: who may use them, creating users, roles, deactivation (live connections close),
reactivation, password links, and the last administrator."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from accounts.models import AccountToken, User
from lectern.extensions import db, socketio
from rooms.models import Connection
from tests.conftest import Auth

PAGES = [
    ("get", "/admin/users", {}),
    ("get", "/admin/users/new", {}),
    ("post", "/admin/users/new", {"email": "n@example.com", "name": "N", "role": "student"}),
    ("post", "/admin/users/{target}/role", {"role": "host"}),
    ("post", "/admin/users/{target}/deactivate", {}),
    ("post", "/admin/users/{target}/reactivate", {}),
    ("post", "/admin/users/{target}/reset", {}),
]


@pytest.fixture(params=["admin", "instructor", "host", "student", "attendee", None])
def caller(request, users, auth):
    """A signed-in user of each role (None: signed out)."""
    users.make("admin", email="keeper@example.com")  # so the last-admin rule never interferes
    if request.param is None:
        return None
    user = users.make(request.param)
    auth.login(user)
    return request.param


@pytest.mark.parametrize(("method", "path", "data"), PAGES)
def test_permission_matrix(client, users, rows, caller, method, path, data):
    target = users.make("student", email="target@example.com")
    before = db.session.execute(select(User.role, User.active).where(User.id == target.id)).one()
    response = getattr(client, method)(path.format(target=target.id), data=data)
    if caller == "admin":
        assert response.status_code in {200, 302}
        return
    assert response.status_code == (302 if caller is None else 403)
    if caller is None:
        assert response.headers["Location"].startswith("/login")
    db.session.expire_all()
    assert db.session.execute(select(User.role, User.active).where(User.id == target.id)).one() == (
        before
    )
    assert rows(User, User.email == "n@example.com") == 0
    assert rows(AccountToken) == 0


@pytest.fixture
def admin(users, auth):
    user = users.make("admin", email="root@example.com")
    auth.login(user)
    return user


def test_list_search_and_paging(client, admin, users):
    for n in range(60):
        users.make("student", email=f"pupil{n:02d}@example.com", name=f"Pupil {n}")
    users.make("host", email="zed@example.com", name="Zed Percent%")
    first = client.get("/admin/users")
    assert first.status_code == 200
    assert b"Page 1 of 2" in first.data
    second = client.get("/admin/users?page=2")
    assert b"zed@example.com" in second.data and b"pupil00" not in second.data
    found = client.get("/admin/users?q=PERCENT%25")
    assert b"zed@example.com" in found.data and b"pupil" not in found.data
    assert b"pupil" not in client.get("/admin/users?q=%25").data  # % is literal, not a wildcard
    assert client.get("/admin/users?page=0").status_code == 400
    assert client.get("/admin/users?page=99999999999").status_code == 400


def test_create_user_sends_a_set_password_link(client, admin, outbox):
    response = client.post(
        "/admin/users/new", data={"email": "New@Example.com", "name": "New Person", "role": "host"}
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert user.role == "host" and user.password_hash is None
    link = outbox.link("new@example.com")
    client.post("/logout")
    form = {"password": "new person's password", "confirm": "new person's password"}
    assert client.post(link, data=form).status_code == 302
    assert client.get("/").status_code == 200  # signed in as the new user
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password("new person's password")
    assert client.post(link, data=form).status_code == 410  # once only


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"email": "root@example.com", "name": "Dup", "role": "student"}, 400),
        ({"email": "bad", "name": "X", "role": "student"}, 400),
        ({"email": "x@example.com", "name": "", "role": "student"}, 400),
        ({"email": "x@example.com", "name": "X", "role": "emperor"}, 400),
        ({"email": "x@example.com", "name": "N" * 121, "role": "student"}, 400),
    ],
)
def test_create_user_refusals(client, admin, outbox, rows, data, status):
    assert client.post("/admin/users/new", data=data).status_code == status
    assert rows(User) == 1 and outbox.mails == []


def test_change_role(client, admin, users):
    target = users.make("student")
    assert (
        client.post(f"/admin/users/{target.id}/role", data={"role": "instructor"}).status_code
        == 302
    )
    db.session.expire_all()
    assert db.session.get(User, target.id).role == "instructor"
    assert client.post(f"/admin/users/{target.id}/role", data={"role": "x"}).status_code == 400


@pytest.mark.parametrize("user_id", [999_999, 2**31, 2**63])
def test_unknown_ids_are_404(client, admin, user_id):
    assert client.post(f"/admin/users/{user_id}/deactivate").status_code == 404


def test_last_admin_cannot_demote_or_deactivate_themself(client, admin, users):
    demote = client.post(f"/admin/users/{admin.id}/role", data={"role": "student"})
    assert demote.status_code == 409 and b"last administrator" in demote.data
    assert client.post(f"/admin/users/{admin.id}/deactivate").status_code == 409
    db.session.expire_all()
    assert db.session.get(User, admin.id).role == "admin"
    users.make("admin", email="other@example.com")
    assert client.post(f"/admin/users/{admin.id}/role", data={"role": "host"}).status_code == 302


def test_deactivated_user_is_signed_out_and_refused(app, client, admin, users):
    target = users.make("student")
    other = app.test_client()

    def as_target(call, *args):
        with app.app_context():  # its own g: Flask-Login caches the user there
            return call(*args)

    as_target(Auth(other).login, target)
    assert as_target(other.get, "/").status_code == 200
    assert client.post(f"/admin/users/{target.id}/deactivate").status_code == 302
    assert as_target(other.get, "/").status_code == 302  # the session ended
    refused = as_target(Auth(other).login, target)
    assert refused.status_code == 403 and b"deactivated" in refused.data
    assert client.post(f"/admin/users/{target.id}/reactivate").status_code == 302
    assert as_target(Auth(other).login, target).status_code == 302


def test_deactivation_closes_a_live_socket(app: Flask, client, admin, users, courses):
    student = users.make("student")
    lesson = courses.lesson(courses.make(users.make("instructor"), students=(student,)))
    http = app.test_client()
    with app.app_context():
        assert Auth(http).login(student).status_code == 302
    with app.app_context():
        sio = socketio.test_client(
            app, namespace="/room", auth={"room": f"lesson:{lesson.id}"}, flask_test_client=http
        )
    assert sio.is_connected("/room")
    assert db.session.scalar(select(Connection.sid).where(Connection.user_id == student.id))
    assert client.post(f"/admin/users/{student.id}/deactivate").status_code == 302
    assert not sio.is_connected("/room")
    with app.app_context():
        again = socketio.test_client(
            app, namespace="/room", auth={"room": f"lesson:{lesson.id}"}, flask_test_client=http
        )
    assert not again.is_connected("/room")


def test_send_reset_link(client, admin, users, outbox):
    target = users.make("student")
    assert client.post(f"/admin/users/{target.id}/reset").status_code == 302
    assert outbox.link(target.email).startswith("/password/reset/")
    assert "reset the password" in outbox.to(target.email)[-1].body
