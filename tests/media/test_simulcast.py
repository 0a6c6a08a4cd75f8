"""Simulcast from a real browser: headless Chromium publishes two layers to a worker, whose
aiortc viewers each get the one they ask for, and move between them without a gap.

The publisher is a page of Chromium's (its fake camera at 640x360, two encodings: "l" at half
the size and "h"), driven with Playwright's async API on the same event loop as the worker's
aiortc viewers. Only loopback is used.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from media.rtp import HISTORY, RtpViewer, picture_size, sps_size, vp8_picture
from tests.live import CHROMIUM, CHROMIUM_ARGS

from .conftest import ROOM, WorkerProcess, call, grant, until, until_async
from .test_cascade import relay
from .test_forwarding import TappedViewer
from .test_recording import ffprobe

PAGE = "http://localhost/publish"
HIGH, LOW = (640, 360), (320, 180)
PUBLISH = """
async ({simulcast, codec}) => {
  const media = await navigator.mediaDevices.getUserMedia(
    {audio: true, video: {width: 640, height: 360, frameRate: 30}});
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  const encodings = simulcast ? [
    {rid: "l", scaleResolutionDownBy: 2, maxBitrate: 150000},
    {rid: "h", maxBitrate: 900000},
  ] : undefined;
  const video = pc.addTransceiver(media.getVideoTracks()[0],
    {direction: "sendonly", sendEncodings: encodings});
  if (codec) {
    const caps = RTCRtpSender.getCapabilities("video").codecs;
    video.setCodecPreferences(caps.filter((c) => c.mimeType === codec
      && (codec !== "video/H264" || /packetization-mode=1/.test(c.sdpFmtpLine || ""))));
  }
  pc.addTransceiver(media.getAudioTracks()[0], {direction: "sendonly"});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") done();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
    setTimeout(done, 3000);
  });
  return pc.localDescription.sdp;
}
"""


@pytest.fixture
def chromium() -> str:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    return str(CHROMIUM)


class BrowserPublisher:
    """A Chromium page that publishes its fake camera and microphone to the worker."""

    def __init__(self, page: Any, worker: WorkerProcess) -> None:
        self.page = page
        self.worker = worker
        self.stream = ""
        self.answer = ""
        self.reply: dict[str, Any] = {}

    async def publish(self, simulcast: bool = True, codec: str | None = None) -> None:
        offer = await self.page.evaluate(PUBLISH, {"simulcast": simulcast, "codec": codec})
        self.reply = await call(self.worker.port, "publish", token=grant("publish"), sdp=offer)
        assert self.reply["ok"], self.reply
        self.stream, self.answer = self.reply["stream"], self.reply["sdp"]
        await self.page.evaluate(
            "(sdp) => window.pc.setRemoteDescription({type: 'answer', sdp})", self.answer
        )


@pytest.fixture
def run_with_browser(chromium: str, worker: WorkerProcess) -> Any:
    """Run ``scenario(publisher)`` with a Chromium publisher page, on one event loop."""

    def run(scenario: Any) -> None:
        async def main() -> None:
            async with browser_page(chromium) as page:
                await scenario(BrowserPublisher(page, worker))

        asyncio.run(main())

    return run


class browser_page:  # an async context manager, used as a function
    def __init__(self, chromium: str) -> None:
        self.chromium = chromium

    async def __aenter__(self) -> Any:
        from playwright.async_api import async_playwright

        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(
            executable_path=self.chromium, args=CHROMIUM_ARGS
        )
        page = await self.browser.new_page()
        await page.route(
            PAGE, lambda route: route.fulfill(body="<!doctype html><title>publisher</title>")
        )
        await page.goto(PAGE)
        return page

    async def __aexit__(self, *exc: object) -> None:
        await self.browser.close()
        await self.playwright.stop()


class LayerViewer(TappedViewer):
    """A viewer that notes the size of each frame it decodes, with the time."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline: list[tuple[float, tuple[int, int]]] = []

    async def _read(self, track: Any) -> None:  # type: ignore[override]
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.ended.add(track.kind)
                return
            self.frames[track.kind] += 1
            if track.kind == "video":
                self.timeline.append((time.monotonic(), (frame.width, frame.height)))

    @property
    def size(self) -> tuple[int, int] | None:
        return self.timeline[-1][1] if self.timeline else None


