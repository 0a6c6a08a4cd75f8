"""What a viewer of the worker's fast forwarding path receives, packet by packet.

The worker patches a prepared header per viewer and sends datagrams itself (``media.rtp``); the
viewers here are aiortc peers whose receivers note every RTP and RTCP packet before handling
it: where their streams start, what a NACK brings back, and what the sender reports say.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.rtp import RtcpSrPacket, RtpPacket, is_rtcp

from media.rtp import (
    RESEND_BURST,
    RESEND_GAP_S,
    RESEND_MAX_AGE_S,
    RESEND_SHARE,
    Resends,
    starts_keyframe,
)

from .conftest import (
    Publisher,
    Viewer,
    WorkerProcess,
    published,
    stream_frames,
    until,
    until_async,
    view,
)


class TappedViewer(Viewer):
    """A viewer that keeps every RTP packet and RTCP sender report it receives, per kind."""

    def __init__(self) -> None:
        super().__init__()
        self.packets: dict[str, list[RtpPacket]] = {"video": [], "audio": []}
        self.reports: dict[str, list[tuple[RtcpSrPacket, int]]] = {"video": [], "audio": []}
        for transceiver in self.pc.getTransceivers():
            self._tap(transceiver.receiver, transceiver.kind)

    def _tap(self, receiver: Any, kind: str) -> None:
        handle_rtp, handle_rtcp = receiver._handle_rtp_packet, receiver._handle_rtcp_packet
        packets, reports = self.packets[kind], self.reports[kind]

        async def rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            packets.append(packet)
            await handle_rtp(packet, arrival_time_ms=arrival_time_ms)

        async def rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpSrPacket):
                reports.append((packet, len(packets)))  # with the packets received so far
            await handle_rtcp(packet)

        receiver._handle_rtp_packet = rtp
        receiver._handle_rtcp_packet = rtcp

    def media(self, kind: str) -> list[RtpPacket]:
        """The packets of the kind's media SSRC (the first one's), retransmissions left out."""
        packets = self.packets[kind]
        return [p for p in packets if packets and p.ssrc == packets[0].ssrc]

    def receiver(self, kind: str) -> Any:
        return next(t.receiver for t in self.pc.getTransceivers() if t.kind == kind)


async def steady(worker: WorkerProcess, stream: str, frames: int = 30) -> None:
    async def enough() -> bool:
        return (await stream_frames(worker.port, stream)).get("video", 0) >= frames

    assert await until_async(enough, timeout=15), "the publisher's video never arrived"


def test_late_viewers_start_at_a_keyframe_with_low_sequence_numbers(
    worker: WorkerProcess,
) -> None:
    """Each viewer's first video packet begins a VP8 keyframe, though it joined a running
    stream; every stream's first sequence number is below 0x8000 (SRTP roll-over safety)."""

    async def scenario() -> list[TappedViewer]:
        viewers = [TappedViewer() for _ in range(3)]
        async with published(worker.port) as stream:
            await steady(worker, stream.id)
            try:
                for viewer in viewers:
                    await view(worker.port, stream.id, viewer)
                    await asyncio.sleep(0.4)  # apart: past the keyframe-request interval
                for viewer in viewers:
                    await until(lambda v=viewer: len(v.media("video")) >= 10, timeout=5)
            finally:
                for viewer in viewers:
                    await viewer.close()
        return viewers

    for viewer in asyncio.run(scenario()):
        video, audio = viewer.media("video"), viewer.media("audio")
        assert len(video) >= 10 and audio, (len(video), len(audio))
        assert starts_keyframe("video/VP8", video[0].payload), video[0]
        assert video[0].sequence_number < 0x8000, video[0]
        assert audio[0].sequence_number < 0x8000, audio[0]
        numbers = [p.sequence_number for p in video[:10]]
        assert numbers == [(numbers[0] + i) & 0xFFFF for i in range(10)], numbers


