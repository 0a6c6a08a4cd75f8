"""Broadcasts: creating them, registering, host approval and invite lists."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lectern.extensions import db
from webinar.models import Broadcast, Kind, Mode, Registration

FORM = {
    "title": "Town hall",
    "description": "Questions welcome",
    "kind": "all_hands",
    "registration_mode": "open",
    "starts_at": "2030-01-01T10:00",
    "duration_minutes": "60",
}


@pytest.fixture
def host(users, auth):
    """A signed-in host."""
    user = users.make("host")
    auth.switch(user)
    return user


def one(model: type, *where: object):
    """The single row of ``model`` matching ``where``."""
    return db.session.scalars(select(model).where(*where)).one()


# --- creating broadcasts ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("kind", list(Kind))
def test_create_broadcast(client, host, kind, mode):
    data = {**FORM, "kind": kind.value, "registration_mode": mode.value}
    response = client.post("/broadcasts/new", data=data)
    assert response.status_code == 302
    broadcast = one(Broadcast)
    assert response.headers["Location"] == f"/broadcasts/{broadcast.id}"
    assert (broadcast.kind, broadcast.registration_mode) == (kind.value, mode.value)
    assert (broadcast.host_id, broadcast.title, broadcast.duration_minutes) == (
        host.id,
        "Town hall",
        60,
    )
    page = client.get(response.headers["Location"]).data.decode()
    assert broadcast.kind_label in page and broadcast.mode_label in page
    assert "You are the host." in page


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "party"},
        {"kind": ""},
        {"registration_mode": "lottery"},
        {"title": ""},
        {"title": "t" * 201},
        {"title": "Town\u2028hall"},
        {"title": "Town\x07hall"},
        {"duration_minutes": "0"},
        {"duration_minutes": "100000"},
        {"starts_at": "soon"},
    ],
)
def test_invalid_broadcast_is_400_and_not_saved(client, host, rows, change):
    response = client.post("/broadcasts/new", data={**FORM, **change})
    assert response.status_code == 400
    assert rows(Broadcast) == 0


# --- registering -----------------------------------------------------------------------------


def test_open_registration_is_approved_at_once(client, auth, users, broadcasts):
    b = broadcasts.make(users.make("host"), mode="open")
    me = users.make("attendee")
    auth.switch(me)
    response = client.post(f"/broadcasts/{b.id}/register", follow_redirects=True)
    assert b"You are registered." in response.data
    assert b"registered as attendee" in response.data
    reg = one(Registration)
    assert (reg.user_id, reg.email, reg.name, reg.status) == (me.id, me.email, me.name, "approved")
    assert client.post(f"/broadcasts/{b.id}/register").status_code == 403  # once is enough


@pytest.mark.parametrize(("verb", "status"), [("approve", "approved"), ("decline", "declined")])
def test_approval_mode_waits_for_the_host(client, auth, users, broadcasts, verb, status):
    host = users.make("host")
    b = broadcasts.make(host, mode="approval")
    me = users.make("attendee")
    auth.switch(me)
    page = client.post(f"/broadcasts/{b.id}/register", follow_redirects=True).data
    assert b"the host will review it" in page and b"waiting for the host" in page
    reg = one(Registration)
    assert reg.status == "pending"

    auth.switch(host)
    page = client.get(f"/broadcasts/{b.id}").data.decode()
    assert f"/registrations/{reg.id}/approve" in page and me.email in page
    response = client.post(f"/broadcasts/{b.id}/registrations/{reg.id}/{verb}")
    assert response.status_code == 302
    assert one(Registration).status == status

    auth.switch(me)
    page = client.get(f"/broadcasts/{b.id}").data
    expected = b"registered as attendee" if verb == "approve" else b"declined your registration"
    assert expected in page
    assert client.post(f"/broadcasts/{b.id}/register").status_code == 403
    assert one(Registration).status == status  # registering again cannot undo the decision


def test_unknown_decision_verb_is_404(client, users, broadcasts, host):
    b = broadcasts.make(host, mode="approval")
    reg = broadcasts.register(b, users.make("attendee"), status="pending")
    assert client.post(f"/broadcasts/{b.id}/registrations/{reg.id}/promote").status_code == 404
    assert one(Registration).status == "pending"


def test_registration_of_another_broadcast_is_404(client, users, broadcasts, host):
    mine, other = broadcasts.make(host, mode="approval"), broadcasts.make(host, mode="approval")
    reg = broadcasts.register(other, users.make("attendee"), status="pending")
    response = client.post(f"/broadcasts/{mine.id}/registrations/{reg.id}/approve")
    assert response.status_code == 404
    assert client.post(f"/broadcasts/{mine.id}/registrations/99999/approve").status_code == 404
    assert one(Registration).status == "pending"


def test_another_hosts_registrations_are_out_of_reach(client, auth, users, broadcasts, host):
    theirs = broadcasts.make(users.make("host"), mode="approval")
    reg = broadcasts.register(theirs, users.make("attendee"), status="pending")
    response = client.post(f"/broadcasts/{theirs.id}/registrations/{reg.id}/approve")
    assert response.status_code == 403  # visible (anyone may ask to join), not theirs to manage
    assert one(Registration).status == "pending"


# --- invite lists ----------------------------------------------------------------------------


def test_invite_list(client, users, broadcasts, host, rows):
    known = users.make("attendee", email="known@example.com", name="Known Person")
    b = broadcasts.make(host, mode="invite")
    pasted = "Known@Example.com, new@example.com\nnew@example.com; third@example.com"
    response = client.post(f"/broadcasts/{b.id}/invites", data={"emails": pasted})
    assert response.status_code == 302
    regs = {r.email: r for r in db.session.scalars(select(Registration))}
    assert set(regs) == {"known@example.com", "new@example.com", "third@example.com"}
    assert all(r.status == "pending" and r.user_id is None for r in regs.values())
    assert regs["known@example.com"].name == known.name
    again = {"emails": "new@example.com, fourth@example.com"}
    page = client.post(f"/broadcasts/{b.id}/invites", data=again, follow_redirects=True).data
    assert b"Invited 1; 1 already on the list." in page
    assert rows(Registration) == 4


@pytest.mark.parametrize("bad", ["not-an-address", "a@b@c.example", "@example.com"])
def test_invite_list_with_a_bad_address_invites_nobody(client, broadcasts, host, rows, bad):
    b = broadcasts.make(host, mode="invite")
    pasted = f"one@example.com\n{bad}\ntwo@example.com"
    response = client.post(f"/broadcasts/{b.id}/invites", data={"emails": pasted})
    assert response.status_code == 400
    assert f"<li>{bad}</li>".encode() in response.data
    assert b"Nobody was invited." in response.data
    assert rows(Registration) == 0


def test_empty_invite_list_is_400(client, broadcasts, host, rows):
    b = broadcasts.make(host, mode="invite")
    assert client.post(f"/broadcasts/{b.id}/invites", data={"emails": ""}).status_code == 400
    assert rows(Registration) == 0


@pytest.mark.parametrize("mode", ["invite", "approval"])
def test_invited_user_sees_the_broadcast_and_accepts(client, auth, users, broadcasts, mode):
    host, guest = users.make("host"), users.make("attendee")
    b = broadcasts.make(host, mode=mode, title="Annual meeting")
    auth.switch(host)
    client.post(f"/broadcasts/{b.id}/invites", data={"emails": guest.email.upper()})

    auth.switch(guest)
    assert b"Annual meeting" in client.get("/broadcasts/").data
    page = client.get(f"/broadcasts/{b.id}")
    assert page.status_code == 200 and b"Accept invitation" in page.data
    response = client.post(f"/broadcasts/{b.id}/register", follow_redirects=True)
    assert b"You are registered." in response.data  # invited: no host approval needed
    reg = one(Registration)
    assert (reg.user_id, reg.status, reg.name) == (guest.id, "approved", guest.name)


def test_outsider_cannot_see_or_join_invite_only(client, auth, users, broadcasts, rows):
    b = broadcasts.make(users.make("host"), mode="invite", title="Annual meeting")
    broadcasts.register(b, email="someone@example.com", status="pending")
    auth.switch(users.make("attendee"))
    assert b"Annual meeting" not in client.get("/broadcasts/").data
    assert client.get(f"/broadcasts/{b.id}").status_code == 404
    assert client.post(f"/broadcasts/{b.id}/register").status_code == 404
    assert rows(Registration) == 1


def test_declined_invitee_keeps_seeing_the_decision(client, auth, users, broadcasts):
    host, guest = users.make("host"), users.make("attendee")
    b = broadcasts.make(host, mode="invite")
    reg = broadcasts.register(b, email=guest.email, status="pending")
    auth.switch(host)
    assert client.post(f"/broadcasts/{b.id}/registrations/{reg.id}/decline").status_code == 302
    auth.switch(guest)
    page = client.get(f"/broadcasts/{b.id}")
    assert page.status_code == 200 and b"declined your registration" in page.data
    assert client.post(f"/broadcasts/{b.id}/register").status_code == 403


def test_unknown_broadcast_is_404(client, host):
    assert client.get("/broadcasts/99999").status_code == 404
    assert client.post("/broadcasts/99999/register").status_code == 404
    assert (
        client.post("/broadcasts/99999/invites", data={"emails": "a@example.com"}).status_code
        == 404
    )
