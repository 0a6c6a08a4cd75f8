"""Light WebRTC viewers for load generators: aiortc for ICE and DTLS, then RTP is only counted.

A :class:`LightViewer` is a real aiortc ``RTCPeerConnection`` (receive-only video and audio) that
asks a media worker's ``view`` op for a stream. As soon as ICE has picked its pair, the pair's
UDP socket hands every SRTP packet to :meth:`LightViewer.received` instead of aiortc: there the
packet is counted from its unencrypted RTP header (SSRC, marker bit), nothing is decrypted,
depacketized or decoded. STUN, DTLS and RTCP still go to aiortc, so the connection stays alive
(consent checks) and the server's sender reports arrive. A hundred such viewers cost a fraction
of a core, where aiortc's own receivers cost more than the server they load.

Figures: a video frame is one video packet with the marker bit (its last packet), so fps is
marker packets per second; the first frame is the first such packet. For added latency, video
marker packets in a recording window are decrypted (one SRTP unprotect per frame) and their
payload named by :func:`payload_key`; a publisher that notes the key of each marker packet it
sends (:func:`payload_key` of the plain RTP it gives to SRTP) and when, lets
:func:`added_latency` match them: the worker forwards payloads unchanged.

Use :func:`watch` for a whole run (connect N viewers to one worker, wait for their first frames,
measure a window, close), or :func:`connect` and :class:`LightViewer` for finer control. All
times are ``time.monotonic()``: compare them only within one machine (or one clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

CONNECT_TIMEOUT_S = 20.0
FIRST_FRAME_TIMEOUT_S = 30.0
PLI_AFTER_S = 1.0  # a connected viewer with no video yet asks for a keyframe this often

# A view request: (sdp offer) -> the worker's reply ({"ok", "peer", "sdp"} or {"ok": False, ...}).
ViewCall = Callable[[str], Awaitable[dict[str, Any]]]


def payload_key(rtp: bytes) -> int:
    """Names a plain RTP packet's payload across processes (header and extensions skipped)."""
    start = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10:  # header extension: 4 bytes, then its length in 32-bit words
        start += 4 + 4 * int.from_bytes(rtp[start + 2 : start + 4], "big")
    end = len(rtp) - (rtp[-1] if rtp[0] & 0x20 else 0)  # padding
    return int.from_bytes(hashlib.blake2b(rtp[start:end], digest_size=8).digest(), "big")


def is_rtcp(data: bytes) -> bool:
    """RTCP shares the port (RFC 5761): packet types 192..208 where RTP has its payload type."""
    return len(data) >= 2 and 192 <= data[1] <= 208


class Discard:
    """Stands in for an aiortc receiver's decoder queue: nothing is ever decoded."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        pass

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        return None  # the idle decoder thread (if any) exits at once


class LightViewer:
    """One viewer connection whose RTP is counted at the datagram level."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.receivers = {
            kind: self.pc.addTransceiver(kind, direction="recvonly").receiver
            for kind in ("video", "audio")
        }
        for receiver in self.receivers.values():
            receiver._RTCRtpReceiver__decoder_queue = Discard()  # type: ignore[attr-defined]
        self.peer = ""
        self.asked = 0.0  # when the view request was sent
        self.connected_s: float | None = None  # from the request to ICE + DTLS done
        self.first_frame_s: float | None = None  # from the request to the first video frame
        self.connected = asyncio.Event()
        self.got_frame = asyncio.Event()
        self.video_ssrc = b""  # the server's, 4 bytes as in the RTP header
        self.video_ssrc_int: int | None = None
        self.packets = {"video": 0, "audio": 0}
        self.bytes = 0
        self.frames = 0  # video marker packets
        self.recording = False  # decrypt video marker packets and keep (key, arrival)
        self.samples: list[tuple[int, float]] = []
        self.plis = 0
        self.attached = False
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("iceconnectionstatechange", self._attach)

    async def open(self, view: ViewCall) -> None:
        """Offer, send the view request through ``view``, apply the answer.

        :raises RuntimeError: the worker refused
        """
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.asked = time.monotonic()
        reply = await view(self.pc.localDescription.sdp)
        if not reply.get("ok"):
            raise RuntimeError(f"view refused: {reply.get('error')}")
        self.peer = str(reply.get("peer", ""))
        for media in SessionDescription.parse(reply["sdp"]).media:
            groups = [g.items for g in media.ssrc_group if g.semantic == "FID"]
            if media.kind == "video" and (groups or media.ssrc):
                self.video_ssrc_int = int(groups[0][0]) if groups else media.ssrc[0].ssrc
                self.video_ssrc = self.video_ssrc_int.to_bytes(4, "big")
        await self.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_s is None:
            self.connected_s = time.monotonic() - self.asked
        if state in ("connected", "failed", "closed"):
            self.connected.set()

    def _dtls(self) -> Any:
        return self.receivers["video"].transport

    def _attach(self) -> None:
        """Once ICE has its pair: that socket's SRTP goes to :meth:`received`."""
        if self.attached or self.pc.iceConnectionState not in ("checking", "completed"):
            return
        pair = self._dtls().transport._connection._nominated.get(1)
        if pair is None:
            return
        self.attached = True
        protocol = pair.protocol
        original = protocol.datagram_received
        received = self.received

        def datagram_received(data: bytes, addr: Any) -> None:
            if 127 < data[0] < 192 and not is_rtcp(data):
                received(data)
            else:
                original(data, addr)

        protocol.datagram_received = datagram_received

    def received(self, data: bytes) -> None:
        """One SRTP packet: counted by kind; a video marker packet is a frame."""
        self.bytes += len(data)
        if data[8:12] != self.video_ssrc:
            self.packets["audio"] += 1
            return
        self.packets["video"] += 1
        if not data[1] & 0x80:
            return
        self.frames += 1
        now = time.monotonic()
        if self.first_frame_s is None:
            self.first_frame_s = now - self.asked
            self.got_frame.set()
        if self.recording:
            srtp = self._dtls()._rx_srtp
            with contextlib.suppress(Exception):  # e.g. a replayed packet: not a sample
                self.samples.append((payload_key(srtp.unprotect(data)), now))

    async def wait_for_video(self, pli: bool = True) -> None:
        """Until the first video frame; with ``pli``, ask for a keyframe every ``PLI_AFTER_S``."""
        while not self.got_frame.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.got_frame.wait(), PLI_AFTER_S)
                return
            if pli and self.video_ssrc_int is not None and self.pc.connectionState == "connected":
                self.plis += 1
                await self.receivers["video"]._send_rtcp_pli(self.video_ssrc_int)

    async def close(self) -> None:
        await self.pc.close()


