"""The HLS tier in a real worker: an aiortc publisher's H.264 (remuxed) or VP8 (one libx264
encode per stream) and Opus (to AAC) as LL-HLS (fMP4 segments and their parts) that ffprobe
reads; the playlist writer's rolling window, deleted files, end and blocking-reload positions;
a constant target duration when keyframes come rarely."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from media.hls import (
    LIST_SIZE,
    PART_TARGET_S,
    PLAYLIST,
    TARGET_S,
    HlsPackager,
    Playlist,
    part_name,
    position,
    reached,
    segment_name,
)
from media.packets import EncodedFrame

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
    """The playlist lists whole segments of about a second (none over the target) that hold
    H.264 and AAC, each the join of its parts (none longer than the part target), with the wall
    clock of its first frame."""
    text = (folder / PLAYLIST).read_text()
    assert f"#EXT-X-TARGETDURATION:{TARGET_S}\n" in text, text
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in text, text  # a segment may start without one
    assert '#EXT-X-MAP:URI="init.mp4"' in text, text
    assert f"#EXT-X-PART-INF:PART-TARGET={PART_TARGET_S:.3f}" in text, text
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=" in text, text
    durations = [
        float(line[8:].rstrip(",")) for line in text.splitlines() if line.startswith("#EXTINF:")
    ]
    assert all(0.2 <= d < TARGET_S + 0.5 for d in durations), text
    parts = re.findall(r'#EXT-X-PART:DURATION=([\d.]+),URI="(part(\d+)\.\d+\.m4s)"', text)
    assert parts and all(0 < float(d) <= PART_TARGET_S for d, _, _ in parts), text
    name = segments(folder)[-1]
    msn = int(name[3:-4])
    own = [part for _, part, n in parts if int(n) == msn]
    assert ",INDEPENDENT=YES" in text, text  # parts that start at a keyframe say so
    joined_parts = b"".join((folder / part).read_bytes() for part in own)
    assert joined_parts == (folder / name).read_bytes()
    dates = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text)
    assert len(dates) >= len(durations), text
    newest = datetime.datetime.fromisoformat(dates[-1]).timestamp()
    assert abs(newest - time.time()) < 30, dates  # the server's clock, not the stream's

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


def test_playlist_rolls_deletes_old_files_and_ends(tmp_path: Path) -> None:
    """The writer alone, fed 4 parts a segment: a rolling window of ``LIST_SIZE`` segments,
    parts for the newest only, older files deleted, and where blocking reloads stand."""
    playlist = Playlist(tmp_path)
    for msn in range(12):
        for index in range(4):
            start = msn + index * 0.25
            playlist.add(f"{msn}.{index}".encode(), 0.25, index == 0, 1e9 + start)
    playlist.add(b"12.0", 0.25, True, 1e9 + 12)  # segment 11 ends, 12 is under way
    text = (tmp_path / PLAYLIST).read_text()
    assert f"#EXT-X-MEDIA-SEQUENCE:{12 - LIST_SIZE}" in text, text
    assert segments(tmp_path) == [segment_name(n) for n in range(12 - LIST_SIZE, 12)]
    assert "#EXT-X-PROGRAM-DATE-TIME:2001-09-09T01:46:46.000Z" in text, text  # 1e9 + 6 s
    listed_parts = re.findall(r'URI="(part[^"]+)"', text)
    assert listed_parts == [part_name(n, i) for n in (9, 10, 11) for i in range(4)] + [
        part_name(12, 0)
    ]
    assert (tmp_path / segment_name(11)).read_bytes() == b"11.011.111.211.3"
    on_disk = sorted(p.name for p in tmp_path.glob("*.m4s"))
    assert segment_name(3) not in on_disk and part_name(3, 0) not in on_disk  # deleted
    assert segment_name(4) in on_disk and part_name(12, 0) in on_disk  # two kept a while

    where = position(text)
    assert (where.first, where.complete, where.part, where.ended) == (6, 11, (12, 0), False)
    assert reached(where, 11, None) and reached(where, 12, 0) and reached(where, 11, 7)
    assert not reached(where, 12, None) and not reached(where, 12, 1)
    assert not reached(where, 13, 0)

    playlist.end()
    text = (tmp_path / PLAYLIST).read_text()
    assert text.endswith("seg00012.m4s\n#EXT-X-ENDLIST\n"), text
    assert position(text).ended and position(text).complete == 12


def target_and_durations(text: str) -> tuple[list[int], list[float]]:
    targets = [int(line[22:]) for line in text.splitlines() if line.startswith("#EXT-X-TARGETDUR")]
    extinf = [float(line[8:].rstrip(",")) for line in text.splitlines() if line[:8] == "#EXTINF:"]
    return targets, extinf


def test_playlist_keeps_its_target_when_keyframes_come_rarely(tmp_path: Path) -> None:
    """The writer alone, fed 0.25 s parts with a keyframe every 3 s: segments are cut before
    they would round above the target (those start without a keyframe), which never changes."""
    playlist = Playlist(tmp_path)
    seen: set[int] = set()
    for index in range(48):
        playlist.add(b"x", 0.25, index % 12 == 0, 1e9 + index * 0.25)
        targets, extinf = target_and_durations((tmp_path / PLAYLIST).read_text())
        seen.update(targets)
        assert all(int(d + 0.5) <= TARGET_S for d in extinf), extinf
    text = (tmp_path / PLAYLIST).read_text()
    assert seen == {TARGET_S}, seen
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in text, text
    firsts = re.findall(r'URI="part\d+\.0\.m4s"(,INDEPENDENT=YES)?', text)
    assert "" in firsts and ",INDEPENDENT=YES" in firsts, text  # some start at a keyframe


def test_rare_h264_keyframes_keep_segments_within_the_target(tmp_path: Path) -> None:
    """The packager fed 8 s of H.264 at 30 fps whose encoder makes a keyframe every 3 s and
    never answers the packager's requests for one: it asks for keyframes, and every segment
    of every playlist it wrote stays within a target that never changed."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 96, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.gop_size = 90
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "keyint_min": "90"}
    asked: list[float] = []
    folder = tmp_path / "hls"
    packager = HlsPackager(folder, {"video"}, request_keyframe=lambda: asked.append(1))
    start = time.monotonic()
    seen: set[int] = set()
    longest = 0.0
    for index in range(240):
        picture = av.VideoFrame(160, 96, "yuv420p")
        for plane in picture.planes:
            plane.update(bytes([index % 256]) * plane.buffer_size)
        picture.pts = index
        for packet in encoder.encode(picture):
            arrived = start + index / 30
            frame = EncodedFrame(bytes(packet), index * 3000, 90000, packet.is_keyframe, arrived)
            packager.on_frame("video", frame)
        if (folder / PLAYLIST).exists():
            targets, extinf = target_and_durations((folder / PLAYLIST).read_text())
            seen.update(targets)
            longest = max([longest, *extinf])
        time.sleep(0.005)
    packager.stop()
    targets, extinf = target_and_durations((folder / PLAYLIST).read_text())
    seen.update(targets)
    longest = max([longest, *extinf])
    assert asked, "no keyframe asked for"
    assert seen == {TARGET_S}, seen
    assert len(extinf) >= 5 and longest < TARGET_S + 0.5, extinf
