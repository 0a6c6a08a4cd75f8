"""H.264 publishing: keyframes found in real H.264 packets and frames, and a real worker that
forwards an aiortc publisher's H.264 to viewers that decode it, with nothing transcoded.

The packets come from aiortc's own H.264 encoder and packetizer (libx264 through PyAV), as an
aiortc publisher sends them: SPS and PPS aggregated in a STAP-A, the IDR slice in FU-As.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

from aiortc import RTCRtpSender
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from av import VideoFrame

from media.packets import is_h264_keyframe, is_keyframe
from media.recorder import h264_size
from media.rtp import FU_A, STAP_A, starts_keyframe

from .conftest import (
    HEIGHT,
    WIDTH,
    Publisher,
    Viewer,
    WorkerProcess,
    call,
    grant,
    published,
    stream_frames,
    until,
    until_async,
)
from .test_forwarding import TappedViewer

H264 = "video/H264"


def noise_frame(pts: int) -> VideoFrame:
    """A 320x240 frame of varied pixels, large enough that its IDR slice is fragmented."""
    frame = VideoFrame(width=WIDTH, height=HEIGHT)
    for index, plane in enumerate(frame.planes):
        plane.update(bytes((i * 7 + pts * 13 + index) & 0xFF for i in range(plane.buffer_size)))
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def encoded(count: int = 3) -> list[list[bytes]]:
    """The RTP payloads of ``count`` frames from aiortc's H.264 encoder (the first a keyframe)."""
    encoder = H264Encoder()
    return [encoder.encode(noise_frame(i * 3000), force_keyframe=i == 0)[0] for i in range(count)]


def nal_type(payload: bytes) -> int:
    return payload[0] & 0x1F


def test_h264_keyframe_starts_at_its_stap_a_and_its_first_idr_fragment() -> None:
    key, *others = encoded()

    assert nal_type(key[0]) == STAP_A, key[0][:4]
    assert starts_keyframe(H264, key[0])  # SPS + PPS aggregated
    fragments = [p for p in key if nal_type(p) == FU_A]
    assert len(fragments) >= 2, [nal_type(p) for p in key]
    assert fragments[0][1] & 0x80 and fragments[0][1] & 0x1F == 5  # IDR, start bit
    assert starts_keyframe(H264, fragments[0])
    assert not any(starts_keyframe(H264, p) for p in fragments[1:])  # not the start
    for frame in others:  # inter frames: nothing in them starts a keyframe
        assert not any(starts_keyframe(H264, p) for p in frame), [nal_type(p) for p in frame]


def test_h264_single_nal_payloads_and_malformed_ones() -> None:
    assert starts_keyframe(H264, bytes((0x67, 0x42, 0xE0, 0x1F)))  # SPS
    assert starts_keyframe(H264, bytes((0x65, 0x88, 0x84)))  # IDR, first_mb_in_slice 0
    assert not starts_keyframe(H264, bytes((0x65, 0x40)))  # IDR, a later slice
    assert not starts_keyframe(H264, bytes((0x41, 0x9A)))  # a P slice
    assert not starts_keyframe(H264, bytes((0x68, 0xCE)))  # PPS alone
    assert not starts_keyframe(H264, b"")
    assert not starts_keyframe(H264, bytes((0x7C,)))  # a truncated FU-A
    assert not starts_keyframe(H264, bytes((0x78, 0x00, 0x09, 0x67)))  # a STAP-A cut short
    assert starts_keyframe("audio/opus", b"\x01")
    assert not starts_keyframe("video/VP8", bytes((0x10, 0x01)))  # a VP8 inter frame


def test_h264_depacketized_keyframe_is_found_in_its_annex_b_frame() -> None:
    frames = [b"".join(h264_depayload(p) for p in payloads) for payloads in encoded()]

    assert frames[0].startswith(b"\x00\x00\x00\x01")
    assert is_h264_keyframe(frames[0]) and is_keyframe(H264, frames[0])
    assert not any(is_keyframe(H264, f) for f in frames[1:])
    assert not is_h264_keyframe(b"") and not is_h264_keyframe(b"\x00\x00\x01")
    assert is_keyframe("audio/opus", b"\xfc")


def test_h264_size_is_read_from_the_keyframes_sps() -> None:
    frames = [b"".join(h264_depayload(p) for p in payloads) for payloads in encoded(2)]

    assert h264_size(frames[0]) == (WIDTH, HEIGHT)  # what the recording's header says
    assert h264_size(frames[1]) == (0, 0)  # no SPS in an inter frame
    assert h264_size(b"\x00\x00\x01\x67\x42") == (0, 0)  # an SPS cut short


