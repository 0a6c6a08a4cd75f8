"""The live room page in real browsers: a class and a broadcast, end to end.

Each participant is a separate browser context signed in through the login form; video comes
from Chromium's fake camera through the server's media worker. Screenshots of every view, on a
laptop and on a phone, are saved to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import (
    DENY_CAMERA,
    NO_DEVICES,
    PHONE,
    SENDERS,
    People,
    Person,
    enter,
    expect_live,
    join_from,
    no_problems,
    question,
    screenshots,
    sees_slide,
    sees_video_of,
    show_tab,
    start_camera,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_class(people: People, pdf_file: Path, artifacts: Path) -> None:
    teacher = people.sign_in("instructor@example.com")
    join_from(teacher, "/courses/1/lessons/1")
    page = teacher.page

    # Slides: upload, watch the progress reach ready, show page 2.
    page.locator("#upload-file").set_input_files(pdf_file)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-progress")).to_be_visible()
    expect(page.locator("#upload-text")).to_contain_text("Ready", timeout=30_000)
    expect(page.locator("#upload-bar")).to_have_js_property("position", 1)
    page.get_by_role("button", name="Show page 2").click()
    sees_slide(teacher, 2, 3)
    expect(page.get_by_role("button", name="Show page 2")).to_have_attribute("aria-current", "true")

    start_camera(teacher)
    # The instructor records the class (a minute at least, stopped at the end).
    page.get_by_role("button", name="Start recording").click()
    expect(page.locator("#rec")).to_be_visible()
    recording_since = time.monotonic()

    ben = people.sign_in("student1@example.com")
    chloe = people.sign_in("student2@example.com", PHONE)
    dev = people.sign_in("student3@example.com", init_script=DENY_CAMERA)
    students = (ben, chloe, dev)
    for student in students:
        enter(student, "/rooms/lesson/1")
    for student in students:
        sees_video_of(student, "Ada Instructor")
        sees_slide(student, 2, 3)
    expect(page.locator("#presence-count")).to_have_text("4 people here")

    # A hand goes up; the instructor sees it in the queue and calls on the student.
    ben.page.get_by_role("button", name="Raise hand").click()
    expect(ben.page.locator("#hand-status")).to_contain_text("1st in line")
    expect(page.locator("#tab-hands .count")).to_have_text("1")
    expect(page.locator("#toast")).to_contain_text("Ben Student raised a hand")
    show_tab(teacher, "Hands")
    expect(page.locator("#hand-queue li")).to_have_count(1)
    expect(page.locator("#hand-queue li")).to_contain_text("Ben Student")
    page.screenshot(path=artifacts / "class-instructor-hands-laptop.png")
    page.get_by_role("button", name="Call on Ben Student").click()
    expect(ben.page.locator("#hand-status")).to_contain_text("called on")

    # Called on, the student goes live and another student receives the video.
    start_camera(ben)
    sees_video_of(chloe, "Ben Student")

    # A student who refuses the camera is told so, and still watches and listens.
    dev.page.get_by_role("button", name="Raise hand").click()
    page.get_by_role("button", name="Call on Dev Student").click()
    dev.page.get_by_role("button", name="Start camera & mic").click()
    expect(dev.page.locator("#media-note")).to_contain_text("access is blocked")
    expect(dev.page.locator("#media-note")).to_contain_text("You can still watch and listen")
    expect(dev.page.get_by_role("button", name="Start camera & mic")).to_be_enabled()
    sees_video_of(dev, "Ada Instructor")

    # Q&A: ask (markup stays text), upvote, answer in writing; everyone sees the same.
    show_tab(teacher, "Q&A")
    asked = "<script>window.__xss = 1</script> Why do two waves cancel out?"
    dev.page.get_by_label("Your question").fill(asked)
    dev.page.get_by_role("button", name="Ask", exact=True).click()
    expect(question(ben, "Why do two waves")).to_have_count(1)
    question(ben, "Why do two waves").get_by_role("button", name=re.compile("^Upvote")).click()
    expect(question(teacher, "Why do two waves").locator(".vote")).to_have_text("▲ 1")
    question(teacher, "Why do two waves").get_by_role("button", name="Write answer").click()
    answer = "They meet out of phase: crest on trough."
    page.get_by_label("Written answer").fill(answer)
    page.get_by_role("button", name="Publish answer").click()
    for person in (teacher, *students):
        item = question(person, "Why do two waves")
        expect(item.locator(".text")).to_have_text(asked)
        expect(item.locator(".answer")).to_have_text(f"Answer: {answer}")
        expect(item.locator(".vote")).to_have_text("▲ 1")
        expect(item.locator(".flags")).to_contain_text("Answered")
        assert person.page.locator("#qa-list script").count() == 0
        assert person.page.evaluate("() => window.__xss") is None
    expect(question(ben, "Why do two waves").locator(".vote")).to_have_attribute(
        "aria-pressed", "true"
    )

    # Chat, and the instructor limiting it to presenters.
    show_tab(chloe, "Chat")
    chloe.page.get_by_label("Message", exact=True).fill("Is the homework due Friday?")
    chloe.page.get_by_role("button", name="Send").click()
    show_tab(dev, "Chat")
    expect(dev.page.locator("#chat-list li")).to_contain_text(["Is the homework due Friday?"])
    show_tab(teacher, "Chat")
    page.get_by_label("Who may write").select_option("hosts")
    expect(dev.page.get_by_label("Message", exact=True)).to_be_disabled()
    expect(dev.page.locator("#chat-note")).to_have_text(
        "Only presenters can write in the chat right now."
    )
    page.get_by_label("Message", exact=True).fill("Yes, Friday.")
    page.get_by_role("button", name="Send").click()
    expect(chloe.page.locator("#chat-list li").last).to_contain_text("Yes, Friday.")

    screenshots(teacher, "class-instructor", artifacts)
    screenshots(chloe, "class-student", artifacts)

    # A minute of class recorded: it plays back with the slide shown beside the video.
    page.wait_for_timeout(max(0.0, RECORD_S - (time.monotonic() - recording_since)) * 1000)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.locator("#rec")).to_be_hidden()
    plays_back_with_slide(teacher, artifacts)

    # The instructor ends the class for everyone: each page says so and stays ended.
    page.get_by_role("button", name="End for everyone").click()
    page.get_by_role("button", name="Confirm: end for everyone").click()
    for person in (teacher, *students):
        expect(person.page.locator("#ended-screen")).to_contain_text(
            "Ada Instructor ended it for everyone"
        )
        expect(person.page.locator("#onair")).to_have_text("ENDED")
    expect(ben.page.locator("figure.tile")).to_have_count(0)
    # ... and starts it again (within its scheduled time): the room is live for everyone again.
    page.get_by_role("button", name="Start again").click()
    expect_live(teacher)
    enter(ben, "/rooms/lesson/1")
    no_problems(teacher, *students)


RECORD_S = 60


def plays_back_with_slide(teacher: Person, artifacts: Path) -> None:
    """Open the newest recording in a new tab: ready, at least RECORD_S long, the camera's video
    playing and slide 2 (shown throughout) beside it."""
    player = teacher.page.context.new_page()
    player.goto("/recordings/")
    player.locator("main a[href^='/recordings/']").first.click()
    player.wait_for_selector("#player[data-ready=true]", timeout=60_000)
    minutes, seconds = player.locator("#time-total").inner_text().split(":")
    assert int(minutes) * 60 + int(seconds) >= RECORD_S - 1
    player.get_by_role("button", name="Play").click()
    player.wait_for_function(
        "() => Number(document.getElementById('player').dataset.position) > 3", timeout=20_000
    )
    video = player.locator("#main-slot video").first
    expect(video).to_be_visible()
    wait_for(
        lambda: video.evaluate("(v) => v.videoWidth > 0 && !v.paused && v.currentTime > 2"),
        what="the recorded camera playing",
    )
    expect(player.locator("#slide-img")).to_have_attribute("data-page", "2")
    expect(player.locator("#slide-img")).to_be_visible()
    player.screenshot(path=artifacts / "class-recording-playback-laptop.png")
    player.close()


def test_broadcast(people: People, artifacts: Path) -> None:
    host = people.sign_in("host@example.com")
    join_from(host, "/broadcasts/1")
    start_camera(host)

    eli = people.sign_in("employee@example.com")
    join_from(eli, "/broadcasts/1")
    sees_video_of(eli, "Hana Host")

    # A second attendee registers (open registration) and joins from a phone.
    sam = people.sign_in("shareholder@example.com", PHONE)
    sam.page.goto("/broadcasts/1")
    sam.page.get_by_role("button", name="Register").click()
    sam.page.get_by_role("link", name="Join the live room").click()
    expect_live(sam)
    sees_video_of(sam, "Hana Host")

    # A moderated question: the host sees it at once, other attendees only once approved.
    asked = "Will the roadmap include offline mode?"
    eli.page.get_by_label("Your question").fill(asked)
    eli.page.get_by_role("button", name="Ask", exact=True).click()
    expect(question(eli, asked).locator(".flags")).to_have_text("Waiting for approval")
    pending = host.page.locator("#qa-pending li.question", has_text=asked)
    expect(pending).to_have_count(1)
    expect(host.page.locator("#pending-title")).to_have_text("Waiting for approval (1)")
    expect(question(sam, asked)).to_have_count(0)
    pending.get_by_role("button", name="Approve").click()
    expect(question(sam, asked)).to_have_count(1)
    expect(question(host, asked)).to_have_count(1)
    expect(question(eli, asked).locator(".flags")).to_be_hidden()

    # A poll: the host opens it, an attendee votes, the host sees and then reveals the results.
    show_tab(host, "Polls")
    host.page.get_by_text("New poll").click()
    host.page.get_by_label("Poll question").fill("Which topic next quarter?")
    host.page.get_by_role("textbox", name="Option 1").fill("Mobile app")
    host.page.get_by_role("textbox", name="Option 2").fill("Offline mode")
    host.page.get_by_role("button", name="Open poll").click()
    for attendee in (eli, sam):
        show_tab(attendee, "Polls")
        expect(attendee.page.locator("#poll-list .poll")).to_have_count(1)
    eli.page.get_by_label("Offline mode").check()
    eli.page.get_by_role("button", name="Vote").click()
    expect(eli.page.locator(".voted")).to_have_text("You voted: Offline mode")
    expect(host.page.locator(".result-label").nth(1)).to_have_text("Offline mode: 1 (100%)")
    expect(sam.page.locator(".results")).to_have_count(0)
    host.page.get_by_role("button", name="Reveal results").click()
    for attendee in (eli, sam):
        expect(attendee.page.locator(".result-label").nth(1)).to_have_text("Offline mode: 1 (100%)")
    expect(host.page.get_by_role("button", name="Hide results")).to_be_visible()

    # Recording: everyone sees when the session is recorded.
    host.page.get_by_role("button", name="Start recording").click()
    expect(eli.page.locator("#rec")).to_be_visible()
    expect(sam.page.locator("#rec")).to_have_text("● Recording")

    screenshots(host, "broadcast-host", artifacts)
    screenshots(eli, "broadcast-attendee", artifacts)
    screenshots(sam, "broadcast-second-attendee", artifacts)
    host.page.get_by_role("button", name="Stop recording").click()
    expect(eli.page.locator("#rec")).to_be_hidden()
    no_problems(host, eli, sam)


def test_camera_and_microphone_choice(people: People) -> None:
    """Pick devices, preview before going live, switch while live without renegotiating (the
    viewer keeps watching), the choice survives a reload; no devices: listen-only."""
    teacher = people.sign_in("instructor@example.com")
    enter(teacher, "/rooms/lesson/1")
    page = teacher.page
    camera = page.get_by_label("Camera", exact=True)
    mic = page.get_by_label("Microphone", exact=True)
    expect(camera.locator("option")).to_have_text(
        ["fake_device_0", "fake_device_1", "fake_device_2"]
    )
    expect(mic.locator("option", has_text="Fake Audio Input 1")).to_have_count(1)

    # A preview first: the user's own tile, nothing sent yet.
    page.get_by_role("button", name="Preview camera").click()
    expect(page.locator("figure.tile.local")).to_contain_text("preview: only you see this")
    page.wait_for_function("() => document.querySelector('figure.tile.local video').videoWidth > 0")
    assert page.evaluate(SENDERS) == []
    page.get_by_role("button", name="Go live").click()
    expect(page.get_by_role("button", name="Stop camera")).to_be_visible()
    expect(page.locator("figure.tile.local .name")).to_have_text("You")

    ben = people.sign_in("student1@example.com")
    enter(ben, "/rooms/lesson/1")
    sees_video_of(ben, "Ada Instructor")
    wait_for(lambda: page.evaluate(SENDERS), 10, "the publishing connection")
    [before] = page.evaluate(SENDERS)
    assert before["tracks"]["video"] == "fake_device_0"

    # Another camera and microphone while live: the same connection, the same offer.
    camera.select_option(label="fake_device_2")
    mic.select_option(label="Fake Audio Input 1")
    wait_for(
        lambda: (
            page.evaluate(SENDERS)[0]["tracks"]
            == {"video": "fake_device_2", "audio": "Fake Audio Input 1"}
        ),
        10,
        "the senders to carry the new devices",
    )
    [after] = page.evaluate(SENDERS)
    assert after["sdp"] == before["sdp"] and after["signaling"] == "stable"
    sees_video_of(ben, "Ada Instructor")

    # The choice is remembered.
    page.get_by_role("button", name="Stop camera").click()
    page.reload()
    expect_live(teacher)
    expect(camera).to_have_value(page.evaluate("() => localStorage.getItem('lectern.camera')"))
    expect(camera.locator("option:checked")).to_have_text("fake_device_2")
    start_camera(teacher)
    wait_for(lambda: page.evaluate(SENDERS), 10, "the publishing connection")
    assert page.evaluate(SENDERS)[0]["tracks"]["video"] == "fake_device_2"
    page.get_by_role("button", name="Stop camera").click()

    # No camera, no microphone: said so, and the room still plays.
    bare = people.sign_in("instructor@example.com", init_script=NO_DEVICES)
    enter(bare, "/rooms/lesson/1")
    note = bare.page.locator("#device-note")
    expect(note).to_have_text("No camera or microphone found. You can still watch and listen.")
    expect(bare.page.get_by_role("button", name="Start camera & mic")).to_be_disabled()
    expect(bare.page.get_by_label("Camera", exact=True)).to_be_disabled()
    no_problems(teacher, ben, bare)


# The shared screen's sending side, as the page set it up: [contentHint, degradationPreference].
SCREEN_SENDER = """
() => {
  for (const pc of window.__peers) {
    for (const sender of pc.getSenders()) {
      const track = sender.track;
      if (track && track.kind === "video" && track.label.startsWith("screen")) {
        return [track.contentHint, sender.getParameters().degradationPreference || null];
      }
    }
  }
  return null;
}
"""


def test_a_shared_screen_stays_sharp(people: People) -> None:
    """A shared screen reaches the students, sent as detailed content whose resolution the
    browser keeps when bandwidth runs short (it lowers the frame rate instead)."""
    teacher = people.sign_in("instructor@example.com")
    enter(teacher, "/rooms/lesson/1")
    teacher.page.get_by_role("button", name="Share screen").click()
    expect(teacher.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    ben = people.sign_in("student1@example.com")
    enter(ben, "/rooms/lesson/1")
    sees_video_of(ben, "Ada Instructor (screen)")
    sent = wait_for(lambda: teacher.page.evaluate(SCREEN_SENDER), 10, "the screen's sender")
    assert sent == ["detail", "maintain-resolution"], sent
