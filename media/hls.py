"""An HLS tier for a broadcast's audience: one stream's frames as low-latency CMAF (fMP4) HLS.

A :class:`HlsPackager` is one more sink of a stream's hubs, like a recording. FFmpeg's ``mp4``
muxer writes a fragmented MP4 (a fragment at each video keyframe and at least every ``PART_S``)
into a :class:`Fmp4Splitter`, which cuts the byte stream at its top-level boxes: ``ftyp`` +
``moov`` become ``init.mp4``, each ``moof`` + ``mdat`` one LL-HLS partial segment
``part<N>.<i>.m4s``. A part that starts at a keyframe, once the segment in progress is at least
``MIN_SEGMENT_S`` long, starts the next segment; so does any part that would make the segment
longer than ``MAX_SEGMENT_S`` (then the segment starts without a keyframe: the playlist never
says ``#EXT-X-INDEPENDENT-SEGMENTS``, only ``INDEPENDENT=YES`` on parts that start at one), so
that the target duration, ``TARGET_S``, holds from the first playlist to the last (RFC 8216
6.2.1: it must not change). A segment ``seg<N>.m4s`` is its parts joined. The
playlist ``index.m3u8`` (replaced atomically after each part) lists the last ``LIST_SIZE``
segments with their ``#EXT-X-PROGRAM-DATE-TIME`` (the server's wall clock at the segment's
first frame) and the parts of the newest ones (``#EXT-X-PART``, ``#EXT-X-PART-INF``,
``#EXT-X-SERVER-CONTROL`` with ``CAN-BLOCK-RELOAD``: the web app holds a playlist request with
``_HLS_msn``/``_HLS_part`` until that part is listed). Players that know nothing of parts read
the same playlist as plain HLS. Older files are deleted.

- H.264 video is remuxed as it arrives (Annex-B, no transcoding); the publisher is asked for a
  keyframe once the segment in progress is ``KEYFRAME_ASK_S`` old (and again every
  ``KEYFRAME_RETRY_S`` until one comes), so that a segment mostly ends at a keyframe before it
  is ``MAX_SEGMENT_S`` long.
- VP8 video (which browsers' MSE refuses in MP4) is decoded and encoded once per stream with
  libx264 (ultrafast, zerolatency, a keyframe every ``SEGMENT_S``).
- Opus audio is decoded and encoded to AAC once per stream.

The sink only queues frames; a thread of the packager's own does all muxing, coding and writing,
so the worker's forwarding loop never waits for it (a full queue drops frames, never blocks). The
thread takes what has queued up every ``WAKE_S`` rather than wake up for every frame.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from media.packets import EncodedFrame
from media.recorder import h264_size

log = logging.getLogger(__name__)
MS = Fraction(1, 1000)
AUDIO_RATE = 48000
SAMPLE = Fraction(1, AUDIO_RATE)
STEREO = ("fltp", "stereo", AUDIO_RATE)  # what the AAC encoder takes
SEGMENT_S = 1.0
TARGET_S = 1  # EXT-X-TARGETDURATION, from the start: no segment's EXTINF, rounded, exceeds it
MIN_SEGMENT_S = 0.5  # a keyframe part starts the next segment once this one is this long
MAX_SEGMENT_S = 1.45  # a part that would make the segment longer starts the next one
KEYFRAME_ASK_S = 0.65  # H.264 in: ask for a keyframe once the segment in progress is this old
KEYFRAME_RETRY_S = 0.3  # and again this often until one comes (the hub sends one PLI per 0.3 s)
PART_S = 0.25  # the muxer's fragment length (it also cuts at every video keyframe)
PART_TARGET_S = 0.35  # a part's longest: PART_S and one more frame of 15 fps video
PART_HOLD_BACK_S = 3 * PART_TARGET_S
LIST_SIZE = 6  # segments in the playlist
PART_SEGMENTS = 3  # the newest segments list their parts too
KEEP_EXTRA = 2  # segments (and their parts) kept on disk after leaving the playlist
QUEUE_FRAMES = 600  # about 10 s of audio and video; beyond it frames are dropped
WAKE_S = 0.05  # how often the thread looks for queued frames
AAC_FRAME = 1024  # samples in an AAC frame
PLAYLIST = "index.m3u8"
INIT = "init.mp4"
# FFmpeg's AAC encoder with its fast coder: half the CPU of its default (two-loop) one, the
# tier's largest cost (0.8 % of a core for a stereo stream, against 1.7 %).
AAC_OPTIONS = {"aac_coder": "fast"}
NON_SYNC = 0x00010000  # sample_is_non_sync_sample in ISO BMFF sample flags


def segment_name(msn: int) -> str:
    return f"seg{msn:05d}.m4s"


def part_name(msn: int, index: int) -> str:
    return f"part{msn:05d}.{index}.m4s"


def mux_options() -> dict[str, str]:
    """The ``mp4`` muxer's options: an empty ``moov`` first (once the first packet has given
    it H.264's parameter sets), then a fragment (moof + mdat, addressed from its own moof) at
    each video keyframe and every ``PART_S``, each handed to the writer at once; no index at
    the end. A track that stalls holds the other back for a second at most (interleaving)."""
    return {
        "movflags": "empty_moov+delay_moov+default_base_moof+frag_keyframe+skip_trailer",
        "frag_duration": str(int(PART_S * 1_000_000)),
        "flush_packets": "1",
        "max_interleave_delta": str(int(SEGMENT_S * 1_000_000)),
    }


# -- ISO BMFF boxes --------------------------------------------------------------------------------
def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """The boxes in ``data[start:end]``: (type, where its payload starts, where it ends)."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        yield kind, at + header, at + size
        at += size


