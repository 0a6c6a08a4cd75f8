"""Local time everywhere, UTC in storage: forms read the user's wall clock, pages, e-mails and
the report write the viewer's, the calendar file and the CSV files stay UTC.

Berlin's clocks change on the last Sundays of March and October (2030: 31 March, 27 October);
Seoul's never do, so a lesson at 19:00 in Seoul is 11:00 in Berlin in winter, 12:00 in summer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from classroom.models import Lesson
from lectern.extensions import db
from lectern.timeutil import NonexistentTime, to_local, to_utc, zone_name
from rooms.models import Room, RoomEvent
from webinar.models import Broadcast

NNBSP = "\u202f"  # CLDR's English puts a narrow no-break space before AM/PM
DASH = "\N{EN DASH}"  # between a start and an end time
SEOUL, BERLIN = "Asia/Seoul", "Europe/Berlin"


def in_zone(user, zone: str | None, locale: str | None = None):
    """Give ``user`` a profile zone (and language), as the profile page would."""
    user.timezone, user.locale = zone, locale
    db.session.commit()
    return user


@pytest.fixture
def classroom(users, courses):
    """An instructor in Seoul and a student in Berlin, on one course."""
    instructor = in_zone(users.make("instructor"), SEOUL)
    student = in_zone(users.make("student"), BERLIN)
    course = courses.make(instructor, students=(student,))
    return instructor, student, course


def schedule(client, course, starts_at: str, title: str = "Optics"):
    data = {"title": title, "starts_at": starts_at, "duration_minutes": "60"}
    return client.post(f"/courses/{course.id}/lessons", data=data)


def only_lesson() -> Lesson:
    return db.session.scalars(select(Lesson)).one()


# --- the conversions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "zone", "utc"),
    [
        (datetime(2030, 3, 20, 19, 0), SEOUL, datetime(2030, 3, 20, 10, 0)),
        (datetime(2030, 3, 30, 2, 30), BERLIN, datetime(2030, 3, 30, 1, 30)),  # winter, +1
        (datetime(2030, 3, 31, 3, 0), BERLIN, datetime(2030, 3, 31, 1, 0)),  # summer from 03:00
        (datetime(2030, 10, 27, 2, 30), BERLIN, datetime(2030, 10, 27, 0, 30)),  # first 02:30
        (datetime(2030, 10, 27, 3, 0), BERLIN, datetime(2030, 10, 27, 2, 0)),
        (datetime(2030, 6, 1, 12, 0), None, datetime(2030, 6, 1, 12, 0)),  # no zone: UTC
        (datetime(2030, 6, 1, 12, 0), "Not/AZone", datetime(2030, 6, 1, 12, 0)),
        (datetime(2030, 1, 1, 0, 15), "Asia/Kathmandu", datetime(2029, 12, 31, 18, 30)),
    ],
)
def test_to_utc_and_back(local, zone, utc):
    assert to_utc(local, zone) == utc
    assert to_local(utc, zone) == local


def test_a_time_the_clocks_skip_does_not_exist():
    with pytest.raises(NonexistentTime, match="does not exist in Europe/Berlin"):
        to_utc(datetime(2030, 3, 31, 2, 30), BERLIN)
    with pytest.raises(ValueError):
        to_utc(datetime(2030, 3, 31, 2, 30).astimezone(), BERLIN)  # already zoned


def test_the_repeated_hour_reads_back_as_the_second_pass():
    """Stored 01:30 UTC on the autumn change day is the second 02:30 in Berlin (winter time):
    showing it is fine, typing 02:30 always means the first."""
    assert to_local(datetime(2030, 10, 27, 1, 30), BERLIN) == datetime(2030, 10, 27, 2, 30)
    assert to_utc(datetime(2030, 10, 27, 2, 30), BERLIN) == datetime(2030, 10, 27, 0, 30)


def test_zone_names():
    assert [zone_name(z) for z in (None, "", "UTC", "Etc/UTC", SEOUL, "bogus")] == [
        "UTC",
        "UTC",
        "UTC",
        "UTC",
        SEOUL,
        "UTC",
    ]


# --- scheduling a lesson and seeing it ---------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored", "berlin"),
    [
        # before the March change: Berlin on winter time (UTC+1)
        ("2030-03-20T19:00", "2030-03-20T10:00:00", f"Wed, Mar 20, 2030, 11:00{NNBSP}AM"),
        # after it: summer time (UTC+2)
        ("2030-04-03T19:00", "2030-04-03T10:00:00", f"Wed, Apr 3, 2030, 12:00{NNBSP}PM"),
        # before the October change, still summer time
        ("2030-10-23T19:00", "2030-10-23T10:00:00", f"Wed, Oct 23, 2030, 12:00{NNBSP}PM"),
        # November: winter time again
        ("2030-11-06T19:00", "2030-11-06T10:00:00", f"Wed, Nov 6, 2030, 11:00{NNBSP}AM"),
    ],
)
def test_seoul_lesson_shows_in_berlin_time(client, auth, classroom, typed, stored, berlin):
    instructor, student, course = classroom
    auth.switch(instructor)
    response = schedule(client, course, typed)
    assert response.status_code == 302
    lesson = only_lesson()
    assert lesson.starts_at.isoformat() == stored  # naive UTC in the database
    mine = client.get(response.headers["Location"]).data.decode()
    assert f"7:00{NNBSP}PM" in mine and f"({SEOUL})" in mine

    auth.switch(student)
    for url in (f"/courses/{course.id}/lessons/{lesson.id}", f"/courses/{course.id}"):
        page = client.get(url).data.decode()
        assert f'<time datetime="{stored}Z">' in page
        assert f"{berlin} {DASH} " in page and f"({BERLIN})</time>" in page, url
        assert "UTC" not in page.replace(f'datetime="{stored}Z"', "")


def test_the_page_language_sets_the_format(client, auth, classroom):
    """The same stored time, in Korean for a viewer who reads Korean (CLDR's ko formats)."""
    instructor, student, course = classroom
    auth.switch(instructor)
    schedule(client, course, "2030-11-06T19:00")
    in_zone(student, SEOUL, "ko")
    auth.switch(student)
    page = client.get(f"/courses/{course.id}/lessons/{only_lesson().id}").data.decode()
    assert f"2030년 11월 6일 (수) 오후 7:00 {DASH} 오후 8:00 ({SEOUL})" in page


def test_a_viewer_without_a_zone_sees_utc_named(client, auth, classroom, users):
    instructor, _, course = classroom
    auth.switch(instructor)
    schedule(client, course, "2030-11-06T19:00")
    auth.switch(in_zone(instructor, None))
    page = client.get(f"/courses/{course.id}").data.decode()
    assert f"Wed, Nov 6, 2030, 10:00{NNBSP}AM {DASH} 11:00{NNBSP}AM (UTC)" in page


def test_the_form_names_the_zone_it_reads(client, auth, classroom):
    instructor, _, course = classroom
    auth.switch(instructor)
    page = client.get(f"/courses/{course.id}").data.decode()
    assert 'type="datetime-local"' in page
    assert f"Times are in {SEOUL}" in page


def test_a_time_the_clocks_skip_is_refused_and_nothing_written(client, auth, classroom, rows):
    instructor, _, course = classroom
    auth.switch(in_zone(instructor, BERLIN))
    response = schedule(client, course, "2030-03-31T02:30")
    assert response.status_code == 400
    page = response.data.decode()
    assert "2030-03-31 02:30 does not exist in Europe/Berlin" in page
    assert 'aria-invalid="true"' in page
    assert rows(Lesson) == 0


def test_the_repeated_hour_takes_its_first_pass(client, auth, classroom):
    """02:30 on 27 October 2030 happens twice in Berlin; the lesson takes the first (summer
    time, 00:30 UTC), an hour before the second."""
    instructor, _, course = classroom
    auth.switch(in_zone(instructor, BERLIN))
    assert schedule(client, course, "2030-10-27T02:30").status_code == 302
    assert only_lesson().starts_at == datetime(2030, 10, 27, 0, 30)


def test_reschedule_round_trip(client, auth, classroom):
    """The form shows the stored time on the instructor's clock; saving it unchanged stores
    the same UTC time, and a new time shows to the student in theirs."""
    instructor, student, course = classroom
    auth.switch(instructor)
    schedule(client, course, "2030-03-20T19:00")
    lesson = only_lesson()
    url = f"/courses/{course.id}/lessons/{lesson.id}/schedule"
    form = client.get(url).data.decode()
    assert 'value="2030-03-20T19:00"' in form and f"Times are in {SEOUL}" in form
    same = client.post(url, data={"starts_at": "2030-03-20T19:00", "duration_minutes": "60"})
    assert same.status_code == 302
    db.session.refresh(lesson)
    assert lesson.starts_at == datetime(2030, 3, 20, 10, 0)

    moved = client.post(url, data={"starts_at": "2030-04-03T08:30", "duration_minutes": "90"})
    assert moved.status_code == 302
    db.session.refresh(lesson)
    assert (lesson.starts_at, lesson.duration_minutes) == (datetime(2030, 4, 2, 23, 30), 90)
    assert 'value="2030-04-03T08:30"' in client.get(url).data.decode()
    auth.switch(student)
    page = client.get(f"/courses/{course.id}/lessons/{lesson.id}").data.decode()
    assert f"Wed, Apr 3, 2030, 1:30{NNBSP}AM {DASH} 3:00{NNBSP}AM ({BERLIN})" in page
    assert client.get(url).status_code == 403  # students do not move lessons


# --- broadcasts: the form, the calendar file, the e-mail ---------------------------------------

BROADCAST = {
    "title": "Town hall",
    "description": "",
    "kind": "webinar",
    "registration_mode": "open",
    "duration_minutes": "90",
}


def unfolded(ics: str) -> dict[str, str]:
    """An iCalendar file's properties (name without parameters -> value), lines unfolded."""
    assert ics.endswith("\r\n")
    lines = ics.replace("\r\n ", "").split("\r\n")[:-1]
    found: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        found.setdefault(name.split(";")[0], value)
    return found


def as_utc(value: str) -> datetime:
    """An iCalendar UTC date-time ("20301106T100000Z")."""
    assert re.fullmatch(r"\d{8}T\d{6}Z", value), value
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ")


def test_broadcast_time_in_calendar_and_email(app, client, auth, users, mailbox):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mailbox.port)
    host = in_zone(users.make("host"), SEOUL)
    guest = in_zone(users.make("attendee"), BERLIN)
    stranger = "nobody@example.org"  # no account: UTC, named
    auth.switch(host)
    response = client.post("/broadcasts/new", data={**BROADCAST, "starts_at": "2030-11-06T19:00"})
    assert response.status_code == 302
    broadcast = db.session.scalars(select(Broadcast)).one()
    assert broadcast.starts_at == datetime(2030, 11, 6, 10, 0)

    ics = client.get(f"/broadcasts/{broadcast.id}/calendar.ics").data.decode()
    event = unfolded(ics)
    assert "TZID" not in ics and "VTIMEZONE" not in ics  # UTC times need no zone definition
    assert as_utc(event["DTSTART"]) == datetime(2030, 11, 6, 10, 0)
    assert as_utc(event["DTEND"]) == datetime(2030, 11, 6, 11, 30)

    emails = f"{guest.email.upper()}\n{stranger}"  # the invite matches the account by address
    assert (
        client.post(f"/broadcasts/{broadcast.id}/invites", data={"emails": emails}).status_code
        == 302
    )
    (to_guest,) = mailbox.to(guest.email)
    text = mailbox.text(to_guest)
    assert f"When: Wed, Nov 6, 2030, 11:00{NNBSP}AM ({BERLIN}) (90 minutes)" in text
    (attached,) = list(to_guest.iter_attachments())
    event = unfolded(attached.get_content())
    assert as_utc(event["DTSTART"]) == datetime(2030, 11, 6, 10, 0)
    (to_stranger,) = mailbox.to(stranger)
    text = mailbox.text(to_stranger)
    assert f"When: Wed, Nov 6, 2030, 10:00{NNBSP}AM (UTC) (90 minutes)" in text


