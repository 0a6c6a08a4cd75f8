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

A simulcast publisher sends several :class:`Layer` s of one video; each viewer gets one, chosen
by its :class:`media.adapt.Adapter` from what its browser reports. A viewer moves to another
layer only at one of that layer's keyframes (asked for with a PLI naming its SSRC), and its
sequence numbers, timestamps and VP8 picture ids go on from where they were, so its decoder
never sees a gap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender, clock
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from media.adapt import AUDIO_ONLY, PROBE_RAMP_S, TICK_S, Adapter, Quality, layer_name
from media.aiortc_internals import SenderControl, SendRtp, rtp_sender, tap_media_packets
from media.packets import H264_IDR, H264_SPS
from media.recorder import Bits
from media.recorder import sps_size as read_sps

log = logging.getLogger("media.rtp")

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
RANK_S = 1.0  # how often the layers' bitrates are measured and ranked
RANK_ALPHA = 0.4  # smoothing of those bitrates
RERANK = 1.3  # two layers swap ranks only when one's bitrate exceeds the other's this much
RECORD_AFTER_S = 5.0  # a simulcast layer whose picture size is not known by then is ranked
# by its bitrate alone (the top layer is recorded once every layer's size is known, or then)
VIEWER_PLI_S = 1.0  # a viewer's own keyframe requests reach the publisher at most this often
PROBE_BURST = 4000  # bytes of probing a viewer may be sent at once
PAD_SIZE = 255  # bytes of padding in each probing packet of a viewer that gets audio only
NACK_LOST_S = 0.15  # a packet NACKed this long after it was sent was lost, not late


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


def picture_size(codec: str, payload: bytes) -> tuple[int, int] | None:
    """The picture size a VP8 key frame's first packet or an H.264 SPS (alone or in a STAP-A)
    states, or None: how a simulcast stream's layers are told apart from its first keyframes
    (their bitrates are no guide while the publisher's encoder ramps up)."""
    if codec == "video/VP8":
        try:
            descr, data = VpxPayloadDescriptor.parse(payload)
        except ValueError:
            return None
        starts = descr.partition_start and descr.partition_id == 0 and len(data) >= 10
        if starts and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a":
            width = int.from_bytes(data[6:8], "little") & 0x3FFF
            height = int.from_bytes(data[8:10], "little") & 0x3FFF
            return width, height
        return None
    if codec == "video/H264" and payload:
        if payload[0] & 0x1F == H264_SPS:
            return sps_size(payload)
        if payload[0] & 0x1F == STAP_A:
            at = 1
            while at + 3 <= len(payload):
                size = int.from_bytes(payload[at : at + 2], "big")
                nal = payload[at + 2 : at + 2 + size]
                if nal and nal[0] & 0x1F == H264_SPS:
                    return sps_size(nal)
                at += 2 + size
    return None


def sps_size(nal: bytes) -> tuple[int, int] | None:
    """The picture size of an H.264 SPS NAL unit (the recorder's parser), or None for one it
    cannot read (scaling matrices, a malformed one)."""
    try:
        return read_sps(Bits(nal[1:]))
    except (IndexError, ValueError):
        return None


def first_sequence_number() -> int:
    """A viewer's first RTP sequence number, in the lower half of the range as aiortc's: a
    wrap-around soon after the start broke SRTP's roll-over counter guess in receivers."""
    return random.randint(0, 0x7FFF)


def changed_bytes(a: bytes, b: bytes) -> int | None:
    """The offset of the first byte where two equal-length headers differ (None: identical)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)


# Where a VP8 payload descriptor keeps its picture id and TL0PICIDX (RFC 7741, 4.2):
# (offset of the picture id or -1, its mask: 0x7F or 0x7FFF, offset of TL0PICIDX or -1).
Picture = tuple[int, int, int]


def vp8_picture(payload: bytes) -> Picture | None:
    """Where ``payload``'s descriptor has a picture id and TL0PICIDX (None: it has neither)."""
    if len(payload) < 2 or not payload[0] & 0x80:
        return None
    x, at, pid_at, mask = payload[1], 2, -1, 0
    if x & 0x80:
        if len(payload) <= at:
            return None
        pid_at, mask = at, 0x7FFF if payload[at] & 0x80 else 0x7F
        at += 2 if mask == 0x7FFF else 1
    tl0_at = at if x & 0x40 else -1
    if max(pid_at + (mask == 0x7FFF), tl0_at) >= len(payload):
        return None
    return None if pid_at < 0 and tl0_at < 0 else (pid_at, mask, tl0_at)


