"""Public webinar sign-up, host approval, reminders, the .ics file, all-hands domains and
questions sent ahead."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lectern.extensions import db
from rooms.models import Question, Room, RoomEvent
from webinar.models import Registration

from .conftest import Mailbox


def regs() -> list[Registration]:
    db.session.expire_all()
    return list(db.session.scalars(select(Registration).order_by(Registration.id)))


@pytest.fixture
def host(users):
    return users.make("host")


def test_open_webinar_signup_mails_a_link_with_a_calendar(
    client, host, broadcasts, mailbox: Mailbox
):
    webinar = broadcasts.make(host, mode="open", kind="webinar")
    page = client.get(f"/broadcasts/{webinar.id}/signup")
    assert page.status_code == 200 and "Register" in page.data.decode()
    response = client.post(
        f"/broadcasts/{webinar.id}/signup",
        data={"name": "Pat <b>Public</b>", "email": "Pat@Example.com"},
    )
    assert (
        response.status_code == 200
        and "We sent an e-mail to pat@example.com" in response.data.decode()
    )
    [reg] = regs()
    assert (reg.email, reg.name, reg.status, reg.user_id) == (
        "pat@example.com",
        "Pat <b>Public</b>",
        "approved",
        None,
    )
    token, code = mailbox.last_link("pat@example.com")
    assert code is None
    assert client.post(f"/broadcasts/join/{token}").status_code == 302  # one click, then the room
    [message] = mailbox.to("pat@example.com")
    ics = next(message.iter_attachments()).get_content()
    assert "BEGIN:VEVENT" in (ics.decode() if isinstance(ics, bytes) else ics)


def test_approval_webinar_signup_waits_for_the_host(client, auth, host, broadcasts, mailbox):
    webinar = broadcasts.make(host, mode="approval", kind="webinar")
    client.post(f"/broadcasts/{webinar.id}/signup", data={"name": "Q", "email": "q@example.com"})
    client.post(f"/broadcasts/{webinar.id}/signup", data={"name": "R", "email": "r@example.com"})
    assert [r.status for r in regs()] == ["pending", "pending"]
    assert "Registration received" in mailbox.to("q@example.com")[0]["Subject"]
    assert not any(r.invited for r in regs())
    assert "/broadcasts/join/" not in mailbox.text(mailbox.to("q@example.com")[0])
    auth.login(host)
    queue = client.get(f"/broadcasts/{webinar.id}").data.decode()
    assert queue.count("waiting for approval") == 2 and queue.count(">Approve<") == 2
    q, r = regs()
    client.post(f"/broadcasts/{webinar.id}/registrations/{q.id}/approve")
    client.post(f"/broadcasts/{webinar.id}/registrations/{r.id}/decline")
    assert [x.status for x in regs()] == ["approved", "declined"]
    token, _ = mailbox.last_link("q@example.com")  # the approval brought the link
    assert len(mailbox.to("r@example.com")) == 1  # declined: only the receipt
    auth.logout()
    refused = client.post(f"/broadcasts/join/{token}".replace(str(q.id) + ".", str(r.id) + ".", 1))
    assert refused.status_code == 404


def test_signing_up_twice_keeps_one_registration(client, host, broadcasts, mailbox):
    webinar = broadcasts.make(host, mode="open", kind="webinar")
    for _ in range(2):
        client.post(
            f"/broadcasts/{webinar.id}/signup", data={"name": "Pat", "email": "pat@example.com"}
        )
    assert len(regs()) == 1 and len(mailbox.to("pat@example.com")) == 2  # the link, sent again


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "", "email": "a@example.com"}, "This field is required"),
        ({"name": "A", "email": "not-an-address"}, "Invalid email address"),
        ({"name": "A" * 121, "email": "a@example.com"}, "120"),
    ],
)
def test_bad_signups_write_nothing(client, host, broadcasts, mailbox, data, error):
    webinar = broadcasts.make(host, mode="open", kind="webinar")
    response = client.post(f"/broadcasts/{webinar.id}/signup", data=data)
    assert response.status_code == 400 and error in response.data.decode()
    assert regs() == [] and mailbox.messages == []


@pytest.mark.parametrize(
    ("kind", "mode"), [("webinar", "invite"), ("all_hands", "open"), ("shareholder", "invite")]
)
def test_only_public_webinars_have_a_signup_page(client, host, broadcasts, kind, mode):
    b = broadcasts.make(host, mode=mode, kind=kind)
    assert client.get(f"/broadcasts/{b.id}/signup").status_code == 404
    assert (
        client.post(
            f"/broadcasts/{b.id}/signup", data={"name": "A", "email": "a@example.com"}
        ).status_code
        == 404
    )
    assert client.get("/broadcasts/999/signup").status_code == 404


def test_calendar_file(client, auth, users, host, broadcasts):
    webinar = broadcasts.make(host, mode="open", kind="webinar", title="Ask, learn; repeat\\now")
    webinar.description = "Line one\nLine two with ümlauts " + "long " * 30
    db.session.commit()
    response = client.get(f"/broadcasts/{webinar.id}/calendar.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    raw = response.data.decode()
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in raw.split("\r\n"))
    unfolded = raw.replace("\r\n ", "")
    assert "SUMMARY:Ask\\, learn\\; repeat\\\\now\r\n" in unfolded
    assert "DESCRIPTION:Line one\\nLine two with ümlauts" in unfolded
    start = webinar.starts_at.strftime("%Y%m%dT%H%M%SZ")
    assert f"DTSTART:{start}" in unfolded and f"UID:broadcast-{webinar.id}@lectern" in unfolded
    # Private broadcasts: signed-in viewers only; invite lists hide the broadcast altogether.
    town = broadcasts.make(host, mode="open", kind="all_hands")
    agm = broadcasts.make(host, mode="invite", kind="shareholder")
    assert client.get(f"/broadcasts/{town.id}/calendar.ics").status_code == 302
    auth.login(users.make("attendee"))
    assert client.get(f"/broadcasts/{town.id}/calendar.ics").status_code == 200
    assert client.get(f"/broadcasts/{agm.id}/calendar.ics").status_code == 404


def test_all_hands_restricted_to_a_domain(app, client, auth, users, host, broadcasts):
    town = broadcasts.make(host, mode="open", kind="all_hands")
    town.allowed_domain = "corp.example"
    db.session.commit()
    outsider = users.make("attendee", email="someone@example.com")
    auth.login(outsider)
    assert client.get(f"/broadcasts/{town.id}").status_code == 404
    assert client.post(f"/broadcasts/{town.id}/register").status_code == 404
    assert town.title not in client.get("/broadcasts/").data.decode()
    auth.logout()
    staff = users.make("attendee", email="ann@corp.example")
    with app.app_context():
        auth.login(staff)
        assert town.title in client.get("/broadcasts/").data.decode()
        assert client.post(f"/broadcasts/{town.id}/register").status_code == 302
    assert [r.status for r in regs()] == ["approved"]


def test_domain_setting_is_validated(client, auth, host):
    auth.login(host)
    form = {
        "title": "T",
        "description": "",
        "kind": "all_hands",
        "registration_mode": "open",
        "starts_at": "2030-01-01T10:00",
        "duration_minutes": "60",
    }
    assert (
        client.post("/broadcasts/new", data={**form, "allowed_domain": "not a domain"}).status_code
        == 400
    )
    assert (
        client.post("/broadcasts/new", data={**form, "allowed_domain": "@Corp.Example"}).status_code
        == 302
    )


def test_reminders_go_to_approved_and_invited_people(
    client, auth, users, host, broadcasts, mailbox
):
    town = broadcasts.make(host, mode="approval", kind="all_hands", starts_in=timedelta(hours=2))
    broadcasts.register(town, users.make("attendee", email="yes@example.com"))
    broadcasts.register(town, users.make("attendee", email="wait@example.com"), status="pending")
    broadcasts.register(town, users.make("attendee", email="no@example.com"), status="declined")
    broadcasts.register(town, email="invited@example.com", status="pending")
    auth.login(users.make("attendee", email="yes2@example.com"))
    assert client.post(f"/broadcasts/{town.id}/remind").status_code == 403
    auth.switch(host)
    response = client.post(f"/broadcasts/{town.id}/remind", follow_redirects=True)
    assert "Reminder sent to 2 registrants" in response.data.decode()
    assert sorted(m["To"] for m in mailbox.messages) == ["invited@example.com", "yes@example.com"]
    assert all(m["Subject"].startswith("Reminder:") for m in mailbox.messages)
    mailbox.last_link("yes@example.com")


def test_console_mail_when_no_smtp_server(app, client, auth, users, host, broadcasts, capsys):
    app.config["SMTP_HOST"] = ""
    auth.login(host)
    town = broadcasts.make(host, mode="invite", kind="all_hands")
    client.post(f"/broadcasts/{town.id}/invites", data={"emails": "c@example.com"})
    out = capsys.readouterr().out
    assert (
        "To: c@example.com" in out
        and "/broadcasts/join/" in out
        and "Attached: broadcast.ics" in out
    )


def test_questions_sent_ahead_wait_for_moderation(app, client, auth, users, host, broadcasts):
    from rooms.context import Actor
    from rooms.questions import visible
    from webinar.room import BROADCAST_POLICY

    town = broadcasts.make(host, mode="open", kind="all_hands", starts_in=timedelta(days=1))
    asker, other = users.make("attendee"), users.make("attendee")
    broadcasts.register(town, asker)
    broadcasts.register(town, other)
    auth.login(asker)
    response = client.post(
        f"/broadcasts/{town.id}/questions",
        data={"text": "  Dividend <plans>?  ", "anonymous": "y"},
        follow_redirects=True,
    )
    assert (
        "Question sent" in response.data.decode()
        and "Dividend &lt;plans&gt;?" in response.data.decode()
    )
    q = db.session.scalars(select(Question)).one()
    assert (q.text, q.status, q.anonymous) == ("Dividend <plans>?", "pending", True)
    event = db.session.scalars(select(RoomEvent).where(RoomEvent.type == "question.ask")).one()
    assert event.payload["ahead"] is True
    room = db.session.scalars(select(Room)).one()

    def sees(user_id: int, role: str) -> list[str]:
        actor = Actor(user_id=user_id, name="", role=role, room_id=room.id, policy=BROADCAST_POLICY)
        return [x["text"] for x in visible(room.id, actor)]

    assert sees(host.id, "host") == ["Dividend <plans>?"]
    assert sees(other.id, "attendee") == []  # waits in the moderation queue
    assert sees(asker.id, "attendee") == ["Dividend <plans>?"]  # the author sees their own


def test_questions_ahead_refused(app, client, auth, users, host, broadcasts):
    town = broadcasts.make(host, mode="open", kind="all_hands")
    agm = broadcasts.make(host, mode="invite", kind="shareholder")
    over = broadcasts.make(host, mode="open", kind="all_hands", starts_in=-timedelta(hours=2))
    attendee = users.make("attendee")
    for b in (town, over):
        broadcasts.register(b, attendee)
    auth.login(attendee)
    assert client.post(f"/broadcasts/{agm.id}/questions", data={"text": "Hi"}).status_code == 404
    visitor = users.make("attendee")
    with app.app_context():
        auth.switch(visitor)
        assert (
            client.post(f"/broadcasts/{town.id}/questions", data={"text": "Hi"}).status_code == 403
        )
    with app.app_context():
        auth.switch(attendee)
        page = client.post(
            f"/broadcasts/{over.id}/questions", data={"text": "Late"}, follow_redirects=True
        )
        assert "questions are closed" in page.data.decode()
        page = client.post(
            f"/broadcasts/{town.id}/questions", data={"text": "x" * 1001}, follow_redirects=True
        )
        assert "1000" in page.data.decode()
    assert db.session.scalars(select(Question)).all() == []


def test_questions_ahead_are_rate_limited(client, auth, users, host, broadcasts):
    from webinar import joining

    joining.askers.reset()
    town = broadcasts.make(host, mode="open", kind="all_hands")
    asker = users.make("attendee")
    broadcasts.register(town, asker)
    auth.login(asker)
    pages = [
        client.post(
            f"/broadcasts/{town.id}/questions", data={"text": f"Q{n}"}, follow_redirects=True
        )
        for n in range(7)
    ]
    assert "too fast" in pages[-1].data.decode()
    assert len(db.session.scalars(select(Question)).all()) == 5  # the live room's burst
    joining.askers.reset()
