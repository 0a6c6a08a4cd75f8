"""The attendee page's tiers in a broadcast: real time (WebRTC) or low data (HLS, hls.js).

The host of the demo all-hands goes live with Chromium's fake camera; its media worker packages
the stream as the broadcast's HLS tier. An attendee who ticks "Low data" is told the broadcast
has not started, then watches the HLS tier in one <video> once it has, with Q&A and chat as
before, and is back on WebRTC when invited to the stage. With the WebRTC tier full (a media
worker that takes one viewer), the next attendee is refused a view and lands on HLS by itself,
and keeps playing across the expiry of its signed URL. An attendee whose WebRTC cannot connect
at all lands on HLS too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.live import LiveServer

from .conftest import (
    PHONE,
    VIDEO_TIMEOUT_S,
    People,
    Person,
    join_from,
    no_horizontal_scroll,
    no_problems,
    screenshots,
    sees_video_of,
    show_tab,
    start_camera,
    wait_for,
)
from .test_broadcast import BROADCAST, pending, register_and_join

pytestmark = [pytest.mark.browser, pytest.mark.server]

REAL_TIME = "Live (real time)"
LOW_DATA = re.compile(r"^Live \(low data, about \d+ s behind\)$")
NOT_STARTED = "No live video yet: the broadcast has not started."
STARTING = re.compile(r"^404 http://\S+/broadcasts/\d+/hls/[^/]+/index\.m3u8(\?\S*)?$")
URL_LIFETIME_S = 8  # the full-tier test's signed URLs expire while it watches
# What the HLS <video> has shown so far: its clock and the frames it has decoded.
PROGRESS = "(v) => [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames]"


def plays_hls(person: Person, within_s: float = VIDEO_TIMEOUT_S) -> Any:
    """``person``'s page plays the HLS tier (its <video> there within ``within_s``): one <video>
    (no WebRTC view left) with a picture whose clock and decoded frames keep growing, and says
    so with how far behind live it is."""
    page = person.page
    video = page.locator("figure.tile.hls video")
    expect(video).to_have_count(1, timeout=within_s * 1000)
    expect(page.locator("figure.tile:not(.hls)")).to_have_count(0)
    handle = video.element_handle()
    page.wait_for_function(
        "(v) => v.videoWidth > 0 && v.currentTime > 0",
        arg=handle,
        timeout=VIDEO_TIMEOUT_S * 1000,
        polling=200,
    )
    advances(person, handle)
    status = page.locator("#tier-status")
    expect(status).to_have_attribute("data-tier", "hls")
    expect(status).to_have_text(LOW_DATA, timeout=VIDEO_TIMEOUT_S * 1000)
    return handle


def advances(person: Person, video: Any) -> None:
    """The HLS <video>'s clock and decoded frames both grow from now on."""
    seconds, frames = person.page.evaluate(PROGRESS, video)

    def grown() -> bool:
        now_seconds, now_frames = person.page.evaluate(PROGRESS, video)
        return bool(now_seconds > seconds and now_frames > frames)

    wait_for(grown, VIDEO_TIMEOUT_S, f"{person.email}'s HLS video to play on")


def host_goes_live(people: People) -> Person:
    host = people.sign_in("host@example.com")
    join_from(host, BROADCAST)
    start_camera(host)
    return host