class Layer:
    """One encoding of a published track: a simulcast layer, or the track's only one."""

    def __init__(self, rid: str | None, order: int) -> None:
        self.rid = rid
        self.order = order  # in the publisher's offer
        self.ssrc: int | None = None  # known from its first packet
        self.octets = 0
        self.ranked_octets = 0  # octets when the bitrate was last measured
        self.bitrate = 0.0  # bits/s, smoothed
        self.size: tuple[int, int] | None = None  # its picture's, from its first keyframe
        self.pixels = 0  # width x height (0: not known yet)
        self.viewers: list[RtpViewer] = []  # forwarded this layer
        self.waiting: list[RtpViewer] = []  # to move to it at its next keyframe


class RtpViewer:
    """One viewer's sender, fed packets directly by the fan-out."""

    def __init__(self, sender: RTCRtpSender, fanout: RtpFanout, quality: Quality) -> None:
        self.sender = sender
        self.control = SenderControl(sender)
        self.send: SendRtp = self.connect
        self.fanout = fanout
        self.kind = fanout.kind
        self.payload_type = 0  # known once the sender starts
        self.seq = first_sequence_number()  # of the first packet sent, then of the latest
        self.seq_offset: int | None = None  # viewer's minus publisher's, set by the first packet
        self.first_seq = 0  # the first sent since the latest layer switch
        self.nack_from = 0  # NACKs of packets before this one tell nothing of the link now
        self.padded = False  # probing padding was sent since its layer's first packet
        self.ts_offset = random.getrandbits(32)
        self.pic_offset = self.tl0_offset = 0  # VP8 picture id and TL0PICIDX: viewer's minus
        self.last_pic = self.last_tl0 = 0  # ... and the latest sent
        self.layer: Layer | None = None  # the layer forwarded to it (None: none yet, or audio)
        self.rebase = False  # its next packet starts another layer: numbers go on from here
        self.header = bytearray()  # prepared in run(): only patched per packet
        self.send_time_at: int | None = None  # offsets of the extensions' values in it
        self.level_at: int | None = None
        self.sent = 0
        self.octets = 0
        self.counted = (0, 0)  # (packets, octets) already told to the sender
        self.ticked_octets = 0  # octets (probes included) when the adapter last decided
        self.ticked_at = 0.0
        self.ticked_sent = 0  # packets sent when the adapter last decided
        self.lost_seqs: set[int] = set()  # NACKed late since then (see nack)
        self.probe_octets = 0
        self.sent_bps = 0.0  # over the latest tick, probes included
        self.last_timestamp = 0  # RTP timestamp of the latest packet sent
        self.last_ntp = 0  # the fan-out's NTP time when it was sent
        self.payloads: list[bytes | None] = [None] * HISTORY  # by sequence number % HISTORY
        self.stamps = [0] * HISTORY  # their sequence number << 33 | marker bit << 32 | timestamp
        self.resends = Resends(90000 if self.kind == "video" else 48000)
        self.adapter = Adapter(quality) if self.kind == "video" else None
        self.probe_bps = 0
        self.probe_credit = 0.0
        self.probe_at = 0.0
        self.probe_from = 0.0  # when the probe began: it ramps up from there
        self.probe_slot = 0
        self.last_pli = -VIEWER_PLI_S
        self._done = asyncio.Event()
        self.control.take_over(self.run, self.keyframe_wanted, self.retained)
        if self.adapter is not None:
            self.control.watch_feedback(self)

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
        self.fanout.remove(self)
        self.count()

    def finish(self) -> None:
        self._done.set()

    def connect(self, header: bytearray, payload: bytes) -> None:
        """Sends the first packet, once the viewer's transport can take it (its datagram
        sender then replaces this)."""
        send = rtp_sender(self.sender.transport)
        if send is None:  # not connected (yet): start again at a keyframe
            if self.sent == 0:
                self.seq_offset = None
            self.fanout.restart(self)
            return
        self.send = send
        send(header, payload)

    # -- the viewer's feedback, for its adapter (media.aiortc_internals.Feedback) ---------------

    def remb(self, bitrate: int) -> None:
        if self.adapter is not None:
            self.adapter.remb(bitrate)

    def loss(self, fraction: float) -> None:
        if self.adapter is not None:
            self.adapter.loss(fraction)

    def rtt(self, seconds: float) -> None:
        if self.adapter is not None:
            self.adapter.rtt(seconds)

    def nack(self, lost: list[int]) -> None:
        """Only NACKs of packets sent since its layer's first, while it gets video, tell of
        its link now (a browser asks again for what it missed long after). Those of packets
        older than ``NACK_LOST_S`` count as lost: a packet that came late, behind others
        (jitter), is asked for sooner, once. A browser's receiver reports may say nothing of
        loss on a link that drops most packets; its NACKs always come."""
        if self.adapter is None:
            return
        recent = 0
        for seq in lost:
            if (seq - self.nack_from) & 0xFFFF >= 0x8000:
                continue
            stamp = self.stamps[seq & (HISTORY - 1)]
            if stamp >> 33 != seq:
                continue
            recent += 1
            age = (self.last_timestamp - (stamp & 0xFFFFFFFF)) & 0xFFFFFFFF
            if age >= NACK_LOST_S * self.resends.clock_rate:
                self.lost_seqs.add(seq)
        self.adapter.nack(recent)

    def keyframe_wanted(self) -> None:
        """The viewer's PLI or FIR: passed on for its own layer, at most every
        ``VIEWER_PLI_S``, so one viewer's losses do not make the publisher encode a keyframe
        for everybody time after time."""
        now = time.monotonic()
        if self.adapter is not None and self.layer is not None:
            self.adapter.pli()
        if now - self.last_pli < VIEWER_PLI_S:
            return
        self.last_pli = now
        self.fanout.request_keyframe(self.layer)

    @property
    def target(self) -> Layer | None:
        """The layer it gets, or is to get at that layer's next keyframe."""
        for layer in self.fanout.layers:
            if self in layer.waiting:
                return layer
        return self.layer

    def forward(
        self,
        source_seq: int,
        marker: int,
        timestamp: int,
        payload: bytes,
        send_time: bytes,
        level: int,
        picture: Picture | None = None,
    ) -> None:
        """Patch the header for one packet, send it and remember it for NACKs.

        ``source_seq`` is the publisher's sequence number: the viewer's is it plus an offset
        fixed by the first packet of a layer, so a packet lost on the way in leaves a gap the
        viewer sees, and its retransmission, when the worker's own NACK brings it, fills that
        gap. ``marker`` is 0 or 0x80; ``send_time`` the 3 bytes of abs-send-time; ``picture``
        where a VP8 payload's picture id is.
        """
        if self.seq_offset is None or self.rebase:
            self.start_layer(source_seq, timestamp, payload, picture)
        if picture is not None:
            payload = self.renumber(payload, picture)
        seq = self.seq = (source_seq + self.seq_offset) & 0xFFFF  # type: ignore[operator]
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
        self.last_ntp = self.fanout.last_ntp

    def start_layer(
        self, source_seq: int, timestamp: int, payload: bytes, picture: Picture | None
    ) -> None:
        """The first packet of a layer: the viewer's numbers go on from its latest packet (its
        first packet ever keeps the random start). Timestamps advance by the time between."""
        if self.seq_offset is None:
            self.seq_offset = (self.seq - source_seq) & 0xFFFF
        else:
            self.seq_offset = (self.seq + 1 - source_seq) & 0xFFFF
            elapsed = (self.fanout.last_ntp - self.last_ntp) / (1 << 32)
            ticks = max(1, int(elapsed * self.resends.clock_rate))
            self.ts_offset = (self.last_timestamp + ticks - timestamp) & 0xFFFFFFFF
            if picture is not None:
                pid_at, mask, tl0_at = picture
                if pid_at >= 0:
                    self.pic_offset = (self.last_pic + 1 - read_pid(payload, pid_at, mask)) & mask
                if tl0_at >= 0:
                    self.tl0_offset = (self.last_tl0 + 1 - payload[tl0_at]) & 0xFF
        self.first_seq = self.nack_from = (source_seq + self.seq_offset) & 0xFFFF
        self.rebase = self.padded = False

    def renumber(self, payload: bytes, picture: Picture) -> bytes:
        """A VP8 payload with the viewer's picture id and TL0PICIDX (a copy only when they
        differ from the publisher's)."""
        pid_at, mask, tl0_at = picture
        copy: bytearray | None = None
        if pid_at >= 0:
            pid = self.last_pic = (read_pid(payload, pid_at, mask) + self.pic_offset) & mask
            if self.pic_offset:
                copy = bytearray(payload)
                if mask == 0x7FFF:
                    copy[pid_at : pid_at + 2] = (0x8000 | pid).to_bytes(2, "big")
                else:
                    copy[pid_at] = pid
        if tl0_at >= 0:
            tl0 = self.last_tl0 = (payload[tl0_at] + self.tl0_offset) & 0xFF
            if self.tl0_offset:
                copy = copy if copy is not None else bytearray(payload)
                copy[tl0_at] = tl0
        return payload if copy is None else bytes(copy)

    def fill(
        self,
        source_seq: int,
        marker: int,
        timestamp: int,
        payload: bytes,
        send_time: bytes,
        level: int,
        picture: Picture | None = None,
    ) -> None:
        """Send a packet recovered by the worker's NACK into the gap its loss left, if that gap
        is one this viewer has (since the first packet of its layer, before its latest, still
        in history)."""
        if self.seq_offset is None or self.rebase or self.padded:
            return  # (after padding, the publisher's older numbers map elsewhere)
        seq = (source_seq + self.seq_offset) & 0xFFFF
        behind, since_first = (self.seq - seq) & 0xFFFF, (seq - self.first_seq) & 0xFFFF
        if not 0 < behind < HISTORY or since_first >= 0x8000:
            return
        latest, stamp, ntp = self.seq, self.last_timestamp, self.last_ntp
        pic, tl0 = self.last_pic, self.last_tl0
        self.forward(source_seq, marker, timestamp, payload, send_time, level, picture)
        self.seq, self.last_timestamp, self.last_ntp = latest, stamp, ntp
        self.last_pic, self.last_tl0 = pic, tl0

    def retained(self, sequence_number: int) -> bytes | None:
        """The plain RTP packet sent as ``sequence_number``, if still in the history and
        :class:`Resends` allows sending it again now."""
        slot = sequence_number & (HISTORY - 1)
        payload, stamp = self.payloads[slot], self.stamps[slot]
        if payload is None or stamp >> 33 != sequence_number:
            return None
        if (sequence_number - self.first_seq) & 0xFFFF >= 0x8000:
            return None  # of a layer it has left: its decoder starts again at a keyframe
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

    def probe(self, now: float, ntp: int) -> None:
        """Send probing traffic, at ``probe_bps``: packets the viewer already has again, as
        retransmissions (RTX when negotiated), stamped with the current send time so the
        browser's estimate counts them as they are sent."""
        if self.adapter is None or not self.adapter.probing:  # ended by the viewer's feedback
            self.probe_bps = 0
            return
        ramp = min(1.0, (now - self.probe_from) / PROBE_RAMP_S)
        self.probe_credit = min(
            PROBE_BURST,
            self.probe_credit + ramp * self.probe_bps / 8 * max(0.0, now - self.probe_at),
        )
        self.probe_at = now
        if self.seq_offset is not None:
            self.pad(ntp)
            return
        rtx = self.control.rtx
        for _ in range(HISTORY):
            if self.probe_credit <= 0:
                return
            self.probe_slot = (self.probe_slot + 1) & (HISTORY - 1)
            payload, stamp = self.payloads[self.probe_slot], self.stamps[self.probe_slot]
            if payload is None:
                continue
            packet = RtpPacket(timestamp=stamp & 0xFFFFFFFF, marker=(stamp >> 32) & 1)
            if rtx is None:  # a duplicate: the browser drops it once counted
                packet.payload_type, packet.ssrc = self.payload_type, self.control.ssrc
                packet.sequence_number, packet.payload = stamp >> 33, payload
            else:
                packet.payload_type, packet.ssrc = rtx
                packet.sequence_number = self.control.next_rtx_sequence_number()
                packet.payload = (stamp >> 33).to_bytes(2, "big") + payload
            packet.extensions.mid = self.control.mid
            packet.extensions.abs_send_time = (ntp >> 14) & 0xFFFFFF
            data = packet.serialize(self.control.extensions_map)
            self.send(bytearray(data), b"")
            self.probe_credit -= len(data)
            self.probe_octets += len(data)

    def pad(self, ntp: int) -> None:
        """Probe with padding packets on the viewer's video stream, each the next sequence
        number (the media after them is numbered on from there): the viewer's receiver
        reports and NACKs tell whether they arrive. Retransmissions of old packets, the other
        way to probe, a full link drops unseen: a probe that overflowed one looked fine."""
        header = bytearray(self.header)
        header[0] |= 0x20  # padding
        if self.send_time_at is not None:
            header[self.send_time_at : self.send_time_at + 3] = ((ntp >> 14) & 0xFFFFFF).to_bytes(
                3, "big"
            )
        padding = bytes(PAD_SIZE - 1) + bytes([PAD_SIZE])
        while self.probe_credit > 0:
            seq = self.seq = (self.seq + 1) & 0xFFFF
            HEAD.pack_into(header, 1, self.payload_type, seq, self.last_timestamp)
            self.send(header, padding)
            self.seq_offset = (self.seq_offset + 1) & 0xFFFF  # type: ignore[operator]
            self.padded = True
            slot = seq & (HISTORY - 1)
            self.payloads[slot] = None  # nothing to send again
            self.stamps[slot] = seq << 33 | self.last_timestamp
            self.probe_credit -= len(header) + PAD_SIZE
            self.probe_octets += len(header) + PAD_SIZE

    def decide(self, now: float, ranked: list[Layer]) -> None:
        """Every ``TICK_S``: the adapter's choice of layer among ``ranked`` (lowest first)."""
        if self.adapter is None:
            return
        octets = self.octets + self.probe_octets
        elapsed = now - self.ticked_at if self.ticked_at else TICK_S
        self.sent_bps = (octets - self.ticked_octets) * 8 / max(elapsed, 1e-3)
        self.ticked_octets, self.ticked_at = octets, now
        packets, self.ticked_sent = self.sent - self.ticked_sent, self.sent
        if packets > 0 and self.layer is not None:  # the tick's loss, as NACKs tell it
            self.adapter.loss(min(1.0, len(self.lost_seqs) / packets), reported=False)
        self.lost_seqs.clear()
        target = self.target
        current = where(target, ranked)
        rates = [layer.bitrate for layer in ranked]
        decision = self.adapter.tick(now, rates, current, self.sent_bps)
        if self.adapter.recover:
            self.adapter.recover = False
            self.fanout.request_keyframe(self.layer)
        chosen = None if decision.layer == AUDIO_ONLY else ranked[decision.layer]
        if chosen is not target:
            self.fanout.move(self, chosen)
        if decision.probe_bps and not self.probe_bps:
            self.probe_from = self.probe_at = now
            self.nack_from = (self.seq + 1) & 0xFFFF
            self.probe_credit = 0.0
        self.probe_bps = decision.probe_bps

    def describe(self, ranked: list[Layer]) -> dict[str, Any]:
        """What stats tell of this viewer's video."""
        adapter = self.adapter
        layer = where(self.target, ranked)
        remb = adapter.remb_bps if adapter is not None else None
        return {
            "quality": adapter.quality.value if adapter is not None else "auto",
            "layer": layer_name(layer, len(ranked)),
            "estimate_kbps": None if remb is None else round(remb / 1000),
            "sent_kbps": round(self.sent_bps / 1000),  # the latest tick's, probes included
            "probing": bool(self.probe_bps),
            "nacked": adapter.nacked if adapter is not None else 0,
            "loss_pct": round(adapter.loss_median * 100, 1) if adapter is not None else 0.0,
        }

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


