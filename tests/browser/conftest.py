r"""Fixtures for the browser tests: a real Lectern server and headless Chromium driving it.

The server is ``python app.py`` with its demo data (a live lesson, a live all-hands broadcast,
the demo accounts) on a fresh SQLite folder, with one media worker. The ``browser`` fixture
(tests/conftest.py) is Debian's Chromium (``/usr/bin/chromium``, never a Playwright download)
with fake camera and microphone, WebRTC on loopback allowed; both come from tests/live.py.
Screenshots go to ``test-artifacts/browser/``.

A scenario that needs a server of its own (no demo data, mail to the test's SMTP server)::

    def test_setup(live_server, mailbox, people_on):
        server = live_server({"DEMO_DATA": "false", "MEDIA_WORKERS": "0", **mailbox.env})
        link = server.wait_for_output(r"(http://\S+/setup/\S+)").group(1)
        visitor = people_on(server).visit("new admin")
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from lectern import ROOT
from lectern.demo import DEMO_PASSWORD
from tests.live import LiveServer

Server = LiveServer  # the ``server`` fixture's type, by its old name
VIDEO_TIMEOUT_S = 30
ARTIFACTS = ROOT / "test-artifacts" / "browser"
# Closing a test's pages and contexts takes Chromium a second or two, even on a loaded machine;
# past this it is stuck and is killed (People.close).
CLOSE_TIMEOUT_S = 60
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

# Records every RTCPeerConnection a page makes, so tests can read getStats() without the page
# exposing anything for them.
RECORD_PEERS = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__peers = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__peers.push(this); }
  };
})();
"""


# The user refuses the camera and microphone (the fake-UI flag would otherwise allow them).
DENY_CAMERA = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
"""


# A computer with no camera and no microphone at all.
NO_DEVICES = """
navigator.mediaDevices.enumerateDevices = () => Promise.resolve([]);
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Requested device not found", "NotFoundError"));
"""

# Ends a page's calls before its context is closed, as leaving the room would: every track
# the page's connections send stops and every connection closes.
HANG_UP = """
() => {
  for (const pc of window.__peers || []) {
    for (const sender of pc.getSenders()) if (sender.track) sender.track.stop();
    pc.close();
  }
}
"""

# What the page's publishing connections send: one entry per RTCPeerConnection that sends,
# with its signaling state, offer SDP and the labels of the tracks on its senders.
SENDERS = """
() => (window.__peers || [])
  .filter((pc) => pc.connectionState !== "closed" && pc.getSenders().some((s) => s.track))
  .map((pc) => ({
    signaling: pc.signalingState,
    sdp: pc.localDescription && pc.localDescription.sdp,
    tracks: Object.fromEntries(
      pc.getSenders().filter((s) => s.track).map((s) => [s.track.kind, s.track.label])),
  }))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``python app.py`` with demo data on a fresh SQLite folder and one media worker, shared
    by a module's tests. For a server of one test's own (other settings, no demo data), use
    ``live_server`` from tests/conftest.py and ``people_on(that_server)``."""
    data = tmp_path_factory.mktemp("browser-server") / "data"
    with LiveServer(data, {"MEDIA_WORKERS": "1", "DEMO_DATA": "true"}) as running:
        yield running


@dataclass
class Person:
    """One signed-in participant: their browser context and page, and what went wrong there."""

    email: str
    page: Any
    problems: list[str] = field(default_factory=list)  # page errors, failed requests, dialogs

    def watch(self) -> None:
        """Note script errors, dialogs (none should open) and failed requests."""
        self.page.on("pageerror", self.on_error)
        self.page.on("dialog", self.on_dialog)
        self.page.on("response", self.on_response)

    def on_error(self, error: Any) -> None:
        self.problems.append(f"page error: {error}")

    def on_dialog(self, dialog: Any) -> None:
        self.problems.append(f"dialog opened: {dialog.message}")
        dialog.dismiss()

    def on_response(self, response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"{response.status} {response.url}")


class People:
    """Opens a browser context per person and signs them in through the login form."""

    def __init__(self, browser: Any, server: LiveServer) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[Any] = []
        self.people: list[Person] = []
        self.chromium = browser_pid(browser)  # for the watchdog of close(), asked while well

    def sign_in(
        self,
        email: str,
        viewport: dict[str, int] = LAPTOP,
        init_script: str = "",
        password: str = DEMO_PASSWORD,
    ) -> Person:
        """A new browser context for ``email``, signed in; ``init_script`` runs in every page
        before the page's own scripts."""
        phone = viewport["width"] < 600
        context = self.browser.new_context(
            base_url=self.server.url,
            viewport=viewport,
            is_mobile=phone,
            has_touch=phone,
        )
        context.set_default_timeout(15_000)
        context.add_init_script(RECORD_PEERS + init_script)
        self.contexts.append(context)
        page = context.new_page()
        person = Person(email=email, page=page)
        person.watch()
        self.people.append(person)
        page.goto("/login")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login" not in url)
        return person

    def visit(self, label: str, viewport: dict[str, int] = LAPTOP, **options: Any) -> Person:
        """A new browser context nobody is signed in to (``label`` names it in reports);
        ``options`` go to Playwright's ``new_context`` (``timezone_id``, ``locale``)."""
        context = self.browser.new_context(base_url=self.server.url, viewport=viewport, **options)
        context.set_default_timeout(15_000)
        context.add_init_script(RECORD_PEERS)
        self.contexts.append(context)
        person = Person(email=label, page=context.new_page())
        person.watch()
        self.people.append(person)
        return person

    def close(self) -> None:
        """Hang up every page's calls, then close the pages and their contexts. Should
        Chromium not have closed them all within ``CLOSE_TIMEOUT_S``, its processes are killed
        (later tests of the module then fail on a closed browser) and this fails, saying so:
        a stuck Chromium must not hang the run."""
        watchdog = Watchdog(self.chromium, CLOSE_TIMEOUT_S)
        try:
            for person in self.people:
                with contextlib.suppress(PlaywrightError):
                    person.page.evaluate(HANG_UP)
            for context in self.contexts:
                for page in context.pages:
                    page.close()
                context.close()
        except PlaywrightError:
            if not watchdog.fired:
                raise
        finally:
            watchdog.cancel()
        if watchdog.fired:
            pytest.fail(
                f"Chromium did not close {len(self.contexts)} browser context(s) within "
                f"{CLOSE_TIMEOUT_S} s; its processes were killed ({watchdog.killed})",
                pytrace=False,
            )


