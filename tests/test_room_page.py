"""The live room page: members get it with their settings, others a 404, guests the login."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest


class RoomPage(HTMLParser):
    """What the tests read from the page: ``#room``'s attributes, its scripts, inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.settings: dict[str, str | None] = {}
        self.scripts: list[dict[str, str | None]] = []
        self.styled = 0  # elements with a style attribute

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id") == "room":
            self.settings = found
        if tag == "script":
            self.scripts.append(found)
        self.styled += "style" in found


def read_page(html: bytes) -> RoomPage:
    parser = RoomPage()
    parser.feed(html.decode())
    return parser


def room_settings(html: bytes) -> dict[str, str | None]:
    return read_page(html).settings


@pytest.fixture
def lesson_world(users, courses):
    """An instructor's live lesson with one enrolled student, and an outsider."""
    teacher, student, outsider = (
        users.make("instructor"),
        users.make("student"),
        users.make("student"),
    )
    course = courses.make(teacher, students=(student,))
    lesson = courses.lesson(course, starts_in=timedelta(minutes=-5))
    return {"teacher": teacher, "student": student, "outsider": outsider, "lesson": lesson}


def test_student_gets_the_room_with_settings(client, auth, lesson_world):
    auth.switch(lesson_world["student"])
    lesson = lesson_world["lesson"]
    response = client.get(f"/rooms/lesson/{lesson.id}")
    assert response.status_code == 200
    settings = room_settings(response.data)
    assert settings["data-room"] == f"lesson:{lesson.id}"
    assert settings["data-role"] == "student"
    assert settings["data-user-id"] == str(lesson_world["student"].id)
    assert settings["data-can-publish"] == "false"
    assert "hand.raise" in (settings["data-permissions"] or "").split()
    assert "slides.present" not in (settings["data-permissions"] or "").split()
    assert settings["data-csrf"]
    assert settings["data-slides-url"] == f"/rooms/lesson/{lesson.id}/slides"
    assert b'id="upload-form"' not in response.data  # presenters only
    page = read_page(response.data)  # the CSP allows no inline script or style
    # (a JSON data block, the translations, is never run: CSP allows it)
    code = [script for script in page.scripts if script.get("type") != "application/json"]
    assert code and all(script.get("src") for script in code)
    assert page.styled == 0


def test_instructor_gets_presenter_tools(client, auth, lesson_world):
    auth.switch(lesson_world["teacher"])
    response = client.get(f"/rooms/lesson/{lesson_world['lesson'].id}")
    settings = room_settings(response.data)
    assert (settings["data-role"], settings["data-can-publish"]) == ("instructor", "true")
    assert b'id="upload-form"' in response.data


@pytest.mark.parametrize("path", ["/rooms/lesson/{id}", "/rooms/lesson/999999", "/rooms/nope/1"])
def test_non_members_and_unknown_rooms_are_404(client, auth, lesson_world, path):
    auth.switch(lesson_world["outsider"])
    assert client.get(path.format(id=lesson_world["lesson"].id)).status_code == 404


def test_signed_out_is_sent_to_login(client, lesson_world):
    response = client.get(f"/rooms/lesson/{lesson_world['lesson'].id}")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_lesson_page_links_to_the_room(client, auth, lesson_world):
    auth.switch(lesson_world["student"])
    lesson = lesson_world["lesson"]
    page = client.get(f"/courses/{lesson.course_id}/lessons/{lesson.id}")
    assert f'href="/rooms/lesson/{lesson.id}"'.encode() in page.data


@pytest.mark.parametrize(
    ("status", "linked"), [("approved", True), ("pending", False)], ids=["approved", "pending"]
)
def test_broadcast_page_links_to_the_room_when_joinable(
    client, auth, users, broadcasts, status, linked
):
    host, attendee = users.make("host"), users.make("attendee")
    broadcast = broadcasts.make(host, mode="approval", starts_in=timedelta(minutes=-1))
    broadcasts.register(broadcast, attendee, status=status)
    auth.switch(attendee)
    page = client.get(f"/broadcasts/{broadcast.id}")
    assert (f'href="/rooms/broadcast/{broadcast.id}"'.encode() in page.data) is linked
    room = client.get(f"/rooms/broadcast/{broadcast.id}")
    assert room.status_code == (200 if linked else 404)