def child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, stop in boxes(data, start, end):
        if found == kind:
            return payload, stop
    return None


@dataclass
class Track:
    """What the init segment says of a track: its clock and its fragments' defaults."""

    timescale: int
    video: bool
    default_duration: int = 0
    default_flags: int = 0


def read_init(data: bytes) -> dict[int, Track]:
    """The tracks (by id) of an init segment's ``moov``."""
    tracks: dict[int, Track] = {}
    moov = child(data, 0, len(data), b"moov")
    if moov is None:
        return tracks
    for kind, start, end in boxes(data, *moov):
        if kind != b"trak":
            continue
        tkhd, mdia = child(data, start, end, b"tkhd"), child(data, start, end, b"mdia")
        if tkhd is None or mdia is None:
            continue
        track_id = struct.unpack_from(">I", data, tkhd[0] + (20 if data[tkhd[0]] else 12))[0]
        mdhd, hdlr = child(data, *mdia, b"mdhd"), child(data, *mdia, b"hdlr")
        if mdhd is None or hdlr is None:
            continue
        timescale = struct.unpack_from(">I", data, mdhd[0] + (20 if data[mdhd[0]] else 12))[0]
        tracks[track_id] = Track(timescale, data[hdlr[0] + 8 : hdlr[0] + 12] == b"vide")
    mvex = child(data, *moov, b"mvex")
    for kind, start, _ in boxes(data, *mvex) if mvex else ():
        if kind == b"trex":
            track_id, _, duration, _, flags = struct.unpack_from(">5I", data, start + 4)
            if track_id in tracks:
                tracks[track_id].default_duration = duration
                tracks[track_id].default_flags = flags
    return tracks


