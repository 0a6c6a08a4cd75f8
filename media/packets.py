"""Encoded media as it is forwarded: one object per frame, shared by every viewer's sender."""

from __future__ import annotations

from fractions import Fraction

from aiortc.codecs.vpx import Vp8Encoder

OPUS_RATE = 48000


class EncodedFrame:
    """A depacketized frame (VP8 picture or Opus packet) with its timestamp.

    aiortc's senders only packetize objects that are not ``av.Frame``: they read ``bytes()``,
    ``pts`` and ``time_base``. One instance is shared, read-only, by all viewers.
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


class Vp8Packer(Vp8Encoder):
    """A VP8 "encoder" that only packs: it never creates a libvpx context."""

    def encode(self, frame: object, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("the media worker never encodes video")


class OpusPacker:
    """An Opus "encoder" that only packs (aiortc's OpusEncoder opens libopus on creation)."""

    def pack(self, packet: EncodedFrame) -> tuple[list[bytes], int]:
        return [bytes(packet)], int(packet.pts * packet.time_base * OPUS_RATE)

    def encode(self, frame: object, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("the media worker never encodes audio")


def packer_for(kind: str) -> Vp8Packer | OpusPacker:
    return Vp8Packer() if kind == "video" else OpusPacker()
