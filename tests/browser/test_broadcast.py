"""A broadcast in real browsers: the all-hands from the demo data, end to end.

The host goes live with camera and slides; three attendees (one on a phone) watch; questions
go through moderation (approve, upvote, merge a duplicate, answer); an anonymous poll is voted
on and revealed; an attendee is invited to the stage, is seen by the others, and sent back.
Attendees never see who else is in the room. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import (
    PHONE,
    People,
    Person,
    join_from,
    no_problems,
    question,
    screenshots,
    sees_slide,
    sees_video_of,
    show_tab,
    start_camera,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

BROADCAST = "/broadcasts/1"


def register_and_join(person: Person) -> None:
    """Register for the open all-hands from its page, then enter the live room."""
    person.page.goto(BROADCAST)
    person.page.get_by_role("button", name="Register").click()
    person.page.get_by_role("link", name="Join the live room").click()
    expect(person.page.locator("#conn")).to_have_attribute("data-state", "live")


def present_slides(host: Person, pdf_file: Path) -> None:
    page = host.page
    page.locator("#upload-file").set_input_files(pdf_file)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-text")).to_contain_text("Ready", timeout=30_000)
    page.get_by_role("button", name="Show page 2").click()
    sees_slide(host, 2, 3)


def sees_no_people(person: Person) -> None:
    expect(person.page.get_by_role("tab", name=re.compile("^People"))).to_have_count(0)
    expect(person.page.locator("#people-list, #panel-people")).to_have_count(0)


def pending(host: Person, text: str):
    return host.page.locator("#qa-pending li.question", has_text=text)


def test_all_hands(people: People, pdf_file: Path, artifacts: Path) -> None:
    host = people.sign_in("host@example.com")
    join_from(host, BROADCAST)
    present_slides(host, pdf_file)
    start_camera(host)

    eli = people.sign_in("employee@example.com")  # registered and approved in the demo data
    join_from(eli, BROADCAST)
    sam = people.sign_in("shareholder@example.com", PHONE)
    register_and_join(sam)
    ben = people.sign_in("student1@example.com")
    register_and_join(ben)
    attendees = (eli, sam, ben)
    for attendee in attendees:
        sees_video_of(attendee, "Hana Host")
        sees_slide(attendee, 2, 3)
        sees_no_people(attendee)
    expect(host.page.locator("#presence-count")).to_have_text("4 people here")
    show_tab(host, "People")
    expect(host.page.locator("#people-list li")).to_have_count(4)
    show_tab(host, "Q&A")

    # A question waits for moderation; only its author and the host see it until approved.
    asked = "Will the roadmap include offline mode?"
    sam.page.get_by_label("Your question").fill(asked)
    sam.page.get_by_role("button", name="Ask", exact=True).click()
    expect(question(sam, asked).locator(".flags")).to_have_text("Waiting for approval")
    expect(pending(host, asked)).to_have_count(1)
    for other in (eli, ben):
        expect(question(other, asked)).to_have_count(0)
    pending(host, asked).get_by_role("button", name="Approve").click()
    for attendee in attendees:
        expect(question(attendee, asked)).to_have_count(1)

    # Another attendee upvotes it.
    question(eli, asked).get_by_role("button", name=re.compile("^Upvote")).click()
    expect(question(host, asked).locator(".vote")).to_have_text("▲ 1")
    expect(question(ben, asked).locator(".vote")).to_have_text("▲ 1")

    # A duplicate is merged into it: the host keeps it folded away, its author loses it.
    duplicate = "Is offline mode on the roadmap?"
    ben.page.get_by_label("Your question").fill(duplicate)
    ben.page.get_by_role("button", name="Ask", exact=True).click()
    expect(pending(host, duplicate)).to_have_count(1)
    pending(host, duplicate).get_by_role("button", name="Merge into…").click()
    into = host.page.get_by_label("Merge into question")
    into.select_option(into.locator("option", has_text=asked).get_attribute("value"))
    host.page.get_by_role("button", name="Merge", exact=True).click()
    expect(pending(host, duplicate)).to_have_count(0)
    expect(host.page.locator("#qa-merged-title")).to_have_text("Merged duplicates (1)")
    merged = host.page.locator("#qa-merged li.question", has_text=duplicate)
    expect(merged.locator(".flags")).to_contain_text(re.compile(r"Merged into #\d+"))
    expect(ben.page.locator("li.question", has_text=duplicate)).to_have_count(0)
    expect(eli.page.locator("li.question", has_text=duplicate)).to_have_count(0)

    # The host answers it aloud; everyone sees it answered.
    question(host, asked).get_by_role("button", name="Answered live").click()
    for person in (host, *attendees):
        expect(question(person, asked).locator(".flags")).to_contain_text("Answered")

    # An anonymous poll: opened, voted on by every attendee, revealed to all.
    show_tab(host, "Polls")
    host.page.get_by_text("New poll").click()
    host.page.get_by_label("Poll question").fill("Which topic next quarter?")
    host.page.get_by_role("textbox", name="Option 1").fill("Mobile app")
    host.page.get_by_role("textbox", name="Option 2").fill("Offline mode")
    host.page.get_by_label("Anonymous ballots").check()
    host.page.get_by_role("button", name="Open poll").click()
    choices = ("Offline mode", "Offline mode", "Mobile app")
    for attendee, choice in zip(attendees, choices, strict=True):
        show_tab(attendee, "Polls")
        expect(attendee.page.locator("#poll-list .flags")).to_contain_text("anonymous ballots")
        attendee.page.get_by_label(choice).check()
        attendee.page.get_by_role("button", name="Vote").click()
        expect(attendee.page.locator(".voted")).to_have_text(f"You voted: {choice}")
    expect(host.page.locator(".result-label").nth(1)).to_have_text("Offline mode: 2 (67%)")
    expect(eli.page.locator(".results")).to_have_count(0)
    host.page.get_by_role("button", name="Reveal results").click()
    for person in (host, *attendees):
        labels = person.page.locator(".result-label")
        expect(labels).to_have_text(["Mobile app: 1 (33%)", "Offline mode: 2 (67%)"])

    # The host invites an attendee to the stage; the others see and hear them.
    show_tab(host, "People")
    host.page.get_by_role("button", name="Invite Eli Employee to the stage").click()
    # The role change reconnects (and may reload) the page: slow on a loaded machine.
    expect(eli.page.locator("#stage-prompt")).to_contain_text("You are on stage", timeout=30_000)
    expect(eli.page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(
        host.page.get_by_role("button", name="Remove Eli Employee from the stage")
    ).to_be_visible()
    start_camera(eli)
    expect(eli.page.locator("#stage-prompt")).to_be_hidden()
    for watcher in (sam, ben, host):
        sees_video_of(watcher, "Eli Employee")

    screenshots(host, "broadcast-room-host", artifacts)
    screenshots(ben, "broadcast-room-attendee", artifacts)
    screenshots(sam, "broadcast-room-phone-attendee", artifacts)

    # And back to the audience: their camera goes off, their tile leaves everyone's stage.
    host.page.get_by_role("button", name="Remove Eli Employee from the stage").click()
    expect(eli.page.get_by_role("button", name="Stop camera")).to_have_count(0)
    expect(eli.page.locator("#publish-controls")).to_be_hidden(timeout=30_000)
    expect(eli.page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
    for watcher in (sam, ben):
        expect(watcher.page.locator("figure.tile", has_text="Eli Employee")).to_have_count(0)
    no_problems(host, *attendees)


def test_weighted_poll_at_the_shareholder_meeting(people: People) -> None:
    """Votes weighted by shares: the holder's ballot counts their 1,200 shares; the results
    say so in shares and percentages of the weight."""
    host = people.sign_in("host@example.com")
    host.page.goto("/rooms/broadcast/2")
    expect(host.page.locator("#conn")).to_have_attribute("data-state", "live")
    sam = people.sign_in("shareholder@example.com", PHONE)
    sam.page.goto("/rooms/broadcast/2")
    expect(sam.page.locator("#conn")).to_have_attribute("data-state", "live")

    show_tab(host, "Polls")
    host.page.get_by_text("New poll").click()
    host.page.get_by_label("Poll question").fill("Approve the dividend?")
    host.page.get_by_role("textbox", name="Option 1").fill("For")
    host.page.get_by_role("textbox", name="Option 2").fill("Against")
    host.page.get_by_label("Weighted by shares").check()
    host.page.get_by_role("button", name="Open poll").click()
    show_tab(sam, "Polls")
    expect(sam.page.locator("#poll-list .flags")).to_contain_text("weighted by shares")
    sam.page.get_by_label("For", exact=True).check()
    sam.page.get_by_role("button", name="Vote").click()
    expect(sam.page.locator(".voted")).to_have_text("You voted: For")
    # The host runs the poll and holds no shares: they are offered no ballot.
    expect(host.page.locator("#poll-list .ballot")).to_have_count(0)
    host.page.get_by_role("button", name="Reveal results").click()
    for person in (host, sam):
        expect(person.page.locator(".result-label")).to_have_text(
            ["For: 1,200 shares (100%)", "Against: 0 shares (0%)"]
        )
        expect(person.page.locator(".results .muted")).to_contain_text("1 ballot · 1,200 shares")
    no_problems(host, sam)