def read_fragment(data: bytes, tracks: dict[int, Track]) -> dict[int, tuple[int, int, bool]]:
    """For each track of a ``moof`` + ``mdat``: (its first sample's decode time, the samples'
    total duration, whether the first is a sync sample), in the track's timescale."""
    found: dict[int, tuple[int, int, bool]] = {}
    moof = child(data, 0, len(data), b"moof")
    if moof is None:
        return found
    for kind, start, end in boxes(data, *moof):
        if kind != b"traf":
            continue
        tfhd = child(data, start, end, b"tfhd")
        if tfhd is None:
            continue
        at = tfhd[0]
        flags = int.from_bytes(data[at + 1 : at + 4], "big")
        track_id = struct.unpack_from(">I", data, at + 4)[0]
        track = tracks.get(track_id, Track(1000, False))
        duration, sample_flags = track.default_duration, track.default_flags
        at += 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        if flags & 0x08:
            duration = struct.unpack_from(">I", data, at)[0]
            at += 4
        at += 4 if flags & 0x10 else 0
        if flags & 0x20:
            sample_flags = struct.unpack_from(">I", data, at)[0]
        tfdt = child(data, start, end, b"tfdt")
        decode_time = 0
        if tfdt is not None:
            wide = data[tfdt[0]]
            decode_time = struct.unpack_from(">Q" if wide else ">I", data, tfdt[0] + 4)[0]
        total, first_flags = 0, None
        for box, run, _ in boxes(data, start, end):
            if box != b"trun":
                continue
            run_flags = int.from_bytes(data[run + 1 : run + 4], "big")
            count = struct.unpack_from(">I", data, run + 4)[0]
            at = run + 8 + (4 if run_flags & 0x01 else 0)
            if run_flags & 0x04:
                first_flags = (
                    struct.unpack_from(">I", data, at)[0] if first_flags is None else first_flags
                )
                at += 4
            fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if run_flags & bit]
            for sample in range(count):
                values = dict(
                    zip(fields, struct.unpack_from(f">{len(fields)}I", data, at), strict=True)
                )
                at += 4 * len(fields)
                total += values.get(0x100, duration)
                if sample == 0 and first_flags is None:
                    first_flags = values.get(0x400, sample_flags)
        if first_flags is None:
            first_flags = sample_flags
        found[track_id] = (decode_time, total, not first_flags & NON_SYNC)
    return found


class Fmp4Splitter:
    """A file-like object for the ``mp4`` muxer: hands on its init segment, then each
    fragment (``moof`` + ``mdat``), as soon as the muxer has written them whole."""

    def __init__(self, on_init: Callable[[bytes], None], on_fragment: Callable[[bytes], None]):
        self.on_init, self.on_fragment = on_init, on_fragment
        self.pending = bytearray()
        self.head = bytearray()  # ftyp + moov, then a moof waiting for its mdat

    def write(self, data: bytes) -> int:
        self.pending += data
        while len(self.pending) >= 8:
            size, kind = struct.unpack_from(">I4s", self.pending)
            if size == 1 and len(self.pending) >= 16:
                size = struct.unpack_from(">Q", self.pending, 8)[0]
            if size < 8 or len(self.pending) < size:
                break
            box = bytes(self.pending[:size])
            del self.pending[:size]
            self.head += box
            if kind == b"moov":
                self.on_init(bytes(self.head))
                self.head.clear()
            elif kind == b"mdat":
                self.on_fragment(bytes(self.head))
                self.head.clear()
            elif kind != b"moof" and kind != b"ftyp":
                self.head.clear()  # nothing a player needs (an mfra, a sidx)
        return len(data)


# -- the playlist ----------------------------------------------------------------------------------
@dataclass
class Part:
    name: str
    duration: float
    independent: bool
    data: bytes


@dataclass
class Segment:
    msn: int
    wall: float  # Unix time of its first frame
    parts: list[Part] = field(default_factory=list)
    complete: bool = False

    @property
    def duration(self) -> float:
        return sum(part.duration for part in self.parts)


