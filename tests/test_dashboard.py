"""The dashboard: what is live now and what comes next, for the signed-in user only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lectern.dashboard import UPCOMING_LIMIT


def section(html: str, heading: str) -> str:
    """The text of the dashboard card headed ``heading``."""
    start = html.index(f"<h2>{heading}</h2>")
    return html[start : html.index("</section>", start)]


@pytest.fixture
def student(users, auth):
    """A signed-in student."""
    user = users.make("student")
    auth.switch(user)
    return user


@pytest.fixture
def dashboard(client):
    """The dashboard page as text."""

    def get() -> str:
        response = client.get("/")
        assert response.status_code == 200
        return response.data.decode()

    return get


def test_live_lesson_is_live_now_and_future_is_next(users, courses, student, dashboard):
    course = courses.make(users.make("instructor"), title="Physics", students=(student,))
    courses.lesson(course, title="Waves", starts_in=timedelta(minutes=-5), minutes=60)
    courses.lesson(course, title="Momentum", starts_in=timedelta(days=2))
    courses.lesson(course, title="Vectors", starts_in=timedelta(days=-1))  # over
    page = dashboard()
    live, upcoming = section(page, "Live now"), section(page, "Next")
    assert "Waves" in live and "LIVE" in live and "Physics" in live
    assert "Momentum" in upcoming and "Momentum" not in live
    assert "Waves" not in upcoming
    assert "Vectors" not in page


def test_empty_dashboard_says_so(student, dashboard):
    page = dashboard()
    assert "Nothing is live right now." in section(page, "Live now")
    assert "Nothing scheduled." in section(page, "Next")


def test_other_peoples_courses_are_not_shown(users, courses, student, dashboard):
    other = courses.make(users.make("instructor"), title="Chemistry")
    courses.lesson(other, title="Acids", starts_in=timedelta(minutes=-5))
    courses.lesson(other, title="Bases", starts_in=timedelta(days=1))
    page = dashboard()
    assert "Acids" not in page and "Bases" not in page and "Chemistry" not in page


def test_instructor_sees_own_lessons(client, auth, users, courses, dashboard):
    teacher = users.make("instructor")
    course = courses.make(teacher, title="Physics")
    courses.lesson(course, title="Waves", starts_in=timedelta(minutes=-5))
    auth.switch(teacher)
    assert "Waves" in section(dashboard(), "Live now")


def test_next_is_in_start_order_and_limited(users, courses, student, dashboard):
    course = courses.make(users.make("instructor"), students=(student,))
    for n in reversed(range(UPCOMING_LIMIT + 2)):
        courses.lesson(course, title=f"Lesson #{n:02d}", starts_in=timedelta(days=n + 1))
    upcoming = section(dashboard(), "Next")
    shown = [
        f"Lesson #{n:02d}" for n in range(UPCOMING_LIMIT + 2) if f"Lesson #{n:02d}" in upcoming
    ]
    assert shown == [f"Lesson #{n:02d}" for n in range(UPCOMING_LIMIT)]
    positions = [upcoming.index(title) for title in shown]
    assert positions == sorted(positions)


def test_broadcasts_on_the_dashboard(users, broadcasts, student, dashboard):
    host = users.make("host")
    broadcasts.make(host, mode="open", title="All-hands now", starts_in=timedelta(minutes=-1))
    broadcasts.make(host, mode="open", title="Webinar later", starts_in=timedelta(days=1))
    broadcasts.make(host, mode="invite", title="Secret board meeting")
    invited = broadcasts.make(host, mode="invite", title="Shareholder meeting")
    broadcasts.register(invited, email=student.email, status="pending")
    page = dashboard()
    assert "All-hands now" in section(page, "Live now")
    assert "Webinar later" in section(page, "Next")
    assert "Shareholder meeting" in section(page, "Next")
    assert "Secret board meeting" not in page


def test_signed_out_dashboard_redirects_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
