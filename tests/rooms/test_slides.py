"""Slides: a presenter uploads a PDF, a separate process renders its pages while the progress
bar fills, the presenter shows any page and every participant, late joiners too, sees it.

PDFs are made here with pypdfium2; PNGs are checked by reading them back (signature, header,
CRCs and pixels: the renderer writes unfiltered scanlines, which is what ``read_png`` accepts).
Every HTTP request and Socket.IO event runs in its own app context, as in production: each
gets a fresh database session and its own Flask-Login user.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from flask import Flask
from werkzeug.test import TestResponse

from accounts.models import User
from lectern.extensions import db
from rooms import log, uploads
from rooms.models import FILENAME_MAX, SlideDeck

ROOT = Path(__file__).resolve().parents[2]
LETTER, LANDSCAPE = (612, 792), (792, 612)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BROKEN_PDF = b"%PDF-1.4\nthis is not really a PDF\n%%EOF\n"
PNG_BYTES = PNG_SIGNATURE + b"\x00\x00\x00\rIHDR" + b"\x00" * 17


# -- making and reading files ---------------------------------------------------------------------


def make_pdf(*sizes: tuple[float, float], red_left_half: bool = False) -> bytes:
    """A PDF with one blank page per (width, height) in points; optionally the first page's left
    half filled with pure red, to check colours survive rendering."""
    pdf = pdfium.PdfDocument.new()
    for width, height in sizes:
        pdf.new_page(width, height)
    if red_left_half:
        width, height = sizes[0]
        page = pdf[0]
        rect = pdfium_c.FPDFPageObj_CreateNewRect(0, 0, width / 2, height)
        pdfium_c.FPDFPageObj_SetFillColor(rect, 255, 0, 0, 255)
        pdfium_c.FPDFPath_SetDrawMode(rect, pdfium_c.FPDF_FILLMODE_ALTERNATE, False)
        pdfium_c.FPDFPage_InsertObject(page.raw, rect)
        assert pdfium_c.FPDFPage_GenerateContent(page.raw)
    buffer = io.BytesIO()
    pdf.save(buffer)
    pdf.close()
    return buffer.getvalue()


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    rows: list[bytes]  # RGB, 3 bytes per pixel

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        return tuple(self.rows[y][3 * x : 3 * x + 3])


def read_png(data: bytes) -> Png:
    """Parse an 8-bit RGB PNG with unfiltered scanlines, checking every chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        tag, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(tag + body) == crc, f"bad CRC in {tag!r}"
        chunks[tag] = chunks.get(tag, b"") + body
        at += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2), "expected 8-bit RGB"
    pixels = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * width
    assert len(pixels) == stride * height and b"IEND" in chunks
    lines = [pixels[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(line[0] == 0 for line in lines), "expected unfiltered scanlines"
    return Png(width, height, [line[1:] for line in lines])


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rooms.render", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


# -- the renderer on its own ----------------------------------------------------------------------


def test_cli_renders_every_page_keeping_the_aspect(tmp_path: Path) -> None:
    src = tmp_path / "deck.pdf"
    src.write_bytes(make_pdf(LETTER, LANDSCAPE, red_left_half=True))
    done = run_cli(src, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["pages 2", "page 1", "page 2"]
    first = read_png((tmp_path / "out" / "1.png").read_bytes())
    second = read_png((tmp_path / "out" / "2.png").read_bytes())
    assert (first.width, second.width) == (1280, 1280)
    assert first.height == pytest.approx(1280 * 792 / 612, abs=1)
    assert second.height == pytest.approx(1280 * 612 / 792, abs=1)
    assert first.pixel(100, 500) == (255, 0, 0)  # red stays red: channels in RGB order
    assert first.pixel(1180, 500) == (255, 255, 255)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "2.png"]


def test_cli_width_option(tmp_path: Path) -> None:
    src = tmp_path / "deck.pdf"
    src.write_bytes(make_pdf(LANDSCAPE))
    assert run_cli(src, tmp_path, "--width", 640).returncode == 0
    png = read_png((tmp_path / "1.png").read_bytes())
    assert (png.width, png.height) == (640, pytest.approx(640 * 612 / 792, abs=1))


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (BROKEN_PDF, (), "the file is damaged or not a PDF"),
        (PNG_BYTES, (), "the file is damaged or not a PDF"),
        (None, (), "the uploaded file could not be read"),
        (
            make_pdf(LETTER, LETTER),
            ("--max-pages", 1),
            "the PDF has 2 pages; at most 1 are allowed",
        ),
    ],
    ids=["broken", "not-a-pdf", "missing", "too-many-pages"],
)
def test_cli_fails_with_one_line(
    tmp_path: Path, content: bytes | None, extra: tuple[object, ...], message: str
) -> None:
    src = tmp_path / "deck.pdf"
    if content is not None:
        src.write_bytes(content)
    done = run_cli(src, tmp_path / "out", *extra)
    assert done.returncode == 1
    assert done.stderr == message + "\n"
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


