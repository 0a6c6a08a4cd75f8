"""Languages: the Korean catalogues are complete, pages for a Korean user show no untranslated
English, the front end marks its strings, e-mails follow the recipient, and the language comes
from the profile, else ``?lang=``, else the browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale, format_datetime, refresh
from sqlalchemy import select

from accounts import notify
from accounts.models import User
from lectern import i18n
from lectern.extensions import db
from rooms.context import Refused
from rooms.models import Recording, Room
from rooms.namespace import error
from rooms.validate import Invalid, Text
from webinar.notify import join_mail

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[sd%]")

# Latin-alphabet words a Korean page may show, and why:
ALLOWED = {
    "Lectern",  # the product's name
    "English",  # the language switch names each language in itself
    "CSV",
    "PDF",
    "ics",
    "MP",  # MP4
    "WebM",
    "VP",  # VP8
    "WHIP",  # the ingest protocol (RFC 9725), as encoders name it
    "OBS",  # the encoder whose settings name it
    "H",  # H.264
    "Opus",  # video and sound codecs
    "UTF",  # file formats
    "UTC",
    "GMT",  # time zone names
    "example",
    "com",  # the example domain in the allowed-domain field's label
    "Q",
    "A",  # Q&A
}


# --- (a) the catalogues are complete ---------------------------------------------------------


def placeholders(text: str) -> list[str]:
    return sorted(m.group(0) for m in PLACEHOLDER.finditer(text))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[object]]:
    """Every string marked in the sources now, per domain (extracted into a temporary file)."""
    folder = tmp_path_factory.mktemp("pot")
    found: dict[str, list[object]] = {}
    for domain in i18n.DOMAINS:
        pot = folder / f"{domain}.pot"
        i18n.extract(domain, pot)
        with pot.open("rb") as fp:
            found[domain] = [m for m in read_po(fp) if m.id]
    return found


@pytest.mark.parametrize("domain", i18n.DOMAINS)
def test_korean_catalogue_is_complete(extracted: dict[str, list[object]], domain: str) -> None:
    with (i18n.SOURCES / "ko" / "LC_MESSAGES" / f"{domain}.po").open("rb") as fp:
        korean = read_po(fp)
    problems = []
    for message in extracted[domain]:
        found = korean.get(message.id)  # type: ignore[attr-defined]
        strings = (found.string,) if found and isinstance(found.string, str) else ()
        if found and not strings:
            strings = tuple(found.string)
        if found is None or found.fuzzy or not all(strings):
            problems.append(f"untranslated: {message.id!r}")  # type: ignore[attr-defined]
            continue
        english = message.id if isinstance(message.id, str) else message.id[-1]  # type: ignore[attr-defined]
        for text in strings:
            wanted, got = set(placeholders(english)), set(placeholders(text))
            if isinstance(message.id, tuple):  # type: ignore[attr-defined]
                wanted.discard("%(num)s")  # a Korean plural may leave the count implied
                got.discard("%(num)s")
            if wanted != got:
                problems.append(f"placeholders differ: {english!r} -> {text!r}")
    assert not problems, "\n".join(problems)


def test_catalogue_has_no_obsolete_entries() -> None:
    for domain in i18n.DOMAINS:
        text = (i18n.SOURCES / "ko" / "LC_MESSAGES" / f"{domain}.po").read_text("utf-8")
        assert "\n#~ " not in text, f"{domain}.po keeps obsolete entries"


# --- (b) pages for a Korean user show no untranslated English --------------------------------


class VisibleText(HTMLParser):
    """The text a person sees or hears: text nodes and labelling attributes, not scripts,
    styles, code samples or options that show their own value (time zone names)."""

    ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
    SKIPPED = {"script", "style", "code"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skipping: list[str] = []
        self.option_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in self.SKIPPED:
            self.skipping.append(tag)
        self.option_value = values.get("value") if tag == "option" else None
        self.parts += [values[a] or "" for a in self.ATTRIBUTES if a in values]
        if tag == "input" and values.get("type") in ("submit", "button"):
            self.parts.append(values.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self.skipping and data.strip() != self.option_value:
            self.parts.append(data)


def english_words(html: str, known: list[str]) -> set[str]:
    """Latin-alphabet words left on a page once user data, addresses and URLs are removed."""
    parser = VisibleText()
    parser.feed(html)
    text = " ".join(parser.parts)
    for value in sorted(known, key=len, reverse=True):
        text = text.replace(value, " ")
    text = re.sub(r"https?://\S+|\S+@\S+", " ", text)
    return {w for w in re.findall(r"[A-Za-z]+", text) if w not in ALLOWED}


@pytest.fixture
def korean_world(app: Flask, users, courses, broadcasts, auth) -> Iterator[tuple[list[str], dict]]:  # type: ignore[no-untyped-def]
    """A Korean instructor and host with a course, lessons and a broadcast with registrants."""
    teacher = users.make("admin", name="Kim Teacher")
    teacher.locale, teacher.timezone = "ko", "Asia/Seoul"
    student = users.make("student", name="Lee Student")
    course = courses.make(teacher, title="Physics One", students=(student,))
    live = courses.lesson(course, title="Waves Today", starts_in=timedelta(minutes=-5))
    courses.lesson(course, title="Optics Later", starts_in=timedelta(days=2))
    broadcast = broadcasts.make(teacher, kind="webinar", title="Quarterly Update")
    broadcasts.register(broadcast, student)
    broadcasts.register(broadcast, email="guest@example.com", status="pending")
    db.session.commit()
    auth.login(teacher)
    known = [
        teacher.name,
        student.name,
        teacher.email,
        student.email,
        "guest@example.com",
        "Physics One",
        "Waves Today",
        "Optics Later",
        "Quarterly Update",
        "Waves Recorded",
        "Asia/Seoul",
        # data, not language: CSV column names and the CSV files' names
        "name, email, holder_id, shares",
        "attendance.csv",
        "questions.csv",
    ]
    urls = {
        "dashboard": "/",
        "courses": "/courses/",
        "course": f"/courses/{course.id}",
        "lesson": f"/courses/{course.id}/lessons/{live.id}",
        "broadcasts": "/broadcasts/",
        "broadcast": f"/broadcasts/{broadcast.id}",
        "report": f"/broadcasts/{broadcast.id}/report",
        "recordings": "/recordings/",
        "profile": "/account",
        "new course": "/courses/new",
        "new broadcast": "/broadcasts/new",
        "not found": "/courses/999999",
        "room (presenter)": f"/rooms/lesson/{live.id}",
        "broadcast room (host)": f"/rooms/broadcast/{broadcast.id}",
        "recording": f"/recordings/{recording_of(live.id)}",
        "users": "/admin/users",
        "new user": "/admin/users/new",
        "password": "/account/password",
    }
    yield known, urls


def recording_of(lesson_id: int) -> int:
    """A finished recording of the lesson's room (no video: the player page's structure, its
    panels and its "nothing recorded" texts)."""
    room = db.session.scalar(select(Room).where(Room.kind == "lesson", Room.ref_id == lesson_id))
    if room is None:
        room = Room(kind="lesson", ref_id=lesson_id)
        db.session.add(room)
        db.session.flush()
    recording = Recording(
        room_id=room.id,
        title="Waves Recorded",
        status="ready",
        directory="",
        worker="127.0.0.1:1",
        started_ts=1_900_000_000.0,
        ended_ts=1_900_000_600.0,
    )
    db.session.add(recording)
    db.session.commit()
    return recording.id


@pytest.mark.parametrize(
    "page",
    [
        "dashboard",
        "courses",
        "course",
        "lesson",
        "broadcasts",
        "broadcast",
        "report",
        "recordings",
        "profile",
        "new course",
        "new broadcast",
        "not found",
        "room (presenter)",
        "broadcast room (host)",
        "recording",
        "users",
        "new user",
        "password",
    ],
)
def test_korean_pages_have_no_untranslated_text(
    client: FlaskClient, korean_world: tuple[list[str], dict], page: str
) -> None:
    known, urls = korean_world
    response = client.get(urls[page])
    assert response.status_code in (200, 404), response.status_code
    html = response.get_data(as_text=True)
    assert '<html lang="ko"' in html
    assert not english_words(html, known), f"{page}: untranslated {english_words(html, known)}"


def test_the_room_is_korean_for_a_korean_student(
    client: FlaskClient, korean_world: tuple[list[str], dict], auth: Any
) -> None:
    """The room as a participant sees it (their own controls, no presenter tools), the language
    from their profile even where the browser asks for English."""
    known, urls = korean_world
    student = db.session.scalar(select(User).where(User.name == "Lee Student"))
    assert student is not None
    student.locale = "ko"
    db.session.commit()
    auth.switch(student)
    client.get("/")  # shows the sign-out notice, written before the profile's language applied
    response = client.get(urls["room (presenter)"], headers={"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and '<html lang="ko"' in html
    assert 'id="hand-btn"' in html and 'id="upload-form"' not in html
    assert "손들기" in html and "i18n-catalogue" in html
    assert not english_words(html, known), english_words(html, known)


@pytest.mark.parametrize("page", ["/password/forgot", "/signup"])
def test_anonymous_account_pages_follow_the_browser(client: FlaskClient, page: str) -> None:
    response = client.get(page, headers={"Accept-Language": "ko"})
    html = response.get_data(as_text=True)
    assert response.status_code in (200, 404), response.status_code
    assert '<html lang="ko"' in html
    assert not english_words(html, []), english_words(html, [])


def test_anonymous_sign_in_page_follows_the_browser(client: FlaskClient) -> None:
    html = client.get("/login", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"}).get_data(
        as_text=True
    )
    assert '<html lang="ko"' in html and "로그인" in html
    assert not english_words(html, []), english_words(html, [])


def test_form_errors_are_korean(client: FlaskClient) -> None:
    """WTForms' own validator messages come from its Korean catalogue."""
    html = client.post(
        "/login", data={"email": "", "password": ""}, headers={"Accept-Language": "ko"}
    ).get_data(as_text=True)
    assert not english_words(html, []), english_words(html, [])


