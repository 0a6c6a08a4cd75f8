"""``hls.url``: a signed URL of the broadcast's HLS tier for the people in its room, which the
route accepts for that broadcast only; nothing in a lesson's room."""

from __future__ import annotations

from typing import Any

from .conftest import World


def test_people_in_a_broadcast_get_a_url_that_opens_their_broadcast_only(room: World) -> None:
    attendee = room.join(room.attendees[0])
    reply: dict[str, Any] = attendee.emit("hls.url", {})
    assert reply["ok"], reply
    url = reply["url"]
    assert url.startswith(f"/broadcasts/{room.broadcast_id}/hls/") and url.endswith("/index.m3u8")
    http = room.http(None)  # no session: the URL alone opens it
    assert http.get(url).status_code == 404  # nothing published yet: no playlist
    foreign = url.replace(
        f"/broadcasts/{room.broadcast_id}/", f"/broadcasts/{room.broadcast_id + 1}/"
    )
    assert http.get(foreign).status_code == 403


def test_a_lesson_has_no_hls_url(room: World) -> None:
    reply: dict[str, Any] = room.join(room.students[0]).emit("hls.url", {})
    assert reply["ok"] and reply["url"] is None and reply["expires"] is None, reply
