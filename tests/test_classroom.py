"""Courses: creating them, enrolling students from pasted lists, scheduling lessons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from accounts.emails import MAX_ADDRESSES, parse_email_list
from classroom.models import Course, Enrollment, Lesson
from lectern.extensions import db

LESSON = {"title": "Optics", "starts_at": "2030-01-01T10:00", "duration_minutes": "45"}


@pytest.fixture
def instructor(users, auth):
    """A signed-in instructor."""
    user = users.make("instructor")
    auth.switch(user)
    return user


@pytest.fixture
def course(courses, instructor):
    """A course owned by the signed-in instructor."""
    return courses.make(instructor, title="Physics")


# --- creating courses ------------------------------------------------------------------------


def test_create_course(client, instructor):
    response = client.post("/courses/new", data={"title": "  Optics ", "description": "Light"})
    assert response.status_code == 302
    course = db.session.scalars(select(Course)).one()
    assert response.headers["Location"] == f"/courses/{course.id}"
    assert (course.title, course.description, course.owner_id) == ("Optics", "Light", instructor.id)
    page = client.get(response.headers["Location"])
    assert b"Optics" in page.data and b"Course created." in page.data


@pytest.mark.parametrize(
    "data",
    [
        {"title": "x" * 201},
        {"title": ""},
        {"title": "   "},
        {},
        {"title": "Fine", "description": "d" * 4001},
    ],
    ids=["title-201", "title-empty", "title-blank", "title-missing", "description-4001"],
)
def test_invalid_course_is_400_and_not_saved(client, instructor, rows, data):
    response = client.post("/courses/new", data=data)
    assert response.status_code == 400
    assert b'aria-invalid="true"' in response.data
    assert rows(Course) == 0


def test_title_of_200_characters_is_accepted(client, instructor):
    assert client.post("/courses/new", data={"title": "x" * 200}).status_code == 302
    assert db.session.scalars(select(Course)).one().title == "x" * 200


def test_course_list_shows_only_own_and_enrolled_courses(client, auth, users, courses):
    me, other = users.make("student"), users.make("instructor")
    courses.make(other, title="Enrolled course", students=(me,))
    courses.make(other, title="Someone else's course")
    auth.switch(me)
    page = client.get("/courses/").data
    assert b"Enrolled course" in page
    assert b"Someone else" not in page
    assert b"New course" not in page  # students cannot create courses


# --- enrolment -------------------------------------------------------------------------------


def test_enrol_pasted_list_with_commas_newlines_and_duplicates(client, users, course, rows):
    students = [users.make("student", email=f"s{n}@example.com") for n in range(4)]
    pasted = "s0@example.com, S1@Example.com\ns2@example.com;s0@example.com\r\n\n  s3@example.com  "
    response = client.post(f"/courses/{course.id}/enroll", data={"emails": pasted})
    assert response.status_code == 302
    enrolled = set(
        db.session.scalars(select(Enrollment.user_id).where(Enrollment.course_id == course.id))
    )
    assert enrolled == {s.id for s in students}
    assert rows(Enrollment) == 4
    assert b"Enrolled 4 student(s); 0 already enrolled." in client.get(f"/courses/{course.id}").data


def test_enrolling_again_counts_who_was_already_there(client, users, course, rows):
    a, b = users.make("student"), users.make("student")
    client.post(f"/courses/{course.id}/enroll", data={"emails": a.email})
    response = client.post(
        f"/courses/{course.id}/enroll",
        data={"emails": f"{a.email}, {b.email}"},
        follow_redirects=True,
    )
    assert b"Enrolled 1 student(s); 1 already enrolled." in response.data
    assert rows(Enrollment) == 2


def test_instructor_is_not_enrolled_in_own_course(client, instructor, course, rows):
    response = client.post(f"/courses/{course.id}/enroll", data={"emails": instructor.email})
    assert response.status_code == 302
    assert rows(Enrollment) == 0


@pytest.mark.parametrize(
    ("bad", "status", "shown"),
    [
        ("not-an-address", 400, b"<li>line 2: not-an-address</li>"),
        ("ghost@example.com", 200, b"has no account: will be invited by e-mail"),
        ("half@", 400, b"<li>line 2: half@</li>"),
    ],
)
def test_a_list_with_a_bad_or_unknown_address_is_previewed_first(
    client, users, course, rows, bad, status, shown
):
    """Nothing is written until the preview is confirmed (tests/accounts/test_invitations.py)."""
    good = [users.make("student") for _ in range(2)]
    pasted = f"{good[0].email}\n{bad}, {good[1].email}"
    response = client.post(f"/courses/{course.id}/enroll", data={"emails": pasted})
    assert response.status_code == status
    assert shown in response.data
    assert b"Confirm" in response.data
    assert rows(Enrollment) == 0


def test_all_bad_lines_are_listed(client, users, course, rows):
    ok = users.make("student")
    pasted = f"{ok.email}\nnope1\nghost1@example.com nope2"
    response = client.post(f"/courses/{course.id}/enroll", data={"emails": pasted})
    assert response.status_code == 400
    for line in (b"line 2: nope1", b"line 3: nope2"):
        assert b"<li>" + line + b"</li>" in response.data
    assert rows(Enrollment) == 0


def test_empty_enrolment_list_is_400(client, course, rows):
    assert client.post(f"/courses/{course.id}/enroll", data={"emails": ""}).status_code == 400
    assert rows(Enrollment) == 0


def test_too_many_addresses_enrols_nobody(client, users, course, rows):
    pasted = "\n".join(f"p{n}@example.com" for n in range(MAX_ADDRESSES + 1))
    response = client.post(f"/courses/{course.id}/enroll", data={"emails": pasted})
    assert response.status_code == 400
    assert b"Paste at most 1000 at a time." in response.data
    assert rows(Enrollment) == 0


@pytest.mark.parametrize(
    ("text", "emails", "invalid"),
    [
        ("a@example.com,b@example.com", ["a@example.com", "b@example.com"], []),
        ("A@EXAMPLE.com\n\na@example.com", ["a@example.com"], []),
        ("<a@example.com>; x y", ["a@example.com"], ["x", "y"]),
        ("", [], []),
        (" ,; \n", [], []),
        ("a@@example.com", [], ["a@@example.com"]),
    ],
)
def test_parse_email_list(text, emails, invalid):
    parsed = parse_email_list(text)
    assert parsed.emails == emails
    assert parsed.invalid == invalid


def test_remove_student(client, auth, users, courses, instructor, rows):
    student = users.make("student")
    course = courses.make(instructor, students=(student,))
    response = client.post(f"/courses/{course.id}/students/{student.id}/remove")
    assert response.status_code == 302
    assert rows(Enrollment) == 0
    auth.switch(student)
    assert client.get(f"/courses/{course.id}").status_code == 404


def test_removing_someone_not_enrolled_is_404(client, users, course, instructor):
    stranger = users.make("student")
    assert client.post(f"/courses/{course.id}/students/{stranger.id}/remove").status_code == 404
    assert client.post(f"/courses/{course.id}/students/{instructor.id}/remove").status_code == 404
    assert client.post(f"/courses/{course.id}/students/99999/remove").status_code == 404


def test_removing_a_student_keeps_other_enrolments(client, users, courses, instructor, rows):
    student = users.make("student")
    first = courses.make(instructor, students=(student,))
    second = courses.make(instructor, students=(student,))
    client.post(f"/courses/{first.id}/students/{student.id}/remove")
    assert rows(Enrollment, Enrollment.course_id == second.id) == 1


# --- lessons ---------------------------------------------------------------------------------


def test_schedule_lesson(client, course):
    response = client.post(f"/courses/{course.id}/lessons", data=LESSON)
    assert response.status_code == 302
    lesson = db.session.scalars(select(Lesson)).one()
    assert response.headers["Location"] == f"/courses/{course.id}/lessons/{lesson.id}"
    assert (lesson.title, lesson.duration_minutes) == ("Optics", 45)
    assert lesson.starts_at.isoformat() == "2030-01-01T10:00:00"
    assert b"Optics" in client.get(f"/courses/{course.id}").data


@pytest.mark.parametrize("minutes", ["0", "4", "1441", "100000", "-5", "abc", "1.5", ""])
def test_bad_duration_is_400_and_not_saved(client, course, rows, minutes):
    response = client.post(
        f"/courses/{course.id}/lessons", data={**LESSON, "duration_minutes": minutes}
    )
    assert response.status_code == 400
    assert rows(Lesson) == 0


@pytest.mark.parametrize("minutes", ["5", "1440"])
def test_duration_limits_are_inclusive(client, course, minutes):
    response = client.post(
        f"/courses/{course.id}/lessons", data={**LESSON, "duration_minutes": minutes}
    )
    assert response.status_code == 302
    assert db.session.scalars(select(Lesson)).one().duration_minutes == int(minutes)


@pytest.mark.parametrize(
    "change",
    [
        {"starts_at": "next tuesday"},
        {"starts_at": "2030-13-01T10:00"},
        {"starts_at": ""},
        {"title": ""},
        {"title": "t" * 201},
    ],
)
def test_bad_lesson_is_400_and_not_saved(client, course, rows, change):
    response = client.post(f"/courses/{course.id}/lessons", data={**LESSON, **change})
    assert response.status_code == 400
    assert rows(Lesson) == 0


def test_lesson_of_another_course_is_404(client, courses, instructor):
    mine, other = courses.make(instructor), courses.make(instructor)
    lesson = courses.lesson(other)
    assert client.get(f"/courses/{other.id}/lessons/{lesson.id}").status_code == 200
    assert client.get(f"/courses/{mine.id}/lessons/{lesson.id}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/courses/99999",
        "/courses/{course}/lessons/99999",
        "/courses/99999/lessons/{lesson}",
    ],
)
def test_unknown_ids_are_404(client, courses, course, path):
    lesson = courses.lesson(course)
    assert client.get(path.format(course=course.id, lesson=lesson.id)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/courses/{course}", {}),
        ("GET", "/courses/{course}/lessons/{lesson}", {}),
        ("POST", "/courses/{course}/enroll", {"emails": "{student}"}),
        ("POST", "/courses/{course}/lessons", LESSON),
        ("POST", "/courses/{course}/students/{student_id}/remove", {}),
    ],
)
def test_another_instructors_course_is_invisible(
    client, users, courses, instructor, rows, method, path, data
):
    student = users.make("student")
    theirs = courses.make(users.make("instructor"), students=(student,))
    lesson = courses.lesson(theirs)
    ids = {"course": theirs.id, "lesson": lesson.id, "student": student.email,
           "student_id": student.id}  # fmt: skip
    form = {k: v.format(**ids) for k, v in data.items()}
    response = client.open(path.format(**ids), method=method, data=form)
    assert response.status_code == 404
    assert (rows(Enrollment), rows(Lesson)) == (1, 1)  # untouched


@pytest.mark.parametrize(
    ("starts_in", "minutes", "status"),
    [
        (timedelta(minutes=-5), 60, b"This lesson is on now."),
        (timedelta(hours=-2), 60, b"This lesson has ended."),
        (timedelta(days=1), 60, b"This lesson has not started yet."),
    ],
)
def test_lesson_page_says_whether_it_is_live(client, courses, course, starts_in, minutes, status):
    lesson = courses.lesson(course, title="Waves", starts_in=starts_in, minutes=minutes)
    page = client.get(f"/courses/{course.id}/lessons/{lesson.id}")
    assert page.status_code == 200
    assert b"Waves" in page.data and status in page.data


def test_student_sees_course_without_the_instructor_tools(client, auth, users, courses):
    student = users.make("student")
    course = courses.make(users.make("instructor"), title="Physics", students=(student,))
    courses.lesson(course, title="Waves")
    auth.switch(student)
    page = client.get(f"/courses/{course.id}").data
    assert b"Waves" in page
    assert b"Schedule a lesson" not in page and b"Enrol students" not in page