def test_broadcast_form_refuses_a_skipped_time(client, auth, users, rows):
    auth.switch(in_zone(users.make("host"), BERLIN))
    response = client.post("/broadcasts/new", data={**BROADCAST, "starts_at": "2030-03-31T02:15"})
    assert response.status_code == 400
    assert "2030-03-31 02:15 does not exist in Europe/Berlin" in response.data.decode()
    assert rows(Broadcast) == 0


def test_broadcast_reschedule_shows_local_and_stores_utc(client, auth, users, broadcasts):
    host = in_zone(users.make("host"), SEOUL)
    broadcast = broadcasts.make(host)
    broadcast.starts_at = datetime(2030, 3, 20, 10, 0)
    db.session.commit()
    auth.switch(host)
    url = f"/broadcasts/{broadcast.id}/schedule"
    assert 'value="2030-03-20T19:00"' in client.get(url).data.decode()
    moved = client.post(url, data={"starts_at": "2030-03-21T09:00", "duration_minutes": "30"})
    assert moved.status_code == 302
    db.session.refresh(broadcast)
    assert broadcast.starts_at == datetime(2030, 3, 21, 0, 0)
    page = client.get(f"/broadcasts/{broadcast.id}").data.decode()
    assert f"Thu, Mar 21, 2030, 9:00{NNBSP}AM {DASH} 9:30{NNBSP}AM ({SEOUL})" in page
    auth.switch(users.make("attendee"))
    assert client.get(url).status_code in (403, 404)


