"""Weak connections on the room page: the camera publishes simulcast, and each viewer chooses
what they receive (Auto, High, Low, Audio only), a choice kept on their device, sent with
``media.view`` and changed live with ``media.quality``, which the web app passes to the media
worker serving the view (``prefer``). The refusals come from real Socket.IO clients signed in
with the browsers' own session cookies."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from media.channel import MediaChannel
from tests.live import LiveServer
from tests.media.test_app_media import Participant

from .conftest import (
    PHONE,
    SENDERS,
    People,
    Person,
    enter,
    no_horizontal_scroll,
    no_problems,
    sees_video_of,
    start_camera,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

ROOM = "/rooms/lesson/1"
TEACHER = "Ada Instructor"
STALL_S = 6  # player.js STALL_MS: a view without video this long would be reconnected

# The camera of a laptop with a small webcam: 320x240, too small to halve.
SMALL_CAMERA = """
{
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => original(constraints && constraints.video
    ? { ...constraints, video: { width: { exact: 320 }, height: { exact: 240 } } }
    : constraints);
}
"""

# A receive-only offer made by the page's Chromium, as player.js makes one (for the Socket.IO
# clients here, which have no WebRTC of their own).
VIEW_OFFER = """
async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") done(); };
    setTimeout(done, 2000);
  });
  return pc.localDescription.sdp;
}
"""

# The height of the last frame decoded by the page's (one) video view.
FRAME_HEIGHT = """
async () => {
  let height = 0;
  for (const pc of window.__peers || []) {
    if (pc.connectionState !== "connected") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") height = s.frameHeight || height;
    });
  }
  return height;
}
"""

# The height of the video each of the page's publishing connections sends.
CAMERA_HEIGHTS = """
() => (window.__peers || []).filter((pc) => pc.connectionState !== "closed")
  .flatMap((pc) => pc.getSenders())
  .filter((s) => s.track && s.track.kind === "video")
  .map((s) => s.track.getSettings().height)
"""


def published_offer(person: Person) -> str:
    """The SDP offer of ``person``'s (one) publishing connection, once it is answered."""
    senders = wait_for(
        lambda: [s for s in person.page.evaluate(SENDERS) if s["signaling"] == "stable"],
        what=f"{person.email}'s answered publishing connection",
    )
    assert len(senders) == 1, senders
    offer: str = senders[0]["sdp"]
    return offer


def teacher_live(people: People) -> Person:
    teacher = people.sign_in("instructor@example.com")
    enter(teacher, ROOM)
    start_camera(teacher)
    return teacher


def hint(person: Person, name: str) -> Any:
    return person.page.locator("figure.tile:not(.local)", has_text=name).locator(".quality")


def worker_peers(server: LiveServer) -> dict[str, Any]:
    """The media worker's viewers: {peer: {"stream", "quality", "layer", ...}} (``stats``)."""
    addr = server.wait_for_output(r"^Media workers: (\S+)$").group(1)
    peers: dict[str, Any] = MediaChannel([addr], timeout=5).call(addr, "stats").get("peers", {})
    return peers


# --- publishing ---


def test_a_camera_publishes_two_encodings_and_is_seen(people: People) -> None:
    teacher = teacher_live(people)
    student = people.sign_in("student1@example.com")
    enter(student, ROOM)

    offer = published_offer(teacher)
    sees_video_of(student, TEACHER)

    assert min(teacher.page.evaluate(CAMERA_HEIGHTS)) >= 360  # Chromium's fake camera
    video = offer[offer.index("m=video") :]
    assert re.search(r"^a=simulcast:send l;h\r?$", video, re.M), video
    assert re.findall(r"^a=rid:(\w+) send\r?$", video, re.M) == ["l", "h"]
    no_problems(teacher, student)


def test_a_small_camera_publishes_one_encoding(people: People) -> None:
    teacher = people.sign_in("instructor@example.com", init_script=SMALL_CAMERA)
    enter(teacher, ROOM)
    start_camera(teacher)

    offer = published_offer(teacher)

    assert teacher.page.evaluate(CAMERA_HEIGHTS) == [240]
    assert "a=simulcast" not in offer
    assert "a=rid:" not in offer
    no_problems(teacher)


# --- the viewer's choice ---


def test_the_choice_is_kept_on_the_device_and_fits_a_phone(people: People) -> None:
    student = people.sign_in("student1@example.com", PHONE)
    enter(student, ROOM)
    select = student.page.get_by_label("Video quality")
    expect(select).to_be_visible()
    expect(select).to_have_value("auto")
    labels = select.locator("option").all_text_contents()
    assert labels == ["Auto", "High", "Low", "Audio only (data saver)"]
    no_horizontal_scroll(student)

    select.select_option(label="Low")
    student.page.reload()
    enter(student, ROOM)
    expect(student.page.get_by_label("Video quality")).to_have_value("low")

    other_device = people.sign_in("student1@example.com", PHONE)
    enter(other_device, ROOM)
    expect(other_device.page.get_by_label("Video quality")).to_have_value("auto")
    no_problems(student, other_device)