def test_h264_publisher_reaches_two_viewers_with_nothing_transcoded(
    worker: WorkerProcess,
) -> None:
    async def scenario() -> tuple[list[Viewer], dict[str, Any], str, list[str]]:
        async with published(worker.port, codec=H264) as stream:
            viewers = [Viewer() for _ in range(2)]
            try:
                answers = []
                for viewer in viewers:
                    token = grant("view", user=2, stream=stream.id)
                    reply = await call(worker.port, "view", token=token, sdp=await viewer.offer())
                    assert reply["ok"], reply
                    await viewer.answer(reply["sdp"])
                    answers.append(reply["sdp"])
                await asyncio.sleep(3.0)
                stats = await call(worker.port, "stats")
            finally:
                await asyncio.gather(*(v.close() for v in viewers))
            return viewers, stats, stream.answer["sdp"], answers

    viewers, stats, publish_answer, view_answers = asyncio.run(scenario())

    for answer in (publish_answer, *view_answers):
        assert video_codecs(answer) == {"H264"}, answer
    for viewer in viewers:
        assert viewer.frames["video"] >= 45, viewer.frames
        assert viewer.frames["audio"] >= 75, viewer.frames
        assert viewer.sizes == {(WIDTH, HEIGHT)}
    assert set(stats["codecs"].values()) == {"H264"}, stats["codecs"]
    assert stats["encoders"] == 0
    assert stats["decoders"] == 0


def test_late_h264_viewer_starts_at_a_keyframe(worker: WorkerProcess) -> None:
    """The viewer's first packet begins an H.264 keyframe, though it joined a running stream,
    and it decodes video within a second (its PLI reaches the publisher)."""

    async def scenario() -> tuple[TappedViewer, float]:
        viewer = TappedViewer()
        async with published(worker.port, codec=H264) as stream:

            async def running() -> bool:
                return (await stream_frames(worker.port, stream.id)).get("video", 0) >= 30

            assert await until_async(running, timeout=15), "no H.264 reached the worker"
            try:
                token = grant("view", user=2, stream=stream.id)
                sent = time.monotonic()
                reply = await call(worker.port, "view", token=token, sdp=await viewer.offer())
                assert reply["ok"], reply
                await viewer.answer(reply["sdp"])
                await until(lambda: viewer.frames["video"] >= 10, timeout=5)
            finally:
                await viewer.close()
        return viewer, (viewer.first_video_at or float("inf")) - sent

    viewer, wait = asyncio.run(scenario())

    video = viewer.media("video")
    assert len(video) >= 10 and viewer.frames["video"] >= 10, viewer.frames
    assert starts_keyframe(H264, video[0].payload), video[0].payload[:4]
    assert wait < 1.0, wait


def test_publishers_first_offered_codec_is_the_streams(worker: WorkerProcess) -> None:
    """A browser lists the codec it prefers first: H.264 before VP8, or VP8 before H.264."""

    async def publish(order: list[str]) -> tuple[str, dict[str, Any]]:
        publisher = Publisher()
        try:
            caps = RTCRtpSender.getCapabilities("video").codecs
            for transceiver in publisher.pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.setCodecPreferences(
                        [c for mime in order for c in caps if c.mimeType == mime]
                    )
            token = grant("publish")
            reply = await call(worker.port, "publish", token=token, sdp=await publisher.offer())
            assert reply["ok"], reply
            await call(worker.port, "close_stream", stream=reply["stream"])
        finally:
            await publisher.close()
        return reply["sdp"], reply

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        return [
            await publish([H264, "video/VP8", "video/rtx"]),
            await publish(["video/VP8", H264, "video/rtx"]),
        ]

    (h264_answer, h264_reply), (vp8_answer, vp8_reply) = asyncio.run(scenario())

    assert video_codecs(h264_answer) == {"H264"} and h264_reply["video_codec"] == "H264"
    assert video_codecs(vp8_answer) == {"VP8"} and vp8_reply["video_codec"] == "VP8"


def test_viewer_without_the_streams_codec_is_refused(worker: WorkerProcess) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with published(worker.port, codec=H264) as stream:
            token = grant("view", user=2, stream=stream.id)
            viewer = Viewer("video/VP8")
            try:
                refused = await call(worker.port, "view", token=token, sdp=await viewer.offer())
            finally:
                await viewer.close()
            stats = await call(worker.port, "stats")
        return refused, stats

    refused, stats = asyncio.run(scenario())

    assert refused == {
        "ok": False,
        "error": "bad request: the viewer's browser cannot receive H264",
    }
    assert stats["viewers"] == 0


def test_vp8_only_publisher_is_forwarded_in_vp8(worker: WorkerProcess) -> None:
    """Where a publisher cannot send H.264, VP8 is forwarded as before."""

    async def scenario() -> tuple[Viewer, dict[str, Any], str]:
        async with published(worker.port, codec="video/VP8") as stream:
            viewer = Viewer()
            try:
                token = grant("view", user=2, stream=stream.id)
                reply = await call(worker.port, "view", token=token, sdp=await viewer.offer())
                assert reply["ok"], reply
                await viewer.answer(reply["sdp"])
                await until(lambda: viewer.frames["video"] >= 20, timeout=5)
                stats = await call(worker.port, "stats")
            finally:
                await viewer.close()
        return viewer, stats, reply["sdp"]

    viewer, stats, answer = asyncio.run(scenario())

    assert video_codecs(answer) == {"VP8"}
    assert viewer.frames["video"] >= 20 and viewer.sizes == {(WIDTH, HEIGHT)}
    assert set(stats["codecs"].values()) == {"VP8"}
    assert stats["decoders"] == 0


def video_codecs(sdp: str) -> set[str]:
    """The video codec names of an SDP, RTX left out."""
    found, video = set(), False
    for line in sdp.splitlines():
        if line.startswith("m="):
            video = line.startswith("m=video")
        elif video and line.startswith("a=rtpmap:"):
            found.add(line.split()[1].split("/")[0])
    return found - {"rtx"}
