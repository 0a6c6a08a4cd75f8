"""WHIP ingest through the whole app: ``python app.py`` with one media worker; an encoder written
to RFC 9725 (aiortc, HTTP from this process) publishes into the demo all-hands, attendees watch.

The demo's all-hands (broadcast 1) is live; its host is user 5, employee user 6 is registered.
The host makes a stream key on the broadcast page, as a person would (CSRF token and all).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import av
import pytest

from tests.live import LiveServer
from tests.media.conftest import Publisher, Viewer, loopback_only, until
from tests.media.test_app_media import (
    SECRET_KEY,
    Participant,
    cookies,
    joining,
    stream_ids,
)

# Fixtures used here: this module's peers offer loopback only; session cookies for the server.
__all__ = ["cookies", "loopback_only"]

pytestmark = pytest.mark.server

BROADCAST, ROOM = 1, "broadcast:1"
HOST, EMPLOYEE = 5, 6
SDP_TYPE = "application/sdp"
H264 = "video/H264"


class Attendee(Participant):
    """A Socket.IO client in the all-hands' room."""

    room = ROOM

    def streams_shown(self, since: int) -> list[dict[str, Any]]:
        """The first non-empty ``media.streams`` from ``since`` on."""
        streams: list[dict[str, Any]] = self.wait_for(
            "media.streams", lambda d: bool(d["streams"]), since
        )["streams"]
        return streams

    def streams_gone(self, since: int) -> dict[str, Any]:
        """The first empty ``media.streams`` from ``since`` on."""
        data: dict[str, Any] = self.wait_for("media.streams", lambda d: not d["streams"], since)
        return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("whip") / "data"
    env = {"SECRET_KEY": SECRET_KEY, "MEDIA_WORKERS": "1", "DEMO_DATA": "true"}
    with LiveServer(data, env) as started:
        started.wait_for_output(r"^Media workers: (\S+)$")
        yield started


@pytest.fixture
def join(server: LiveServer, cookies: Callable[[int], str]) -> Iterator[Callable[[int], Attendee]]:
    """Connects users to the all-hands' room; every one is disconnected after the test."""
    with joining(server.url, cookies, Attendee) as connect:
        yield connect


def http(
    method: str, url: str, body: bytes | None = None, **headers: str
) -> tuple[int, Message, str]:
    """One request; (status, headers (case-insensitive), body) whatever the status."""
    request = urllib.request.Request(url, data=body, method=method)
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def host_form(server: LiveServer, cookie: str, action: str = "") -> str:
    """Post the broadcast page's form ``action`` (its path; "": the first stream key form) as
    the host, with the page's CSRF token; the page that comes back (redirects followed)."""
    page = f"{server.url}/broadcasts/{BROADCAST}"
    status, headers, html = http("GET", page, Cookie=cookie)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert status == 200 and token is not None
    status, _, html = http(
        "POST",
        server.url + (action or f"/broadcasts/{BROADCAST}/stream-keys"),
        f"csrf_token={token.group(1)}".encode(),
        Cookie=headers["Set-Cookie"].split(";")[0],  # now holding the CSRF secret
        Content_Type="application/x-www-form-urlencoded",
    )
    assert status == 200, html
    return html


def make_key(server: LiveServer, cookie: str) -> tuple[str, str]:
    """The host's "Create a stream key" on the broadcast page: (endpoint URL, key)."""
    html = host_form(server, cookie)
    key = re.search(r'id="new-stream-key">([^<]+)<', html)
    endpoint = re.search(r"<code>(http[^<]+/whip)</code>", html)
    assert key is not None and endpoint is not None
    return endpoint.group(1), key.group(1)


def revoke_all(server: LiveServer, cookie: str) -> int:
    """The host revokes every stream key listed on the broadcast page."""
    _, _, html = http("GET", f"{server.url}/broadcasts/{BROADCAST}", Cookie=cookie)
    actions = re.findall(r'action="(/broadcasts/\d+/stream-keys/\d+/revoke)"', html)
    for action in actions:
        host_form(server, cookie, action)
    return len(actions)


async def whip_publish(endpoint: str, key: str, publisher: Publisher) -> tuple[int, Message, str]:
    """RFC 9725 §4.2: POST the offer; on 201 apply the answer."""
    offer = (await publisher.offer()).encode()
    reply = await asyncio.to_thread(
        http, "POST", endpoint, offer, Content_Type=SDP_TYPE, Authorization=f"Bearer {key}"
    )
    if reply[0] == 201:
        await publisher.answer(reply[2])
    return reply