# --- (c) the front end shows only marked strings ---------------------------------------------

# A literal shown to people: assigned to text or a label, passed as el()'s text or as a child
# string, or given to alert/confirm/toast/announce.
SHOWN = [
    re.compile(
        r"""(?:textContent|innerText|\.title|\.placeholder|\.alt)\s*=\s*(["'`])(?P<s>[^"'`]*[A-Za-z]{2}[^"'`]*)\1"""
    ),
    re.compile(
        r"""setAttribute\(\s*["'](?:aria-label|title|placeholder|alt)["']\s*,\s*(["'`])(?P<s>[^"'`]*[A-Za-z]{2}[^"'`]*)\1"""
    ),
    re.compile(
        r"""\b(?:alert|confirm|prompt|toast|announce)\(\s*(["'`])(?P<s>[^"'`]*[A-Za-z]{2}[^"'`]*)\1"""
    ),
    re.compile(
        r"""\b(?:text|title|placeholder|alt|"aria-label"|label)\s*:\s*(["'`])(?P<s>[^"'`]*[A-Za-z]{2}[^"'`]*)\1"""
    ),
    re.compile(
        r"""\bel\(\s*["'][\w-]+["']\s*,\s*(?:\{[^{}]*\}|null|undefined)\s*,\s*(["'`])(?P<s>[^"'`]*[A-Za-z]{2}[^"'`]*)\1"""
    ),
]