def nacked(
    worker: WorkerProcess, pick: slice, times: int
) -> tuple[list[RtpPacket], list[RtpPacket]]:
    """A viewer's video packets ``pick`` (recent: within the worker's history of 128), asked
    for ``times`` at once by NACK, and the retransmissions that came (a moment after the
    first answers, well within the 0.1 s a resend of the same packet waits at least)."""

    async def scenario() -> tuple[list[RtpPacket], list[RtpPacket]]:
        viewer = TappedViewer()
        async with published(worker.port) as stream:
            await steady(worker, stream.id)
            try:
                await view(worker.port, stream.id, viewer)
                await until(lambda: len(viewer.media("video")) >= 40, timeout=8)
                asked = viewer.media("video")[pick]
                receiver = viewer.receiver("video")
                for _ in range(times):
                    await receiver._send_rtcp_nack(
                        asked[0].ssrc, [p.sequence_number for p in asked]
                    )

                def answered() -> list[RtpPacket]:
                    return [p for p in viewer.packets["video"] if p.ssrc != asked[0].ssrc]

                await until(lambda: len(answered()) >= len(asked), timeout=5)
                await asyncio.sleep(0.05)
                return asked, answered()
            finally:
                await viewer.close()

    return asyncio.run(scenario())


def test_nack_is_answered_with_the_original_payload(worker: WorkerProcess) -> None:
    """A viewer's NACK for packets it got brings them again, as RTX, with the same payload."""
    asked, retransmitted = nacked(worker, slice(-30, -20), times=1)
    assert len(retransmitted) >= len(asked), (len(asked), len(retransmitted))
    original = {p.sequence_number: p.payload for p in asked}
    for packet in retransmitted:
        sequence_number = int.from_bytes(packet.payload[:2], "big")  # RTX: OSN, then payload
        assert original[sequence_number] == packet.payload[2:], sequence_number
        assert packet.payload_type != asked[0].payload_type
    assert {int.from_bytes(p.payload[:2], "big") for p in retransmitted} == set(original)


def test_a_nack_repeated_within_a_round_trip_brings_each_packet_once(
    worker: WorkerProcess,
) -> None:
    """A viewer that asks for the same packets three times at once (as a viewer on a full link
    does, its NACKs crossing the answers) gets each of them again once, not three times."""
    asked, retransmitted = nacked(worker, slice(-12, -7), times=3)
    resent = sorted(int.from_bytes(p.payload[:2], "big") for p in retransmitted)
    assert resent == sorted(p.sequence_number for p in asked), resent


def test_resends_keep_to_their_budget_gap_and_age() -> None:
    """The rules a viewer's NACKs are answered by, one at a time."""
    resends = Resends(90000)
    size = 1000
    # A burst first, then a quarter of what is forwarded.
    allowed = [resends.allow(seq, size, 0, 0, None, 10.0) for seq in range(40)]
    assert allowed.count(True) == RESEND_BURST // size
    assert not resends.allow(100, size, 0, 0, None, 10.0)
    assert resends.allow(100, size, 0, int(size / RESEND_SHARE), None, 10.0)
    # Each packet once per round trip (at least RESEND_GAP_S).
    fresh = Resends(90000)
    assert fresh.allow(7, size, 0, 0, None, 10.0)
    assert not fresh.allow(7, size, 0, 0, None, 10.0 + RESEND_GAP_S / 2)
    assert fresh.allow(7, size, 0, 0, None, 10.0 + RESEND_GAP_S * 1.01)
    assert not fresh.allow(7, size, 0, 0, 0.5, 10.0 + RESEND_GAP_S * 2)  # a 0.5 s round trip
    assert fresh.allow(7, size, 0, 0, 0.5, 10.7)
    # Never once its frame is due: older than RESEND_MAX_AGE_S of RTP clock.
    assert not fresh.allow(8, size, int(90000 * RESEND_MAX_AGE_S) + 1, 0, None, 11.0)
    assert fresh.allow(8, size, int(90000 * RESEND_MAX_AGE_S) - 1, 0, None, 11.0)