async def published(
    attendee: Attendee, endpoint: str, key: str, encoder: Publisher
) -> tuple[Message, str, dict[str, Any]]:
    """The encoder publishes (201): its answer's headers and body, and its stream as the
    attendee is told of it."""
    since = attendee.mark()
    status, headers, answer = await whip_publish(endpoint, key, encoder)
    assert status == 201, answer
    [stream] = await asyncio.to_thread(attendee.streams_shown, since)
    return headers, answer, stream


async def decodes(attendee: Attendee, stream: str, viewer: Viewer) -> tuple[str, bool]:
    """``media.view`` of ``stream``: the answer, and whether 30 video and 25 audio frames were
    decoded within 10 s."""
    request = {"stream": stream, "sdp": await viewer.offer()}
    reply = await asyncio.to_thread(attendee.call, "media.view", request)
    assert reply.get("ok"), reply
    await viewer.answer(reply["sdp"])
    decoded = await until(lambda: viewer.frames["video"] >= 30 and viewer.frames["audio"] >= 25, 10)
    return reply["sdp"], decoded


def test_an_encoder_publishes_over_whip_and_delete_ends_it(
    server: LiveServer, cookies: Callable[[int], str], join: Callable[[int], Attendee]
) -> None:
    endpoint, key = make_key(server, cookies(HOST))
    attendee = join(EMPLOYEE)

    async def scenario() -> dict[str, Any]:
        encoder, second, viewer = Publisher(), Publisher(), Viewer()
        got: dict[str, Any] = {}
        try:
            got["wrong"] = await whip_publish(endpoint, "not-the-key", second)
            headers, got["answer"], got["stream"] = await published(
                attendee, endpoint, key, encoder
            )
            got["headers"] = headers
            _, got["decoded"] = await decodes(attendee, got["stream"]["id"], viewer)
            got["second"] = await whip_publish(endpoint, key, second)
            session = server.url + headers["Location"]
            auth = {"Authorization": f"Bearer {key}"}
            got["wrong_delete"] = await asyncio.to_thread(
                http, "DELETE", session, Authorization="Bearer nope"
            )
            since = attendee.mark()
            got["delete"] = await asyncio.to_thread(http, "DELETE", session, **auth)
            got["gone"] = await asyncio.to_thread(attendee.streams_gone, since)
            got["closed"] = await until(
                lambda: (
                    viewer.pc.connectionState in ("closed", "failed")
                    or viewer.ended == {"video", "audio"}
                ),
                10,
            )
            got["state"] = await asyncio.to_thread(attendee.state)
            got["again"] = await asyncio.to_thread(http, "DELETE", session, **auth)
        finally:
            await viewer.close()
            await encoder.close()
            await second.close()
        return got

    got = asyncio.run(scenario())

    assert got["wrong"][0] == 401 and got["wrong"][1]["WWW-Authenticate"] == "Bearer"
    headers = got["headers"]
    assert headers["Content-Type"] == SDP_TYPE
    assert got["answer"].startswith("v=0") and "a=setup:" in got["answer"]
    assert re.fullmatch(rf"/broadcasts/{BROADCAST}/whip/[\w-]+", headers["Location"])
    assert headers["Access-Control-Allow-Origin"] == "*"
    stream = got["stream"]
    assert (stream["user_id"], stream["source"], stream["name"]) == (HOST, "camera", "Hana Host")
    assert got["decoded"], "the attendee's viewer decoded no frames"
    assert got["second"][0] == 409
    assert got["wrong_delete"][0] == 401
    assert got["delete"][0] == 200
    assert got["gone"]["streams"] == []
    assert got["closed"], "the viewer's connection stayed open"
    assert stream_ids(got["state"]) == set()
    assert got["again"][0] == 404


