"""The codec a presenter's Chromium publishes is what its viewers decode: H.264 where the
browser can send it (``MEDIA_PREFER_H264``, on by default: the page offers it first), VP8 where
it cannot or where the setting is off; the media worker forwards either as it is. ``getStats``
names the codec on both sides."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.live import LiveServer

from .conftest import (
    People,
    Person,
    enter,
    join_from,
    no_problems,
    sees_video_of,
    start_camera,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

LESSON_ROOM = "/courses/1/lessons/1"

# A browser that cannot send H.264: its sender capabilities list none.
NO_H264 = """
{
  const original = RTCRtpSender.getCapabilities.bind(RTCRtpSender);
  RTCRtpSender.getCapabilities = (kind) => {
    const caps = original(kind);
    if (caps && kind === "video") {
      caps.codecs = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== "video/h264");
    }
    return caps;
  };
}
"""

# The video codec (a MIME type) of each live connection's outbound or inbound video.
VIDEO_CODECS = """
async (direction) => {
  const found = [];
  for (const pc of window.__peers || []) {
    if (pc.connectionState !== "connected") continue;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === direction && s.kind === "video" && s.codecId && report.get(s.codecId)) {
        found.push(report.get(s.codecId).mimeType);
      }
    });
  }
  return found;
}
"""


def codecs(person: Person, direction: str) -> list[str]:
    """The codecs of ``person``'s ``outbound-rtp`` or ``inbound-rtp`` video, once it flows."""
    found: list[str] = wait_for(
        lambda: person.page.evaluate(VIDEO_CODECS, direction),
        what=f"{person.email}'s {direction} video codec",
    )
    return found


def publishes(people: People, init_script: str = "") -> tuple[list[str], list[str]]:
    """The teacher (their page's scripts preceded by ``init_script``) goes live with their
    camera in the demo lesson and a student sees them: the codecs of the teacher's outbound
    and the student's inbound video."""
    teacher = people.sign_in("instructor@example.com", init_script=init_script)
    student = people.sign_in("student1@example.com")
    join_from(teacher, LESSON_ROOM)
    enter(student, teacher.page.url)
    start_camera(teacher)

    sees_video_of(student, "Ada Instructor")

    # The camera's simulcast layers are one outbound stream each, of one codec.
    sent, received = codecs(teacher, "outbound-rtp"), codecs(student, "inbound-rtp")
    no_problems(teacher, student)
    return sorted(set(sent)), received


@pytest.mark.parametrize(("init_script", "codec"), [("", "video/H264"), (NO_H264, "video/VP8")])
def test_presenter_publishes_h264_where_it_can_and_viewers_decode_it(
    people: People, init_script: str, codec: str
) -> None:
    assert publishes(people, init_script) == ([codec], [codec])


def test_with_h264_first_turned_off_the_presenter_publishes_vp8(
    live_server: Callable[..., LiveServer], people_on: Callable[[LiveServer], People]
) -> None:
    server = live_server({"MEDIA_WORKERS": "1", "DEMO_DATA": "true", "MEDIA_PREFER_H264": "false"})
    assert publishes(people_on(server)) == (["video/VP8"], ["video/VP8"])
