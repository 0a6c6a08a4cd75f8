"""Importing a shareholder invite list from CSV: bad rows reported by line and never written,
good rows invited with a personal link and code by e-mail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lectern.extensions import db
from webinar.models import Registration

from .conftest import Mailbox

GOOD_AND_BAD = (
    "Name,E-mail,Holder ID,Shares\n"
    "Ann Holder,ann@example.com,H-1,1200\n"  # line 2: good
    "Bad Mail,not-an-address,H-2,10\n"  # 3: bad e-mail
    "No Holder,nh@example.com,,10\n"  # 4: holder id missing
    "Zero,zero@example.com,H-4,0\n"  # 5: shares must be positive
    '"Bo, Holder",bo@example.com,H-5,"1,500"\n'  # 6: good (quoted comma, thousands separator)
    "Again,ANN@example.com,H-6,5\n"  # 7: e-mail repeats line 2
    "Same Holder,sh@example.com,h-1,5\n"  # 8: holder id already Ann's (case does not count)
    "\n"  # blank lines are skipped
    "Weird,w@example.com,H 9 ;DROP,5\n"  # 10: holder id with spaces and ;
)


@pytest.fixture
def meeting(users, auth, broadcasts):
    host = users.make("host")
    auth.switch(host)
    return broadcasts.make(host, mode="invite", kind="shareholder")


def regs(broadcast_id: int) -> dict[str, Registration]:
    db.session.expire_all()
    found = db.session.scalars(
        select(Registration).where(Registration.broadcast_id == broadcast_id)
    )
    return {r.email: r for r in found}


def post_csv(client, broadcast_id: int, text: str, as_file: bool = True):
    from io import BytesIO

    data = {"file": (BytesIO(text.encode()), "holders.csv")} if as_file else {"text": text}
    return client.post(
        f"/broadcasts/{broadcast_id}/invites/csv", data=data, content_type="multipart/form-data"
    )


def test_good_rows_imported_bad_rows_reported_by_line(client, meeting, mailbox: Mailbox):
    response = post_csv(client, meeting.id, GOOD_AND_BAD)
    assert response.status_code == 200
    page = response.data.decode()
    assert "Imported 2 rows" in page and "refused 6" in page
    for expected in (
        "Line 3: &#39;not-an-address&#39; is not an e-mail address",
        "Line 4: the holder id is missing",
        "Line 5: shares must be a whole number",
        "Line 7: ann@example.com is already on line 2",
        "Line 8: holder id h-1 is already ann@example.com&#39;s",
        "Line 10: the holder id must be letters",
    ):
        assert expected in page, expected
    found = regs(meeting.id)
    assert set(found) == {"ann@example.com", "bo@example.com"}
    assert (found["bo@example.com"].name, found["bo@example.com"].shares) == ("Bo, Holder", 1500)
    assert (found["ann@example.com"].holder_id, found["ann@example.com"].shares) == ("H-1", 1200)
    # Each good row got a link and a code by e-mail; nobody else got anything.
    assert sorted(m["To"] for m in mailbox.messages) == ["ann@example.com", "bo@example.com"]
    token, code = mailbox.last_link("ann@example.com")
    assert token.startswith(f"{found['ann@example.com'].id}.1.") and code and len(code) == 8
    attachment = next(mailbox.to("ann@example.com")[0].iter_attachments())
    assert attachment.get_content_type() == "text/calendar"


def test_pasted_csv_and_reimport_skips_people_already_listed(client, meeting, mailbox):
    assert post_csv(client, meeting.id, GOOD_AND_BAD, as_file=False).status_code == 200
    first = {e: r.link_version for e, r in regs(meeting.id).items()}
    again = post_csv(client, meeting.id, "name,email,holder_id,shares\nA,ann@example.com,H-1,1\n")
    page = again.data.decode()
    assert "Imported 0 rows, skipped 1" in page and "ann@example.com is already on the list" in page
    assert {e: r.link_version for e, r in regs(meeting.id).items()} == first  # untouched
    assert len(mailbox.messages) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfename,email\n", "not UTF-8"),
        (b"", "Choose a CSV file"),
        (b"ann@example.com,H-1,5\n", "header naming the columns"),
        (b'name,email,holder_id,shares\n"unterminated,a@example.com,H-1,5\n', "malformed"),
    ],
)
def test_unusable_files_write_nothing(client, meeting, mailbox, data, message):
    from io import BytesIO

    response = client.post(
        f"/broadcasts/{meeting.id}/invites/csv",
        data={"file": (BytesIO(data), "x.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert message in response.data.decode()
    assert regs(meeting.id) == {} and mailbox.messages == []


def test_only_the_host_may_import(client, auth, users, meeting, broadcasts):
    outsider = users.make("attendee")
    auth.switch(outsider)
    assert post_csv(client, meeting.id, GOOD_AND_BAD).status_code == 404  # invite-only: unseen
    listed = users.make("attendee")
    broadcasts.register(meeting, listed)
    auth.switch(listed)
    assert post_csv(client, meeting.id, GOOD_AND_BAD).status_code == 403
    assert set(regs(meeting.id)) == {listed.email}


def test_a_refusing_mail_server_still_imports_and_says_so(client, users, auth, broadcasts, app):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=1)  # nothing listens there
    host = users.make("host")
    auth.switch(host)
    meeting = broadcasts.make(host, mode="invite", kind="shareholder", starts_in=timedelta(days=2))
    response = post_csv(client, meeting.id, "name,email,holder_id,shares\nA,a@example.com,H-1,5\n")
    assert "The mail server refused the e-mails" in response.data.decode()
    assert set(regs(meeting.id)) == {"a@example.com"}


def test_all_hands_list_needs_no_holder_columns(client, users, auth, broadcasts, mailbox):
    host = users.make("host")
    auth.switch(host)
    town = broadcasts.make(host, mode="invite", kind="all_hands")
    response = post_csv(client, town.id, "email\nx@example.com\ny@example.com\n")
    assert "Imported 2 rows" in response.data.decode()
    _, code = mailbox.last_link("x@example.com")
    assert code is None  # no holder verification outside shareholder meetings


def test_a_pasted_list_cannot_invite_holders(client, meeting, mailbox):
    """Holders need their holder id and shares: a shareholder meeting takes the CSV only."""
    page = client.get(f"/broadcasts/{meeting.id}").data.decode()
    assert "Invite by e-mail" not in page
    response = client.post(f"/broadcasts/{meeting.id}/invites", data={"emails": "a@example.com"})
    assert (
        response.status_code == 400 and "Import the share register as CSV" in response.data.decode()
    )
    assert regs(meeting.id) == {} and mailbox.messages == []
