"""Encoded media as a track's sinks get it: one object per complete frame."""

from __future__ import annotations

from fractions import Fraction


class EncodedFrame:
    """A depacketized frame (VP8 picture or Opus packet) with its timestamp.

    One instance is shared, read-only, by every sink of a track (e.g. a recording).
    """

    __slots__ = ("arrived", "data", "keyframe", "pts", "time_base")

    def __init__(self, data: bytes, pts: int, clock_rate: int, keyframe: bool, arrived: float):
        self.data = data
        self.pts = pts
        self.time_base = Fraction(1, clock_rate)
        self.keyframe = keyframe
        self.arrived = arrived  # time.monotonic() when the frame was complete on the server

    def __bytes__(self) -> bytes:
        return self.data


def is_vp8_keyframe(data: bytes) -> bool:
    """VP8 frame tag: bit 0 of the first byte is 0 for a key frame (RFC 6386, 9.1)."""
    return bool(data) and not data[0] & 0x01