async def start_view(worker: WorkerProcess, stream: str, quality: str) -> tuple[LayerViewer, str]:
    viewer = LayerViewer()
    token = grant("view", ROOM, user=2, stream=stream)
    reply = await call(worker.port, "view", token=token, sdp=await viewer.offer(), quality=quality)
    assert reply["ok"], reply
    await viewer.answer(reply["sdp"])
    return viewer, reply["peer"]


async def prefer(worker: WorkerProcess, peer: str, quality: str, user: int = 2) -> dict[str, Any]:
    token = grant("prefer", ROOM, user=user)
    return await call(worker.port, "prefer", token=token, peer=peer, quality=quality)


async def peer_stats(worker: WorkerProcess, peer: str) -> dict[str, Any]:
    stats = await call(worker.port, "stats")
    return dict(stats["peers"].get(peer, {}))


def continuous(viewer: TappedViewer) -> None:
    """The viewer's video packets (its media SSRC) have no gap and no step back: layer
    switches included, sequence numbers go on by one and timestamps never go back."""
    packets = viewer.media("video")
    assert len(packets) > 30
    for before, after in itertools.pairwise(packets):
        step = (after.sequence_number - before.sequence_number) & 0xFFFF
        assert 0 < step < HISTORY // 4 or step > 0xFFFF - HISTORY, (before, after)
    gaps = sum(
        1
        for b, a in itertools.pairwise(packets)
        if (a.sequence_number - b.sequence_number) & 0xFFFF > 1
    )
    assert gaps <= 2, f"{gaps} sequence gaps (loopback loses nothing)"
    for before, after in itertools.pairwise(packets):
        assert (after.timestamp - before.timestamp) & 0xFFFFFFFF < 0x80000000, (before, after)


def test_a_simulcast_publisher_is_answered_with_its_layers_and_each_viewer_gets_its_choice(
    run_with_browser: Any, worker: WorkerProcess
) -> None:
    async def scenario(publisher: BrowserPublisher) -> None:
        await publisher.publish(simulcast=True)
        assert "a=simulcast:recv l;h" in publisher.answer
        assert "a=rid:l recv" in publisher.answer and "a=rid:h recv" in publisher.answer
        assert publisher.reply["layers"] == 2
        high, high_peer = await start_view(worker, publisher.stream, "high")
        low, low_peer = await start_view(worker, publisher.stream, "low")
        try:
            assert await until(lambda: high.size == HIGH and low.size == LOW, timeout=20), (
                high.size,
                low.size,
            )
            assert (await peer_stats(worker, high_peer))["layer"] == "high"
            assert (await peer_stats(worker, low_peer))["layer"] == "low"
            stats = await call(worker.port, "stats")
            layers = stats["layers"][publisher.stream]
            assert [(layer["rid"], layer["size"]) for layer in layers] == [
                ("l", list(LOW)),
                ("h", list(HIGH)),
            ]

            async def recorded() -> bool:  # the top layer reaches the receiver (recording)
                stats = await call(worker.port, "stats")
                return bool(stats["frames"][publisher.stream]["video"] > 30)

            assert await until_async(recorded, timeout=10)

            # Up: the low viewer now gets the high layer, without a gap.
            assert (await prefer(worker, low_peer, "high"))["ok"]
            assert await until(lambda: low.size == HIGH, timeout=5), low.size
            frames = low.frames["video"]
            assert await until(lambda: low.frames["video"] > frames + 30, timeout=5)
            # Audio only: its video stops, its audio goes on.
            assert (await prefer(worker, low_peer, "audio"))["ok"]
            await asyncio.sleep(1.0)
            frames, sound = low.frames["video"], low.frames["audio"]
            await asyncio.sleep(1.5)
            assert low.frames["video"] <= frames + 2
            assert low.frames["audio"] > sound + 50
            assert (await peer_stats(worker, low_peer))["layer"] == "audio"
            # Low again: back to video, still continuous.
            assert (await prefer(worker, low_peer, "low"))["ok"]
            assert await until(lambda: low.frames["video"] > frames + 30, timeout=5)
            assert low.size == LOW
            continuous(low)
            continuous(high)
        finally:
            await high.close()
            await low.close()

    run_with_browser(scenario)


