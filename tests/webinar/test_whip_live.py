"""WHIP ingest through the whole app: ``python app.py`` with one media worker; an encoder written
to RFC 9725 (aiortc, HTTP from this process) publishes into the demo all-hands, attendees watch.

The demo's all-hands (broadcast 1) is live; its host is user 5, employee user 6 is registered.
The host makes a stream key on the broadcast page, as a person would (CSRF token and all).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import av
import pytest

from lectern import create_app
from tests.live import LiveServer
from tests.media.conftest import Publisher, Viewer, loopback_only, until
from tests.media.test_app_media import NAMESPACE, Participant, stream_ids

__all__ = ["loopback_only"]  # this module's peers offer loopback only (an autouse fixture)

pytestmark = pytest.mark.server

SECRET_KEY = secrets.token_hex(16)
BROADCAST, ROOM = 1, "broadcast:1"
HOST, EMPLOYEE = 5, 6
SDP_TYPE = "application/sdp"
H264 = "video/H264"


class Attendee(Participant):
    """A Socket.IO client in the all-hands' room."""

    def join(self, url: str, cookie: str) -> None:
        self.sio.on("*", self.record, namespace=NAMESPACE)
        self.sio.connect(
            url,
            headers={"Cookie": cookie},
            transports=["websocket"],
            namespaces=[NAMESPACE],
            auth={"room": ROOM},
            wait_timeout=10,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("whip") / "data"
    env = {"SECRET_KEY": SECRET_KEY, "MEDIA_WORKERS": "1", "DEMO_DATA": "true"}
    with LiveServer(data, env) as started:
        started.wait_for_output(r"^Media workers: (\S+)$")
        yield started


@pytest.fixture(scope="module")
def cookie(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], str]:
    """Session cookies for the server's users, signed with its secret key."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "DATA_DIR": str(tmp_path_factory.mktemp("whip-cookies")),
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "REDIS_URL": None,
            "DEMO_DATA": False,
        }
    )
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    name = app.config["SESSION_COOKIE_NAME"]
    return lambda user_id: f"{name}={serializer.dumps({'_user_id': str(user_id)})}"


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


def make_key(server: LiveServer, cookie: str) -> tuple[str, str]:
    """The host's "Create a stream key" on the broadcast page: (endpoint URL, key)."""
    page = f"{server.url}/broadcasts/{BROADCAST}"
    status, headers, html = http("GET", page, Cookie=cookie)
    assert status == 200
    session = headers["Set-Cookie"].split(";")[0]  # now holding the CSRF secret
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token is not None
    form = f"csrf_token={token.group(1)}".encode()
    status, _, html = http(
        "POST",
        f"{page}/stream-keys",
        form,
        Cookie=session,
        Content_Type="application/x-www-form-urlencoded",
        Referer=page,
    )
    assert status == 200, html
    key = re.search(r'id="new-stream-key">([^<]+)<', html)
    endpoint = re.search(r"<code>(http[^<]+/whip)</code>", html)
    assert key is not None and endpoint is not None
    return endpoint.group(1), key.group(1)


async def whip_publish(endpoint: str, key: str, publisher: Publisher) -> tuple[int, Message, str]:
    """RFC 9725 §4.2: POST the offer; on 201 apply the answer."""
    offer = (await publisher.offer()).encode()
    reply = await asyncio.to_thread(
        http, "POST", endpoint, offer, Content_Type=SDP_TYPE, Authorization=f"Bearer {key}"
    )
    if reply[0] == 201:
        await publisher.answer(reply[2])
    return reply


