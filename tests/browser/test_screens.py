"""Every main screen, on a laptop (1366x768) and a phone upright (390x844) and sideways
(844x390): saved to ``test-artifacts/screens/`` for a person to look at,
and checked for what a machine can see (no sideways scrolling on the phone, no failed request,
no script error; in the room, no key control covered by another and nothing cut off).

The rooms are seen by each role at once (lesson: instructor, student; broadcast: host,
attendee, someone the host invited on to the stage), with slides and the presenters' cameras
on; the recording shown here is made for real: the instructor goes live and records a few
seconds.
"""

from __future__ import annotations

import re
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
    sees_slide,
    show_tab,
    start_camera,
)

LANDSCAPE = {"width": 844, "height": 390}
ROOM_SIZES = (("phone", PHONE), ("landscape", LANDSCAPE), ("laptop", LAPTOP))

# What a machine can see wrong with the room's layout at the current size: a list of sentences.
# Each pair is checked where both are shown: boxes from getBoundingClientRect, in the viewport.
ROOM_LAYOUT = """
() => {
  const problems = [];
  const shown = (node) => node && !node.closest("[hidden]") && node.getClientRects().length > 0
    && getComputedStyle(node).visibility !== "hidden";
  const box = (node) => node.getBoundingClientRect();
  const overlap = (a, b) => {
    const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    return x > 1 && y > 1;
  };
  const name = (node) => node.id ? `#${node.id}` : `.${[...node.classList].join(".")}`;
  const root = document.documentElement;
  const sideways = root.scrollWidth - root.clientWidth;
  if (sideways > 0) problems.push(`the page scrolls sideways by ${sideways}px`);

  // The fixed bar of one's own controls (phones) covers nothing that cannot be scrolled clear
  // of it: the whole stage fits above it, and the page's end (the last chat message, the last
  // question) scrolls up past it.
  const bar = document.querySelector(".toolbar");
  const fixed = shown(bar) && getComputedStyle(bar).position === "fixed";
  if (fixed) {
    const room = innerHeight - box(bar).height;
    const screen = document.getElementById("screen");
    const tall = shown(screen) ? Math.round(box(screen).height) : 0;
    if (tall > room + 1)
      problems.push(`the stage (${tall}px) is taller than the ${Math.round(room)}px above the bar`);
    window.scrollTo(0, root.scrollHeight);
    const last = ".panel:not([hidden]) li:last-child, .panels";
    const ends = [...document.querySelectorAll(last)].filter(shown);
    for (const end of ends) if (box(end).bottom > box(bar).top + 1)
      problems.push(`the control bar covers ${name(end)} at the end of the page`);
    window.scrollTo(0, 0);
  }

  // A notice (toast) covers none of one's own controls.
  const toast = document.getElementById("toast");
  if (shown(toast)) for (const button of document.querySelectorAll(".toolbar button"))
    if (shown(button) && overlap(box(toast), box(button)))
      problems.push(`the notice covers ${name(button)}`);

  // A video tile's badges stay off the picture: in its caption bar.
  for (const tile of document.querySelectorAll(".tile")) {
    const caption = tile.querySelector("figcaption");
    for (const badge of tile.querySelectorAll(".quality")) {
      const b = box(badge), c = box(caption);
      if (shown(badge) && (b.top < c.top - 1 || b.bottom > c.bottom + 1))
        problems.push("a connection badge covers a video tile's picture");
    }
    const high = Math.round(box(tile).height);
    if (high < 80) problems.push(`a video tile is ${high}px high`);
  }

  // Nothing cut off: no control hangs over the right edge (but in strips that scroll sideways:
  // the slides' thumbnails, the tabs).
  const controls = ".room :is(button, select, input, textarea, h1, h2)";
  for (const node of document.querySelectorAll(controls))
    if (shown(node) && !node.closest(".thumbs, .tabs") && box(node).right > root.clientWidth + 1)
      problems.push(`${name(node) || node.tagName} is cut off at the right edge`);
  return problems;
}
"""

# Says something in a notice at the bottom of the screen, as the room does (dom.js toast).
NOTICE = """
() => {
  const box = document.getElementById("toast");
  box.textContent = "You have been called on: turn on your camera and mic to speak.";
  box.hidden = false;
}
"""

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
    "admin@example.com": [
        ("admin-users", "/admin/users"),
        ("admin-new-user", "/admin/users/new"),
        ("profile", "/account"),
        ("password", "/account/password"),
    ],
}


