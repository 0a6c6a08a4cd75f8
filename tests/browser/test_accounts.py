"""Accounts end to end in Chromium, from an empty database without demo data, e-mail going to a
real SMTP server on loopback: the printed setup link makes an administrator, who creates an
instructor; the instructor creates a course and pastes three addresses (two without an account),
checks the preview and confirms; each invitee opens the e-mailed link, chooses a password and
lands in the course. The teacher's browser is in Asia/Seoul; one invitee's is in Europe/Berlin and
asks for Korean: the lesson the teacher schedules for 19:00 their time shows at 11:00 Berlin time
to that student, in Korean, with no English left on the class pages."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Person, no_problems
from tests.test_i18n import english_words

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


# The labels of the invitation page, as an English and a Korean browser see them.
LABELS = {
    "en": {
        "heading": "Join Biology 1",
        "name": "Name",
        "password": "New password",
        "repeat": "Repeat the new password",
        "join": "Join the course",
    },
    "ko": {
        "heading": "Biology 1 참여",
        "name": "이름",
        "password": "새 비밀번호",
        "repeat": "새 비밀번호 확인",
        "join": "과정 참여",
    },
}


def choose_password(
    person: Person, password: str, name: str | None = None, labels: dict[str, str] = LABELS["en"]
) -> None:
    page = person.page
    if name is not None:
        page.get_by_label(labels["name"], exact=True).fill(name)
    page.get_by_label(labels["password"], exact=True).fill(password)
    page.get_by_label(labels["repeat"]).fill(password)


def create_user(admin: Person, email: str, name: str, role: str) -> None:
    page = admin.page
    page.get_by_role("link", name="Create a user").click()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(f'tr[data-email="{email}"]')).to_be_visible()


def zone_kept(person: Person, zone: str, timeout: float = 10.0) -> None:
    """Wait until the account has taken the browser's zone (its pages send it once)."""
    deadline = time.monotonic() + timeout
    while True:
        person.page.goto("/account")
        if person.page.locator("select[name=timezone]").input_value() == zone:
            return
        assert time.monotonic() < deadline, f"the profile never took {zone}"
        time.sleep(0.3)


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

    teacher = people.visit("teacher", timezone_id="Asia/Seoul")
    teacher.page.goto(mail_link(mailbox, "teacher@school.example"))
    choose_password(teacher, "teacher's password")
    teacher.page.get_by_role("button", name="Set the password").click()
    zone_kept(teacher, "Asia/Seoul")
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

    lesson_form = teacher.page.locator("form[action$='/lessons']")
    lesson_form.get_by_label("Title").fill("Cells")
    lesson_form.get_by_label("Starts at").fill("2031-03-10T19:00")
    lesson_form.get_by_label("Duration (minutes)").fill("60")
    lesson_form.get_by_role("button").click()
    expect(teacher.page.get_by_text("7:00 PM")).to_be_visible()  # the teacher's own clock
    expect(teacher.page.get_by_text("Asia/Seoul").first).to_be_visible()

    korean = {"timezone_id": "Europe/Berlin", "locale": "ko-KR"}
    for address, name, language, options in (
        ("new.one@school.example", "Noa One", "ko", korean),
        ("new.two@school.example", "Ned Two", "en", {}),
    ):
        labels = LABELS[language]
        invitee = people.visit(address, **options)
        invitee.page.goto(mail_link(mailbox, address))
        expect(invitee.page.get_by_role("heading", name=labels["heading"])).to_be_visible()
        choose_password(invitee, f"{name}'s password", name=name, labels=labels)
        invitee.page.get_by_role("button", name=labels["join"]).click()
        expect(invitee.page).to_have_url(course_url)
        expect(invitee.page.get_by_role("heading", name="Biology 1")).to_be_visible()
        expect(invitee.page.locator(".who")).to_contain_text(name)

    # Noa's browser is in Berlin and asks for Korean: 19:00 in Seoul is 11:00 in Berlin (CET).
    noa = next(p for p in people.people if p.email == "new.one@school.example")
    zone_kept(noa, "Europe/Berlin")
    noa.page.goto(course_url)
    assert noa.page.evaluate("document.documentElement.lang") == "ko"
    expect(noa.page.locator("li", has_text="Cells")).to_contain_text("오전 11:00")
    expect(noa.page.locator("li", has_text="Cells")).to_contain_text("Europe/Berlin")
    noa.page.get_by_role("link", name="Cells").click()
    for url in (course_url, noa.page.url, "/"):
        noa.page.goto(url)
        known = ["Biology 1", "Cells", "Noa One", "Tess Teacher", "Europe/Berlin", "Lectern"]
        assert english_words(noa.page.content(), known) == set(), url

    teacher.page.goto(course_url)
    expect(teacher.page.get_by_role("heading", name="Students (3)")).to_be_visible()
    expect(teacher.page.get_by_text("Invited, not yet joined")).to_have_count(0)
    assert "Biology 1" in mailbox.to("new.one@school.example")[-1]["Subject"]
    no_problems(*people.people)
