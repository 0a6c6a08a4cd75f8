"""Recording in the media worker: remuxed VP8 + Opus (WebM) and H.264 + Opus (MP4) files that
play, in sync, crash-safe.

The publisher's video flashes white and its audio beeps at the same instants (both decided by
one wall clock as the frames are made), so the recording's audio/video offset can be measured.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

from .conftest import (
    HEIGHT,
    WIDTH,
    WorkerProcess,
    call,
    grant,
    loopback_pc,
    only_video_codec,
    start_worker,
    stop_process,
)

FLASH_EVERY_S = 1.0
PULSE_S = 0.1  # the flash lasts three frames, the beep 100 ms
RATE = 48000


class Clock:
    """The instant both tracks share: a pulse starts at every whole second after ``t0``."""

    def __init__(self) -> None:
        self.t0 = time.time() + 0.5

    def pulse(self, at: float) -> bool:
        phase = (at - self.t0) % FLASH_EVERY_S
        return at >= self.t0 and phase < PULSE_S


class FlashVideo(VideoStreamTrack):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        level = 235 if self.clock.pulse(time.time()) else 16
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        frame.planes[0].update(bytes([level]) * frame.planes[0].buffer_size)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class BeepAudio(AudioStreamTrack):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.phase = 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()  # paced silence: 20 ms, s16 mono
        now = time.time()
        samples = np.zeros(frame.samples, dtype=np.int16)
        for i in range(frame.samples):
            if self.clock.pulse(now + i / frame.sample_rate):
                samples[i] = int(12000 * math.sin(2 * math.pi * 1000 * (self.phase + i) / RATE))
        self.phase += frame.samples
        beep = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        beep.sample_rate, beep.pts, beep.time_base = frame.sample_rate, frame.pts, frame.time_base
        return beep


async def publish(port: int, clock: Clock, codec: str | None = None) -> tuple[Any, str]:
    pc = loopback_pc()
    pc.addTrack(FlashVideo(clock))
    pc.addTrack(BeepAudio(clock))
    only_video_codec(pc, codec)
    await pc.setLocalDescription(await pc.createOffer())
    reply = await call(port, "publish", token=grant("publish"), sdp=pc.localDescription.sdp)
    assert reply["ok"], reply
    from aiortc import RTCSessionDescription

    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
    return pc, reply["stream"]


async def record(
    port: int,
    folder: Path,
    seconds: float,
    kill: WorkerProcess | None = None,
    codec: str | None = None,
) -> dict[str, Any]:
    """Publish (``codec``: the only video codec offered), record ``seconds``, then stop (or
    SIGKILL ``kill``); returns what happened."""
    clock = Clock()
    pc, stream = await publish(port, clock, codec)
    try:
        started = await call(port, "record_start", token=grant("record", dir=str(folder)))
        assert started["ok"], started
        began = time.monotonic()
        await asyncio.sleep(seconds)
        if kill is not None:
            os.kill(kill.proc.pid, signal.SIGKILL)
            return {"stream": stream, "elapsed": time.monotonic() - began}
        stopped = await call(port, "record_stop", token=grant("record"))
        assert stopped["ok"], stopped
        return {"stream": stream, "elapsed": time.monotonic() - began, **stopped}
    finally:
        await pc.close()


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type,width,height:format=duration,format_name",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4's top-level boxes, in order."""
    data, at, found = path.read_bytes(), 0, []
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        found.append(data[at + 4 : at + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        if size < 8:
            break
        at += size
    return found


def decode_errors(path: Path) -> str:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stderr.strip()


def flashes_and_beeps(path: Path) -> tuple[list[float], list[float]]:
    """Start times (s) of the white flashes and of the beeps in a recording."""
    flashes: list[float] = []
    beeps: list[float] = []
    with av.open(str(path)) as container:
        bright = False
        for frame in container.decode(video=0):
            lit = float(np.asarray(frame.planes[0]).mean()) > 120
            if lit and not bright:
                flashes.append(float(frame.time))
            bright = lit
    with av.open(str(path)) as container:
        loud = False
        for frame in container.decode(audio=0):
            pcm = frame.to_ndarray().astype(np.float32).reshape(-1)
            channels = len(frame.layout.channels)
            pcm = (
                pcm.reshape(-1, channels)[:, 0] if frame.format.is_packed else pcm[: frame.samples]
            )
            window = 480  # 10 ms
            for i in range(0, len(pcm) - window + 1, window):
                level = float(np.sqrt(np.mean(pcm[i : i + window] ** 2)))
                on = level > (0.05 if frame.format.name.startswith("flt") else 1500)
                if on and not loud:
                    beeps.append(float(frame.time) + i / frame.sample_rate)
                loud = on
    return flashes, beeps


@pytest.fixture
def own_worker(tmp_path: Path) -> Any:
    started = start_worker(tmp_path / "worker.log")
    yield started
    stop_process(started.proc)


def test_recording_is_remuxed_vp8_opus_of_the_right_length(
    own_worker: WorkerProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "rec"
    result = asyncio.run(record(own_worker.port, folder, 4.0))
    segment = folder / f"{result['stream']}.webm"
    info = ffprobe(segment)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["opus", "vp8"]
    assert abs(float(info["format"]["duration"]) - result["elapsed"]) < 0.5
    assert decode_errors(segment) == ""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["ended"] is True
    assert [s["file"] for s in manifest["segments"]] == [segment.name]
    stats = asyncio.run(call(own_worker.port, "stats"))
    assert stats["encoders"] == 0 and stats["decoders"] == 0  # remuxed, never transcoded


def test_h264_stream_is_recorded_into_mp4_as_it_is(
    own_worker: WorkerProcess, tmp_path: Path
) -> None:
    """An H.264 stream's segment is an MP4 that phones play (H.264 + Opus), remuxed, in sync,
    with its index up front after a normal stop."""
    folder = tmp_path / "rec"
    result = asyncio.run(record(own_worker.port, folder, 4.5, codec="video/H264"))
    segment = folder / f"{result['stream']}.mp4"
    info = ffprobe(segment)
    assert info["format"]["format_name"] == "mov,mp4,m4a,3gp,3g2,mj2"
    boxes = top_level_boxes(segment)
    assert boxes.index("moov") < boxes.index("mdat") and "moof" not in boxes, boxes  # faststart
    assert sorted(s["codec_name"] for s in info["streams"]) == ["h264", "opus"]
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    assert abs(float(info["format"]["duration"]) - result["elapsed"]) < 0.5
    assert decode_errors(segment) == ""
    assert [s["file"] for s in result["manifest"]["segments"]] == [segment.name]
    assert not list(folder.glob("*.webm")) and not list(folder.glob("*.mkv"))
    flashes, beeps = flashes_and_beeps(segment)
    assert len(flashes) >= 2 and len(beeps) >= 2, (flashes, beeps)
    offsets = sorted(min(beeps, key=lambda b: abs(b - f)) - f for f in flashes)
    assert abs(offsets[len(offsets) // 2]) <= 0.060, offsets
    stats = asyncio.run(call(own_worker.port, "stats"))
    assert stats["encoders"] == 0 and stats["decoders"] == 0  # remuxed, never transcoded


def test_audio_and_video_stay_in_sync(own_worker: WorkerProcess, tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    result = asyncio.run(record(own_worker.port, folder, 5.5))
    flashes, beeps = flashes_and_beeps(folder / f"{result['stream']}.webm")
    assert len(flashes) >= 3 and len(beeps) >= 3, (flashes, beeps)
    offsets = [min(beeps, key=lambda b: abs(b - f)) - f for f in flashes]
    offsets.sort()
    print(f"audio-video offsets (s): {offsets}")
    median = offsets[len(offsets) // 2]
    assert abs(median) <= 0.060, offsets


def test_a_killed_worker_leaves_a_playable_recording(
    own_worker: WorkerProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "rec"
    result = asyncio.run(record(own_worker.port, folder, 5.0, kill=own_worker))
    own_worker.proc.wait(timeout=10)
    segment = folder / f"{result['stream']}.webm"
    with av.open(str(segment)) as container:
        last = max(float(f.time) for f in container.decode(video=0))
    assert last >= result["elapsed"] - 3.0, (last, result["elapsed"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["ended"] is False and manifest["segments"][0]["end_s"] is None


def test_a_killed_worker_leaves_a_playable_h264_mp4(
    own_worker: WorkerProcess, tmp_path: Path
) -> None:
    """A SIGKILL during an H.264 recording leaves a fragmented MP4 that decodes, without
    errors, to within 2 s of the kill."""
    folder = tmp_path / "rec"
    result = asyncio.run(record(own_worker.port, folder, 5.0, codec="video/H264", kill=own_worker))
    own_worker.proc.wait(timeout=10)
    segment = folder / f"{result['stream']}.mp4"
    with av.open(str(segment)) as container:
        last = max(float(f.time) for f in container.decode(video=0))
    with av.open(str(segment)) as container:
        heard = max(float(f.time) for f in container.decode(audio=0))
    print(f"killed at {result['elapsed']:.2f} s: video to {last:.2f} s, audio to {heard:.2f} s")
    assert last >= result["elapsed"] - 2.0, (last, result["elapsed"])
    assert heard >= result["elapsed"] - 2.0, (heard, result["elapsed"])
    assert decode_errors(segment) == ""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["segments"][0]["file"] == segment.name


def test_record_grants_are_checked(own_worker: WorkerProcess, tmp_path: Path) -> None:
    async def scenario() -> None:
        forged = grant("record", dir=str(tmp_path), secret="not-the-secret")
        assert not (await call(own_worker.port, "record_start", token=forged))["ok"]
        wrong_op = grant("publish", dir=str(tmp_path))
        assert not (await call(own_worker.port, "record_start", token=wrong_op))["ok"]
        stop = await call(own_worker.port, "record_stop", token=grant("record"))
        assert stop == {"ok": False, "error": "this room is not being recorded"}

    asyncio.run(scenario())
    assert not any(tmp_path.glob("*.webm"))
