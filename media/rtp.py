"""Forwarding RTP itself: per viewer only a header rewrite and SRTP, no per-frame queue.

Each published track's receiver is wrapped so every incoming media packet is handed straight
to :class:`RtpFanout`, which rewrites it for each viewer (their SSRC, payload type, sequence
numbers and timestamp offset, their header-extension ids) and sends it through that viewer's
DTLS transport. The viewer's ``RTCRtpSender`` stays in place for negotiation, RTCP sender
reports (its counters are kept up to date here) and NACKs (answered from the history kept here);
its own packetizing loop is replaced by :meth:`RtpViewer.run`, which only waits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender, clock
from aiortc.codecs import is_rtx
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

HISTORY = 128  # aiortc's RTP_HISTORY_SIZE: NACKs are answered from this many packets


def starts_keyframe(kind: str, payload: bytes) -> bool:
    """Whether a VP8 RTP payload begins a key frame (audio packets always qualify)."""
    if kind != "video":
        return True
    try:
        descr, data = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return bool(descr.partition_start and descr.partition_id == 0 and data and not data[0] & 1)


class RtpViewer:
    """One viewer's sender, fed packets directly by the fan-out."""

    def __init__(self, sender: RTCRtpSender, fanout: RtpFanout) -> None:
        self.sender = sender
        self.fanout = fanout
        self.kind = fanout.kind
        self.payload_type: int | None = None  # known once the sender starts
        self.seq = random.randint(0, 0xFFFF)
        self.ts_offset = random.randint(0, 0xFFFFFFFF)
        self.waiting_keyframe = self.kind == "video"
        self.sent = 0
        self._done = asyncio.Event()
        sender._run_rtp = self.run  # type: ignore[method-assign]
        sender._send_keyframe = fanout.request_keyframe  # type: ignore[method-assign]

    def _private(self, name: str) -> Any:
        return getattr(self.sender, f"_RTCRtpSender__{name}")

    async def run(self, codec: Any) -> None:
        """Stands in for the sender's packetizing loop: registers, then waits for the end."""
        self.payload_type = codec.payloadType
        self._private("rtp_started").set()
        self.fanout.viewers.append(self)
        self.fanout.request_keyframe()
        try:
            await self._done.wait()
        except asyncio.CancelledError:
            pass
        finally:
            self.leave()
            self._private("rtp_exited").set()

    def leave(self) -> None:
        if self in self.fanout.viewers:
            self.fanout.viewers.remove(self)

    def finish(self) -> None:
        self._done.set()

    async def send(self, packet: RtpPacket) -> None:
        """Rewrite ``packet`` for this viewer, remember it for NACKs and send it."""
        if self.waiting_keyframe:
            if not starts_keyframe(self.kind, packet.payload):
                self.fanout.request_keyframe()  # ask again (rate-limited) until one comes
                return
            self.waiting_keyframe = False
        out = RtpPacket(
            payload_type=self.payload_type or packet.payload_type,
            marker=packet.marker,
            sequence_number=self.seq,
            timestamp=(packet.timestamp + self.ts_offset) & 0xFFFFFFFF,
            ssrc=self.sender._ssrc,
            payload=packet.payload,
        )
        out.extensions.mid = self._private("mid")
        out.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
        out.extensions.audio_level = packet.extensions.audio_level
        self._private("rtp_history")[self.seq % HISTORY] = out
        data = out.serialize(self._private("rtp_header_extensions_map"))
        self.seq = (self.seq + 1) & 0xFFFF
        try:
            await self.sender.transport._send_rtp(data)
        except ConnectionError:
            self.leave()
            return
        self.sent += 1
        # What the sender's RTCP reports describe (name-mangled counters of RTCRtpSender).
        self.sender._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()  # type: ignore[attr-defined]
        self.sender._RTCRtpSender__rtp_timestamp = out.timestamp  # type: ignore[attr-defined]
        self.sender._RTCRtpSender__octet_count += len(out.payload)  # type: ignore[attr-defined]
        self.sender._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]


class RtpFanout:
    """One published track: its RTP packets go to every ready viewer, rewritten for each."""

    def __init__(self, kind: str, request_keyframe: Callable[[], None]) -> None:
        self.kind = kind
        self.viewers: list[RtpViewer] = []
        self._request_keyframe = request_keyframe  # the hub's: it spaces requests out
        self.packets = 0

    def request_keyframe(self) -> None:
        # No throttle of its own: one here dropped the requests of viewers that joined within
        # its interval, and they waited for a keyframe nobody had asked for.
        if self.kind == "video":
            self._request_keyframe()

    async def push(self, packet: RtpPacket) -> None:
        self.packets += 1
        for viewer in tuple(self.viewers):
            await viewer.send(packet)

    def end(self) -> None:
        for viewer in tuple(self.viewers):
            viewer.finish()


def tap_rtp(receiver: RTCRtpReceiver, fanout: RtpFanout) -> None:
    """Hand ``receiver``'s media packets (not retransmissions) to ``fanout`` as they arrive,
    before the receiver's own handling (statistics, NACKs, frame assembly) runs."""
    original = receiver._handle_rtp_packet
    codecs = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        codec = codecs.get(packet.payload_type)
        if codec is not None and not is_rtx(codec):
            await fanout.push(packet)
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