def test_sender_reports_count_what_was_sent(worker: WorkerProcess) -> None:
    """The RTCP sender reports of a viewer's video stream advance with the packets it got:
    their packet count follows the packets received (counters are brought up to date every
    0.1 s), the octet count grows, and the RTP timestamp moves at the 90 kHz clock."""

    async def scenario() -> list[tuple[RtcpSrPacket, int]]:
        viewer = TappedViewer()
        async with published(worker.port) as stream:
            await steady(worker, stream.id)
            try:
                await view(worker.port, stream.id, viewer)
                await until(lambda: len(viewer.reports["video"]) >= 3, timeout=8)
                return list(viewer.reports["video"])
            finally:
                await viewer.close()

    reports = asyncio.run(scenario())
    assert len(reports) >= 3, reports
    (first, _), (last, received) = reports[-2], reports[-1]
    a, b = first.sender_info, last.sender_info
    assert b.packet_count > a.packet_count > 0, (a, b)
    assert b.octet_count > a.octet_count > 0, (a, b)
    assert abs(b.packet_count - received) <= 20, (b.packet_count, received)
    seconds = (b.ntp_timestamp - a.ntp_timestamp) / (1 << 32)
    ticks = (b.rtp_timestamp - a.rtp_timestamp) & 0xFFFFFFFF
    assert seconds > 0.2, seconds
    assert abs(ticks / 90000 - seconds) < 0.15, (ticks / 90000, seconds)


def drop_one_video_packet(publisher: Publisher) -> list[RtpPacket]:
    """Make the publisher's next large video packet go missing on its way to the worker (it
    stays in the publisher's history, so the worker's NACK brings it back as RTX); the list
    gets that packet."""
    sender = next(s for s in publisher.pc.getSenders() if s.track and s.track.kind == "video")
    transport = sender.transport  # bundled: audio's too
    send = transport._send_rtp
    dropped: list[RtpPacket] = []

    async def lossy(data: bytes) -> None:
        if not dropped and not is_rtcp(data):  # RTCP goes this way too
            packet = RtpPacket.parse(data)
            if packet.ssrc == sender._ssrc and len(packet.payload) > 100:
                dropped.append(packet)
                return
        await send(data)

    transport._send_rtp = lossy
    return dropped


def test_a_packet_lost_on_the_way_in_fills_the_gap_it_left_at_each_viewer(
    worker: WorkerProcess,
) -> None:
    """One of the publisher's video packets is lost before the worker: viewers see the gap in
    their sequence numbers (the worker keeps the publisher's numbering, offset per viewer), and
    when the worker's own NACK brings the packet back, it reaches them, late, in that gap. A
    cascade leg is such a path too: a packet lost on it is recovered the same way."""

    async def scenario() -> tuple[RtpPacket, list[RtpPacket]]:
        viewer = TappedViewer()
        async with published(worker.port) as stream:
            await steady(worker, stream.id)
            try:
                await view(worker.port, stream.id, viewer)
                await until(lambda: len(viewer.media("video")) >= 20, timeout=8)
                dropped = drop_one_video_packet(stream.publisher)

                def recovered() -> bool:
                    return bool(dropped) and any(
                        p.payload == dropped[0].payload for p in viewer.media("video")
                    )

                await until(recovered, timeout=8)
                return dropped[0], viewer.media("video")
            finally:
                await viewer.close()

    lost, received = asyncio.run(scenario())
    [(arrived, late)] = [(i, p) for i, p in enumerate(received) if p.payload == lost.payload]
    before = {p.sequence_number for p in received[:arrived]}
    assert (late.sequence_number - 1) & 0xFFFF in before  # the gap: its neighbours came first
    assert (late.sequence_number + 1) & 0xFFFF in before
    assert late.sequence_number not in before