class Watchdog:
    """Kills Chromium (its browser process ``pid`` and every process under it, by pid:
    Playwright's calls may not be made from another thread, nor answered by a stuck browser)
    unless ``cancel`` comes within ``seconds``. Whatever Playwright then waits on fails."""

    def __init__(self, pid: int | None, seconds: float) -> None:
        self.pid = pid
        self.fired = False
        self.killed = ""
        self.timer = threading.Timer(seconds, self.kill)
        self.timer.daemon = True
        self.timer.start()

    def kill(self) -> None:
        self.fired = True
        doomed = [self.pid, *descendants(self.pid)] if self.pid else []
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed = f"pids {', '.join(map(str, doomed))}" if doomed else "none found"

    def cancel(self) -> None:
        self.timer.cancel()


def browser_pid(browser: Any) -> int | None:
    """The process id of ``browser``'s Chromium (DevTools' ``SystemInfo.getProcessInfo``)."""
    try:
        cdp = browser.new_browser_cdp_session()
        try:
            processes = cdp.send("SystemInfo.getProcessInfo")["processInfo"]
        finally:
            cdp.detach()
    except PlaywrightError:
        return None
    return next((int(p["id"]) for p in processes if p["type"] == "browser"), None)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found first), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid ...; comm may hold spaces and parentheses
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, for fixtures that save evidence on failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def people_on(
    browser: Any, request: pytest.FixtureRequest, artifacts: Path
) -> Iterator[Callable[[LiveServer], People]]:
    """``people_on(server)``: participants of one test on ``server`` (e.g. one from
    ``live_server``); when the test fails, a screenshot of each and the server's log."""
    crowds: list[People] = []

    def on(server: LiveServer) -> People:
        crowds.append(People(browser, server))
        return crowds[-1]

    yield on
    report = getattr(request.node, "report_call", None)
    for n, crowd in enumerate(crowds):
        if report is not None and report.failed:
            save_evidence(crowd, f"{request.node.name}{'-' + str(n) if n else ''}", artifacts)
        crowd.close()


@pytest.fixture
def people(server: LiveServer, people_on: Callable[[LiveServer], People]) -> People:
    """Participants of one test on the module's demo ``server``."""
    return people_on(server)


def save_evidence(crowd: People, name: str, artifacts: Path) -> None:
    for n, person in enumerate(crowd.people):
        if person.page.is_closed():  # closed by the test itself
            continue
        person.page.screenshot(path=artifacts / f"failed-{name}-{n}-{person.email}.png")
    (artifacts / f"failed-{name}-server.log").write_text(crowd.server.output())


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


COLORS = [(36, 84, 214), (30, 125, 60), (198, 40, 40), (154, 103, 0)]


