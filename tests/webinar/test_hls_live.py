"""A broadcast's HLS tier through the whole app: an encoder publishes H.264 over WHIP into the
demo all-hands, an attendee asks for the tier's signed URL (``hls.url``) and fetches the
playlist (an LL-HLS blocking reload too), the init segment, a segment and a part, with their
types and cache headers; unsigned, tampered, expired and other broadcasts' URLs and bad
blocking-reload queries are refused. Through nginx, the app's answers are cached: a second
request with the same token, or the same playlist query, does not reach the app, and bad URLs
are still refused."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from media import tokens
from media.hls import position, reached
from tests.live import LiveServer, Nginx, insecure_tls
from tests.media.conftest import Publisher, loopback_only, until
from tests.media.test_app_media import SECRET_KEY, cookies
from tests.webinar.test_whip_live import (
    BROADCAST,
    EMPLOYEE,
    H264,
    HOST,
    Attendee,
    http,
    join,
    make_key,
    published,
    server,
)

# Fixtures used here (the server, its users' cookies, joined attendees, loopback-only peers).
__all__ = ["cookies", "join", "loopback_only", "server"]

pytestmark = pytest.mark.server


def until_sync(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def listed(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line.endswith(".m4s")]


def test_an_attendee_watches_the_hls_tier_by_its_signed_url(
    server: LiveServer,
    cookies: Callable[[int], str],
    join: Callable[[int], Attendee],
    tmp_path: Path,
) -> None:
    endpoint, key = make_key(server, cookies(HOST))
    attendee = join(EMPLOYEE)
    got: dict[str, object] = {}

    async def scenario() -> str:
        encoder = Publisher(H264)
        try:
            await published(attendee, endpoint, key, encoder)
            reply = await asyncio.to_thread(attendee.call, "hls.url", {})
            assert reply.get("ok") and reply["expires"] > time.time() + 60, reply
            url = server.url + reply["url"]

            def ready() -> bool:
                status, _, body = http("GET", url)
                got["playlist"] = body
                return status == 200 and len(listed(body)) >= 2

            assert await until(ready, 25, 0.5), got.get("playlist")
            # A blocking reload for the part after the newest: answered once it is listed.
            msn, part = position(str(got["playlist"])).part
            ahead = f"{url}?_HLS_msn={msn}&_HLS_part={part + 1}"
            status, _, body = await asyncio.to_thread(http, "GET", ahead)
            assert status == 200 and reached(position(body), msn, part + 1), body
            assert not reached(position(str(got["playlist"])), msn, part + 1)
            got["blocked"] = body
            bad = [f"_HLS_msn={msn + 3}", "_HLS_msn=x", "_HLS_part=1", "_HLS_msn=-1"]
            statuses = [(await asyncio.to_thread(http, "GET", f"{url}?{q}"))[0] for q in bad]
            assert statuses == [400, 400, 400, 400], statuses
            return url
        finally:
            await encoder.close()

    url = asyncio.run(scenario())
    base = url.rsplit("/", 1)[0]
    status, headers, _ = http("GET", url)
    assert status == 200
    assert headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    assert headers["Cache-Control"] == "public, max-age=1"
    assert "#EXT-X-TARGETDURATION:1\n" in str(got["playlist"])

    media = tmp_path / "joined.mp4"
    part = re.findall(r'URI="(part[^"]+)"', str(got["blocked"]))[-1]
    with media.open("wb") as out:
        for name in ("init.mp4", listed(str(got["playlist"]))[-1], part):
            with urllib.request.urlopen(f"{base}/{name}") as response:
                assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                kind = "video/mp4" if name.endswith(".mp4") else "video/iso.segment"
                assert response.headers["Content-Type"] == kind
                if name != part:
                    out.write(response.read())
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries", "stream=codec_name", str(media)],
        capture_output=True,
        check=True,
        timeout=20,
    )
    codecs = sorted(s["codec_name"] for s in json.loads(probe.stdout)["streams"])
    assert codecs == ["aac", "h264"], codecs

    token = base.rsplit("/", 1)[1]
    expired = tokens.sign(
        SECRET_KEY, op="hls-watch", broadcast=BROADCAST, user=EMPLOYEE, exp=int(time.time()) - 1
    )
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    prefix = f"{server.url}/broadcasts"
    other, mine = f"/broadcasts/{BROADCAST + 1}/hls/{token}", f"/broadcasts/{BROADCAST}/hls/{token}"
    refused = {
        "unsigned": http("GET", f"{prefix}/{BROADCAST}/hls/x/index.m3u8")[0],
        "tampered": http("GET", f"{prefix}/{BROADCAST}/hls/{tampered}/index.m3u8")[0],
        "expired": http("GET", f"{prefix}/{BROADCAST}/hls/{expired}/index.m3u8")[0],
        "foreign": http("GET", f"{prefix}/{BROADCAST + 1}/hls/{token}/index.m3u8")[0],
        "other file": http("GET", f"{base}/lectern.db")[0],
        "auth bad": http("GET", f"{prefix}/hls-auth", X_Original_URI=f"{other}/init.mp4")[0],
    }
    assert refused == {
        "unsigned": 403,
        "tampered": 403,
        "expired": 403,
        "foreign": 403,
        "other file": 404,
        "auth bad": 403,
    }
    auth_ok = http("GET", f"{prefix}/hls-auth", X_Original_URI=f"{mine}/init.mp4")
    assert auth_ok[0] == 204
    blocking = f"{mine}/index.m3u8?_HLS_msn=0&_HLS_part=0"
    assert http("GET", f"{prefix}/hls-auth", X_Original_URI=blocking)[0] == 204

    with Nginx(tmp_path / "nginx", [server.port], data_dir=server.data_dir) as front:
        path = url.removeprefix(server.url).rsplit("/", 1)[0]

        def fetch(location: str) -> tuple[int, str]:
            """Status and the access log's line of a GET through nginx."""
            size = front.access_log.stat().st_size if front.access_log.exists() else 0
            try:
                with urllib.request.urlopen(front.url + location, context=insecure_tls()) as got:
                    status = got.status
            except urllib.error.HTTPError as refused:
                status = refused.code
            line: list[str] = []

            def logged() -> bool:
                with front.access_log.open("rb") as log:
                    log.seek(size)
                    line[:] = [log.read().decode()]
                return location in line[0]

            assert until_sync(logged), line
            return status, line[0]

        # (the ended tier answers a blocking reload at once: cached for a second like a plain one)
        query = f"{path}/index.m3u8?_HLS_msn=0&_HLS_part=0"
        first = fetch(query)  # the token's first check: with the query in the original URI
        assert first[0] == 200 and "hls_auth=MISS" in first[1], first
        playlist = urllib.request.urlopen(f"{front.url}{path}/index.m3u8", context=insecure_tls())
        assert playlist.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert playlist.headers["Cache-Control"] == "public, max-age=1"  # the app's
        assert "#EXT-X-TARGETDURATION:1\n" in playlist.read().decode()
        folder = server.data_dir / "hls" / str(BROADCAST)
        for name in ("init.mp4", part):
            segment = urllib.request.urlopen(f"{front.url}{path}/{name}", context=insecure_tls())
            kind = "video/mp4" if name.endswith(".mp4") else "video/iso.segment"
            assert segment.headers["Content-Type"] == kind
            assert segment.headers["Cache-Control"] == "max-age=315360000"
            assert segment.read() == (folder / name).read_bytes()
        # The check of a token is asked of the app once, whatever the file (the tier ended,
        # so its files stay); a playlist query once for everyone, whatever the token.
        assert "hls_auth=HIT" in fetch(f"{path}/{listed(str(got['playlist']))[-1]}")[1]
        again = fetch(query)
        assert again[0] == 200 and "cache=HIT" in again[1], again
        assert "hls_auth=HIT" in again[1], again
        refused_by_nginx = {
            name: fetch(f"/broadcasts/{broadcast}/hls/{grant}/{file}")[0]
            for name, broadcast, grant, file in [
                ("tampered file", BROADCAST, tampered, "init.mp4"),
                ("tampered playlist", BROADCAST, tampered, "index.m3u8"),
                ("expired playlist", BROADCAST, expired, "index.m3u8"),
                ("foreign file", BROADCAST + 1, token, "init.mp4"),
                ("tampered again", BROADCAST, tampered, "index.m3u8"),
            ]
        }
        assert set(refused_by_nginx.values()) == {403}, refused_by_nginx