# Where whatever a statement computes is shown (the room's DOM helpers in static/js/room/dom.js,
# and the modules' own ones): every literal of words in the rest of the statement, however it is
# chosen (``a ? "One" : "Other"``, a second argument, a child of el()), must be marked. Words:
# a space, or a capital first letter; lowercase single words are codes ("wait", "camera").
SINKS = re.compile(
    r"""(?:\.(?:textContent|innerText|title|placeholder|alt)\s*=(?!=)"""
    r"""|setAttribute\(\s*["'](?:aria-label|aria-valuetext|title|placeholder|alt)["']"""
    r"""|\b(?:alert|confirm|prompt|toast|announce|flash|note|setQuality|makeTile|progress"""
    r"""|setStatus|el)\("""
    r"""|\bnew Error\("""
    r"""|["']?\b(?:text|title|placeholder|alt|aria-label|label|error|detail)["']?\s*:(?!:))"""
)
LITERAL = re.compile(r"""(["'`])((?:\\.|(?!\1).)*?)\1""", re.DOTALL)
# a literal that is not text: an attribute or property value that names, not says
NOT_TEXT = re.compile(
    r"""["']?\b(?:class|type|value|name|id|role|href|src|rel|loading|for|max|min|maxlength"""
    r"""|rows|accept|autocomplete|data-[\w-]+|aria-(?:pressed|describedby|current|hidden)"""
    r"""|style|direction)["']?\s*:\s*(["'`])(?:\\.|(?!\1).)*?\1"""
)
MARKED = re.compile(
    r"""\btn\(\s*(["'`])(?:\\.|(?!\1).)*?\1\s*,\s*(["'`])(?:\\.|(?!\2).)*?\2"""
    r"""|\bt\(\s*(["'`])(?:\\.|(?!\3).)*?\3"""
)