def make_pdf(pages: int = 3) -> bytes:
    """A small deck: each page says "Slide N" above a coloured band."""
    pdf = pdfium.PdfDocument.new()
    for n in range(1, pages + 1):
        page = pdf.new_page(640, 360)
        band = pdfium_c.FPDFPageObj_CreateNewRect(0, 0, 640, 90)
        pdfium_c.FPDFPageObj_SetFillColor(band, *COLORS[(n - 1) % len(COLORS)], 255)
        pdfium_c.FPDFPath_SetDrawMode(band, pdfium_c.FPDF_FILLMODE_ALTERNATE, False)
        pdfium_c.FPDFPage_InsertObject(page.raw, band)
        text = pdfium_c.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", 72)
        encoded = f"Slide {n}".encode("utf-16-le") + b"\0\0"
        buffer = ctypes.create_string_buffer(encoded, len(encoded))
        pdfium_c.FPDFText_SetText(text, ctypes.cast(buffer, ctypes.POINTER(pdfium_c.FPDF_WCHAR)))
        pdfium_c.FPDFPageObj_Transform(text, 1, 0, 0, 1, 60, 180)
        pdfium_c.FPDFPage_InsertObject(page.raw, text)
        assert pdfium_c.FPDFPage_GenerateContent(page.raw)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.fixture
def pdf_file(tmp_path: Path) -> Path:
    path = tmp_path / "waves.pdf"
    path.write_bytes(make_pdf(3))
    return path


# The frames decoded so far for the video a <video> element shows (matched through the track
# id, which inbound-rtp stats name as trackIdentifier), or null when it shows none yet.
TILE_FRAMES = """
async (video) => {
  const track = video.srcObject && video.srcObject.getVideoTracks()[0];
  if (!track) return null;
  for (const pc of window.__peers || []) {
    if (pc.connectionState === "closed") continue;
    let frames = null;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && s.trackIdentifier === track.id) {
        frames = s.framesDecoded || 0;
      }
    });
    if (frames !== null) return frames;
  }
  return null;
}
"""


def wait_for(check: Callable[[], Any], seconds: float = 20, what: str = "") -> Any:
    """Poll ``check`` until it returns something true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or check}")
        time.sleep(0.2)


# --- steps the scenarios share ---


def enter(person: Person, path: str) -> None:
    """Open the room page at ``path`` and wait until it is live."""
    person.page.goto(path)
    expect_live(person)


def expect_live(person: Person) -> None:
    expect(person.page.locator("#conn")).to_have_attribute("data-state", "live")


def join_from(person: Person, page_path: str) -> None:
    """Open a lesson's or a broadcast's page and follow its "Join the live room" link."""
    person.page.goto(page_path)
    person.page.get_by_role("link", name="Join the live room").click()
    expect_live(person)


def start_camera(person: Person) -> None:
    person.page.get_by_role("button", name="Start camera & mic").click()
    expect(person.page.get_by_role("button", name="Stop camera")).to_be_visible()


def sees_video_of(person: Person, name: str) -> None:
    """``name``'s tile plays: its <video> has a size, and the frames decoded for that video
    (getStats' inbound-rtp of its track) keep growing."""
    page = person.page
    tile = page.locator("figure.tile:not(.local)", has_text=name)
    expect(tile).to_have_count(1)
    video = tile.locator("video").element_handle()
    page.wait_for_function(
        "(v) => v.videoWidth > 0", arg=video, timeout=VIDEO_TIMEOUT_S * 1000, polling=200
    )
    before = page.evaluate(TILE_FRAMES, video) or 0
    wait_for(
        lambda: (page.evaluate(TILE_FRAMES, video) or 0) > before,
        VIDEO_TIMEOUT_S,
        f"{person.email} to decode more frames of {name}'s video",
    )


def sees_slide(person: Person, page_number: int, pages: int) -> None:
    image = person.page.locator("#slide-img")
    expect(image).to_have_attribute("src", re.compile(rf"/{page_number}\.png$"))
    expect(person.page.locator("#slide-caption")).to_have_text(f"Slide {page_number} of {pages}")
    loaded = "(img) => img.complete && img.naturalWidth > 0"
    person.page.wait_for_function(loaded, arg=image.element_handle())


def show_tab(person: Person, name: str) -> None:
    person.page.get_by_role("tab", name=re.compile(rf"^{name}")).click()


def question(person: Person, text: str) -> Any:
    return person.page.locator("#qa-list li.question", has_text=text)


def no_horizontal_scroll(person: Person) -> None:
    overflow = person.page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{person.email}: the page scrolls sideways by {overflow}px"


def screenshots(person: Person, name: str, artifacts: Path) -> None:
    """Save the view at laptop and phone size (and the whole phone page); check the phone
    layout does not scroll sideways."""
    page = person.page
    original = page.viewport_size
    for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
        page.screenshot(path=artifacts / f"{name}-{label}.png")
        if label == "phone":
            no_horizontal_scroll(person)
            page.screenshot(path=artifacts / f"{name}-{label}-full.png", full_page=True)
    page.set_viewport_size(original)


def no_problems(*everyone: Person) -> None:
    problems = [f"{p.email}: {problem}" for p in everyone for problem in p.problems]
    assert not problems, "\n".join(problems)
