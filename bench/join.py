"""Join time and first-visit weight of the live room, in headless Chromium on loopback.

Starts ``python app.py`` (demo data, one media worker) on a free loopback port with a fresh
temporary data folder, signs the demo instructor in and has them go live with Chromium's fake
camera in the demo lesson. Then, K times, a student in a fresh browser context (empty cache,
cache disabled through CDP) opens the lesson's page and clicks its **"Join the live room"
link** (the room has no separate Join button: the link navigates to the room page, which
connects and starts playing by itself). Measured, on the browser's own clock:

- ``live``: click → the room's connection status shows "live" (the state has arrived);
- ``frame``: click → the first frame of the instructor's video is presented
  (``requestVideoFrameCallback``; where it never fires, ``framesDecoded > 0`` from getStats(),
  polled every 20 ms);
- ``room KB``: bytes on the wire for the room page's HTTP requests (HTML, CSS, modules, the
  Socket.IO client, slide images), from the click until one second after the first frame: the
  sum of CDP ``Network.loadingFinished.encodedDataLength`` (headers + compressed bodies;
  WebSocket frames are not included). ``before KB``: the same for the login and lesson pages
  visited first.

Each student leaves (context closed) before the next joins. Every packet stays on 127.0.0.1.
The last line printed is JSON: ``{"join_ms_median": ..., "first_visit_kb": ...}`` where
``first_visit_kb`` is the room page's weight on the first join.

    python bench/join.py              # K = 5
    python bench/join.py --joins 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: tests/live.py lives one level up

from tests.live import LiveServer, launch_chromium  # noqa: E402

PASSWORD = "lectern-demo"
STUDENTS = ["student1@example.com", "student2@example.com", "student3@example.com"]
LESSON_PAGE = "/courses/1/lessons/1"
ROOM = "/rooms/lesson/1"
FRAME_TIMEOUT_S = 30.0

# In every page of a student's context: on the room page, note (epoch ms, browser clock) when
# the connection goes live and when the first remote video frame is shown or decoded.
PROBE = """
(() => {
  if (!location.pathname.startsWith("/rooms/")) return;
  const marks = (window.__join = {});
  const mark = (key) => {
    if (!(key in marks)) marks[key] = performance.timeOrigin + performance.now();
  };
  const peers = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); peers.push(this); }
  };
  const poll = setInterval(async () => {
    for (const pc of peers) {
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0) mark("decoded");
      });
    }
    if ("decoded" in marks) clearInterval(poll);
  }, 20);
  const watch = (video) => {
    if (video.__watched || !video.closest(".tile") || video.closest(".tile.local")) return;
    video.__watched = true;
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => mark("frame"));
  };
  new MutationObserver(() => {
    document.querySelectorAll("video").forEach(watch);
    const conn = document.getElementById("conn");
    if (conn && conn.dataset.state === "live") mark("live");
  }).observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"],
  });
})();
"""


def sign_in(page: Any, email: str) -> None:
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


class Bytes:
    """Sums ``encodedDataLength`` of finished requests on one page (CDP), cache disabled."""

    def __init__(self, context: Any, page: Any) -> None:
        self.total = 0
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        cdp.on("Network.loadingFinished", self.add)

    def add(self, event: dict[str, Any]) -> None:
        self.total += int(event.get("encodedDataLength", 0))

    def take(self) -> int:
        """The bytes since the last take."""
        total, self.total = self.total, 0
        return total


def go_live(browser: Any, url: str) -> Any:
    """The instructor's context, publishing the fake camera and microphone in the lesson."""
    context = browser.new_context(base_url=url, viewport={"width": 1366, "height": 768})
    page = context.new_page()
    sign_in(page, "instructor@example.com")
    page.goto(ROOM)
    page.get_by_role("button", name="Start camera & mic").click()
    page.get_by_role("button", name="Stop camera").wait_for()
    return context


def join_once(browser: Any, url: str, email: str) -> dict[str, Any]:
    """One student's first visit: sign in, open the lesson, click Join, wait for video."""
    context = browser.new_context(base_url=url, viewport={"width": 1366, "height": 768})
    context.add_init_script(PROBE)
    page = context.new_page()
    wire = Bytes(context, page)
    try:
        sign_in(page, email)
        page.goto(LESSON_PAGE)
        page.wait_for_load_state("networkidle")
        before = wire.take()
        clicked = page.evaluate(
            """() => {
                const link = [...document.querySelectorAll("a")]
                    .find((a) => a.textContent.trim() === "Join the live room");
                const t = performance.timeOrigin + performance.now();
                link.click();
                return t;
            }"""
        )
        page.wait_for_url(f"**{ROOM}")
        page.wait_for_function(
            "() => window.__join && ('frame' in window.__join || 'decoded' in window.__join)",
            timeout=FRAME_TIMEOUT_S * 1000,
            polling=50,
        )
        time.sleep(1.0)  # let the page finish what it loads after the first frame
        marks = page.evaluate("() => window.__join")
        first = marks.get("frame", marks.get("decoded"))
        return {
            "email": email,
            "live_ms": marks["live"] - clicked if "live" in marks else None,
            "frame_ms": first - clicked,
            "decoded_ms": marks["decoded"] - clicked if "decoded" in marks else None,
            "by": "rVFC" if "frame" in marks else "framesDecoded",
            "room_bytes": wire.take(),
            "before_bytes": before,
        }
    finally:
        context.close()


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    print(
        f"{'join':>4}  {'student':<22} {'live ms':>8} {'frame ms':>9} {'decoded ms':>11} "
        f"{'by':<14} {'room KB':>8} {'before KB':>10}"
    )
    for n, row in enumerate(rows, 1):
        print(
            f"{n:>4}  {row['email']:<22} {fmt(row['live_ms']):>8} {fmt(row['frame_ms']):>9} "
            f"{fmt(row['decoded_ms']):>11} {row['by']:<14} {row['room_bytes'] / 1024:>8.1f} "
            f"{row['before_bytes'] / 1024:>10.1f}"
        )
    frames = [row["frame_ms"] for row in rows]
    lives = [row["live_ms"] for row in rows if row["live_ms"] is not None]
    print(
        f"median: live {fmt(statistics.median(lives) if lives else None)} ms, first frame "
        f"{statistics.median(frames):.0f} ms (min {min(frames):.0f}, max {max(frames):.0f}); "
        f"target: first frame under 1000 ms"
    )
    return {
        "join_ms_median": round(statistics.median(frames)),
        "first_visit_kb": round(rows[0]["room_bytes"] / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=5, help="student joins to time (K)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lectern-join-") as tmp:
        env = {"MEDIA_WORKERS": "1", "DEMO_DATA": "true"}
        with LiveServer(Path(tmp) / "data", env) as server, launch_chromium() as browser:
            teacher = go_live(browser, server.url)
            rows = [
                join_once(browser, server.url, STUDENTS[n % len(STUDENTS)])
                for n in range(args.joins)
            ]
            teacher.close()
    print(json.dumps(report(rows)))


if __name__ == "__main__":
    main()