# --- the host's report -------------------------------------------------------------------------


def test_report_page_local_csv_utc(client, auth, users, broadcasts):
    """The report page shows joins on the host's clock, the attendance CSV keeps UTC with Z;
    a join after local midnight carries its local date."""
    host = in_zone(users.make("host"), SEOUL)
    guest = users.make("attendee")
    cast = broadcasts.make(host)
    cast.starts_at = datetime(2030, 11, 6, 14, 0)  # 23:00 in Seoul
    broadcasts.register(cast, guest)
    room = Room(kind="broadcast", ref_id=cast.id)
    db.session.add(room)
    db.session.flush()
    start = cast.starts_at.replace(tzinfo=UTC).timestamp()
    for minutes, who, kind in [(0, host, "join"), (90, guest, "join"), (120, host, "leave")]:
        at = start + minutes * 60
        db.session.add(RoomEvent(room_id=room.id, ts=at, actor_id=who.id, type=f"presence.{kind}"))
    db.session.commit()
    auth.switch(host)
    page = client.get(f"/broadcasts/{cast.id}/report").data.decode()
    assert f"Time ({SEOUL})" in page and f"From ({SEOUL})" in page and "UTC" not in page
    assert f'<time datetime="2030-11-06T14:00:00Z">11:00:00{NNBSP}PM</time>' in page
    assert f'<time datetime="2030-11-06T15:30:00Z">Nov 7 12:30:00{NNBSP}AM</time>' in page

    csv = client.get(f"/broadcasts/{cast.id}/attendance.csv").data.decode("utf-8-sig")
    assert ",2030-11-06T14:00:00Z," in csv and ",2030-11-06T15:30:00Z," in csv
