"""Forwarding RTP itself: per viewer a prepared header patched in place, SRTP, one datagram.

Each published track's receiver is tapped so every incoming media packet is handed straight to
:class:`RtpFanout`, which works out what is the same for every viewer once (abs-send-time, the
audio level, the NTP time) and then, per viewer, patches that viewer's prepared RTP header
(its SSRC, payload type, sequence number, timestamp offset and header-extension ids were laid
out when it started), protects header and payload with the viewer's SRTP session and sends the
datagram on its nominated ICE pair: no awaits, no packet objects
(:class:`media.aiortc_internals.Datagrams`). The viewer's ``RTCRtpSender`` stays in place for
negotiation, RTCP sender reports (its counters are updated here, every ``COUNT_FLUSH_S``), and
NACKs and PLIs, answered from the history kept here (within :class:`Resends`' limits) and by
asking the publisher.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender, clock
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from media.aiortc_internals import SenderControl, SendRtp, rtp_sender, tap_media_packets
from media.packets import H264_IDR, H264_SPS

HISTORY = 128  # a power of two, as aiortc's RTP_HISTORY_SIZE: NACKs are answered from these
COUNT_FLUSH_S = 0.1  # how often the senders' RTCP counters are brought up to date
SILENT = 0x7F  # audio level -127 dBov: what a viewer is told when the publisher said nothing
HEAD = struct.Struct("!BHI")  # marker + payload type, sequence number, timestamp (offset 1)
STAP_A, FU_A = 24, 28  # H.264 aggregation and fragmentation units (RFC 6184, 5.2)
# What a viewer's NACKs may bring back: each packet at most once per round trip (and per
# RESEND_GAP_S), none older than RESEND_MAX_AGE_S (its frame is due by then), and resent bytes
# within RESEND_SHARE of the bytes forwarded (a burst of RESEND_BURST first): a viewer whose
# link loses packets because it is full is not sent more than it can take.
RESEND_GAP_S = 0.1
RESEND_MAX_AGE_S = 1.0
RESEND_SHARE = 0.25
RESEND_BURST = 16_000


class Resends:
    """The budget and timing of one viewer's retransmissions (see ``RESEND_*``)."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.budget = float(RESEND_BURST)
        self.octets_seen = 0  # forwarded bytes already turned into budget
        self.last: dict[int, float] = {}  # sequence number -> time.monotonic() of its resend

    def allow(
        self, seq: int, size: int, age_ticks: int, forwarded: int, rtt: float | None, now: float
    ) -> bool:
        """Whether packet ``seq`` (``size`` bytes, ``age_ticks`` RTP clock ticks older than the
        latest sent) may be sent again now, ``forwarded`` bytes having been forwarded so far;
        if so, it is counted as sent."""
        self.budget = min(RESEND_BURST, self.budget + (forwarded - self.octets_seen) * RESEND_SHARE)
        self.octets_seen = forwarded
        if age_ticks > RESEND_MAX_AGE_S * self.clock_rate or size > self.budget:
            return False
        if now - self.last.get(seq, -1e9) < max(rtt or 0.0, RESEND_GAP_S):
            return False
        if len(self.last) >= 4 * HISTORY:
            self.last = {s: t for s, t in self.last.items() if now - t < 1.0}
        self.last[seq] = now
        self.budget -= size
        return True


def starts_keyframe(codec: str, payload: bytes) -> bool:
    """Whether an RTP payload of ``codec`` (a MIME type) begins a key frame (audio packets
    always qualify)."""
    if codec == "video/VP8":
        return starts_vp8_keyframe(payload)
    if codec == "video/H264":
        return starts_h264_keyframe(payload)
    return not codec.startswith("video/")


def starts_vp8_keyframe(payload: bytes) -> bool:
    """Whether a VP8 RTP payload begins a key frame (RFC 7741, 4.3)."""
    try:
        descr, data = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return bool(descr.partition_start and descr.partition_id == 0 and data and not data[0] & 1)