# -- the web side ---------------------------------------------------------------------------------


@pytest.fixture
def renders(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The background render tasks started during the test, all finished before teardown."""
    tasks: list[Any] = []
    start = uploads.start_render

    def recorded(app: Flask, deck_id: int) -> Any:
        task = start(app, deck_id)
        tasks.append(task)
        return task

    monkeypatch.setattr(uploads, "start_render", recorded)
    yield tasks
    for task in tasks:
        task.join(timeout=60)
        assert not task.is_alive(), "a render task did not finish"


@dataclass
class Site:
    """HTTP and Socket.IO calls for one test, each in its own app context (a fresh ``g``)."""

    app: Flask
    room: Any  # the World from tests/rooms/conftest.py
    tasks: list[Any]  # render tasks started so far

    def url(self, key: str, *parts: object) -> str:
        kind, _, ref = key.partition(":")
        return "/".join([f"/rooms/{kind}/{ref}/slides", *map(str, parts)])

    def get(self, who: Any, url: str) -> TestResponse:
        with self.app.app_context():
            return self.room.http(who).get(url)

    def upload(
        self, who: Any, key: str, content: bytes, name: str = "deck.pdf", **headers: str
    ) -> TestResponse:
        data = {"file": (io.BytesIO(content), name)}
        with self.app.app_context():
            return self.room.http(who).post(self.url(key), data=data, headers=headers)

    def emit(self, client: Any, event: str, data: Any = None) -> Any:
        with self.app.app_context():
            return client.emit(event, data) if data is not None else client.emit(event)

    def state(self, client: Any) -> dict[str, Any]:
        reply = self.emit(client, "state.get")
        assert reply["ok"], reply
        return reply["state"]

    def rendered(self, who: Any, key: str, deck_id: int) -> dict[str, Any]:
        """Poll the status endpoint until the deck is ready or failed; its final view.

        The render tasks are then joined, so their last message has been sent as well."""

        def done() -> dict[str, Any] | None:
            deck = self.get(who, self.url(key, deck_id)).get_json()["deck"]
            return deck if deck["status"] != "rendering" else None

        deck = wait_for(done)
        for task in self.tasks:
            task.join(timeout=30)
        return deck


def wait_for(check: Callable[[], Any], seconds: float = 30) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
    return result


@pytest.fixture
def site(app: Flask, room: Any, renders: list[Any]) -> Site:
    return Site(app, room, renders)


def upload_ready(site: Site, who: Any, key: str, *sizes: tuple[float, float]) -> dict[str, Any]:
    """Upload a deck of blank pages as ``who`` and wait until it is rendered."""
    response = site.upload(who, key, make_pdf(*sizes))
    assert response.status_code == 201, response.get_json()
    deck = site.rendered(who, key, response.get_json()["deck"]["id"])
    assert deck["status"] == "ready", deck
    return deck


def test_upload_render_present_and_late_join(site: Site, app: Flask) -> None:
    room = site.room
    teacher = room.join(room.instructor)
    student = room.join(room.students[0])
    for client in (teacher, student):
        site.state(client)
        client.drain()

    response = site.upload(room.instructor, room.lesson, make_pdf(LETTER, LANDSCAPE, LETTER))
    assert response.status_code == 201
    body = response.get_json()
    assert body["ok"] is True
    assert body["deck"]["filename"] == "deck.pdf"
    assert body["deck"]["status"] == "rendering"
    deck_id = body["deck"]["id"]

    deck = site.rendered(room.instructor, room.lesson, deck_id)
    assert (deck["status"], deck["pages"], deck["rendered"], deck["error"]) == ("ready", 3, 3, None)

    # the presenter's progress bar: every step, in order, then ready; students get none of it
    progress = [(d["pages"], d["rendered"], d["status"]) for d in teacher.got("slides.deck")]
    assert progress == [
        (3, 0, "rendering"),
        (3, 1, "rendering"),
        (3, 2, "rendering"),
        (3, 3, "rendering"),
        (3, 3, "ready"),
    ]
    assert student.got("slides.deck") == []

    folder = Path(app.config["DATA_DIR"]) / "slides" / str(deck_id)
    assert sorted(p.name for p in folder.iterdir()) == ["1.png", "2.png", "3.png", "source.pdf"]
    db.session.rollback()
    stored = db.session.get(SlideDeck, deck_id)
    assert stored is not None and stored.uploaded_by == room.instructor.id
    types = [e["type"] for e in log.timeline(stored.room_id)]
    assert types.count("slides.upload") == 1 and types.count("slides.ready") == 1

    reply = site.emit(teacher, "slides.goto", {"deck_id": deck_id, "page": 2})
    assert reply["ok"], reply
    shown = student.got("slides.page")
    assert [(s["deck"]["id"], s["page"]) for s in shown] == [(deck_id, 2)]

    late = room.join(room.students[1])
    state = site.state(late)
    assert state["slides"]["page"] == 2
    assert state["slides"]["deck"]["id"] == deck_id
    assert state["slides"]["deck"]["rendered"] == 3
    assert state["decks"] is None  # the deck list is the presenter's

    image = site.get(room.students[1], site.url(room.lesson, deck_id, "2.png"))
    assert image.status_code == 200
    assert image.mimetype == "image/png"
    cache = image.headers["Cache-Control"].split(", ")
    assert {"private", "immutable", "max-age=86400"} <= set(cache) and "public" not in cache
    png = read_png(image.data)
    assert (png.width, png.height) == (1280, pytest.approx(1280 * 612 / 792, abs=1))


def test_student_may_not_change_the_page(site: Site) -> None:
    room = site.room
    deck = upload_ready(site, room.instructor, room.lesson, LETTER, LETTER)
    student = room.join(room.students[0])
    reply = site.emit(student, "slides.goto", {"deck_id": deck["id"], "page": 1})
    assert reply["ok"] is False and "may not" in reply["error"]
    assert site.state(student)["slides"] is None


def test_page_beyond_the_rendered_ones_is_refused(site: Site) -> None:
    room = site.room
    deck = upload_ready(site, room.instructor, room.lesson, LETTER)
    teacher = room.join(room.instructor)
    reply = site.emit(teacher, "slides.goto", {"deck_id": deck["id"], "page": 2})
    assert reply["ok"] is False and "not available" in reply["error"]


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("instructor", 201),
        ("student", 403),
        ("host", 201),
        ("panelist", 403),
        ("attendee", 403),
    ],
)
def test_who_may_upload(site: Site, rows: Callable[..., int], role: str, status: int) -> None:
    who, key = site.room.role(role)
    response = site.upload(who, key, make_pdf(LETTER))
    assert response.status_code == status
    assert response.get_json()["ok"] is (status == 201)
    if status == 201:
        site.rendered(who, key, response.get_json()["deck"]["id"])
    assert rows(SlideDeck) == (1 if status == 201 else 0)


@pytest.mark.parametrize(
    ("who", "key", "status"),
    [
        ("outsider", "lesson", 404),
        ("outsider", "broadcast", 404),
        ("instructor", "broadcast", 404),  # presenting in one room gives nothing in another
        (None, "lesson", 401),
    ],
)
def test_non_members_cannot_upload(site: Site, who: str | None, key: str, status: int) -> None:
    person = getattr(site.room, who) if who else None
    response = site.upload(person, getattr(site.room, key), make_pdf(LETTER))
    assert response.status_code == status
    assert response.get_json()["ok"] is False


@pytest.mark.parametrize("path", ["/rooms/nope/1/slides", "/rooms/lesson/99999/slides"])
def test_unknown_room_is_404(site: Site, path: str) -> None:
    with site.app.app_context():
        response = site.room.http(site.room.instructor).post(
            path, data={"file": (io.BytesIO(make_pdf(LETTER)), "deck.pdf")}
        )
    assert response.status_code == 404


def test_images_and_status_follow_room_membership(site: Site, courses: Any) -> None:
    room = site.room
    deck = upload_ready(site, room.instructor, room.lesson, LETTER, LETTER)
    page = site.url(room.lesson, deck["id"], "1.png")
    status = site.url(room.lesson, deck["id"])
    student = room.students[0]

    # not shown yet: the presenter's own, a student sees nothing of it
    assert site.get(room.instructor, page).status_code == 200
    assert site.get(student, page).status_code == 404
    assert site.get(student, status).status_code == 404

    teacher = room.join(room.instructor)
    assert site.emit(teacher, "slides.goto", {"deck_id": deck["id"], "page": 1})["ok"]
    assert site.get(student, page).status_code == 200
    assert site.get(student, status).get_json()["deck"]["status"] == "ready"
    assert site.get(room.outsider, page).status_code == 404
    assert site.get(room.outsider, status).status_code == 404
    assert site.get(None, page).status_code == 401

    for missing in ("0.png", "3.png", "99999.png"):
        assert (
            site.get(room.instructor, site.url(room.lesson, deck["id"], missing)).status_code == 404
        )
    assert site.get(room.instructor, site.url(room.lesson, 99999, "1.png")).status_code == 404

    # a deck of another room is not reachable through this one, even by its own presenter
    other = f"lesson:{other_lesson(room, courses)}"
    other_deck = upload_ready(site, room.instructor, other, LETTER)
    crossed = site.url(room.lesson, other_deck["id"], "1.png")
    assert site.get(room.instructor, crossed).status_code == 404
    assert site.get(room.instructor, site.url(other, other_deck["id"], "1.png")).status_code == 200


def other_lesson(room: Any, courses: Any) -> int:
    """A lesson of a second course of the same instructor."""
    course = courses.make(db.session.get(User, room.instructor.id))
    return int(courses.lesson(course).id)


def test_not_a_pdf_is_refused(site: Site, app: Flask, rows: Callable[..., int]) -> None:
    room = site.room
    response = site.upload(room.instructor, room.lesson, PNG_BYTES, name="x.pdf")
    assert response.status_code == 400
    assert response.get_json() == {"ok": False, "error": "the file is not a PDF"}
    assert rows(SlideDeck) == 0
    assert not (Path(app.config["DATA_DIR"]) / "slides").exists()


def test_missing_file_field(site: Site) -> None:
    with site.app.app_context():
        response = site.room.http(site.room.instructor).post(site.url(site.room.lesson), data={})
    assert response.status_code == 400
    assert response.get_json()["ok"] is False


def test_broken_pdf_fails_with_a_reason(site: Site) -> None:
    room = site.room
    teacher = room.join(room.instructor)
    response = site.upload(room.instructor, room.lesson, BROKEN_PDF)
    assert response.status_code == 201  # it looks like a PDF; only rendering finds out
    deck = site.rendered(room.instructor, room.lesson, response.get_json()["deck"]["id"])
    assert deck["status"] == "failed"
    assert deck["error"] == "the file is damaged or not a PDF"
    assert deck["rendered"] == 0
    last = teacher.got("slides.deck")[-1]
    assert (last["status"], last["error"]) == ("failed", deck["error"])
    reply = site.emit(teacher, "slides.goto", {"deck_id": deck["id"], "page": 1})
    assert reply["ok"] is False


def test_too_large_is_413(site: Site, app: Flask, rows: Callable[..., int]) -> None:
    room = site.room
    app.config["SLIDES_MAX_MB"] = 1
    big = b"%PDF-1.4\n" + b"0" * (1024 * 1024)
    response = site.upload(room.instructor, room.lesson, big)
    assert response.status_code == 413
    assert response.get_json() == {"ok": False, "error": "the file is larger than 1 MB"}

    app.config["MAX_CONTENT_LENGTH"] = 512 * 1024  # the whole request, checked by Werkzeug
    response = site.upload(room.instructor, room.lesson, big)
    assert response.status_code == 413
    assert response.get_json()["ok"] is False
    assert rows(SlideDeck) == 0


def test_path_traversal_in_the_filename_is_neutralised(
    site: Site, app: Flask, tmp_path: Path
) -> None:
    room = site.room
    response = site.upload(room.instructor, room.lesson, make_pdf(LETTER), "../../../evil.pdf")
    assert response.status_code == 201
    deck = response.get_json()["deck"]
    assert deck["filename"] == "evil.pdf"  # shown to people, never used as a path
    site.rendered(room.instructor, room.lesson, deck["id"])
    slides = Path(app.config["DATA_DIR"]) / "slides"
    assert [p.name for p in slides.iterdir()] == [str(deck["id"])]
    assert sorted(p.name for p in (slides / str(deck["id"])).iterdir()) == ["1.png", "source.pdf"]
    assert not list(tmp_path.parent.rglob("evil*"))


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("Lecture 3 - Optics.pdf", "Lecture_3_-_Optics.pdf"),
        ("..\\..\\windows\\x.pdf", "x.pdf"),
        ("C:\\Users\\me\\deck v2.pdf", "deck_v2.pdf"),
        ("/etc/passwd", "passwd"),
        ("../..", "slides.pdf"),
        ("讲义.pdf", "slides.pdf"),
        ("", "slides.pdf"),
        (None, "slides.pdf"),
        ("a" * 300 + ".pdf", "a" * (FILENAME_MAX - 4) + ".pdf"),
    ],
)
def test_display_name(name: str | None, kept: str) -> None:
    assert uploads.display_name(name) == kept


def test_upload_needs_the_csrf_token(site: Site, app: Flask) -> None:
    room = site.room
    home = site.get(room.instructor, "/")  # signs in with CSRF still off, then reads a token
    match = re.search(r'name="csrf_token" value="([^"]+)"', home.get_data(as_text=True))
    assert match
    app.config["WTF_CSRF_ENABLED"] = True

    refused = site.upload(room.instructor, room.lesson, make_pdf(LETTER))
    assert refused.status_code == 400
    assert refused.get_json()["ok"] is False
    wrong = site.upload(room.instructor, room.lesson, make_pdf(LETTER), **{"X-CSRFToken": "x"})
    assert wrong.status_code == 400

    accepted = site.upload(
        room.instructor, room.lesson, make_pdf(LETTER), **{"X-CSRFToken": match[1]}
    )
    assert accepted.status_code == 201
    site.rendered(room.instructor, room.lesson, accepted.get_json()["deck"]["id"])