def test_audio_only_is_followed_without_reconnecting(people: People, server: LiveServer) -> None:
    """Choosing "Audio only" reaches the media worker (its stats show the view's choice); the
    video stops and the sound goes on, which the page shows as the viewer's choice and never
    takes for a stalled view; back on Auto the video plays again, at full size; on Low, at
    half size."""
    teacher_live(people)
    student = people.sign_in("student1@example.com")
    enter(student, ROOM)
    sees_video_of(student, TEACHER)
    views = student.page.evaluate("() => window.__peers.length")

    student.page.get_by_label("Video quality").select_option("audio")

    expect(hint(student, TEACHER)).to_have_text("Audio only (your choice)")
    wait_for(
        lambda: [p for p in worker_peers(server).values() if p.get("quality") == "audio"],
        what="the media worker to note the view's choice",
    )
    time.sleep(STALL_S + 3)
    expect(hint(student, TEACHER)).to_have_text("Audio only (your choice)")
    tile = student.page.locator("figure.tile:not(.local)", has_text=TEACHER)
    expect(tile).to_have_class(re.compile(r"\baudio-only\b"))
    assert student.page.evaluate("() => window.__peers.length") == views  # not reconnected

    student.page.get_by_label("Video quality").select_option("auto")
    sees_video_of(student, TEACHER)
    expect(tile).not_to_have_class(re.compile(r"\baudio-only\b"))
    full = wait_for(lambda: frame_height(student), what="the student's frame height")
    assert full >= 360, full

    student.page.get_by_label("Video quality").select_option("low")
    expect(hint(student, TEACHER)).to_have_text("Low quality (your choice)")
    wait_for(lambda: 0 < frame_height(student) <= full // 2, what="the low layer's frames")
    no_problems(student)


def frame_height(person: Person) -> int:
    """The height of the last video frame ``person``'s page decoded (0: none yet)."""
    height: int = person.page.evaluate(FRAME_HEIGHT)
    return height


# --- refusals, over Socket.IO ---


@pytest.fixture
def clients(server: LiveServer) -> Iterator[list[Participant]]:
    joined: list[Participant] = []
    yield joined
    for client in joined:
        if client.sio.connected:
            client.sio.disconnect()


def client_of(person: Person, user_id: int, server: LiveServer, joined: list[Participant]) -> Any:
    """A Socket.IO client in the lesson's room with ``person``'s browser session."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in person.page.context.cookies())
    client = Participant(user_id)
    client.join(server.url, cookies)
    joined.append(client)
    return client


def test_the_web_app_refuses_bad_choices_and_other_peoples_views(
    people: People, server: LiveServer, clients: list[Participant]
) -> None:
    teacher = teacher_live(people)
    published_offer(teacher)
    ben = client_of(people.sign_in("student1@example.com"), 2, server, clients)
    cleo = client_of(people.sign_in("student2@example.com"), 3, server, clients)
    [stream] = [s["id"] for s in ben.state()["streams"]]
    offer = teacher.page.evaluate(VIEW_OFFER)

    bad_view = ben.call("media.view", {"stream": stream, "sdp": offer, "quality": "best"})
    viewed = ben.call("media.view", {"stream": stream, "sdp": offer, "quality": "low"})
    assert viewed["ok"], viewed
    peer = viewed["peer"]
    bad = ben.call("media.quality", {"stream": stream, "peer": peer, "quality": "ultra"})
    no_peer = ben.call("media.quality", {"stream": stream, "quality": "low"})
    no_stream = ben.call("media.quality", {"stream": "nope", "peer": peer, "quality": "low"})
    others = cleo.call("media.quality", {"stream": stream, "peer": peer, "quality": "audio"})
    own = ben.call("media.quality", {"stream": stream, "peer": peer, "quality": "audio"})

    choices = "quality must be one of: auto, high, low, audio"
    assert bad_view == {"ok": False, "error": choices}
    assert bad == {"ok": False, "error": choices}
    assert no_peer == {"ok": False, "error": "peer must be text"}
    assert no_stream == {"ok": False, "error": "no such stream in this room"}
    assert others["ok"] is False
    assert (
        others["error"] == "you have no such view of this stream (it may have ended): view it again"
    )
    assert own == {"ok": True}
    assert worker_peers(server)[peer]["quality"] == "audio"
    no_problems(teacher)
