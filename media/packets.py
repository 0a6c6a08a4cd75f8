"""Encoded media as a track's sinks get it: one object per complete frame."""

from __future__ import annotations

from fractions import Fraction


class EncodedFrame:
    """A depacketized frame (VP8 or H.264 picture, or Opus packet) with its timestamp.

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


H264_IDR, H264_SPS = 5, 7  # NAL unit types that start a frame a decoder can begin with
START_CODE = b"\x00\x00\x01"


def is_h264_keyframe(data: bytes) -> bool:
    """Whether an Annex-B H.264 access unit (as aiortc's depacketizer joins the NAL units, each
    after a start code) holds an SPS or an IDR slice (RFC 6184, 1.3; H.264 7.4.1)."""
    at = data.find(START_CODE)
    while 0 <= at < len(data) - 3:
        if data[at + 3] & 0x1F in (H264_IDR, H264_SPS):
            return True
        at = data.find(START_CODE, at + 3)
    return False


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a complete frame of ``codec`` (a MIME type) can be decoded on its own (audio
    frames always can)."""
    if codec == "video/VP8":
        return is_vp8_keyframe(data)
    if codec == "video/H264":
        return is_h264_keyframe(data)
    return not codec.startswith("video/")
