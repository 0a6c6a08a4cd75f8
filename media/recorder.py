"""Recording: one more subscriber of the forwarded frames, remuxed with no transcoding.

Each published stream of a recorded room becomes one segment file: ``<stream>.webm`` (VP8 +
Opus) or ``<stream>.mp4`` (H.264 + Opus, which phones play as it is). While recording, files are
written as live WebM (clusters of at most a second) or fragmented MP4 (fragments of at most a
second), flushed as they are written, so a worker killed mid-recording leaves files that play up
to a second or two before the kill. A normal stop remuxes each segment into a seekable file: WebM
with cues, or an MP4 with its index up front (faststart).
``manifest.json`` beside them always lists the segments and their times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import av

from media.packets import EncodedFrame

log = logging.getLogger(__name__)
MS = Fraction(1, 1000)
LIVE_OPTIONS = {"live": "1", "cluster_time_limit": "1000", "flush_packets": "1"}
FRAGMENTED_OPTIONS = {  # fragments of at most a second, each written out when it is cut
    # delay_moov: the index is written with the first fragment, once every track's first
    # timestamp is known, so the tracks keep their recording times (and their sync)
    "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
    "frag_duration": "1000000",
    "flush_packets": "1",
}
MAX_PENDING_AUDIO = 150  # audio kept while a segment waits for its first video keyframe


@dataclass(frozen=True)
class Container:
    """How a stream with one video codec is recorded."""

    format: str  # FFmpeg's muxer
    suffix: str
    codec: str  # FFmpeg's name of the video codec
    size: Callable[[bytes], tuple[int, int]]  # width and height from a keyframe
    options: Mapping[str, str] = field(default_factory=lambda: LIVE_OPTIONS)  # while recording
    final: Mapping[str, str] = field(default_factory=dict)  # for the remux on a normal stop
    # MP4 needs Opus's header (OpusHead), which RTP never carries: an Opus encoder's stream
    # supplies it (the encoder makes the header only; the packets are written as they came)
    opus_header: bool = False


def container_for(video_codec: str) -> Container:
    """The container for a stream whose video is ``video_codec`` (a MIME type; audio-only
    streams get WebM)."""
    if video_codec.lower() == "video/h264":
        return Container(
            "mp4", ".mp4", "h264", h264_size, FRAGMENTED_OPTIONS, {"movflags": "+faststart"}, True
        )
    return Container("webm", ".webm", "vp8", vp8_size)


def vp8_size(data: bytes) -> tuple[int, int]:
    """Width and height from a VP8 key frame header (RFC 6386, 9.1)."""
    if len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
        return 0, 0
    return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(
        data[8:10], "little"
    ) & 0x3FFF


HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class Bits:
    """An H.264 RBSP read bit by bit, Exp-Golomb codes included (H.264 7.2, 9.1)."""

    def __init__(self, data: bytes) -> None:
        self.data = data.replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention
        self.at = 0

    def bit(self) -> int:
        byte = self.data[self.at >> 3]  # IndexError past the end
        self.at += 1
        return (byte >> (7 - ((self.at - 1) & 7))) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("not an Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def h264_size(data: bytes) -> tuple[int, int]:
    """Width and height from the SPS of an Annex-B H.264 keyframe (H.264 7.3.2.1.1); (0, 0)
    when there is none, or one with scaling lists (never sent by WebRTC encoders)."""
    for nal in data.split(b"\x00\x00\x01"):
        if nal and nal[0] & 0x1F == 7:
            try:
                return sps_size(Bits(nal[1:]))
            except (IndexError, ValueError):
                return 0, 0
    return 0, 0


def sps_size(sps: Bits) -> tuple[int, int]:
    profile = sps.bits(8)
    sps.bits(16)  # constraint flags, level
    sps.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in HIGH_PROFILES:
        chroma = sps.ue()
        if chroma == 3:
            sps.bit()
        sps.ue(), sps.ue(), sps.bit()  # bit depths, qpprime_y_zero_transform_bypass
        if sps.bit():
            raise ValueError("scaling lists")
    sps.ue()  # log2_max_frame_num_minus4
    poc_type = sps.ue()
    if poc_type == 0:
        sps.ue()
    elif poc_type == 1:
        sps.bit(), sps.se(), sps.se()
        for _ in range(sps.ue()):
            sps.se()
    sps.ue(), sps.bit()  # max_num_ref_frames, gaps_in_frame_num_allowed
    width_mbs, height_units = sps.ue() + 1, sps.ue() + 1
    frame_mbs_only = sps.bit()
    if not frame_mbs_only:
        sps.bit()
    sps.bit()  # direct_8x8_inference
    crop = [sps.ue() for _ in range(4)] if sps.bit() else [0, 0, 0, 0]
    unit_x = 2 if chroma in (1, 2) else 1
    unit_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    return width, height


class SegmentWriter:
    """One stream's tracks remuxed into one live WebM or fragmented MP4 file, timed by
    arrival."""

    def __init__(
        self,
        path: Path,
        kinds: set[str],
        t0: float,
        reports: Mapping[str, Callable[[], tuple[float, int] | None]] | None = None,
        container: Container | None = None,
    ) -> None:
        self.path = path
        self.format = container or container_for("video/VP8")
        self.reports = reports or {}  # kind -> the track's latest (NTP s, pts) sender report
        self.kinds = kinds
        self.t0 = t0  # time.monotonic() when the recording started
        self.container: Any = None
        self.streams: dict[str, Any] = {}
        self.pending: list[tuple[str, EncodedFrame]] = []
        self.anchors: dict[str, tuple[float, int]] = {}  # kind -> (ms at first frame, its pts)
        self.last_ms: dict[str, int] = {}
        self.first_ms: int | None = None
        self.frames = 0

    def on_frame(self, kind: str, frame: EncodedFrame) -> None:
        """Called for every forwarded frame; video starts the file at its first keyframe."""
        if self.container is None:
            if "video" in self.kinds and not (kind == "video" and frame.keyframe):
                if kind == "audio":
                    self.pending = [*self.pending[-MAX_PENDING_AUDIO:], (kind, frame)]
                return
            self._open(frame if kind == "video" else None)
            for pending_kind, pending in self.pending:
                self._mux(pending_kind, pending)
            self.pending = []
        self._mux(kind, frame)

    def _open(self, keyframe: EncodedFrame | None) -> None:
        self.container = av.open(
            str(self.path), "w", format=self.format.format, options=dict(self.format.options)
        )
        if "video" in self.kinds:
            width, height = self.format.size(keyframe.data) if keyframe else (0, 0)
            self.streams["video"] = self.container.add_mux_stream(
                self.format.codec, width=width, height=height, time_base=MS
            )
        if "audio" in self.kinds and self.format.opus_header:
            audio = self.container.add_stream("libopus", rate=48000, layout="stereo")
            audio.time_base = MS
            self.streams["audio"] = audio
        elif "audio" in self.kinds:
            self.streams["audio"] = self.container.add_mux_stream("opus", rate=48000, time_base=MS)

    def _ms(self, kind: str, frame: EncodedFrame) -> int:
        """Milliseconds since the recording started. Video's first frame is placed by its
        arrival, later ones by their RTP timestamps from there. Audio is placed relative to
        video through the publisher's RTCP sender reports (one capture clock for both) once
        both tracks have had one; until then, by its own first arrival."""
        if kind not in self.anchors:
            self.anchors[kind] = ((frame.arrived - self.t0) * 1000, frame.pts)
        start, pts0 = self.anchors[kind]
        ms = int(start + (frame.pts - pts0) * frame.time_base * 1000)
        synced = self._synced_ms(kind, frame)
        if synced is not None:
            ms = synced
        return max(ms, self.last_ms.get(kind, -1) + 1)

    def _synced_ms(self, kind: str, frame: EncodedFrame) -> int | None:
        """An audio frame's place on the video track's timeline, from both sender reports."""
        if kind != "audio" or "video" not in self.anchors:
            return None
        audio_sr, video_sr = self.reports.get("audio"), self.reports.get("video")
        if audio_sr is None or video_sr is None:
            return None
        audio, video = audio_sr(), video_sr()
        if audio is None or video is None:
            return None
        video_start, video_pts0 = self.anchors["video"]
        video_ntp0 = video[0] + (video_pts0 - video[1]) / 90000
        audio_ntp = audio[0] + (frame.pts - audio[1]) * float(frame.time_base)
        return int(video_start + (audio_ntp - video_ntp0) * 1000)

    def _mux(self, kind: str, frame: EncodedFrame) -> None:
        if kind not in self.streams or self.container is None:
            return
        ms = self._ms(kind, frame)
        packet = av.Packet(frame.data)
        packet.stream = self.streams[kind]
        packet.pts = packet.dts = ms
        packet.time_base = MS
        packet.is_keyframe = frame.keyframe
        try:
            self.container.mux(packet)
        except av.FFmpegError as exc:
            log.warning("recording %s: dropped a %s frame: %s", self.path.name, kind, exc)
            return
        self.last_ms[kind] = ms
        self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
        self.frames += 1

    def close(self) -> bool:
        """Close the live file; False when nothing was ever written."""
        if self.container is None:
            return False
        self.container.close()
        self.container = None
        return True


def finalize(path: Path) -> None:
    """Remux a live WebM or fragmented MP4 into a seekable file with a duration (cues, or the
    MP4's index up front), no transcoding."""
    tmp = path.with_suffix(".final" + path.suffix)
    container = container_for("video/H264" if path.suffix == ".mp4" else "video/VP8")
    with (
        av.open(str(path)) as src,
        av.open(str(tmp), "w", format=container.format, options=dict(container.final)) as dst,
    ):
        mapping = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)
    os.replace(tmp, path)


