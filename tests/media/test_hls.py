"""The HLS tier in a real worker: an aiortc publisher's H.264 (remuxed) or VP8 (one libx264
encode per stream) and Opus (to AAC) as fMP4 HLS that ffprobe reads."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from media.hls import PLAYLIST

from .conftest import WorkerProcess, call, grant, published, until

pytestmark = pytest.mark.server


def probe(path: Path, entries: str) -> dict[str, Any]:
    """ffprobe's JSON for ``path``."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *entries.split(), str(path)],
        capture_output=True,
        check=True,
        timeout=20,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def segments(folder: Path) -> list[str]:
    """The segments the playlist lists now."""
    playlist = folder / PLAYLIST
    if not playlist.exists():
        return []
    return [line for line in playlist.read_text().splitlines() if line.endswith(".m4s")]


def check_tier(folder: Path) -> None:
    """The playlist lists whole segments of about a second that hold H.264 and AAC."""
    text = (folder / PLAYLIST).read_text()
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text, text
    assert '#EXT-X-MAP:URI="init.mp4"' in text, text
    durations = [
        float(line[8:].rstrip(",")) for line in text.splitlines() if line.startswith("#EXTINF:")
    ]
    assert all(0.5 <= d <= 2.5 for d in durations), text
    name = segments(folder)[-1]
    joined = folder / "probe.mp4"
    joined.write_bytes((folder / "init.mp4").read_bytes() + (folder / name).read_bytes())
    streams = probe(joined, "-show_entries stream=codec_name,codec_type,width,height")["streams"]
    codecs = {s["codec_type"]: s["codec_name"] for s in streams}
    assert codecs == {"video": "h264", "audio": "aac"}, streams
    frames = probe(joined, "-select_streams v -count_frames -show_entries stream=nb_read_frames")
    assert int(frames["streams"][0]["nb_read_frames"]) >= 10, frames
    span = probe(joined, "-show_entries format=duration,start_time")["format"]
    duration = float(span["duration"]) - float(span["start_time"])  # a live stream's fragment
    assert abs(duration - durations[-1]) < 0.3, (span, durations)


def package(worker: WorkerProcess, folder: Path, codec: str) -> None:
    """Publish ``codec`` video with audio, start the tier, wait for three segments, stop it."""

    async def scenario() -> None:
        async with published(worker.port, codec=codec) as stream:
            token = grant("hls", stream=stream.id, dir=str(folder))
            reply = await call(worker.port, "hls_start", token=token)
            assert reply["ok"] and reply["transcoding"] == (codec == "video/VP8"), reply
            assert await until(lambda: len(segments(folder)) >= 3, 20, 0.2), worker.output()
            check_tier(folder)
            stats = await call(worker.port, "stats")
            assert stats["hls"][stream.id]["dropped"] == 0, stats
            assert (await call(worker.port, "hls_stop", token=token))["stopped"]
            assert stream.id not in (await call(worker.port, "stats"))["hls"]

    asyncio.run(scenario())


def test_h264_publisher_is_remuxed_into_hls(worker: WorkerProcess, tmp_path: Path) -> None:
    package(worker, tmp_path / "hls", "video/H264")


def test_vp8_publisher_is_encoded_once_into_h264_hls(worker: WorkerProcess, tmp_path: Path) -> None:
    package(worker, tmp_path / "hls", "video/VP8")


def test_hls_ops_check_the_grant(worker: WorkerProcess, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with published(worker.port, codec="video/H264") as stream:
            folder = str(tmp_path / "hls")
            refused = [
                await call(worker.port, "hls_start"),
                await call(
                    worker.port, "hls_start", token=grant("record", stream=stream.id, dir=folder)
                ),
                await call(
                    worker.port,
                    "hls_start",
                    token=grant("hls", stream=stream.id, dir=folder, secret="forged"),
                ),
                await call(
                    worker.port,
                    "hls_start",
                    token=grant("hls", room="other:1", stream=stream.id, dir=folder),
                ),
                await call(worker.port, "hls_start", token=grant("hls", stream=stream.id)),
            ]
            assert not any(r["ok"] for r in refused), refused
            assert not (tmp_path / "hls").exists()
            token = grant("hls", stream=stream.id, dir=folder)
            assert (await call(worker.port, "hls_start", token=token))["created"]
            assert not (await call(worker.port, "hls_start", token=token))["created"]
            assert await until(lambda: bool(segments(tmp_path / "hls")), 20, 0.2)
        # The stream ended (closed on leaving the block): its tier stopped, the playlist ends.
        assert stream.id not in (await call(worker.port, "stats"))["hls"]
        assert "#EXT-X-ENDLIST" in (tmp_path / "hls" / PLAYLIST).read_text()

    asyncio.run(scenario())