def wall_clock(unix: float) -> str:
    moment = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(segments: list[Segment], target: int, ended: bool) -> str:
    """An LL-HLS media playlist of ``segments`` (the last may be in progress)."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={PART_HOLD_BACK_S:.3f}",
        f"#EXT-X-PART-INF:PART-TARGET={PART_TARGET_S:.3f}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn if segments else 0}",
        f'#EXT-X-MAP:URI="{INIT}"',
    ]
    complete = [s for s in segments if s.complete]
    with_parts = {s.msn for s in complete[-PART_SEGMENTS:]}
    for segment in segments:
        if not segment.parts:
            continue
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{wall_clock(segment.wall)}")
        if segment.msn in with_parts or not segment.complete:
            for part in segment.parts:
                independent = ",INDEPENDENT=YES" if part.independent else ""
                lines.append(
                    f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{part.name}"{independent}'
                )
        if segment.complete:
            lines += [f"#EXTINF:{segment.duration:.3f},", segment_name(segment.msn)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass
class Position:
    """What a playlist lists: its last complete segment, its newest part, whether it ended."""

    first: int  # the media sequence number of its first segment
    complete: int  # the last complete segment's (first - 1: none)
    part: tuple[int, int]  # (segment, index) of its newest part; (complete, large) without parts
    ended: bool
    target: int


PART_URI = re.compile(r'URI="part(\d+)\.(\d+)\.m4s"')


def position(text: str) -> Position:
    """Where a playlist written by :func:`render` stands (for blocking reloads)."""
    first = target = 0
    complete_count = 0
    newest: tuple[int, int] | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            first = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            complete_count += 1
        elif line.startswith("#EXT-X-PART:") and (found := PART_URI.search(line)):
            newest = (int(found[1]), int(found[2]))
    complete = first + complete_count - 1
    return Position(
        first, complete, newest or (complete, 1 << 30), "#EXT-X-ENDLIST" in text, target
    )


def reached(where: Position, msn: int, part: int | None) -> bool:
    """Whether a playlist at ``where`` has segment ``msn`` whole (``part`` None) or its part
    ``part``, or anything after it (RFC 8216bis 6.2.5.2)."""
    if part is None:
        return msn <= where.complete
    return (msn, part) <= where.part


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class Playlist:
    """The segments and parts of a tier on disk, and its playlist."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.segments: list[Segment] = []
        self.target = TARGET_S
        self.ended = False

    def add(self, part_data: bytes, duration: float, independent: bool, wall: float) -> None:
        """A new part (``wall``: the Unix time of its first frame): it starts the next segment
        when it starts at a keyframe and the one in progress is long enough, or when the one in
        progress would be too long with it (the next then starts without a keyframe)."""
        current = self.segments[-1] if self.segments else None
        if (
            current is None
            or (independent and current.duration >= MIN_SEGMENT_S)
            or (current.parts and current.duration + duration > MAX_SEGMENT_S)
        ):
            if current is not None:
                self._finish(current)
            current = Segment(current.msn + 1 if current else 0, wall)
            self.segments.append(current)
        part = Part(part_name(current.msn, len(current.parts)), duration, independent, part_data)
        (self.directory / part.name).write_bytes(part_data)  # listed only once written
        current.parts.append(part)
        self._write()

    def end(self) -> None:
        """The stream ended: the segment in progress is the last; the playlist says so."""
        if self.segments and self.segments[-1].parts:
            self._finish(self.segments[-1])
        self.ended = True
        self._write()

    def _finish(self, segment: Segment) -> None:
        (self.directory / segment_name(segment.msn)).write_bytes(
            b"".join(p.data for p in segment.parts)
        )
        segment.complete = True
        for part in segment.parts:
            part.data = b""
        complete = [s for s in self.segments if s.complete]
        while len(complete) > LIST_SIZE + KEEP_EXTRA:
            gone = complete.pop(0)
            self.segments.remove(gone)
            (self.directory / segment_name(gone.msn)).unlink(missing_ok=True)
            for part in gone.parts:
                (self.directory / part.name).unlink(missing_ok=True)

    def _write(self) -> None:
        listed = self.segments
        complete = [s for s in listed if s.complete]
        if len(complete) > LIST_SIZE:
            listed = listed[listed.index(complete[-LIST_SIZE]) :]
        text = render(listed, self.target, self.ended)
        write_atomically(self.directory / PLAYLIST, text.encode())