def test_an_encoder_publishes_over_whip_and_delete_ends_it(
    server: LiveServer, cookie: Callable[[int], str]
) -> None:
    endpoint, key = make_key(server, cookie(HOST))
    attendee = Attendee(EMPLOYEE)
    attendee.join(server.url, cookie(EMPLOYEE))

    async def scenario() -> dict[str, Any]:
        encoder, second, viewer = Publisher(), Publisher(), Viewer()
        got: dict[str, Any] = {}
        try:
            got["wrong"] = await whip_publish(endpoint, "not-the-key", second)
            since = attendee.mark()
            status, headers, answer = await whip_publish(endpoint, key, encoder)
            got["created"] = status, headers, answer
            assert status == 201, answer
            announced = await asyncio.to_thread(
                attendee.wait_for, "media.streams", lambda d: bool(d["streams"]), since
            )
            got["announced"] = announced
            [stream] = announced["streams"]
            request = {"stream": stream["id"], "sdp": await viewer.offer()}
            reply = await asyncio.to_thread(attendee.call, "media.view", request)
            assert reply.get("ok"), reply
            await viewer.answer(reply["sdp"])
            got["decoded"] = await until(
                lambda: viewer.frames["video"] >= 30 and viewer.frames["audio"] >= 25, 10
            )
            got["second"] = await whip_publish(endpoint, key, second)
            location = headers["Location"]
            session_url = location if location.startswith("http") else server.url + location
            auth = {"Authorization": f"Bearer {key}"}
            got["patch_wrong_key"] = await asyncio.to_thread(
                http, "DELETE", session_url, Authorization="Bearer nope"
            )
            since = attendee.mark()
            got["delete"] = await asyncio.to_thread(http, "DELETE", session_url, **auth)
            got["gone"] = await asyncio.to_thread(
                attendee.wait_for, "media.streams", lambda d: not d["streams"], since
            )
            got["closed"] = await until(
                lambda: (
                    viewer.pc.connectionState in ("closed", "failed")
                    or viewer.ended == {"video", "audio"}
                ),
                10,
            )
            got["state"] = await asyncio.to_thread(attendee.state)
            got["again"] = await asyncio.to_thread(http, "DELETE", session_url, **auth)
        finally:
            await viewer.close()
            await encoder.close()
            await second.close()
        return got

    try:
        got = asyncio.run(scenario())
    finally:
        attendee.sio.disconnect()

    assert got["wrong"][0] == 401 and got["wrong"][1]["WWW-Authenticate"] == "Bearer"
    _, headers, answer = got["created"]
    assert headers["Content-Type"] == SDP_TYPE
    assert answer.startswith("v=0") and "a=setup:" in answer
    assert re.fullmatch(rf"(http://[^/]+)?/broadcasts/{BROADCAST}/whip/[\w-]+", headers["Location"])
    assert headers["Access-Control-Allow-Origin"] == "*"
    [stream] = got["announced"]["streams"]
    assert (stream["user_id"], stream["source"], stream["name"]) == (HOST, "camera", "Hana Host")
    assert got["decoded"], "the attendee's viewer decoded no frames"
    assert got["second"][0] == 409
    assert got["patch_wrong_key"][0] == 401
    assert got["delete"][0] == 200
    assert got["gone"]["streams"] == []
    assert got["closed"], "the viewer's connection stayed open"
    assert stream_ids(got["state"]) == set()
    assert got["again"][0] == 404


def test_an_h264_encoder_like_obs_is_decoded(
    server: LiveServer, cookie: Callable[[int], str]
) -> None:
    """OBS offers H.264 video and Opus: viewers get the encoder's H.264 as it is."""
    endpoint, key = make_key(server, cookie(HOST))
    attendee = Attendee(EMPLOYEE)
    attendee.join(server.url, cookie(EMPLOYEE))

    async def scenario() -> dict[str, Any]:
        encoder, viewer = Publisher(H264), Viewer()
        got: dict[str, Any] = {}
        try:
            since = attendee.mark()
            status, headers, answer = await whip_publish(endpoint, key, encoder)
            assert status == 201, answer
            got["answer"] = answer
            announced = await asyncio.to_thread(
                attendee.wait_for, "media.streams", lambda d: bool(d["streams"]), since
            )
            [stream] = announced["streams"]
            request = {"stream": stream["id"], "sdp": await viewer.offer()}
            reply = await asyncio.to_thread(attendee.call, "media.view", request)
            assert reply.get("ok"), reply
            got["view"] = reply["sdp"]
            await viewer.answer(reply["sdp"])
            got["decoded"] = await until(
                lambda: viewer.frames["video"] >= 30 and viewer.frames["audio"] >= 25, 10
            )
            location = server.url + headers["Location"]
            got["delete"] = await asyncio.to_thread(
                http, "DELETE", location, Authorization=f"Bearer {key}"
            )
        finally:
            await viewer.close()
            await encoder.close()
        return got

    try:
        got = asyncio.run(scenario())
    finally:
        attendee.sio.disconnect()

    assert "H264/90000" in got["answer"] and "VP8" not in got["answer"]
    assert "H264/90000" in got["view"] and "VP8" not in got["view"]
    assert got["decoded"], "the attendee's viewer decoded no frames"
    assert got["delete"][0] == 200


