"""Enrolment by pasted list: the preview, applying it (accounts enrolled, others invited), and
the invitation link that creates the account, enrols it and lands on the course."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from accounts.models import AccountToken, User
from classroom.models import Enrollment
from lectern.extensions import db
from lectern.timeutil import utcnow

JOIN = {"name": "Nina New", "password": "nina's long password", "confirm": "nina's long password"}


@pytest.fixture
def teacher(users, auth):
    user = users.make("instructor", email="teacher@example.com")
    auth.login(user)
    return user


@pytest.fixture
def course(courses, teacher):
    return courses.make(teacher, title="Chemistry")


def enrolled(course) -> set[str]:
    db.session.expire_all()
    return set(
        db.session.scalars(
            select(User.email).join(Enrollment).where(Enrollment.course_id == course.id)
        )
    )


MIXED = (
    "known1@example.com\n"
    "known2@example.com, new1@example.com\n"
    "not an address\n"
    "NEW2@example.com; done@example.com\n"
    "\n"
    "half@\n"
)


@pytest.fixture
def mixed(users, courses, course):
    users.make("student", email="known1@example.com")
    users.make("student", email="known2@example.com")
    done = users.make("student", email="done@example.com")
    db.session.add(Enrollment(course_id=course.id, user_id=done.id))
    db.session.commit()
    return MIXED


def test_preview_says_what_will_happen_and_writes_nothing(client, course, mixed, rows, outbox):
    response = client.post(
        f"/courses/{course.id}/enroll", data={"emails": mixed, "step": "preview"}
    )
    assert response.status_code == 400  # some lines are bad
    page = response.data.decode()
    assert "2 enrolled, 2 invited, 1 already enrolled." in page
    assert "line 3: not an address" in page and "line 6: half@" in page
    assert "new2@example.com" in page and "will be invited" in page
    confirm = re.search(r'name="emails" value="([^"]+)"', page).group(1)
    assert set(confirm.split()) == {
        "known1@example.com",
        "known2@example.com",
        "new1@example.com",
        "new2@example.com",
        "done@example.com",
    }
    assert enrolled(course) == {"done@example.com"}
    assert rows(AccountToken) == 0 and outbox.mails == []


def test_a_list_needing_invitations_is_previewed_even_without_a_step(client, course, mixed, rows):
    response = client.post(f"/courses/{course.id}/enroll", data={"emails": mixed})
    assert response.status_code == 400
    assert rows(AccountToken) == 0
    assert enrolled(course) == {"done@example.com"}


def test_confirm_enrols_and_invites_the_valid_lines(client, course, mixed, outbox, rows):
    response = client.post(f"/courses/{course.id}/enroll", data={"emails": mixed, "step": "apply"})
    assert response.status_code == 302
    assert enrolled(course) == {"known1@example.com", "known2@example.com", "done@example.com"}
    assert rows(AccountToken, AccountToken.purpose == "invite") == 2
    assert {m.to for m in outbox.mails} == {"new1@example.com", "new2@example.com"}
    assert "Chemistry" in outbox.mails[0].subject
    page = client.get(f"/courses/{course.id}").data.decode()
    assert "Enrolled 2 student(s); 1 already enrolled. Invited 2" in page
    assert "Invited, not yet joined (2)" in page and "new1@example.com" in page


def test_accepting_creates_enrols_signs_in_and_lands_on_the_course(app, client, course, outbox):
    client.post(
        f"/courses/{course.id}/enroll", data={"emails": "nina@example.com", "step": "apply"}
    )
    link = outbox.link("nina@example.com")
    client.post("/logout")
    assert client.get(link).status_code == 200  # opening it changes nothing
    response = client.post(link, data=JOIN)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/courses/{course.id}"
    nina = db.session.scalar(select(User).where(User.email == "nina@example.com"))
    assert (nina.name, nina.role) == ("Nina New", "student")
    assert nina.check_password(JOIN["password"])
    assert "nina@example.com" in enrolled(course)
    page = client.get(f"/courses/{course.id}")
    assert page.status_code == 200 and b"Chemistry" in page.data  # signed in as Nina
    again = client.post(link, data=JOIN)
    assert again.status_code == 410


def test_reinviting_resends_a_new_link_and_the_old_one_dies(client, course, outbox, rows):
    data = {"emails": "late@example.com", "step": "apply"}
    client.post(f"/courses/{course.id}/enroll", data=data)
    first = outbox.link("late@example.com")
    preview = client.post(
        f"/courses/{course.id}/enroll", data={**data, "step": "preview"}
    ).data.decode()
    assert "already invited" in preview
    client.post(f"/courses/{course.id}/enroll", data=data)
    second = outbox.link("late@example.com")
    assert first != second and len(outbox.to("late@example.com")) == 2
    assert rows(AccountToken) == 1
    client.post("/logout")
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200


def test_cancelled_invitation_link_is_refused(client, course, outbox, rows):
    client.post(
        f"/courses/{course.id}/enroll", data={"emails": "gone@example.com", "step": "apply"}
    )
    link = outbox.link("gone@example.com")
    row = db.session.scalar(select(AccountToken))
    assert client.post(f"/courses/{course.id}/invitations/{row.id}/cancel").status_code == 302
    assert b"Invited, not yet joined" not in client.get(f"/courses/{course.id}").data
    client.post("/logout")
    response = client.post(link, data=JOIN)
    assert response.status_code == 410
    assert rows(User, User.email == "gone@example.com") == 0


def test_expired_invitation_is_refused_and_writes_nothing(client, course, outbox, rows):
    client.post(f"/courses/{course.id}/enroll", data={"emails": "old@example.com", "step": "apply"})
    link = outbox.link("old@example.com")
    db.session.scalar(select(AccountToken)).expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    client.post("/logout")
    response = client.post(link, data=JOIN)
    assert response.status_code == 410 and b"expired" in response.data
    assert rows(User, User.email == "old@example.com") == 0


def test_invitations_of_another_course_cannot_be_cancelled(client, users, courses, course, outbox):
    client.post(f"/courses/{course.id}/enroll", data={"emails": "x@example.com", "step": "apply"})
    row = db.session.scalar(select(AccountToken))
    mine = courses.make(users.make("instructor"))
    assert client.post(f"/courses/{mine.id}/invitations/{row.id}/cancel").status_code == 404
    assert client.post(f"/courses/{course.id}/invitations/{2**40}/cancel").status_code == 404


def test_students_cannot_see_or_manage_invitations(
    app, client, users, courses, course, auth, outbox
):
    client.post(f"/courses/{course.id}/enroll", data={"emails": "x@example.com", "step": "apply"})
    row = db.session.scalar(select(AccountToken))
    student = users.make("student")
    db.session.add(Enrollment(course_id=course.id, user_id=student.id))
    db.session.commit()
    auth.switch(student)
    assert b"x@example.com" not in client.get(f"/courses/{course.id}").data
    assert client.post(f"/courses/{course.id}/invitations/{row.id}/cancel").status_code == 403
    assert (
        client.post(
            f"/courses/{course.id}/enroll", data={"emails": "y@example.com", "step": "apply"}
        ).status_code
        == 403
    )


def test_accepting_when_the_address_has_an_account_enrols_it_and_asks_to_sign_in(
    client, users, course, outbox
):
    client.post(
        f"/courses/{course.id}/enroll", data={"emails": "twin@example.com", "step": "apply"}
    )
    link = outbox.link("twin@example.com")
    users.make("student", email="twin@example.com")  # made meanwhile, e.g. by an admin
    client.post("/logout")
    response = client.post(link, data=JOIN)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert "twin@example.com" in enrolled(course)
    assert client.get("/").status_code == 302  # not signed in by the link