def starts_h264_keyframe(payload: bytes) -> bool:
    """Whether an H.264 RTP payload (packetization-mode 1, RFC 6184) begins a key frame: an
    SPS, or the first slice of an IDR picture, alone, inside a STAP-A, or as the start of an
    FU-A."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == STAP_A:
        at = 1
        while at + 3 <= len(payload):
            size = int.from_bytes(payload[at : at + 2], "big")
            if not size or at + 2 + size > len(payload):  # malformed: cut short
                return False
            if starts_h264_picture(payload[at + 2 : at + 2 + size]):
                return True
            at += 2 + size
        return False
    if nal_type == FU_A:
        if len(payload) < 3 or not payload[1] & 0x80:  # not the start fragment
            return False
        return starts_h264_picture(bytes((payload[1] & 0x1F, payload[2])))
    return starts_h264_picture(payload)


def starts_h264_picture(nal: bytes) -> bool:
    """Whether one NAL unit is an SPS, or an IDR slice whose first macroblock is 0 (its
    ``first_mb_in_slice``, Exp-Golomb coded, is 0 when its first bit is 1)."""
    nal_type = nal[0] & 0x1F if nal else 0
    return nal_type == H264_SPS or (nal_type == H264_IDR and len(nal) > 1 and bool(nal[1] & 0x80))


def first_sequence_number() -> int:
    """A viewer's first RTP sequence number, in the lower half of the range as aiortc's: a
    wrap-around soon after the start broke SRTP's roll-over counter guess in receivers."""
    return random.randint(0, 0x7FFF)


