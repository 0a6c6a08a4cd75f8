"""Every main screen outside the live room, on a laptop (1366x768) and a phone (390x844):
saved to ``test-artifacts/screens/`` for a person to look at, and checked for what a machine
can see (no sideways scrolling on the phone, no failed request, no script error).

The live rooms' screens come from the scenarios (``test_live_room.py``, ``test_broadcast.py``);
the recording shown here is made for real: the instructor goes live and records a few seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import (
    DEMO_PASSWORD,
    LAPTOP,
    PHONE,
    People,
    Person,
    enter,
    no_horizontal_scroll,
    no_problems,
    start_camera,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

# who -> the screens they are shown: (name, path)
SCREENS = {
    "instructor@example.com": [
        ("dashboard", "/"),
        ("courses", "/courses/"),
        ("course", "/courses/1"),
        ("lesson", "/courses/1/lessons/1"),
    ],
    "student1@example.com": [
        ("dashboard", "/"),
        ("course", "/courses/1"),
        ("lesson", "/courses/1/lessons/1"),
    ],
    "host@example.com": [
        ("dashboard", "/"),
        ("broadcasts", "/broadcasts/"),
        ("broadcast", "/broadcasts/1"),
    ],
    "employee@example.com": [("broadcasts", "/broadcasts/"), ("broadcast", "/broadcasts/1")],
}


@pytest.fixture(scope="module")
def screens() -> Path:
    folder = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(person: Person, name: str, folder: Path) -> None:
    """The current page at both sizes (the phone also as a whole page)."""
    page = person.page
    for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
        page.screenshot(path=folder / f"{name}-{label}.png")
        if label == "phone":
            no_horizontal_scroll(person)
            page.screenshot(path=folder / f"{name}-{label}-full.png", full_page=True)
    page.set_viewport_size(LAPTOP)


def test_login_screen(browser, server, screens: Path) -> None:
    context = browser.new_context(base_url=server.url, viewport=LAPTOP)
    person = Person(email="signed-out", page=context.new_page())
    person.watch()
    person.page.goto("/login")
    expect(person.page.get_by_label("Password")).to_be_visible()
    shoot(person, "login", screens)
    person.page.get_by_label("E-mail").fill("student1@example.com")
    person.page.get_by_label("Password").fill(DEMO_PASSWORD + "x")
    person.page.get_by_role("button", name="Sign in").click()
    shoot(person, "login-error", screens)
    problems = [p for p in person.problems if "/login" not in p]  # the refusal answers 4xx
    context.close()
    assert not problems


@pytest.mark.parametrize("email", list(SCREENS))
def test_pages(people: People, screens: Path, email: str) -> None:
    person = people.sign_in(email)
    who = email.split("@")[0]
    for name, path in SCREENS[email]:
        person.page.goto(path)
        shoot(person, f"{name}-{who}", screens)
    no_problems(person)


def test_recordings_library_and_player(people: People, screens: Path) -> None:
    teacher = people.sign_in("instructor@example.com")
    enter(teacher, "/rooms/lesson/1")
    start_camera(teacher)
    page = teacher.page
    page.get_by_role("button", name="Start recording").click()
    expect(page.locator("#rec")).to_be_visible()
    time.sleep(4)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.locator("#rec")).to_be_hidden()
    page.get_by_role("button", name="Stop camera").click()

    page.goto("/recordings/")
    shoot(teacher, "recordings-library", screens)
    page.locator("main a[href^='/recordings/']").first.click()
    page.wait_for_selector("#player[data-ready=true]", timeout=30_000)
    shoot(teacher, "recording-player", screens)
    no_problems(teacher)
