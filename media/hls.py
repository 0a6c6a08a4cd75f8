"""An HLS tier for a broadcast's audience: one stream's frames as CMAF (fMP4) HLS in a folder.

A :class:`HlsPackager` is one more sink of a stream's hubs, like a recording. It writes, with
FFmpeg's ``hls`` muxer, ``init.mp4``, segments ``seg<N>.m4s`` of about ``SEGMENT_S`` and a
rolling playlist ``index.m3u8`` of the last ``LIST_SIZE`` segments (``#EXT-X-INDEPENDENT-
SEGMENTS``; old segments are deleted, the playlist is replaced atomically).

- H.264 video is remuxed as it arrives (Annex-B, no transcoding); the publisher is asked for a
  keyframe every ``SEGMENT_S`` so that segments can be cut that often.
- VP8 video (which browsers' MSE refuses in MP4) is decoded and encoded once per stream with
  libx264 (ultrafast, zerolatency, a keyframe every ``SEGMENT_S``).
- Opus audio is decoded and encoded to AAC once per stream.

The sink only queues frames; a thread of the packager's own does all muxing and coding, so the
worker's forwarding loop never waits for it (a full queue drops frames, never blocks).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from media.packets import EncodedFrame
from media.recorder import h264_size

log = logging.getLogger(__name__)
MS = Fraction(1, 1000)
SEGMENT_S = 1.0
LIST_SIZE = 6
QUEUE_FRAMES = 600  # about 10 s of audio and video; beyond it frames are dropped
PLAYLIST = "index.m3u8"
AUDIO_RATE = 48000


def hls_options(directory: Path) -> dict[str, str]:
    """FFmpeg ``hls`` muxer options: fMP4 segments of ``SEGMENT_S``, a rolling playlist."""
    return {
        "hls_time": str(SEGMENT_S),
        "hls_list_size": str(LIST_SIZE),
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": "init.mp4",
        "hls_segment_filename": str(directory / "seg%05d.m4s"),
        "hls_flags": "independent_segments+delete_segments+temp_file",
    }


class HlsPackager:
    """One stream's audio and video, packaged into HLS in ``directory`` by a thread."""

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
        self.frames: queue.Queue[tuple[str, EncodedFrame] | None] = queue.Queue(QUEUE_FRAMES)
        self.dropped = 0
        self.last_keyframe = 0.0  # time.monotonic() of the last keyframe asked for or seen
        self.output: Any = None
        self.streams: dict[str, Any] = {}
        self.anchors: dict[str, tuple[int, int]] = {}  # kind -> (ms at first frame, its pts)
        self.t0: float | None = None  # arrival of the first video keyframe
        self.last_ms: dict[str, int] = {}
        self.decoders: dict[str, Any] = {}
        self.resampler: Any = None
        self.audio_samples = 0  # AAC samples written so far
        self.next_forced_ms = 0  # the transcoder's next keyframe
        self.thread = threading.Thread(target=self._run, name="hls", daemon=True)
        directory.mkdir(parents=True, exist_ok=True)
        clear(directory)
        self.thread.start()

    # -- on the event loop --------------------------------------------------------------------
    def on_frame(self, kind: str, frame: EncodedFrame) -> None:
        """A hub's sink: queue the frame for the thread; ask for keyframes on H.264."""
        if kind == "video" and not self.transcode:
            now = time.monotonic()
            if frame.keyframe:
                self.last_keyframe = now
            elif now - self.last_keyframe >= SEGMENT_S:
                self.last_keyframe = now
                self.request_keyframe()
        try:
            self.frames.put_nowait((kind, frame))
        except queue.Full:
            self.dropped += 1

    def stop(self) -> None:
        """Finish the thread (blocks until it has closed the output; run it off the loop)."""
        while True:
            try:
                self.frames.put(None, timeout=0.1)
                break
            except queue.Full:
                self._drain_one()
        self.thread.join()

    def _drain_one(self) -> None:
        with contextlib.suppress(queue.Empty):
            self.frames.get_nowait()

    # -- on the packager's thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            while (item := self.frames.get()) is not None:
                try:
                    self._handle(*item)
                except (av.FFmpegError, ValueError) as exc:
                    log.warning("hls %s: dropped a %s frame: %s", self.directory, item[0], exc)
        finally:
            self._close()

    def _handle(self, kind: str, frame: EncodedFrame) -> None:
        if self.output is None:
            if "video" in self.kinds and not (kind == "video" and frame.keyframe):
                return  # the playlist starts at a keyframe
            self._open(frame if kind == "video" else None)
            self.t0 = frame.arrived
        if kind == "video":
            self._video(frame)
        elif kind == "audio":
            self._audio(frame)

    def _open(self, keyframe: EncodedFrame | None) -> None:
        self.output = av.open(
            str(self.directory / PLAYLIST),
            "w",
            format="hls",
            options=hls_options(self.directory),
        )
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
            audio = self.output.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            audio.bit_rate = 96000
            self.streams["audio"] = audio
            self.resampler = av.AudioResampler(
                format="fltp", layout="stereo", rate=AUDIO_RATE, frame_size=1024
            )
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
        ms = int(start + (frame.pts - pts0) * frame.time_base * 1000)
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
            for chunk in self.resampler.resample(decoded):
                chunk.pts, chunk.time_base = self.audio_samples, Fraction(1, AUDIO_RATE)
                self.audio_samples += chunk.samples
                for packet in audio.encode(chunk):
                    self._mux(packet)

    def _mux(self, packet: Any) -> None:
        try:
            self.output.mux(packet)
        except av.FFmpegError as exc:
            log.warning("hls %s: dropped a packet: %s", self.directory, exc)

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
        except (av.FFmpegError, ValueError) as exc:
            log.warning("hls %s: closing: %s", self.directory, exc)
        self.output = None


def clear(directory: Path) -> None:
    """Delete an earlier tier's files from ``directory`` (a new stream numbers from 0)."""
    for pattern in (PLAYLIST, "*.m3u8.tmp", "init.mp4", "seg*.m4s", "seg*.m4s.tmp"):
        for path in directory.glob(pattern):
            path.unlink(missing_ok=True)
