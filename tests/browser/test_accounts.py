"""Accounts end to end in Chromium, from an empty database without demo data, e-mail going to a
real SMTP server on loopback: the printed setup link makes an administrator, who creates an
instructor; the instructor creates a course and pastes three addresses (two without an account),
checks the preview and confirms; each invitee opens the e-mailed link, chooses a password and
lands in the course."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Person, no_problems

LINK = re.compile(r"(https?://\S+)")
SETUP = r"Create the first administrator \(link works once\): (\S+)"


def mail_link(mailbox: Any, address: str, timeout: float = 20.0) -> str:
    """The link in the newest e-mail to ``address``, waiting for one to arrive."""
    deadline = time.monotonic() + timeout
    while not mailbox.to(address):
        assert time.monotonic() < deadline, f"no e-mail to {address}"
        time.sleep(0.1)
    found = LINK.search(mailbox.text(mailbox.to(address)[-1]))
    assert found, mailbox.text(mailbox.to(address)[-1])
    return found.group(1)


def choose_password(person: Person, password: str, name: str | None = None) -> None:
    page = person.page
    if name is not None:
        page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("New password", exact=True).fill(password)
    page.get_by_label("Repeat the new password").fill(password)


def create_user(admin: Person, email: str, name: str, role: str) -> None:
    page = admin.page
    page.get_by_role("link", name="Create a user").click()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(f'tr[data-email="{email}"]')).to_be_visible()


def test_setup_admin_instructor_course_and_invitations(live_server, mailbox, people_on):
    server = live_server({"DEMO_DATA": "false", "MEDIA_WORKERS": "0", **mailbox.env})
    setup_url = server.wait_for_output(SETUP).group(1)
    people = people_on(server)

    admin = people.visit("admin")
    admin.page.goto(setup_url)
    admin.page.get_by_label("E-mail").fill("principal@school.example")
    choose_password(admin, "principal's password", name="Pat Principal")
    admin.page.get_by_role("button", name="Create the administrator").click()
    expect(admin.page).to_have_url(re.compile(r"/admin/users$"))
    create_user(admin, "teacher@school.example", "Tess Teacher", "instructor")
    create_user(admin, "known@school.example", "Kai Known", "student")

    teacher = people.visit("teacher")
    teacher.page.goto(mail_link(mailbox, "teacher@school.example"))
    choose_password(teacher, "teacher's password")
    teacher.page.get_by_role("button", name="Set the password").click()
    teacher.page.goto("/courses/new")
    teacher.page.get_by_label("Title").fill("Biology 1")
    teacher.page.get_by_role("button", name="Create course").click()
    expect(teacher.page.get_by_role("heading", name="Biology 1")).to_be_visible()
    course_url = teacher.page.url

    pasted = "known@school.example\nnew.one@school.example, NEW.TWO@school.example"
    teacher.page.get_by_label(re.compile("e-mail addresses")).fill(pasted)
    teacher.page.get_by_role("button", name="Check the list").click()
    preview = teacher.page.locator("#enrol-preview")
    expect(preview).to_contain_text("1 enrolled, 2 invited, 0 already enrolled.")
    preview.get_by_role("button", name="Confirm").click()
    expect(teacher.page.get_by_text("Invited, not yet joined (2)")).to_be_visible()

    for address, name in (
        ("new.one@school.example", "Noa One"),
        ("new.two@school.example", "Ned Two"),
    ):
        invitee = people.visit(address)
        invitee.page.goto(mail_link(mailbox, address))
        expect(invitee.page.get_by_role("heading", name="Join Biology 1")).to_be_visible()
        choose_password(invitee, f"{name}'s password", name=name)
        invitee.page.get_by_role("button", name="Join the course").click()
        expect(invitee.page).to_have_url(course_url)
        expect(invitee.page.get_by_role("heading", name="Biology 1")).to_be_visible()
        expect(invitee.page.locator(".who")).to_contain_text(name)

    teacher.page.reload()
    expect(teacher.page.get_by_role("heading", name="Students (3)")).to_be_visible()
    expect(teacher.page.get_by_text("Invited, not yet joined")).to_have_count(0)
    assert "Biology 1" in mailbox.to("new.one@school.example")[-1]["Subject"]
    no_problems(*people.people)