def statement_after(source: str, start: int) -> str:
    """The rest of the statement from ``start``: up to a ``;`` or the end of a line where the
    brackets opened since ``start`` are closed."""
    depth = 0
    for i in range(start, len(source)):
        c = source[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return source[start:i]
        elif (c == ";" or c == "\n") and depth <= 0:
            return source[start:i]
    return source[start:]


def words(literal: str) -> bool:
    text = re.sub(r"\$\{[^}]*\}", "", literal).strip()  # ${...} is code, not text
    return bool(re.search("[A-Za-z]{2}", text)) and (" " in text or text[:1].isupper())


COMMENT = re.compile(r"/\*.*?\*/|^\s*//.*?$|\s//\s.*?$", re.DOTALL | re.MULTILINE)


def unmarked_literals(source: str) -> list[str]:
    """Literals shown to people that are not inside t()/tn() (comments are not looked at)."""
    source = COMMENT.sub(" ", source)
    found = []
    for pattern in SHOWN:
        for match in pattern.finditer(source):
            before = source[max(0, match.start("s") - 4) : match.start("s") - 1]
            text = re.sub(r"\$\{[^}]*\}", "", match.group("s"))  # ${...} is code, not text
            if not before.endswith(("t(", "tn(")) and re.search("[A-Za-z]{2}", text):
                found.append(match.group("s"))
    for sink in SINKS.finditer(source):
        rest = statement_after(source, sink.end())
        rest = MARKED.sub(" ", NOT_TEXT.sub(" ", rest))
        if sink.group(0).startswith("el("):  # the tag name
            rest = LITERAL.sub(" ", rest, count=1)
        for literal in LITERAL.finditer(rest):
            if words(literal.group(2)) and literal.group(2) not in found:
                found.append(literal.group(2))
    return found


def test_front_end_strings_are_marked() -> None:
    problems = []
    for path in sorted((ROOT / "static" / "js").rglob("*.js")):
        for literal in unmarked_literals(path.read_text("utf-8")):
            problems.append(f"{path.relative_to(ROOT)}: {literal!r}")
    assert not problems, "\n".join(problems)


def test_the_front_end_check_finds_unmarked_strings() -> None:
    source = 'b.textContent = "Raise hand"; el("p", {class: "x"}, "Hello there"); toast(t("Done"))'
    assert unmarked_literals(source) == ["Raise hand", "Hello there"]
    chosen = [
        'button.textContent = on ? "Stop recording" : t("Start recording");',
        'node.setAttribute("aria-label", voted ? t("Remove") : `Upvote ${n}`);',
        'flash(error, "Choose an option first.");',
        'setQuality(tile, "wait", "Not live");',
        'const tile = makeTile("You (preview)", "camera", true);',
        'return { ok: false, error: "Bad reply." };',
        'el("li", { class: "small secondary" }, el("span", { text: label }), " Pinned");',
        'el("button", { type: "button", class: "a b", "aria-label": `Lower ${name}` });',
        'toast(tn("%(n)s vote", "%(n)s votes", n)); note(t("Ready: %(n)s", { n }));',
        'setStatus("reconnecting", ""); progress(0, 1, t("Uploading…"));',
    ]
    assert unmarked_literals("\n".join(chosen)) == [
        "Stop recording",
        "Upvote ${n}",
        "Choose an option first.",
        "Not live",
        "You (preview)",
        "Bad reply.",
        " Pinned",
        "Lower ${name}",
    ]


def test_room_page_embeds_the_korean_catalogue(app: Flask) -> None:
    with app.test_request_context(headers={"Accept-Language": "ko"}):
        catalogue = i18n.js_catalogue()
    assert catalogue and all(isinstance(v, (str, list)) and v for v in catalogue.values())


# --- (d) e-mails follow their recipient --------------------------------------------------------


def test_email_to_a_korean_user_is_korean_in_their_zone(app: Flask, users, broadcasts) -> None:  # type: ignore[no-untyped-def]
    host = users.make("host")
    guest = users.make("attendee", name="Park Guest")
    guest.locale, guest.timezone = "ko", "Asia/Seoul"
    broadcast = broadcasts.make(host, title="Quarterly Update")
    broadcast.starts_at = datetime(2030, 3, 4, 1, 30)  # 10:30 in Seoul
    reg = broadcasts.register(broadcast, guest)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        mail = join_mail(reg, None, reminder=True)
    assert mail.subject == "알림: Quarterly Update"
    assert "안녕하세요" in mail.body and "개인 참가 링크" in mail.body, mail.body
    assert "오전 10:30" in mail.body and "Asia/Seoul" in mail.body, mail.body
    assert "Hello" not in mail.body and "minutes" not in mail.body, mail.body


def test_account_mails_follow_the_recipient_else_the_sender(app: Flask, users) -> None:  # type: ignore[no-untyped-def]
    """An account's language when it has one; else (an invitation, an account not used yet)
    the language of the request that sends it: a Korean teacher's invitation is Korean."""
    korean, fresh = users.make("student"), users.make("student")
    korean.locale = "ko"
    with app.test_request_context(headers={"Accept-Language": "ko"}):
        invite = notify.invite_mail("new@example.com", "token", "Physics One", "Kim Teacher")
        welcome = notify.welcome_mail(fresh, "token")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        reset = notify.reset_mail(korean, "token")
        english = notify.invite_mail("new@example.com", "token", "Physics One", "Kim Teacher")
    for mail in (invite, welcome, reset):
        names = ["Physics One", "Kim Teacher", korean.name, fresh.name]
        assert not english_words(f"{mail.subject} {mail.body}", names)
        assert "안녕하세요" in mail.body, mail.body
    assert english.subject == "Invitation: Physics One"


def test_refusals_are_sent_in_the_senders_language(app: Flask) -> None:
    """A refusal's placeholders are filled in the sender's language; its str() stays English,
    as the server's tests and logs read it."""
    refusal = Refused("your role (%(role)s) may not do this", role=i18n.ROLE_LABELS["student"])
    with pytest.raises(Invalid) as caught:
        Text(max=5).clean("text", "longer than five")
    assert str(refusal) == "your role (student) may not do this"
    assert str(caught.value) == "text is longer than 5 characters"
    with app.test_request_context(headers={"Accept-Language": "ko"}):
        refresh()  # the language of this request, not the one the test's app context cached
        assert error(refusal)["error"] == "현재 역할(학생)로는 할 수 없습니다"
        assert error(caught.value)["error"] == "text: 5자를 넘을 수 없습니다"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        refresh()
        assert error(refusal)["error"] == "your role (student) may not do this"


# --- (e) where the language comes from; dates follow it ----------------------------------------


@pytest.mark.parametrize(
    ("query", "header", "language"),
    [
        ("", "ko-KR,ko;q=0.9", "ko"),
        ("", "fr-FR,en;q=0.5", "en"),
        ("", "", "en"),
        ("?lang=ko", "en", "ko"),
        ("?lang=en", "ko", "en"),
        ("?lang=xx", "ko", "ko"),
    ],
)
def test_language_of_anonymous_pages(
    client: FlaskClient, query: str, header: str, language: str
) -> None:
    headers = {"Accept-Language": header} if header else {}
    html = client.get(f"/login{query}", headers=headers).get_data(as_text=True)
    assert f'<html lang="{language}"' in html


def test_a_chosen_language_is_remembered(client: FlaskClient) -> None:
    client.get("/login?lang=ko", headers={"Accept-Language": "en"})
    html = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="ko"' in html and 'href="?lang=en"' in html


def test_the_profile_wins_over_the_browser(client: FlaskClient, users, auth) -> None:  # type: ignore[no-untyped-def]
    user: User = users.make("student")
    user.locale = "ko"
    db.session.commit()
    auth.login(user)
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="ko"' in html and "대시보드" in html


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", ["Mar", "2030", "10:30"]), ("ko", ["2030", "3", "10:30"])],
)
def test_dates_follow_the_language(app: Flask, language: str, expected: list[str]) -> None:
    when = datetime(2030, 3, 4, 10, 30, tzinfo=UTC)
    with app.test_request_context(), force_locale(language):
        shown = format_datetime(when, "medium")
    assert all(part in shown for part in expected), shown
    assert ("오전" in shown) == (language == "ko")