def changed_bytes(a: bytes, b: bytes) -> int | None:
    """The offset of the first byte where two equal-length headers differ (None: identical)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)


class RtpViewer:
    """One viewer's sender, fed packets directly by the fan-out."""

    def __init__(self, sender: RTCRtpSender, fanout: RtpFanout) -> None:
        self.sender = sender
        self.control = SenderControl(sender)
        self.send: SendRtp = self.connect
        self.fanout = fanout
        self.kind = fanout.kind
        self.payload_type = 0  # known once the sender starts
        self.seq = first_sequence_number()  # of the first packet sent, then of the latest
        self.seq_offset: int | None = None  # viewer's minus publisher's, set by the first packet
        self.first_seq = 0
        self.ts_offset = random.getrandbits(32)
        self.header = bytearray()  # prepared in run(): only patched per packet
        self.send_time_at: int | None = None  # offsets of the extensions' values in it
        self.level_at: int | None = None
        self.waiting_keyframe = self.kind == "video"
        self.sent = 0
        self.octets = 0
        self.counted = (0, 0)  # (packets, octets) already told to the sender
        self.last_timestamp = 0  # RTP timestamp of the latest packet sent
        self.payloads: list[bytes | None] = [None] * HISTORY  # by sequence number % HISTORY
        self.stamps = [0] * HISTORY  # their sequence number << 33 | marker bit << 32 | timestamp
        self.resends = Resends(90000 if self.kind == "video" else 48000)
        self._done = asyncio.Event()
        self.control.take_over(self.run, fanout.request_keyframe, self.retained)

    def prepare(self) -> None:
        """Lay out this viewer's header once: the negotiated extensions, with placeholders for
        the values that change per packet, found by serializing twice with different values."""
        template = RtpPacket(payload_type=self.payload_type, ssrc=self.control.ssrc)
        template.extensions.mid = self.control.mid
        extensions = self.control.extensions_map

        def serialized(send_time: int, level: int) -> bytes:
            template.extensions.abs_send_time = send_time
            if self.kind == "audio":
                template.extensions.audio_level = (bool(level & 0x80), level & 0x7F)
            return template.serialize(extensions)

        base = serialized(0, 0)
        self.send_time_at = changed_bytes(base, serialized(0xFFFFFF, 0))
        self.level_at = changed_bytes(base, serialized(0, 0xFF)) if self.kind == "audio" else None
        self.header = bytearray(base)

    async def run(self, codec: Any) -> None:
        """Stands in for the sender's packetizing loop: registers, then waits for the end."""
        self.payload_type = codec.payloadType
        self.resends.clock_rate = codec.clockRate
        self.prepare()
        self.send = rtp_sender(self.sender.transport) or self.connect
        self.control.started()
        self.fanout.add(self)
        try:
            await self._done.wait()
        except asyncio.CancelledError:
            pass
        finally:
            self.leave()
            self.control.exited()

    def leave(self) -> None:
        if self in self.fanout.viewers:
            self.fanout.viewers.remove(self)
        self.count()

    def finish(self) -> None:
        self._done.set()

    def connect(self, header: bytearray, payload: bytes) -> None:
        """Sends the first packet, once the viewer's transport can take it (its datagram
        sender then replaces this)."""
        send = rtp_sender(self.sender.transport)
        if send is None:  # not connected (yet): start again at a keyframe
            self.waiting_keyframe = self.kind == "video"
            return
        self.send = send
        send(header, payload)

    def forward(
        self,
        source_seq: int,
        marker: int,
        timestamp: int,
        payload: bytes,
        send_time: bytes,
        level: int,
    ) -> None:
        """Patch the header for one packet, send it and remember it for NACKs.

        ``source_seq`` is the publisher's sequence number: the viewer's is it plus an offset
        fixed by the first packet sent, so a packet lost on the way in leaves a gap the viewer
        sees, and its retransmission, when the worker's own NACK brings it, fills that gap.
        ``marker`` is 0 or 0x80; ``send_time`` the 3 bytes of abs-send-time.
        """
        if self.seq_offset is None:
            self.seq_offset = (self.seq - source_seq) & 0xFFFF
            self.first_seq = self.seq
        seq = self.seq = (source_seq + self.seq_offset) & 0xFFFF
        header = self.header
        timestamp = (timestamp + self.ts_offset) & 0xFFFFFFFF
        HEAD.pack_into(header, 1, marker | self.payload_type, seq, timestamp)
        if self.send_time_at is not None:
            header[self.send_time_at : self.send_time_at + 3] = send_time
        if self.level_at is not None:
            header[self.level_at] = level
        self.send(header, payload)
        slot = seq & (HISTORY - 1)
        self.payloads[slot] = payload
        self.stamps[slot] = seq << 33 | marker << 25 | timestamp
        self.sent += 1
        self.octets += len(payload)
        self.last_timestamp = timestamp

    def fill(
        self,
        source_seq: int,
        marker: int,
        timestamp: int,
        payload: bytes,
        send_time: bytes,
        level: int,
    ) -> None:
        """Send a packet recovered by the worker's NACK into the gap its loss left, if that gap
        is one this viewer has (after its first packet, before its latest, still in history)."""
        if self.seq_offset is None:
            return
        seq = (source_seq + self.seq_offset) & 0xFFFF
        behind, since_first = (self.seq - seq) & 0xFFFF, (seq - self.first_seq) & 0xFFFF
        if not 0 < behind < HISTORY or since_first >= 0x8000:
            return
        latest, stamp = self.seq, self.last_timestamp  # what sender reports describe stays
        self.forward(source_seq, marker, timestamp, payload, send_time, level)
        self.seq, self.last_timestamp = latest, stamp

    def retained(self, sequence_number: int) -> bytes | None:
        """The plain RTP packet sent as ``sequence_number``, if still in the history and
        :class:`Resends` allows sending it again now."""
        slot = sequence_number & (HISTORY - 1)
        payload, stamp = self.payloads[slot], self.stamps[slot]
        if payload is None or stamp >> 33 != sequence_number:
            return None
        age = (self.last_timestamp - (stamp & 0xFFFFFFFF)) & 0xFFFFFFFF
        now = time.monotonic()
        if not self.resends.allow(
            sequence_number, len(payload), age, self.octets, self.control.rtt, now
        ):
            return None
        header = bytearray(self.header)
        marker = (stamp >> 25) & 0x80
        HEAD.pack_into(header, 1, marker | self.payload_type, sequence_number, stamp & 0xFFFFFFFF)
        return bytes(header) + payload

    def count(self) -> None:
        """Bring the sender's RTCP counters up to date (what its next sender report says):
        its latest packet was the fan-out's latest, sent at ``fanout.last_ntp``."""
        packets, octets = self.counted
        if self.sent == packets:
            return
        self.control.count_sent(
            self.fanout.last_ntp,
            self.last_timestamp,
            self.octets - octets,
            self.sent - packets,
        )
        self.counted = (self.sent, self.octets)