def test_prefer_is_refused_for_another_users_viewer_and_a_bad_quality(
    run_with_browser: Any, worker: WorkerProcess
) -> None:
    async def scenario(publisher: BrowserPublisher) -> None:
        await publisher.publish(simulcast=True)
        viewer, peer = await start_view(worker, publisher.stream, "auto")
        try:
            assert await prefer(worker, peer, "low", user=3) == {
                "ok": False,
                "error": "no such viewer",
            }
            reply = await prefer(worker, peer, "ultra")
            assert not reply["ok"] and "quality must be one of" in reply["error"]
            reply = await call(
                worker.port, "prefer", token=grant("view", stream=publisher.stream), peer=peer
            )
            assert not reply["ok"] and reply["error"].startswith("refused")
            assert (await prefer(worker, "nobody", "low"))["error"] == "no such viewer"
            assert (await prefer(worker, peer, "low"))["ok"]
        finally:
            await viewer.close()

    run_with_browser(scenario)


def test_a_browser_without_simulcast_is_one_layer_and_h264_simulcast_switches_too(
    run_with_browser: Any, worker: WorkerProcess
) -> None:
    async def scenario(publisher: BrowserPublisher) -> None:
        await publisher.publish(simulcast=True, codec="video/H264")
        assert publisher.reply["video_codec"] == "H264"
        viewer, peer = await start_view(worker, publisher.stream, "low")
        try:
            assert await until(lambda: viewer.size == LOW, timeout=20), viewer.size
            assert (await prefer(worker, peer, "high"))["ok"]
            assert await until(lambda: viewer.size == HIGH, timeout=8), viewer.size
            frames = viewer.frames["video"]
            assert await until(lambda: viewer.frames["video"] > frames + 30, timeout=8)
            continuous(viewer)
        finally:
            await viewer.close()

    run_with_browser(scenario)


def test_one_encoding_is_a_single_layer(run_with_browser: Any, worker: WorkerProcess) -> None:
    async def scenario(publisher: BrowserPublisher) -> None:
        await publisher.publish(simulcast=False)
        assert "a=simulcast" not in publisher.answer
        viewer, peer = await start_view(worker, publisher.stream, "auto")
        try:
            assert await until(lambda: viewer.size == HIGH, timeout=20), viewer.size
            assert (await peer_stats(worker, peer))["layer"] == "single"
        finally:
            await viewer.close()

    run_with_browser(scenario)


def test_the_recording_takes_the_top_layer_whatever_the_viewers_get(
    run_with_browser: Any, worker: WorkerProcess, tmp_path: Path
) -> None:
    async def scenario(publisher: BrowserPublisher) -> None:
        await publisher.publish(simulcast=True)
        viewer, _ = await start_view(worker, publisher.stream, "low")
        try:
            assert await until(lambda: viewer.size == LOW, timeout=20), viewer.size
            started = await call(
                worker.port, "record_start", token=grant("record", dir=str(tmp_path))
            )
            assert started["ok"], started
            frames = (await call(worker.port, "stats"))["frames"][publisher.stream]["video"]

            async def recorded() -> bool:
                stats = await call(worker.port, "stats")
                return bool(stats["frames"][publisher.stream]["video"] >= frames + 10)

            assert await until_async(recorded, timeout=20)
            stopped = await call(worker.port, "record_stop", token=grant("record"))
            assert stopped["ok"], stopped
        finally:
            await viewer.close()
        [segment] = stopped["manifest"]["segments"]
        video = next(
            s for s in ffprobe(tmp_path / segment["file"])["streams"] if s["codec_type"] == "video"
        )
        assert (video["width"], video["height"]) == HIGH

    run_with_browser(scenario)


# SPS NAL units of libx264 (baseline) at 640x360 and 320x180, with a STAP-A holding the first.
SPS_360 = bytes.fromhex("6742c01ed900a02ff9610000030001000003003c0f162e4800")
SPS_180 = bytes.fromhex("6742c00dd901419f9e10000003001000000303c0f142a48000")