def where(layer: Layer | None, ranked: list[Layer]) -> int:
    """``layer``'s rank among ``ranked``; a layer that carries nothing now counts as the top
    one that does (its viewers move there); no layer: ``AUDIO_ONLY``."""
    if layer is None:
        return AUDIO_ONLY
    return ranked.index(layer) if layer in ranked else len(ranked) - 1


def read_pid(payload: bytes, at: int, mask: int) -> int:
    """A VP8 picture id (7 or 15 bits) at offset ``at``."""
    if mask == 0x7FFF:
        return ((payload[at] << 8) | payload[at + 1]) & 0x7FFF
    return payload[at] & 0x7F


class RtpFanout:
    """One published track: its RTP packets go to every ready viewer, rewritten for each.

    It is also the receiver's :class:`media.aiortc_internals.PacketRoute`: of a simulcast
    track, only the top layer's packets reach the receiver (and so the recording and HLS).
    """

    def __init__(
        self, kind: str, request_keyframe: Callable[[int | None], None], rids: Sequence[str] = ()
    ) -> None:
        self.kind = kind
        # The negotiated codec (a MIME type), set by the worker once the offer is answered.
        self.codec = "video/VP8" if kind == "video" else "audio/opus"
        self.layers = [Layer(rid, i) for i, rid in enumerate(rids)] or [Layer(None, 0)]
        self.simulcast = bool(rids)
        self.ranked = list(self.layers)  # lowest bitrate first
        self.by_ssrc: dict[int, Layer] = {}
        self.by_rid = {layer.rid: layer for layer in self.layers}
        self.recorded: Layer | None = None if self.simulcast else self.layers[0]
        self.viewers: list[RtpViewer] = []
        self.probing: list[RtpViewer] = []
        self._request_keyframe = request_keyframe  # the hub's: it spaces requests out
        self.packets = 0
        self.last_ntp = 0  # NTP time when the latest packet was sent
        self.first_at: float | None = None  # time.monotonic() of the first packet
        self.ranked_at = 0.0
        self.rank_now = False  # a layer's picture size became known: rank at the next count
        self._ticks = 0
        self._counting: asyncio.TimerHandle | None = None

    def request_keyframe(self, layer: Layer | None = None) -> None:
        """Ask for a keyframe of ``layer`` (by default the one recorded). No throttle of its
        own: one here dropped the requests of viewers that joined within its interval, and
        they waited for a keyframe nobody had asked for."""
        if self.kind == "video":
            self._request_keyframe(layer.ssrc if layer is not None else None)

    def add(self, viewer: RtpViewer) -> None:
        """A viewer whose sender started: it gets its layer from that layer's next keyframe."""
        self.viewers.append(viewer)
        adapter = viewer.adapter
        quality = adapter.quality if adapter is not None else Quality.AUTO
        if quality is not Quality.AUDIO:
            self.move(viewer, self.ranked[0] if quality is Quality.LOW else self.ranked[-1])
        if self._counting is None:
            self._counting = asyncio.get_running_loop().call_later(COUNT_FLUSH_S, self._count)

    def remove(self, viewer: RtpViewer) -> None:
        for layer in self.layers:
            for group in (layer.viewers, layer.waiting):
                if viewer in group:
                    group.remove(viewer)
        for group in (self.viewers, self.probing):
            if viewer in group:
                group.remove(viewer)

    def move(self, viewer: RtpViewer, target: Layer | None) -> None:
        """Have ``viewer`` get ``target`` from its next keyframe (None: no video now)."""
        for layer in self.layers:
            if viewer in layer.waiting:
                layer.waiting.remove(viewer)
        if target is None:
            if viewer.layer is not None:
                viewer.layer.viewers.remove(viewer)
                viewer.layer, viewer.rebase = None, True
            return
        if target is not viewer.layer:
            target.waiting.append(viewer)
            self.request_keyframe(target)

    def restart(self, viewer: RtpViewer) -> None:
        """A viewer that could not be sent its first packet waits for another keyframe."""
        layer = viewer.layer
        if layer is not None:
            layer.viewers.remove(viewer)
            viewer.layer = None
            self.move(viewer, layer)

    def prefer(self, viewer: RtpViewer, quality: Quality) -> None:
        """The viewer's own choice, applied at once."""
        if viewer.adapter is None:
            return
        viewer.adapter.choose(quality)
        viewer.probe_bps = 0
        if quality is Quality.AUDIO:
            self.move(viewer, None)
        elif quality is Quality.LOW:
            self.move(viewer, self.ranked[0])
        elif quality is Quality.HIGH or viewer.target is None:
            self.move(viewer, self.ranked[-1])

    def _count(self) -> None:
        """Every ``COUNT_FLUSH_S``: the senders' RTCP counters, from the viewers' own; every
        ``TICK_S`` the viewers' layers; every ``RANK_S`` the layers' bitrates (for a video,
        viewers or not: its recording takes the top layer)."""
        self._counting = None
        if not self.viewers and self.kind != "video":
            return
        for viewer in self.viewers:
            viewer.count()
        self._ticks += 1
        if self.kind == "video":
            now = time.monotonic()
            if now - self.ranked_at >= RANK_S or self.rank_now:
                self.rank_now = False
                self.rank(now)
            if self._ticks % round(TICK_S / COUNT_FLUSH_S) == 0:
                live = self.live()
                for viewer in tuple(self.viewers):
                    try:
                        viewer.decide(now, live)
                    except Exception:  # one viewer's failure must not stop the others' ticks
                        log.exception("deciding a viewer's layer failed")
                self.probing = [v for v in self.viewers if v.probe_bps]
        self._counting = asyncio.get_running_loop().call_later(COUNT_FLUSH_S, self._count)

    def rank(self, now: float) -> None:
        """Measure each layer's bitrate and rank them (lowest first); pick the recorded one."""
        elapsed = now - self.ranked_at if self.ranked_at else RANK_S
        self.ranked_at = now
        for layer in self.layers:
            rate = (layer.octets - layer.ranked_octets) * 8 / max(elapsed, 1e-3)
            layer.ranked_octets = layer.octets
            layer.bitrate = (
                rate if not layer.bitrate else RANK_ALPHA * rate + (1 - RANK_ALPHA) * layer.bitrate
            )
        ranked = self.ranked
        sized = all(layer.pixels for layer in self.layers)
        if sized:  # by picture size, whatever the bitrates
            ranked.sort(key=lambda layer: (layer.pixels, layer.order))
        for i in range(len(ranked) - 1):  # else by bitrate, on a clear difference
            low, high = ranked[i], ranked[i + 1]
            if not sized and low.bitrate > high.bitrate * RERANK:
                ranked[i], ranked[i + 1] = high, low
        waited = self.first_at is not None and now - self.first_at >= RECORD_AFTER_S
        if self.recorded is None and (sized or waited):
            self.recorded = max(self.layers, key=lambda layer: (layer.pixels, layer.bitrate))
            self.request_keyframe(self.recorded)  # the receiver starts assembling it

    def layer_of(self, packet: RtpPacket) -> Layer | None:
        """The layer a packet belongs to: by SSRC, learnt from the RID its first packets name
        (a stream without simulcast has one layer, whatever its SSRC)."""
        layer = self.by_ssrc.get(packet.ssrc)
        if layer is not None:
            return layer
        if self.simulcast:
            rid = packet.extensions.rtp_stream_id
            layer = self.by_rid.get(rid) if rid else None
            if layer is None:
                return None
        else:
            layer = self.layers[0]
        if layer.ssrc is not None:  # the publisher's encoder restarted with another SSRC
            self.by_ssrc.pop(layer.ssrc, None)
        layer.ssrc = packet.ssrc
        self.by_ssrc[packet.ssrc] = layer
        return layer

    # -- the receiver's PacketRoute ---------------------------------------------------------

    def media(self, packet: RtpPacket) -> bool:
        layer = self.push(packet)
        return layer is not None and layer is self.recorded

    def recovered(self, packet: RtpPacket) -> None:
        self.recover(packet)

    def rtx_source(self, rid: str) -> int | None:
        recorded = self.recorded
        return recorded.ssrc if recorded is not None and recorded.rid == rid else None

    @property
    def recorded_ssrc(self) -> int | None:
        return self.recorded.ssrc if self.recorded is not None else None

    # -- packets ----------------------------------------------------------------------------

    def push(self, packet: RtpPacket, layer: Layer | None = None) -> Layer | None:
        """Send one of the publisher's packets to every viewer of its layer (``layer``, or the
        one its SSRC or RID tells; on the event loop); viewers waiting for that layer start at
        its keyframe."""
        self.packets += 1
        layer = layer or self.layer_of(packet)
        if layer is None:
            return None
        payload = packet.payload
        layer.octets += len(payload)
        if not layer.pixels and self.simulcast:
            size = picture_size(self.codec, payload)
            if size is not None:
                layer.size, layer.pixels = size, size[0] * size[1]
                self.rank_now = True
        if self.first_at is None:
            self.first_at = time.monotonic()
            if self._counting is None and self.kind == "video":
                self._counting = asyncio.get_running_loop().call_later(COUNT_FLUSH_S, self._count)
        if not (layer.viewers or layer.waiting or self.probing):
            return layer
        send_time, level_byte = self._stamps(packet)
        seq, marker = packet.sequence_number, packet.marker << 7
        timestamp = packet.timestamp
        picture = vp8_picture(payload) if self.codec == "video/VP8" else None
        if layer.waiting:
            if starts_keyframe(self.codec, payload):
                for viewer in layer.waiting:
                    self._switch(viewer, layer)
                layer.waiting.clear()
            else:
                self.request_keyframe(layer)  # ask again (rate-limited) until one comes
        for viewer in layer.viewers:
            viewer.forward(seq, marker, timestamp, payload, send_time, level_byte, picture)
        if self.probing:
            now, ntp = time.monotonic(), self.last_ntp
            for viewer in self.probing:
                viewer.probe(now, ntp)
        return layer

    def _switch(self, viewer: RtpViewer, layer: Layer) -> None:
        if viewer.layer is not None:
            viewer.layer.viewers.remove(viewer)
            viewer.rebase = True
        elif viewer.seq_offset is not None:
            viewer.rebase = True  # back from audio only
        viewer.layer = layer
        layer.viewers.append(viewer)

    def recover(self, packet: RtpPacket) -> None:
        """A packet lost on the way in, brought back by the worker's NACK: into each gap of
        the viewers of its layer (the recorded one: the receiver asks for no other)."""
        layer = self.recorded
        if layer is None or not layer.viewers:
            return
        send_time, level_byte = self._stamps(packet)
        picture = vp8_picture(packet.payload) if self.codec == "video/VP8" else None
        fields = (packet.sequence_number, packet.marker << 7, packet.timestamp, packet.payload)
        for viewer in layer.viewers:
            viewer.fill(*fields, send_time, level_byte, picture)

    def _stamps(self, packet: RtpPacket) -> tuple[bytes, int]:
        """What every viewer's copy of ``packet`` carries: abs-send-time (now), audio level."""
        ntp = self.last_ntp = clock.current_ntp_time()
        send_time = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        level = packet.extensions.audio_level
        return send_time, SILENT if level is None else (0x80 if level[0] else 0) | (level[1] & 0x7F)

    def describe_layers(self) -> list[dict[str, Any]]:
        """Each layer, lowest first: its RID, picture size, bitrate and whether it is recorded."""
        return [
            {
                "rid": layer.rid,
                "size": list(layer.size) if layer.size else None,
                "kbps": round(layer.bitrate / 1000),
                "recorded": layer is self.recorded,
                "viewers": len(layer.viewers),
            }
            for layer in self.ranked
        ]

    def live(self) -> list[Layer]:
        """The layers that carry packets now, lowest bitrate first (all of them before the
        first measurement)."""
        return [layer for layer in self.ranked if layer.bitrate > 0] or self.ranked

    def end(self) -> None:
        if self._counting is not None:
            self._counting.cancel()
            self._counting = None
        for viewer in tuple(self.viewers):
            viewer.finish()