@pytest.fixture(scope="module")
def screens() -> Path:
    folder = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(person: Person, name: str, folder: Path) -> None:
    """The current page on a laptop, a phone upright (also as a whole page) and sideways."""
    page = person.page
    for label, size in (("laptop", LAPTOP), ("phone", PHONE), ("sideways", LANDSCAPE)):
        page.set_viewport_size(size)
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
        page.screenshot(path=folder / f"{name}-{label}.png")
        if label != "laptop":
            no_horizontal_scroll(person)
        if label == "phone":
            page.screenshot(path=folder / f"{name}-{label}-full.png", full_page=True)
    page.set_viewport_size(LAPTOP)


def test_login_screen(browser, server, screens: Path) -> None:
    context = browser.new_context(base_url=server.url, viewport=LAPTOP)
    person = Person(email="signed-out", page=context.new_page())
    person.watch()
    person.page.goto("/login")
    expect(person.page.get_by_label("Password")).to_be_visible()
    shoot(person, "login", screens)
    person.page.goto("/password/forgot")
    shoot(person, "forgot-password", screens)
    person.page.goto("/login")
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


def shoot_room(person: Person, name: str, folder: Path) -> list[str]:
    """The room at each size, with a notice showing; what is wrong with its layout, by size."""
    page = person.page
    problems = []
    for label, size in ROOM_SIZES:
        page.set_viewport_size(size)
        page.evaluate(NOTICE)
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
        page.screenshot(path=folder / f"room-{name}-{label}.png")
        problems += [f"{name} at {label} size: {p}" for p in page.evaluate(ROOM_LAYOUT)]
        if label == "phone":
            page.screenshot(path=folder / f"room-{name}-{label}-full.png", full_page=True)
    page.evaluate("() => { document.getElementById('toast').hidden = true; }")
    return problems


def talk(person: Person, question: str, message: str) -> None:
    """Ask (where the role may) and chat, so that both lists have something at their end."""
    page = person.page
    if page.locator("#ask-form").count():
        page.get_by_label("Your question").fill(question)
        page.get_by_role("button", name="Ask", exact=True).click()
    show_tab(person, "Chat")
    page.locator("#chat-text").fill(message)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-list li", has_text=message)).to_have_count(1)


def test_rooms_on_phones_and_laptops(people: People, screens: Path, pdf_file: Path) -> None:
    """Each role's room, on a phone (upright and sideways) and a laptop: the controls it may
    use, none covered, nothing cut off or scrolling sideways."""
    teacher = people.sign_in("instructor@example.com", PHONE)
    enter(teacher, "/rooms/lesson/1")
    upload(teacher, pdf_file)
    start_camera(teacher)
    student = people.sign_in("student1@example.com", PHONE)
    enter(student, "/rooms/lesson/1")
    sees_slide(student, 1, 3)
    talk(student, "Why is the sky blue?", "Hello from a phone")

    host = people.sign_in("host@example.com", PHONE)
    enter(host, "/rooms/broadcast/1")
    upload(host, pdf_file)
    start_camera(host)
    eli = people.sign_in("employee@example.com", PHONE)
    enter(eli, "/rooms/broadcast/1")
    talk(eli, "Will the roadmap include offline mode?", "Hi from the audience")
    ben = people.sign_in("student1@example.com", PHONE)
    ben.page.goto("/broadcasts/1")
    ben.page.get_by_role("button", name="Register").click()
    enter(ben, "/rooms/broadcast/1")
    show_tab(host, "People")
    host.page.get_by_role("button", name=re.compile("^Invite Ben Student to")).click()
    expect(ben.page.locator("#publish-controls")).to_be_visible(timeout=20_000)
    expect(ben.page.locator("#tab-people")).to_have_count(0)  # on stage, not a moderator
    start_camera(ben)
    for presenter in (teacher, host):
        expect(presenter.page.locator("#ask-form")).to_have_count(0)
        show_tab(presenter, "Chat")

    problems = []
    for person, name in (
        (teacher, "lesson-instructor"),
        (student, "lesson-student"),
        (host, "broadcast-host"),
        (eli, "broadcast-attendee"),
        (ben, "broadcast-on-stage"),
    ):
        problems += shoot_room(person, name, screens)
    assert not problems, "\n".join(problems)
    no_problems(teacher, student, host, eli, ben)


def upload(presenter: Person, pdf_file: Path) -> None:
    """Upload a deck and show its first page."""
    page = presenter.page
    page.locator("#upload-file").set_input_files(pdf_file)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-text")).to_contain_text("Ready", timeout=30_000)
    page.get_by_role("button", name="Show page 1").click()
    sees_slide(presenter, 1, 3)