# -- the packager ----------------------------------------------------------------------------------
class HlsPackager:
    """One stream's audio and video, packaged into LL-HLS in ``directory`` by a thread."""

    def __init__(
        self,
        directory: Path,
        kinds: set[str],
        video_codec: str = "video/H264",
        request_keyframe: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.kinds = kinds
        self.transcode = video_codec.lower() != "video/h264"
        self.request_keyframe = request_keyframe or (lambda: None)
        self.frames: deque[tuple[str, EncodedFrame] | None] = deque()
        self.dropped = 0
        self.segment_keyframe = -1e9  # arrival of the keyframe that started a segment
        self.last_asked = -1e9  # when a keyframe was last asked for
        self.output: Any = None
        self.streams: dict[str, Any] = {}
        self.anchors: dict[str, tuple[int, int]] = {}  # kind -> (ms at first frame, its pts)
        self.t0: float | None = None  # arrival of the first video keyframe (time.monotonic())
        self.wall0 = 0.0  # the same moment in Unix time
        self.last_ms: dict[str, int] = {}
        self.decoders: dict[str, Any] = {}
        self.resampler: Any = None
        self.fifo: Any = None  # decoded audio, cut into AAC frames
        self.audio_samples = 0  # AAC samples written so far
        self.next_forced_ms = 0  # the transcoder's next keyframe
        self.splitter = Fmp4Splitter(self._on_init, self._on_fragment)
        self.tracks: dict[int, Track] = {}
        self.first_time: float | None = None  # the first part's start on the main track's clock
        self.next_start = 0.0
        self.playlist = Playlist(directory)
        self.thread = threading.Thread(target=self._run, name="hls", daemon=True)
        directory.mkdir(parents=True, exist_ok=True)
        clear(directory)
        self.thread.start()

    # -- on the event loop --------------------------------------------------------------------
    def on_frame(self, kind: str, frame: EncodedFrame) -> None:
        """A hub's sink: queue the frame for the thread; ask for keyframes on H.264 (by the
        frames' arrival, which the thread's cuts by media time follow closely)."""
        if kind == "video" and not self.transcode:
            at = frame.arrived
            if frame.keyframe and at - self.segment_keyframe >= MIN_SEGMENT_S:
                self.segment_keyframe = at  # it starts a segment
            elif at - self.segment_keyframe >= KEYFRAME_ASK_S and (
                at - self.last_asked >= KEYFRAME_RETRY_S
            ):
                self.last_asked = at
                self.request_keyframe()
        if len(self.frames) >= QUEUE_FRAMES:
            self.dropped += 1
        else:
            self.frames.append((kind, frame))

    def stop(self) -> None:
        """Finish the thread (blocks until it has closed the output; run it off the loop)."""
        self.frames.append(None)
        self.thread.join()

    # -- on the packager's thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                if not self.frames:
                    time.sleep(WAKE_S)
                    continue
                item = self.frames.popleft()
                if item is None:
                    break
                try:
                    self._handle(*item)
                except (av.FFmpegError, ValueError, OSError) as exc:
                    log.warning("hls %s: dropped a %s frame: %s", self.directory, item[0], exc)
        finally:
            self._close()

    def _handle(self, kind: str, frame: EncodedFrame) -> None:
        if self.output is None:
            if "video" in self.kinds and not (kind == "video" and frame.keyframe):
                return  # the playlist starts at a keyframe
            self._open(frame if kind == "video" else None)
            self.t0 = frame.arrived
            self.wall0 = time.time() - (time.monotonic() - frame.arrived)
        if kind == "video":
            self._video(frame)
        elif kind == "audio":
            self._audio(frame)

    def _open(self, keyframe: EncodedFrame | None) -> None:
        self.output = av.open(self.splitter, "w", format="mp4", options=mux_options())
        if "video" in self.kinds:
            if self.transcode:
                self.decoders["video"] = av.CodecContext.create("vp8", "r")
                self.streams["video"] = None  # added at the first decoded picture (its size)
            else:
                width, height = h264_size(keyframe.data) if keyframe else (0, 0)
                self.streams["video"] = self.output.add_mux_stream(
                    "h264", width=width, height=height, time_base=MS
                )
        if "audio" in self.kinds:
            self.decoders["audio"] = av.CodecContext.create("opus", "r")
            audio = self.output.add_stream(
                "aac", rate=AUDIO_RATE, layout="stereo", options=AAC_OPTIONS
            )
            audio.bit_rate = 96000
            self.streams["audio"] = audio
            self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            self.fifo = av.AudioFifo()
        if self.transcode:
            return  # opened once the video stream exists
        self.output.start_encoding()

    def _ms(self, kind: str, frame: EncodedFrame) -> int:
        """Milliseconds since the first video keyframe: each track's first frame by its
        arrival, later ones by their RTP timestamps from there; never going back."""
        if kind not in self.anchors:
            start = int((frame.arrived - (self.t0 or frame.arrived)) * 1000)
            self.anchors[kind] = (start, frame.pts)
        start, pts0 = self.anchors[kind]
        clock = frame.time_base
        ms = start + (frame.pts - pts0) * 1000 * clock.numerator // clock.denominator
        ms = max(ms, self.last_ms.get(kind, -1) + 1)
        self.last_ms[kind] = ms
        return ms

    def _video(self, frame: EncodedFrame) -> None:
        ms = self._ms("video", frame)
        if not self.transcode:
            packet = av.Packet(frame.data)
            packet.stream = self.streams["video"]
            packet.pts = packet.dts = ms
            packet.time_base = MS
            packet.is_keyframe = frame.keyframe
            self._mux(packet)
            return
        for picture in self.decoders["video"].decode(av.Packet(frame.data)):
            self._encode_video(picture, ms)

    def _encode_video(self, picture: Any, ms: int) -> None:
        """One decoded VP8 picture into libx264, a keyframe every ``SEGMENT_S``."""
        stream = self.streams["video"]
        if stream is None:
            stream = self.streams["video"] = self.output.add_stream(
                "libx264",
                options={"preset": "ultrafast", "tune": "zerolatency", "bf": "0"},
            )
            stream.width, stream.height = picture.width, picture.height
            stream.pix_fmt = "yuv420p"
            stream.time_base = MS
            stream.codec_context.time_base = MS
            self.output.start_encoding()
        picture = picture.reformat(format="yuv420p")
        picture.pts, picture.time_base = ms, MS
        if ms >= self.next_forced_ms:
            picture.pict_type = av.video.frame.PictureType.I
            self.next_forced_ms = ms + int(SEGMENT_S * 1000)
        for packet in stream.encode(picture):
            self._mux(packet)

    def _audio(self, frame: EncodedFrame) -> None:
        ms = self._ms("audio", frame)
        if self.transcode and self.streams.get("video") is None and "video" in self.kinds:
            return  # the output opens at the first decoded picture
        audio = self.streams["audio"]
        if self.audio_samples == 0:
            self.audio_samples = ms * AUDIO_RATE // 1000  # the track starts where it arrived
        for decoded in self.decoders["audio"].decode(av.Packet(frame.data)):
            decoded.pts = None
            if (decoded.format.name, decoded.layout.name, decoded.sample_rate) == STEREO:
                self.fifo.write(decoded)  # as Opus decodes a stereo stream: no resampling
            else:
                for converted in self.resampler.resample(decoded):
                    self.fifo.write(converted)
            for chunk in self.fifo.read_many(AAC_FRAME):
                chunk.pts, chunk.time_base = self.audio_samples, SAMPLE
                self.audio_samples += chunk.samples
                for packet in audio.encode(chunk):
                    self._mux(packet)

    def _mux(self, packet: Any) -> None:
        try:
            self.output.mux(packet)
        except av.FFmpegError as exc:
            log.warning("hls %s: dropped a packet: %s", self.directory, exc)

    def _on_init(self, data: bytes) -> None:
        self.tracks = read_init(data)
        write_atomically(self.directory / INIT, data)

    def _on_fragment(self, data: bytes) -> None:
        """A fragment from the muxer: the next part, timed on the video track (audio alone:
        on the audio track)."""
        found = read_fragment(data, self.tracks)
        main = [i for i in found if self.tracks.get(i, Track(1, False)).video] or list(found)
        if not main:
            return
        decode_time, duration, sync = found[main[0]]
        scale = self.tracks[main[0]].timescale if main[0] in self.tracks else 1000
        start = decode_time / scale
        if self.first_time is None:
            self.first_time = start
        independent = sync or not any(t.video for t in self.tracks.values())
        wall = self.wall0 + (start - self.first_time)
        self.playlist.add(data, duration / scale, independent, wall)

    def _close(self) -> None:
        if self.output is None:
            return
        try:
            for kind in ("video", "audio"):
                stream = self.streams.get(kind)
                if stream is not None and (kind == "audio" or self.transcode):
                    for packet in stream.encode(None):
                        self._mux(packet)
            self.output.close()
        except (av.FFmpegError, ValueError, OSError) as exc:
            log.warning("hls %s: closing: %s", self.directory, exc)
        self.output = None
        try:
            self.playlist.end()
        except OSError as exc:
            log.warning("hls %s: ending the playlist: %s", self.directory, exc)


def clear(directory: Path) -> None:
    """Delete an earlier tier's files from ``directory`` (a new stream numbers from 0)."""
    for pattern in (PLAYLIST, "*.tmp", INIT, "seg*.m4s", "part*.m4s"):
        for path in directory.glob(pattern):
            path.unlink(missing_ok=True)
