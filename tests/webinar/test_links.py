"""Personal join links: verified on first use (holder id + code), bound to one device, revocable,
replaced by a new link, refused when expired, tampered with or someone else's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db, socketio
from lectern.timeutil import utcnow
from webinar.links import MAX_FAILED_CHECKS
from webinar.models import Broadcast, Registration
from webinar.policy import broadcast_role

from .conftest import Mailbox

CSV = "name,email,holder_id,shares\nAnn Holder,ann@example.com,H-001,1200\n"


@pytest.fixture
def meeting(app: Flask, users, auth, broadcasts, client, mailbox: Mailbox) -> Broadcast:
    """A live shareholder meeting whose host imported Ann from the share register; the test
    client is signed out afterwards, as Ann would be when she opens her e-mail."""
    host = users.make("host")
    auth.switch(host)
    meeting = broadcasts.make(
        host, mode="invite", kind="shareholder", starts_in=-timedelta(minutes=5)
    )
    response = client.post(
        f"/broadcasts/{meeting.id}/invites/csv",
        data={"text": CSV},
        content_type="multipart/form-data",
    )
    assert "Imported 1 row" in response.data.decode()
    auth.logout()
    return meeting


def ann() -> Registration:
    db.session.expire_all()
    return db.session.scalars(
        select(Registration).where(Registration.email == "ann@example.com")
    ).one()


def verify(client, token: str, holder: str = "H-001", code: str | None = None):
    return client.post(f"/broadcasts/join/{token}", data={"holder_id": holder, "code": code})


def test_first_use_verifies_the_holder_and_enters_the_room(app, client, meeting, mailbox):
    token, code = mailbox.last_link("ann@example.com")
    page = client.get(f"/broadcasts/join/{token}")
    assert page.status_code == 200 and "Holder id" in page.data.decode()
    assert ann().device_hash is None  # opening the link (a mail scanner, say) binds nothing
    assert broadcast_role(User(id=-1, email="ann@example.com"), meeting) == "unverified"

    response = verify(client, token, holder=" h-001 ", code=code)  # case and spaces forgiven
    assert response.status_code == 302
    assert response.headers["Location"] == f"/rooms/broadcast/{meeting.id}"
    reg = ann()
    assert reg.status == "approved" and reg.verified_at is not None and reg.device_hash
    account = db.session.get(User, reg.user_id)
    assert (account.role, account.name, account.password_hash) == ("attendee", "Ann Holder", None)
    assert broadcast_role(account, meeting) == "attendee"
    assert client.get(f"/rooms/broadcast/{meeting.id}").status_code == 200
    # The session now joins the live room over Socket.IO, as an attendee.
    sio = socketio.test_client(
        app, namespace="/room", auth={"room": f"broadcast:{meeting.id}"}, flask_test_client=client
    )
    try:
        assert sio.is_connected("/room")
        state = sio.emit("state.get", namespace="/room", callback=True)["state"]
        assert state["me"]["role"] == "attendee"
    finally:
        sio.disconnect("/room")


def test_wrong_codes_count_and_lock_the_link(client, meeting, mailbox):
    token, code = mailbox.last_link("ann@example.com")
    response = verify(client, token, code="00000000" if code != "00000000" else "11111111")
    assert response.status_code == 400 and "4 attempts left" in response.data.decode()
    response = verify(client, token, holder="H-999", code=code)  # right code, wrong holder
    assert response.status_code == 400 and "3 attempts left" in response.data.decode()
    for _ in range(MAX_FAILED_CHECKS - 2):
        response = verify(client, token, code="12345678" if code != "12345678" else "87654321")
    assert response.status_code == 410 and "locked" in response.data.decode()
    assert ann().link_revoked and ann().verified_at is None
    # Even the right code no longer opens it.
    assert verify(client, token, code=code).status_code == 410
    assert ann().user_id is None


def test_a_second_device_is_refused_the_first_goes_straight_in(app, client, meeting, mailbox):
    token, code = mailbox.last_link("ann@example.com")
    assert verify(client, token, code=code).status_code == 302
    again = client.get(f"/broadcasts/join/{token}")
    assert again.status_code == 302 and again.headers["Location"].endswith(f"/{meeting.id}")
    other_device = app.test_client()
    with app.app_context():  # its own context: Flask-Login caches the signed-in user in g
        refused = other_device.get(f"/broadcasts/join/{token}")
        assert refused.status_code == 409 and "another device" in refused.data.decode()
        assert verify(other_device, token, code=code).status_code == 409
        assert other_device.get(f"/rooms/broadcast/{meeting.id}").status_code == 302


def test_revoked_and_replaced_links(app, client, auth, meeting, mailbox):
    token, code = mailbox.last_link("ann@example.com")
    host = db.session.get(User, meeting.host_id)
    auth.login(host)
    reg_id = ann().id
    client.post(f"/broadcasts/{meeting.id}/registrations/{reg_id}/link/revoke")
    auth.logout()
    revoked = verify(client, token, code=code)
    assert revoked.status_code == 410 and "revoked" in revoked.data.decode()

    auth.login(host)
    client.post(f"/broadcasts/{meeting.id}/registrations/{reg_id}/link/reissue")
    auth.logout()
    new_token, new_code = mailbox.last_link("ann@example.com")
    assert new_token != token and new_code
    replaced = verify(client, token, code=code)
    assert replaced.status_code == 410 and "replaced" in replaced.data.decode()
    if new_code != code:
        assert verify(client, new_token, code=code).status_code == 400  # the old code is void
    assert verify(client, new_token, code=new_code).status_code == 302


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the MAC changed
        lambda t: "999999." + t.split(".", 1)[1],  # another registration
        lambda t: t.split(".")[0] + ".7." + t.split(".")[2],  # a version never issued
        lambda t: "x" * 101,
        lambda t: "1.1.é",
        lambda t: "\u0661.1.abc",  # an Arabic-Indic digit one
        lambda t: "",
    ],
)
def test_tampered_links_are_not_valid(client, meeting, mailbox, mangle):
    token, code = mailbox.last_link("ann@example.com")
    response = verify(client, mangle(token) or "-", code=code)
    assert response.status_code in (404, 410)
    assert ann().verified_at is None and ann().failed_checks == 0


def test_someone_elses_link_is_refused_to_a_signed_in_user(client, auth, users, meeting, mailbox):
    token, code = mailbox.last_link("ann@example.com")
    auth.switch(users.make("attendee"))
    response = verify(client, token, code=code)
    assert response.status_code == 403 and "sent to someone else" in response.data.decode()
    assert ann().verified_at is None and ann().user_id is None


def test_a_staff_account_must_sign_in_itself(client, users, auth, broadcasts, mailbox):
    host = users.make("host")
    staff = users.make("instructor", email="teacher@example.com")
    auth.switch(host)
    town = broadcasts.make(host, mode="invite", kind="all_hands", starts_in=-timedelta(minutes=1))
    client.post(f"/broadcasts/{town.id}/invites", data={"emails": staff.email})
    auth.logout()
    token, _ = mailbox.last_link(staff.email)
    response = client.post(f"/broadcasts/join/{token}")
    assert (
        response.status_code == 403 and "Sign in as teacher@example.com" in response.data.decode()
    )
    auth.login(staff)
    assert client.post(f"/broadcasts/join/{token}").status_code == 302


def test_links_expire_after_the_broadcast(client, meeting, mailbox):
    token, code = mailbox.last_link("ann@example.com")
    meeting.starts_at = utcnow() - timedelta(hours=3)  # 60 minutes long: over 2 hours ago
    db.session.commit()
    response = verify(client, token, code=code)
    assert response.status_code == 410 and "expired" in response.data.decode()


def test_an_unverified_holder_cannot_enter_the_room(app, client, auth, meeting, mailbox):
    """Signing in some other way (an account with the same e-mail) is not verification."""
    account = User(email="ann@example.com", name="Ann", role="attendee")
    account.password_hash = db.session.get(User, meeting.host_id).password_hash
    db.session.add(account)
    db.session.commit()
    auth.login("ann@example.com")
    assert broadcast_role(account, meeting) == "unverified"
    assert client.get(f"/rooms/broadcast/{meeting.id}").status_code in (403, 404)
    sio = socketio.test_client(
        app, namespace="/room", auth={"room": f"broadcast:{meeting.id}"}, flask_test_client=client
    )
    assert not sio.is_connected("/room")
    page = client.get(f"/broadcasts/{meeting.id}").data.decode()
    assert "Open the personal link" in page and "Accept invitation" not in page


def test_guessing_links_is_slowed_down(client, meeting):
    codes = [client.get(f"/broadcasts/join/{n}.1.guess").status_code for n in range(25)]
    assert codes[:20] == [404] * 20 and set(codes[20:]) == {429}


def test_revoking_or_replacing_the_link_ends_its_access(app, client, auth, meeting, mailbox):
    """Ann (an account that exists only through her link) is in the live room; the host revokes
    the link: she is disconnected and kept out. A new link lets her in again, the old session
    does not."""
    token, code = mailbox.last_link("ann@example.com")
    assert verify(client, token, code=code).status_code == 302
    room = f"broadcast:{meeting.id}"
    sio = socketio.test_client(
        app, namespace="/room", auth={"room": room}, flask_test_client=client
    )
    assert sio.is_connected("/room")
    host = app.test_client()
    with app.app_context():
        from tests.conftest import Auth

        Auth(host).login(db.session.get(User, meeting.host_id))
        host.post(f"/broadcasts/{meeting.id}/registrations/{ann().id}/link/revoke")
    assert not sio.is_connected("/room")
    with app.app_context():  # each identity in its own context: Flask-Login caches it in g
        again = socketio.test_client(
            app, namespace="/room", auth={"room": room}, flask_test_client=client
        )
        assert not again.is_connected("/room")
        assert client.get(f"/rooms/broadcast/{meeting.id}").status_code == 404
    with app.app_context():
        reissued = host.post(f"/broadcasts/{meeting.id}/registrations/{ann().id}/link/reissue")
        assert reissued.status_code == 302
    with app.app_context():
        assert client.get(f"/rooms/broadcast/{meeting.id}").status_code == 404  # the old session
    new_token, new_code = mailbox.last_link("ann@example.com")
    other_device = app.test_client()
    with app.app_context():
        assert verify(other_device, new_token, code=new_code).status_code == 302
        assert other_device.get(f"/rooms/broadcast/{meeting.id}").status_code == 200


def test_declining_ends_a_registrants_access_at_once(app, client, auth, users, broadcasts):
    host, attendee = users.make("host"), users.make("attendee")
    town = broadcasts.make(host, mode="approval", kind="all_hands", starts_in=-timedelta(minutes=1))
    reg = broadcasts.register(town, attendee)
    auth.login(attendee)
    room = f"broadcast:{town.id}"
    sio = socketio.test_client(
        app, namespace="/room", auth={"room": room}, flask_test_client=client
    )
    assert sio.is_connected("/room")
    host_client = app.test_client()
    with app.app_context():
        from tests.conftest import Auth

        Auth(host_client).login(host)
        host_client.post(f"/broadcasts/{town.id}/registrations/{reg.id}/decline")
    assert not sio.is_connected("/room")
    with app.app_context():
        again = socketio.test_client(
            app, namespace="/room", auth={"room": room}, flask_test_client=client
        )
        assert not again.is_connected("/room")


def test_two_devices_racing_on_first_use_bind_only_one(meeting):
    """Both passed the page's check (no device bound yet); the conditional UPDATE lets one in."""
    from webinar.links import bind_device

    reg = ann()
    assert bind_device(reg) is not None
    assert bind_device(reg) is None
    db.session.rollback()