def test_a_revoked_key_ends_its_stream_and_is_refused(
    server: LiveServer, cookie: Callable[[int], str]
) -> None:
    endpoint, key = make_key(server, cookie(HOST))
    attendee = Attendee(EMPLOYEE)
    attendee.join(server.url, cookie(EMPLOYEE))

    async def scenario() -> dict[str, Any]:
        encoder, again = Publisher(), Publisher()
        got: dict[str, Any] = {}
        try:
            since = attendee.mark()
            got["created"] = await whip_publish(endpoint, key, encoder)
            assert got["created"][0] == 201, got["created"]
            await asyncio.to_thread(
                attendee.wait_for, "media.streams", lambda d: bool(d["streams"]), since
            )
            since = attendee.mark()
            got["revoked"] = await asyncio.to_thread(revoke_all, server, cookie(HOST))
            got["gone"] = await asyncio.to_thread(
                attendee.wait_for, "media.streams", lambda d: not d["streams"], since
            )
            got["again"] = await whip_publish(endpoint, key, again)
        finally:
            await encoder.close()
            await again.close()
        return got

    try:
        got = asyncio.run(scenario())
    finally:
        attendee.sio.disconnect()

    assert got["revoked"] >= 1
    assert got["gone"]["streams"] == []
    assert got["again"][0] == 401


def revoke_all(server: LiveServer, cookie: str) -> int:
    """The host revokes every stream key listed on the broadcast page."""
    page = f"{server.url}/broadcasts/{BROADCAST}"
    status, headers, html = http("GET", page, Cookie=cookie)
    session = headers["Set-Cookie"].split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert status == 200 and token is not None
    actions = re.findall(r'action="(/broadcasts/\d+/stream-keys/\d+/revoke)"', html)
    for action in actions:
        status, _, _ = http(
            "POST",
            server.url + action,
            f"csrf_token={token.group(1)}".encode(),
            Cookie=session,
            Content_Type="application/x-www-form-urlencoded",
            Referer=page,
        )
        assert status == 200  # the redirect to the page, followed
    return len(actions)


def test_the_encoder_is_recorded_and_the_session_end_ends_it(
    server: LiveServer, cookie: Callable[[int], str]
) -> None:
    """Last in this module: it ends the all-hands for everyone."""
    endpoint, key = make_key(server, cookie(HOST))
    host, attendee = Attendee(HOST), Attendee(EMPLOYEE)
    host.join(server.url, cookie(HOST))
    attendee.join(server.url, cookie(EMPLOYEE))

    async def scenario() -> dict[str, Any]:
        encoder, late = Publisher(), Publisher()
        got: dict[str, Any] = {}
        try:
            started = await asyncio.to_thread(host.call, "recording.start", {"title": "WHIP"})
            assert started["ok"], started
            since = attendee.mark()
            got["created"] = await whip_publish(endpoint, key, encoder)
            assert got["created"][0] == 201, got["created"]
            announced = await asyncio.to_thread(
                attendee.wait_for, "media.streams", lambda d: bool(d["streams"]), since
            )
            [stream] = announced["streams"]
            got["stream"] = stream["id"]
            await asyncio.sleep(3)  # a few seconds of the encoder's media in the recording
            got["stopped"] = await asyncio.to_thread(host.call, "recording.stop")
            since = attendee.mark()
            got["ended"] = await asyncio.to_thread(host.call, "room.end")
            got["gone"] = await asyncio.to_thread(
                attendee.wait_for, "media.streams", lambda d: not d["streams"], since
            )
            got["late"] = await whip_publish(endpoint, key, late)
        finally:
            await encoder.close()
            await late.close()
        return got

    try:
        got = asyncio.run(scenario())
    finally:
        host.sio.disconnect()
        attendee.sio.disconnect()

    assert got["stopped"]["ok"] and got["stopped"]["recording"]["status"] == "ready"
    files = list(server.data_dir.glob(f"recordings/*/{got['stream']}.webm"))
    assert len(files) == 1, files
    with av.open(str(files[0])) as recorded:
        kinds = {s.type for s in recorded.streams}
        frames = sum(1 for _ in recorded.decode(video=0))
    assert kinds == {"video", "audio"} and frames >= 30, (kinds, frames)
    assert got["ended"]["ok"], got["ended"]
    assert got["gone"]["streams"] == []
    assert got["late"][0] == 403, got["late"]  # the session has ended: no encoder gets in
