"""Ending a lesson for everyone in Chromium: every student's page switches to the ended screen at
once, the instructor's gets no error, and nothing the instructor opens afterwards (dashboard,
recordings) brings the room back: a student reloading still sees the ended page, and the
dashboard lists the lesson as ended, not LIVE. The students then play the lesson's recording
from the ended page."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from .conftest import Person, enter, expect_live, start_camera, wait_for

LESSON = "Waves and oscillations"
SWITCH_S = 2.0  # every page shows the ended screen within this


def lesson_room(person: Person) -> str:
    """The demo lesson's room path, followed from the dashboard's LIVE list."""
    page = person.page
    page.goto("/")
    live = page.locator("li[data-session=live]", has_text=LESSON)
    expect(live).to_have_count(1)
    return live.get_by_role("link", name="Join").get_attribute("href")


RECORD_S = 4


def plays(person: Person) -> None:
    """The recording opened on ``person``'s page is ready and its camera video plays."""
    page = person.page
    page.wait_for_selector("#player[data-ready=true]", timeout=60_000)
    page.get_by_role("button", name="Play").click()
    video = page.locator("#main-slot video").first
    expect(video).to_be_visible()
    wait_for(
        lambda: video.evaluate("(v) => v.videoWidth > 0 && v.currentTime > 1"),
        what=f"the recording playing for {person.email}",
    )


def test_ending_switches_every_page_and_stays_ended(people):
    teacher = people.sign_in("instructor@example.com")
    students = [people.sign_in(f"student{n}@example.com") for n in (1, 2)]
    path = lesson_room(teacher)
    for person in (teacher, *students):
        enter(person, path)
        expect(person.page.locator("#onair")).to_have_text("LIVE")

    # A few seconds of the lesson are recorded; ending stops the recording.
    start_camera(teacher)
    teacher.page.get_by_role("button", name="Start recording").click()
    expect(teacher.page.locator("#rec")).to_be_visible()
    time.sleep(RECORD_S)

    end = teacher.page.locator("#end-session")
    end.click()
    expect(end).to_have_text("Confirm: end for everyone")
    started = time.monotonic()
    end.click()
    for student in students:
        screen = student.page.locator("#ended-screen")
        expect(screen).to_be_visible(timeout=SWITCH_S * 1000)
        expect(screen).to_contain_text("Ada Instructor ended it for everyone")
        expect(student.page.locator(".room-body")).to_be_hidden()
        expect(student.page.locator("#onair")).to_have_text("ENDED")
    assert time.monotonic() - started < SWITCH_S + 0.5
    expect(teacher.page.locator("#ended-screen")).to_be_visible()
    expect(teacher.page.get_by_role("button", name="Start again")).to_be_visible()
    time.sleep(1)
    expect(teacher.page.locator("#toast")).not_to_contain_text("did not answer")

    # The instructor looks around; nothing reopens the room.
    teacher.page.goto("/")
    teacher.page.goto("/recordings/")
    time.sleep(3)  # what used to reopen it took a few seconds

    student = students[0]
    response = student.page.reload()
    assert response is not None and response.status == 410
    expect(student.page.get_by_role("heading", name="This session has ended")).to_be_visible()
    expect(student.page.locator("#room")).to_have_count(0)
    student.page.goto("/")
    expect(student.page.locator("li[data-session=ended]", has_text=LESSON)).to_have_count(1)
    expect(student.page.locator("li[data-session=live]", has_text=LESSON)).to_have_count(0)

    # The student plays the recording from the ended page.
    student.page.goto(path)
    student.page.locator(".recordings-of-session a").first.click()
    plays(student)

    # The instructor starts it again from the ended page: the room is live once more.
    teacher.page.goto(path)
    teacher.page.get_by_role("button", name="Start again").click()
    expect_live(teacher)

    problems = [
        f"{p.email}: {problem}"
        for p in (teacher, *students)
        for problem in p.problems
        if not problem.startswith(f"410 {people.server.url}{path}")
    ]
    assert not problems, "\n".join(problems)