def test_parallel_wrong_codes_are_all_counted(meeting):
    """Another request's wrong guess lands after this one read the row: both count."""
    from sqlalchemy import update

    from webinar.links import verify_holder

    reg = ann()
    assert reg.failed_checks == 0  # what this request read
    with db.engine.begin() as other:  # a parallel request's guess, committed meanwhile
        other.execute(update(Registration).where(Registration.id == reg.id).values(failed_checks=1))
    assert verify_holder(reg, "H-001", "bad") == "The holder id or code is wrong. 3 attempts left."
    db.session.rollback()


def test_a_real_link_is_limited_per_person_not_per_network(client, meeting, mailbox):
    """A whole audience may come from one address: guesses from it do not block real links."""
    token, _ = mailbox.last_link("ann@example.com")
    guesses = [client.get(f"/broadcasts/join/{n}.1.guess").status_code for n in range(25)]
    assert guesses[-1] == 429
    opens = [client.get(f"/broadcasts/join/{token}").status_code for _ in range(22)]
    assert opens[:20] == [200] * 20 and opens[20:] == [429, 429]


def test_idle_rate_limit_buckets_are_forgotten():
    from rooms.ratelimit import Limiter, Rate

    limiter = Limiter({"x": Rate(burst=2, per_second=1e12)})  # refilled at once
    limiter.MAX_BUCKETS = 10
    for key in range(50):
        assert limiter.allow(key, "x")
    assert len(limiter._buckets) <= 11
