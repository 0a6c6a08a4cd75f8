"""A published track's complete encoded frames, for whoever needs frames (a recording).

The publisher's ``RTCRtpReceiver`` reassembles complete frames from RTP and normally hands them
to a decoder thread through a queue. :func:`tap_receiver` puts a :class:`FrameTap` in that
queue's place, so complete encoded frames go to a :class:`TrackHub` and its sinks instead: no
frame is ever decoded. Viewers get the RTP packets themselves (``media.rtp``); the hub also
spaces out the keyframe requests to the publisher that viewers and sinks make.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver

from media.aiortc_internals import divert_decoded_frames, keyframe_requester, watch_sender_reports
from media.packets import EncodedFrame, is_keyframe

PLI_INTERVAL_S = 0.3


class TrackHub:
    """One published track: the frames it receives go to every sink."""

    def __init__(self, kind: str, request_keyframe: Callable[[int | None], None]) -> None:
        self.kind = kind
        self.sinks: list[Callable[[EncodedFrame], None]] = []  # e.g. a recording's writer
        # The publisher's latest RTCP sender report: (NTP seconds, frame pts on our clock).
        # Tracks of one publisher share its NTP clock, so this aligns audio with video.
        self.sender_report: tuple[float, int] | None = None
        # The SSRC whose frames reach the sinks (a simulcast stream's recorded layer; None:
        # the receiver's only one), set by the fan-out that knows the layers.
        self.frames_ssrc: Callable[[], int | None] = lambda: None
        self._request_keyframe = request_keyframe
        self._last_pli: dict[int | None, float] = {}
        # requests held back by the interval, by SSRC
        self._deferred: dict[int | None, asyncio.TimerHandle] = {}
        self.frames = 0
        self.keyframes = 0

    def push(self, frame: EncodedFrame) -> None:
        """Hand one complete frame to every sink (called on the event loop)."""
        self.frames += 1
        self.keyframes += frame.keyframe
        for sink in tuple(self.sinks):
            sink(frame)

    def request_keyframe(self, ssrc: int | None = None) -> None:
        """Ask the publisher for a keyframe of ``ssrc`` (a simulcast layer; by default the
        layer the sinks get), at most once per ``PLI_INTERVAL_S`` and layer.

        A request within the interval is sent at its end, not dropped: whoever asked may have
        started waiting after the keyframe the last request brought had gone by.
        """
        if ssrc is None:
            ssrc = self.frames_ssrc()
        if self.kind != "video" or ssrc in self._deferred:
            return
        wait = self._last_pli.get(ssrc, 0.0) + PLI_INTERVAL_S - time.monotonic()
        if wait > 0:
            self._deferred[ssrc] = asyncio.get_running_loop().call_later(
                wait, self._send_deferred, ssrc
            )
            return
        self._last_pli[ssrc] = time.monotonic()
        self._request_keyframe(ssrc)

    def _send_deferred(self, ssrc: int | None) -> None:
        self._deferred.pop(ssrc, None)
        self.request_keyframe(ssrc)

    def end(self) -> None:
        """The publisher left: no more keyframe requests."""
        for handle in self._deferred.values():
            handle.cancel()
        self._deferred.clear()


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
        keyframe = is_keyframe(codec.mimeType, data)
        self.hub.push(
            EncodedFrame(data, jitter_frame.timestamp, codec.clockRate, keyframe, time.monotonic())
        )


def tap_receiver(receiver: RTCRtpReceiver, kind: str) -> TrackHub:
    """Divert ``receiver``'s frames into a new hub (before the receiver starts)."""
    hub = TrackHub(kind, keyframe_requester(receiver))
    divert_decoded_frames(receiver, FrameTap(hub))

    def sender_report(ntp: float, pts: int) -> None:
        hub.sender_report = (ntp, pts)

    watch_sender_reports(receiver, sender_report)
    return hub
