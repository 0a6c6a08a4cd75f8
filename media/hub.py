"""Fan-out of one published track to many viewers, without decoding or encoding.

The publisher's ``RTCRtpReceiver`` reassembles complete frames from RTP and normally hands them
to a decoder thread through a queue. :func:`tap_receiver` puts a :class:`FrameTap` in that
queue's place, so complete encoded frames go to a :class:`TrackHub` instead; each viewer's
:class:`ViewerTrack` yields them to aiortc's sender, which only packetizes and encrypts.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtcpSrPacket

from media.packets import EncodedFrame, is_vp8_keyframe

# A viewer more than this many frames behind is cut back to the next keyframe.
VIDEO_BACKLOG = 45
AUDIO_BACKLOG = 60
PLI_INTERVAL_S = 0.3


class TrackHub:
    """One published track: the frames it receives go to every subscribed viewer."""

    def __init__(self, kind: str, request_keyframe: Callable[[], None]) -> None:
        self.kind = kind
        self.viewers: set[ViewerTrack] = set()
        self.sinks: list[Callable[[EncodedFrame], None]] = []  # e.g. a recording's writer
        # The publisher's latest RTCP sender report: (NTP seconds, frame pts on our clock).
        # Tracks of one publisher share its NTP clock, so this aligns audio with video.
        self.sender_report: tuple[float, int] | None = None
        self._request_keyframe = request_keyframe
        self._last_pli = 0.0
        self._deferred: asyncio.TimerHandle | None = None  # a request held back by the interval
        self.frames = 0
        self.keyframes = 0

    def push(self, frame: EncodedFrame) -> None:
        """Hand one complete frame to every viewer (called on the event loop)."""
        self.frames += 1
        self.keyframes += frame.keyframe
        for viewer in tuple(self.viewers):
            viewer.offer(frame)
        for sink in tuple(self.sinks):
            sink(frame)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per ``PLI_INTERVAL_S``.

        A request within the interval is sent at its end, not dropped: whoever asked may have
        started waiting after the keyframe the last request brought had gone by.
        """
        if self.kind != "video" or self._deferred is not None:
            return
        wait = self._last_pli + PLI_INTERVAL_S - time.monotonic()
        if wait > 0:
            self._deferred = asyncio.get_running_loop().call_later(wait, self._send_deferred)
            return
        self._last_pli = time.monotonic()
        self._request_keyframe()

    def _send_deferred(self) -> None:
        self._deferred = None
        self.request_keyframe()

    def subscribe(self) -> ViewerTrack:
        """A new viewer's track; video starts at the next keyframe, which is asked for now."""
        viewer = ViewerTrack(self)
        self.viewers.add(viewer)
        self.request_keyframe()
        return viewer

    def end(self) -> None:
        """The publisher left: end every viewer's track."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        for viewer in tuple(self.viewers):
            viewer.finish()
        self.viewers.clear()


class ViewerTrack(MediaStreamTrack):
    """What one viewer's sender reads: the hub's frames through a bounded queue."""

    def __init__(self, hub: TrackHub) -> None:
        super().__init__()
        self.kind = hub.kind
        self.hub = hub
        self.backlog = VIDEO_BACKLOG if hub.kind == "video" else AUDIO_BACKLOG
        self.waiting_keyframe = hub.kind == "video"
        self.dropped = 0
        self._frames: asyncio.Queue[EncodedFrame | None] = asyncio.Queue()

    def offer(self, frame: EncodedFrame) -> None:
        """Queue ``frame`` unless this viewer waits for a keyframe or has fallen too far behind."""
        if self.waiting_keyframe:
            if not frame.keyframe:
                self.hub.request_keyframe()  # ask again (rate-limited) until one comes
                return
            self.waiting_keyframe = False
        if self._frames.qsize() >= self.backlog:
            self._fall_back()
            if self.waiting_keyframe and not frame.keyframe:
                return
            self.waiting_keyframe = False
        self._frames.put_nowait(frame)

    def _fall_back(self) -> None:
        """Drop the backlog; video resumes at the next keyframe, audio just skips ahead."""
        while not self._frames.empty():
            self._frames.get_nowait()
            self.dropped += 1
        if self.kind == "video":
            self.waiting_keyframe = True
            self.hub.request_keyframe()

    async def recv(self) -> Any:
        frame = await self._frames.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def finish(self) -> None:
        self._frames.put_nowait(None)

    def stop(self) -> None:
        super().stop()
        self.hub.viewers.discard(self)


class FrameTap(queue.Queue):
    """Stands in for a receiver's decoder queue: complete frames go to the hub, not a decoder.

    ``None`` (the receiver stopping) still reaches the idle decoder thread so it exits.
    """

    def __init__(self, hub: TrackHub) -> None:
        super().__init__()
        self.hub = hub

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None)
            return
        codec, jitter_frame = item
        data = bytes(jitter_frame.data)
        keyframe = self.hub.kind == "audio" or is_vp8_keyframe(data)
        self.hub.push(
            EncodedFrame(data, jitter_frame.timestamp, codec.clockRate, keyframe, time.monotonic())
        )


def tap_receiver(receiver: RTCRtpReceiver, kind: str) -> TrackHub:
    """Divert ``receiver``'s frames into a new hub (before the receiver starts)."""

    pending: set[asyncio.Task[None]] = set()

    def pli() -> None:
        # aiortc lists SSRCs as packets arrive, retransmissions (RTX) included: Chromium sends
        # RTX padding first, and a PLI naming the RTX SSRC is ignored. Name the media SSRC.
        rtx = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]  # rtx -> media
        media = [s.source for s in receiver.getSynchronizationSources() if s.source not in rtx]
        media = media or list(rtx.values())
        if media:
            task = asyncio.ensure_future(receiver._send_rtcp_pli(media[0]))
            pending.add(task)
            task.add_done_callback(pending.discard)

    hub = TrackHub(kind, pli)
    receiver._RTCRtpReceiver__decoder_queue = FrameTap(hub)  # type: ignore[attr-defined]
    watch_sender_reports(receiver, hub)
    return hub


def watch_sender_reports(receiver: RTCRtpReceiver, hub: TrackHub) -> None:
    """Keep the publisher's RTCP sender reports on ``hub``, in the frames' timestamp terms."""
    original = receiver._handle_rtcp_packet
    mapper = receiver._RTCRtpReceiver__timestamp_mapper  # type: ignore[attr-defined]

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and mapper._origin is not None:
            info = packet.sender_info
            pts = info.rtp_timestamp - mapper._origin  # as TimestampMapper maps packets
            hub.sender_report = (info.ntp_timestamp / (1 << 32), pts)
        await original(packet)

    receiver._handle_rtcp_packet = handle  # type: ignore[method-assign]