class RtpFanout:
    """One published track: its RTP packets go to every ready viewer, rewritten for each."""

    def __init__(self, kind: str, request_keyframe: Callable[[], None]) -> None:
        self.kind = kind
        # The negotiated codec (a MIME type), set by the worker once the offer is answered.
        self.codec = "video/VP8" if kind == "video" else "audio/opus"
        self.viewers: list[RtpViewer] = []
        self._request_keyframe = request_keyframe  # the hub's: it spaces requests out
        self.packets = 0
        self.last_ntp = 0  # NTP time when the latest packet was sent
        self._counting: asyncio.TimerHandle | None = None

    def request_keyframe(self) -> None:
        # No throttle of its own: one here dropped the requests of viewers that joined within
        # its interval, and they waited for a keyframe nobody had asked for.
        if self.kind == "video":
            self._request_keyframe()

    def add(self, viewer: RtpViewer) -> None:
        """A viewer whose sender started: it gets packets from the next keyframe on."""
        self.viewers.append(viewer)
        self.request_keyframe()
        if self._counting is None:
            self._counting = asyncio.get_running_loop().call_later(COUNT_FLUSH_S, self._count)

    def _count(self) -> None:
        """Every ``COUNT_FLUSH_S``: the senders' RTCP counters, from the viewers' own."""
        self._counting = None
        if not self.viewers:
            return
        for viewer in self.viewers:
            viewer.count()
        self._counting = asyncio.get_running_loop().call_later(COUNT_FLUSH_S, self._count)

    def push(self, packet: RtpPacket) -> None:
        """Send one of the publisher's packets to every viewer (on the event loop)."""
        self.packets += 1
        if not self.viewers:
            return
        send_time, level_byte = self._stamps(packet)
        seq, marker = packet.sequence_number, packet.marker << 7
        timestamp, payload = packet.timestamp, packet.payload
        keyframe: bool | None = None  # worked out only when a viewer waits for one
        for viewer in self.viewers:
            if viewer.waiting_keyframe:
                if keyframe is None:
                    keyframe = starts_keyframe(self.codec, payload)
                if not keyframe:
                    self.request_keyframe()  # ask again (rate-limited) until one comes
                    continue
                viewer.waiting_keyframe = False
            viewer.forward(seq, marker, timestamp, payload, send_time, level_byte)

    def recover(self, packet: RtpPacket) -> None:
        """A packet lost on the way in, brought back by the worker's NACK: into each viewer's
        gap (viewers waiting for a keyframe have none)."""
        if not self.viewers:
            return
        send_time, level_byte = self._stamps(packet)
        fields = (packet.sequence_number, packet.marker << 7, packet.timestamp, packet.payload)
        for viewer in self.viewers:
            if not viewer.waiting_keyframe:
                viewer.fill(*fields, send_time, level_byte)

    def _stamps(self, packet: RtpPacket) -> tuple[bytes, int]:
        """What every viewer's copy of ``packet`` carries: abs-send-time (now), audio level."""
        ntp = self.last_ntp = clock.current_ntp_time()
        send_time = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        level = packet.extensions.audio_level
        return send_time, SILENT if level is None else (0x80 if level[0] else 0) | (level[1] & 0x7F)

    def end(self) -> None:
        if self._counting is not None:
            self._counting.cancel()
            self._counting = None
        for viewer in tuple(self.viewers):
            viewer.finish()


def tap_rtp(receiver: RTCRtpReceiver, fanout: RtpFanout) -> None:
    """Hand ``receiver``'s media packets to ``fanout`` as they arrive, and the retransmissions
    its NACKs bring back, unwrapped."""
    tap_media_packets(receiver, fanout.push, fanout.recover)