def sender_report(hub: Any) -> tuple[float, int] | None:
    """A hub's latest RTCP sender report (read when a frame is written)."""
    report: tuple[float, int] | None = hub.sender_report
    return report


@dataclass
class Segment:
    stream: str
    user: int
    kinds: list[str]
    file: str
    writer: SegmentWriter
    start_s: float
    end_s: float | None = None
    taps: list[tuple[Any, Any]] = field(default_factory=list)  # (hub, the sink added to it)


@dataclass
class RoomRecording:
    """A room being recorded: a segment per stream, and the manifest that lists them."""

    room: str
    directory: Path
    t0: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    segments: dict[str, Segment] = field(default_factory=dict)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def attach(
        self, stream_id: str, user: int, hubs: dict[str, Any], video_codec: str = "video/VP8"
    ) -> None:
        """Start recording a stream; its hubs feed the segment's writer."""
        reports = {kind: partial(sender_report, hub) for kind, hub in hubs.items()}
        container = container_for(video_codec)
        name = f"{stream_id}{container.suffix}"
        writer = SegmentWriter(self.directory / name, set(hubs), self.t0, reports, container)
        segment = Segment(stream_id, user, sorted(hubs), name, writer, self.elapsed())
        self.segments[stream_id] = segment
        for kind, hub in hubs.items():

            def sink(frame: EncodedFrame, kind: str = kind) -> None:
                writer.on_frame(kind, frame)

            hub.sinks.append(sink)
            segment.taps.append((hub, sink))
            hub.request_keyframe()
        self.write_manifest()

    def detach(self, stream_id: str) -> None:
        """The stream ended: close its segment."""
        segment = self.segments.get(stream_id)
        if segment is None or segment.end_s is not None:
            return
        for hub, sink in segment.taps:
            if sink in hub.sinks:
                hub.sinks.remove(sink)
        segment.end_s = self.elapsed()
        if not segment.writer.close():
            del self.segments[stream_id]
        self.write_manifest()

    def manifest(self, ended: bool = False) -> dict[str, Any]:
        return {
            "room": self.room,
            "started_at": self.started_at,
            "ended": ended,
            "duration_s": self.elapsed() if ended else None,
            "segments": [
                {
                    "stream": s.stream,
                    "user": s.user,
                    "kinds": s.kinds,
                    "file": s.file,
                    "start_s": s.start_s,
                    "end_s": s.end_s,
                    "first_media_ms": s.writer.first_ms,
                }
                for s in self.segments.values()
            ],
        }

    def write_manifest(self, ended: bool = False) -> None:
        tmp = self.directory / "manifest.json.tmp"
        tmp.write_text(json.dumps(self.manifest(ended), indent=1))
        os.replace(tmp, self.directory / "manifest.json")

    async def stop(self) -> dict[str, Any]:
        """Close every segment, make them seekable, and write the final manifest."""
        for stream_id in list(self.segments):
            self.detach(stream_id)
        loop = asyncio.get_running_loop()
        for segment in self.segments.values():
            await loop.run_in_executor(None, finalize, self.directory / segment.file)
        self.write_manifest(ended=True)
        return self.manifest(ended=True)