class LayerRoute:
    """A receiver that gets one layer of a fan-out's track: a cascade leg receives a simulcast
    stream's top and lowest layers from its origin on two receivers, as a publisher's offer
    would send them on one. Only the ``assembled`` one's packets reach its receiver's frames
    (the other's are counted in its reports)."""

    def __init__(self, fanout: RtpFanout, rid: str, assembled: bool) -> None:
        self.fanout = fanout
        self.layer = fanout.by_rid[rid]
        self.assembled = assembled
        if assembled:
            fanout.recorded = self.layer

    def media(self, packet: RtpPacket) -> bool:
        if self.layer.ssrc != packet.ssrc:
            self.layer.ssrc = packet.ssrc
        self.fanout.push(packet, self.layer)
        return self.assembled

    def recovered(self, packet: RtpPacket) -> None:
        if self.assembled:
            self.fanout.recover(packet)

    def rtx_source(self, rid: str) -> int | None:
        return None


def tap_rtp(receiver: RTCRtpReceiver, fanout: RtpFanout, route: LayerRoute | None = None) -> None:
    """Hand ``receiver``'s media packets to ``fanout`` as they arrive, and the retransmissions
    its NACKs bring back, unwrapped (through ``route`` when the receiver gets one layer)."""
    tap_media_packets(receiver, route or fanout)