async def connect(
    views: list[ViewCall], concurrency: int = 5, pli: bool = True
) -> tuple[list[LightViewer], list[str]]:
    """One light viewer per view call, ``concurrency`` connecting at once, each until its first
    video frame (or a timeout). Returns the viewers that got video, and the errors of the rest
    (those are closed)."""
    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(view: ViewCall) -> LightViewer | None:
        viewer = LightViewer()
        try:
            async with gate:
                await viewer.open(view)
                await asyncio.wait_for(viewer.connected.wait(), CONNECT_TIMEOUT_S)
            await asyncio.wait_for(viewer.wait_for_video(pli), FIRST_FRAME_TIMEOUT_S)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            await viewer.close()
            return None
        return viewer

    viewers = await asyncio.gather(*(one(view) for view in views))
    return [v for v in viewers if v is not None], errors


def start_window(viewers: list[LightViewer]) -> tuple[float, list[int]]:
    """Start measuring: from now, keep latency samples. Returns what :func:`window` needs."""
    for viewer in viewers:
        viewer.recording = True
        viewer.samples = []
    return time.monotonic(), [v.frames for v in viewers]


def window(viewers: list[LightViewer], started: tuple[float, list[int]]) -> dict[str, Any]:
    """End the window: fps per viewer, their latency samples ``(payload key, arrival)``."""
    at, frames = started
    elapsed = time.monotonic() - at
    fps = [(v.frames - f) / elapsed for v, f in zip(viewers, frames, strict=True)]
    samples = []
    for viewer in viewers:
        viewer.recording = False
        samples += viewer.samples
    return {
        "fps": fps,
        "fps_min": min(fps, default=None),
        "fps_median": statistics.median(fps) if fps else None,
        "samples": samples,
        "connected": sum(v.pc.connectionState == "connected" for v in viewers),
    }


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


def added_latency(samples: list[tuple[int, float]], sent: dict[int, float]) -> dict[str, Any]:
    """Matched samples: arrival minus the publisher's send time of the same payload, in ms
    (``sent``: payload key -> when the publisher sent that marker packet)."""
    delays = [1000 * (arrived - sent[key]) for key, arrived in samples if key in sent]
    return {
        "p50_ms": percentile(delays, 50),
        "p95_ms": percentile(delays, 95),
        "matched": len(delays),
        "unmatched": len(samples) - len(delays),
    }


async def watch(
    views: list[ViewCall], seconds: float, concurrency: int = 5, pli: bool = True
) -> dict[str, Any]:
    """Connect ``len(views)`` light viewers, measure ``seconds`` of steady state, close them.

    ``views``: one call per viewer, e.g. ``partial(call_view, addr, token)`` sending the
    worker's ``view`` op with that viewer's token and the offer. Returns fps (per viewer, min,
    median), first-frame times, join errors and the latency samples of the window (match them
    with the publisher's marker packets by :func:`added_latency`).
    """
    viewers, errors = await connect(views, concurrency, pli)
    try:
        started = start_window(viewers)
        await asyncio.sleep(seconds)
        figures = window(viewers, started)
    finally:
        await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
    firsts = [v.first_frame_s for v in viewers if v.first_frame_s is not None]
    return {
        **figures,
        "viewers": len(views),
        "got_video": len(viewers),
        "first_frame_s": firsts,
        "plis": sum(1 for v in viewers if v.plis),
        "errors": errors,
        "peers": [v.peer for v in viewers],
    }