def test_low_data_plays_hls_with_qa_and_chat_and_stage(people: People, artifacts: Path) -> None:
    host = people.sign_in("host@example.com")
    join_from(host, BROADCAST)
    eli = people.sign_in("employee@example.com", PHONE)
    join_from(eli, BROADCAST)
    eli.page.get_by_label("Low data (HLS)").check()
    expect(eli.page.locator("#tier-status")).to_have_text(NOT_STARTED)

    # The host goes live: the tier starts, and the page plays it once its playlist is there.
    start_camera(host)
    plays_hls(eli)
    screenshots(eli, "hls-tier-low-data", artifacts)  # the phone layout does not scroll sideways

    # Q&A and chat are the same on this tier.
    asked = "Can we watch this on the train?"
    eli.page.get_by_label("Your question").fill(asked)
    eli.page.get_by_role("button", name="Ask", exact=True).click()
    expect(pending(host, asked)).to_have_count(1)
    show_tab(eli, "Chat")
    eli.page.get_by_role("textbox", name="Message").fill("Watching on low data")
    eli.page.get_by_role("button", name="Send").click()
    show_tab(host, "Chat")
    expect(host.page.locator("#chat-list li", has_text="Watching on low data")).to_have_count(1)

    # Invited to the stage: real time again.
    show_tab(host, "People")
    host.page.get_by_role("button", name="Invite Eli Employee to the stage").click()
    # (a reconnect with the new role, and a reload for its panels)
    expect(eli.page.locator("#stage-prompt")).to_contain_text("You are on stage", timeout=30_000)
    expect(eli.page.locator("figure.tile.hls")).to_have_count(0)
    expect(eli.page.locator("#tier")).to_be_hidden()
    sees_video_of(eli, "Hana Host")
    # Until the tier's first segment is written its playlist is not there (404): the page
    # said it was starting and asked again.
    eli.problems = [p for p in eli.problems if not STARTING.match(p)]
    no_problems(host, eli)


def test_a_full_webrtc_tier_sends_the_next_attendee_to_hls(
    live_server: Callable[..., LiveServer], people_on: Callable[[LiveServer], People]
) -> None:
    env = {
        "MEDIA_WORKERS": "1",
        "DEMO_DATA": "true",
        "MEDIA_CAPACITY": "1",  # one WebRTC viewer fills the only media worker
        "HLS_URL_LIFETIME_S": str(URL_LIFETIME_S),
    }
    people = people_on(live_server(env))
    host = host_goes_live(people)
    eli = people.sign_in("employee@example.com")
    join_from(eli, BROADCAST)
    sees_video_of(eli, "Hana Host")  # the one viewer the worker takes
    expect(eli.page.locator("#tier-status")).to_have_text(REAL_TIME)

    ben = people.sign_in("student1@example.com", PHONE)
    joined = time.monotonic()  # its first signed URL is asked for after this
    register_and_join(ben)
    video = plays_hls(ben)
    expect(ben.page.locator("#tier .tier-why")).to_contain_text("The real-time stream is full")
    expect(ben.page.get_by_label("Low data (HLS)")).to_be_checked()
    no_horizontal_scroll(ben)

    # Its signed URL expires meanwhile: the page has asked for a fresh one, and plays on.
    expired = joined + URL_LIFETIME_S + 1 - time.monotonic()
    if expired > 0:
        ben.page.wait_for_timeout(expired * 1000)
    advances(ben, video)
    expect(eli.page.locator("#tier-status")).to_have_text(REAL_TIME)
    no_problems(host, eli, ben)


# No path for WebRTC's media (UDP blocked, no relay): every connection the page makes may use
# relay candidates only, and there is no TURN server to give one. Its views never connect (nor
# fail: there is no candidate pair to fail), so the page gives up on WebRTC after 15 s.
GIVE_UP_S = 15
NO_WEBRTC_PATH = """
(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) { super({ ...config, iceTransportPolicy: "relay" }, ...rest); }
  };
})();
"""


def test_webrtc_that_cannot_connect_gives_way_to_hls(people: People) -> None:
    host = host_goes_live(people)
    ana = people.sign_in("student1@example.com", init_script=NO_WEBRTC_PATH)
    register_and_join(ana)
    expect(ana.page.locator("#tier-status")).to_have_text(REAL_TIME)  # trying it first
    plays_hls(ana, GIVE_UP_S + VIDEO_TIMEOUT_S)
    expect(ana.page.locator("#tier .tier-why")).to_contain_text("could not connect")
    no_problems(host, ana)