def test_layers_are_sized_from_an_h264_sps_or_a_vp8_key_frame() -> None:
    assert sps_size(SPS_360) == HIGH and sps_size(SPS_180) == LOW
    stap = bytes([24]) + len(SPS_180).to_bytes(2, "big") + SPS_180 + b"\x00\x02\x68\xce"
    assert picture_size("video/H264", stap) == LOW
    assert picture_size("video/H264", SPS_360[:6]) is None  # cut short
    assert picture_size("video/H264", bytes([0x65, 0x88])) is None  # an IDR slice, no SPS
    # VP8: descriptor (S=1, partition 0), then a key frame's tag, start code and size.
    key = b"\x10" + b"\x00\x00\x00" + b"\x9d\x01\x2a" + (640).to_bytes(2, "little")
    assert picture_size("video/VP8", key + (360).to_bytes(2, "little")) == HIGH
    inter = b"\x10\x01\x00\x00" + b"\x00" * 8
    assert picture_size("video/VP8", inter) is None


def test_vp8_picture_ids_go_on_across_a_switch() -> None:
    # X=1, S=1; I=1 L=1; a 15-bit picture id; TL0PICIDX.
    def packet(pid: int, tl0: int) -> bytes:
        return bytes([0x90, 0xC0]) + (0x8000 | pid).to_bytes(2, "big") + bytes([tl0]) + b"data"

    where = vp8_picture(packet(5, 7))
    assert where == (2, 0x7FFF, 4)
    viewer = RtpViewer.__new__(RtpViewer)
    viewer.pic_offset = viewer.tl0_offset = viewer.last_pic = viewer.last_tl0 = 0
    assert viewer.renumber(packet(100, 9), where) == packet(100, 9)  # no offset: unchanged
    # The viewer was at picture 100, TL0 9; the new layer's keyframe is picture 30000, TL0 250.
    viewer.pic_offset = (viewer.last_pic + 1 - 30000) & 0x7FFF
    viewer.tl0_offset = (viewer.last_tl0 + 1 - 250) & 0xFF
    assert viewer.renumber(packet(30000, 250), where) == packet(101, 10)
    assert viewer.renumber(packet(32767, 251), where) == packet((101 + 2767) & 0x7FFF, 11)
    assert vp8_picture(b"\x10\x00") is None  # no extensions: nothing to renumber
    assert vp8_picture(b"\x90\x80") is None  # a picture id announced but cut off


def test_a_cascade_leg_carries_the_top_and_lowest_layers_to_the_viewers_there(
    run_with_browser: Any, worker: WorkerProcess, worker_b: WorkerProcess
) -> None:
    async def scenario(publisher: BrowserPublisher) -> None:
        await publisher.publish(simulcast=True)
        reply = await relay(worker_b, publisher.stream, worker)
        assert reply["created"]
        high, _ = await start_view(worker_b, publisher.stream, "high")
        low, low_peer = await start_view(worker_b, publisher.stream, "low")
        try:
            assert await until(lambda: high.size == HIGH and low.size == LOW, timeout=20), (
                high.size,
                low.size,
            )
            stats = await call(worker_b.port, "stats")
            sizes = [layer["size"] for layer in stats["layers"][publisher.stream]]
            assert sizes == [list(LOW), list(HIGH)]
            assert stats["peers"][low_peer]["layer"] == "low"
            legs = (await call(worker.port, "stats"))["peers"]
            assert [p["stream"] for p in legs.values()].count(publisher.stream) == 1  # one leg
            token = grant("prefer", ROOM, user=2)
            moved = await call(worker_b.port, "prefer", token=token, peer=low_peer, quality="high")
            assert moved["ok"], moved
            assert await until(lambda: low.size == HIGH, timeout=8), low.size
            frames = low.frames["video"]
            assert await until(lambda: low.frames["video"] > frames + 30, timeout=8)
            continuous(low)
        finally:
            await high.close()
            await low.close()
            await call(worker.port, "close_stream", stream=publisher.stream)

    run_with_browser(scenario)