def test_an_h264_encoder_like_obs_is_decoded(
    server: LiveServer, cookies: Callable[[int], str], join: Callable[[int], Attendee]
) -> None:
    """OBS offers H.264 video and Opus: viewers get the encoder's H.264 as it is."""
    endpoint, key = make_key(server, cookies(HOST))
    attendee = join(EMPLOYEE)

    async def scenario() -> dict[str, Any]:
        encoder, viewer = Publisher(H264), Viewer()
        got: dict[str, Any] = {}
        try:
            headers, got["answer"], stream = await published(attendee, endpoint, key, encoder)
            got["view"], got["decoded"] = await decodes(attendee, stream["id"], viewer)
            got["delete"] = await asyncio.to_thread(
                http, "DELETE", server.url + headers["Location"], Authorization=f"Bearer {key}"
            )
        finally:
            await viewer.close()
            await encoder.close()
        return got

    got = asyncio.run(scenario())

    assert "H264/90000" in got["answer"] and "VP8" not in got["answer"]
    assert "H264/90000" in got["view"] and "VP8" not in got["view"]
    assert got["decoded"], "the attendee's viewer decoded no frames"
    assert got["delete"][0] == 200


def test_a_revoked_key_ends_its_stream_and_is_refused(
    server: LiveServer, cookies: Callable[[int], str], join: Callable[[int], Attendee]
) -> None:
    endpoint, key = make_key(server, cookies(HOST))
    attendee = join(EMPLOYEE)

    async def scenario() -> dict[str, Any]:
        encoder, again = Publisher(), Publisher()
        got: dict[str, Any] = {}
        try:
            await published(attendee, endpoint, key, encoder)
            since = attendee.mark()
            got["revoked"] = await asyncio.to_thread(revoke_all, server, cookies(HOST))
            got["gone"] = await asyncio.to_thread(attendee.streams_gone, since)
            got["again"] = await whip_publish(endpoint, key, again)
        finally:
            await encoder.close()
            await again.close()
        return got

    got = asyncio.run(scenario())

    assert got["revoked"] >= 1
    assert got["gone"]["streams"] == []
    assert got["again"][0] == 401


def segment_files(server: LiveServer, stream: str) -> list[str]:
    """The recording segments' file names the app holds for ``stream`` (its database)."""
    with contextlib.closing(sqlite3.connect(server.data_dir / "lectern.db")) as conn:
        rows = conn.execute(
            "SELECT file FROM recording_segments WHERE stream_id = ?", (stream,)
        ).fetchall()
    return [row[0] for row in rows]


def test_the_encoder_is_recorded_and_the_session_end_ends_it(
    server: LiveServer, cookies: Callable[[int], str], join: Callable[[int], Attendee]
) -> None:
    """Last in this module: it ends the all-hands for everyone. The encoder sends H.264, as OBS
    does: the recording is an MP4 (H.264 as sent), named so from the moment the stream joins
    the recording, so the recording in progress lists the file being written."""
    endpoint, key = make_key(server, cookies(HOST))
    host, attendee = join(HOST), join(EMPLOYEE)

    async def scenario() -> dict[str, Any]:
        encoder, late = Publisher(H264), Publisher()
        got: dict[str, Any] = {}
        try:
            started = await asyncio.to_thread(host.call, "recording.start", {"title": "WHIP"})
            assert started["ok"], started
            _, _, got["stream"] = await published(attendee, endpoint, key, encoder)
            await asyncio.sleep(3)  # a few seconds of the encoder's media in the recording
            got["listed"] = segment_files(server, got["stream"]["id"])
            got["stopped"] = await asyncio.to_thread(host.call, "recording.stop")
            since = attendee.mark()
            got["ended"] = await asyncio.to_thread(host.call, "room.end")
            got["gone"] = await asyncio.to_thread(attendee.streams_gone, since)
            got["late"] = await whip_publish(endpoint, key, late)
        finally:
            await encoder.close()
            await late.close()
        return got

    got = asyncio.run(scenario())

    assert got["stopped"]["ok"] and got["stopped"]["recording"]["status"] == "ready"
    stream = got["stream"]["id"]
    assert got["listed"] == [f"{stream}.mp4"]  # while recording
    files = list(server.data_dir.glob(f"recordings/*/{stream}.*"))
    assert [f.name for f in files] == [f"{stream}.mp4"], files
    with av.open(str(files[0])) as recorded:
        kinds = {s.type for s in recorded.streams}
        frames = sum(1 for _ in recorded.decode(video=0))
    assert kinds == {"video", "audio"} and frames >= 30, (kinds, frames)
    assert got["ended"]["ok"], got["ended"]
    assert got["gone"]["streams"] == []
    assert got["late"][0] == 403, got["late"]  # the session has ended: no encoder gets in
