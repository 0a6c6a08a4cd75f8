"""Automatic reminders: once per broadcast, within the lead time, to approved and invited people."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner

from lectern.extensions import db
from lectern.timeutil import utcnow
from webinar.reminders import send_due

from .conftest import Mailbox

LEAD = timedelta(minutes=60)


def test_due_broadcasts_are_reminded_once(app, users, broadcasts, mailbox: Mailbox):
    host = users.make("host")
    soon = broadcasts.make(host, mode="open", kind="all_hands", starts_in=timedelta(minutes=30))
    later = broadcasts.make(host, mode="open", kind="all_hands", starts_in=timedelta(hours=5))
    started = broadcasts.make(host, mode="open", kind="all_hands", starts_in=-timedelta(minutes=1))
    for b in (soon, later, started):
        broadcasts.register(b, users.make("attendee"))
    broadcasts.register(soon, users.make("attendee", email="pending@example.com"), status="pending")
    broadcasts.register(soon, email="invitee@example.com", status="pending")
    approved = soon.registrations[0].email

    assert send_due(LEAD) == 2
    assert sorted(m["To"] for m in mailbox.messages) == sorted([approved, "invitee@example.com"])
    mailbox.last_link(approved)
    assert send_due(LEAD) == 0  # a second round (or a second web worker) sends nothing more
    assert send_due(LEAD, now=utcnow() + timedelta(hours=4, minutes=30)) == 1  # "later" is due


def test_a_manual_reminder_days_before_does_not_cancel_the_last_one(
    app, users, broadcasts, mailbox
):
    host = users.make("host")
    b = broadcasts.make(host, mode="open", kind="all_hands", starts_in=timedelta(minutes=10))
    broadcasts.register(b, users.make("attendee"))
    b.reminded_at = utcnow() - timedelta(days=2)
    db.session.commit()
    assert send_due(LEAD) == 1
    assert send_due(LEAD) == 0


def test_a_refusing_mail_server_leaves_it_due(app, users, broadcasts):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=1)
    host = users.make("host")
    b = broadcasts.make(host, mode="open", kind="all_hands", starts_in=timedelta(minutes=10))
    broadcasts.register(b, users.make("attendee"))
    assert send_due(LEAD) == 0
    app.config["SMTP_HOST"] = ""
    assert send_due(LEAD) == 1  # printed on the console this time


def test_the_cli_command(app, users, broadcasts, mailbox):
    host = users.make("host")
    b = broadcasts.make(host, mode="open", kind="all_hands", starts_in=timedelta(minutes=90))
    broadcasts.register(b, users.make("attendee"))
    runner = CliRunner()
    from webinar.reminders import remind_command

    with app.app_context():
        result = runner.invoke(remind_command, ["--minutes", "120"])
    assert result.exit_code == 0 and "1 reminder(s) sent." in result.output
    assert len(mailbox.messages) == 1


def test_one_refused_address_does_not_resend_to_everyone(app, users, broadcasts, mailbox):
    host = users.make("host")
    b = broadcasts.make(host, mode="open", kind="all_hands", starts_in=timedelta(minutes=10))
    broadcasts.register(b, users.make("attendee", email="refused@example.com"))
    broadcasts.register(b, users.make("attendee", email="good@example.com"))
    assert send_due(LEAD) == 1
    assert send_due(LEAD) == 0  # no retry that would mail good@ again
    assert [m["To"] for m in mailbox.messages] == ["good@example.com"]


def test_a_title_with_line_breaks_stays_one_subject_line(client, auth, users, broadcasts, mailbox):
    host = users.make("host")
    auth.login(host)
    b = broadcasts.make(host, mode="invite", kind="all_hands", title="Town\u2028hall\r\nBcc: x@y.z")
    response = client.post(f"/broadcasts/{b.id}/invites", data={"emails": "a@example.com"})
    assert response.status_code == 302
    [message] = mailbox.messages
    assert message["Subject"] == "Your link: Town hall Bcc: x@y.z" and message["Bcc"] is None
