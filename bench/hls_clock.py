"""A painted clock for glass-to-glass latency: the publisher's side and the page's decoder.

Not run by hand: ``bench/hls.py`` starts it as a process of its own,

    python bench/hls_clock.py --endpoint URL --key KEY [--codec video/H264]

which publishes over WHIP (``tests/webinar/test_whip_live.py``'s ``whip_publish``) a 640x360
30 fps camera whose every frame carries the wall clock (``time.time()``, in ms) at the moment it
was made, and aiortc's synthetic audio. It prints one JSON line once the endpoint answered,
publishes until its stdin closes, then ends the WHIP session (DELETE) and prints the frames it
sent.

The clock is ``ROWS`` x ``COLS`` cells of ``CELL`` pixels (black 0, white 1; luma 16 / 235,
grey chroma) at (``X0``, ``Y0``), read row by row: 48 bits of milliseconds since the epoch,
most significant first, then a CRC-8 (polynomial 0x07) of those 6 bytes. Cells of 40 px
survive H.264 and VP8 at a few hundred kb/s intact; a frame whose CRC does not match (blurred
by a scene change, or torn) is counted as unreadable, never as a sample. The rest of the
frame is ``bench/fanout.py``'s moving pattern, so the encoders have a camera's work.

``PAGE`` is the HTML page the bench opens in Chromium: hls.js (the vendored light build) plays
the playlist, and on every presented frame (``requestVideoFrameCallback``) the clock's cells
are drawn into a canvas and read back; ``Date.now()`` minus the painted time is one sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aioice.ice
import numpy as np
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import VideoFrame

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # run as a script: the app's packages and fanout.py

from fanout import HEIGHT, WIDTH, synthetic_video  # noqa: E402

from tests.media.conftest import Publisher, loopback_pc, only_video_codec  # noqa: E402
from tests.webinar.test_whip_live import http, whip_publish  # noqa: E402

CELL, COLS, ROWS = 40, 8, 7
X0, Y0 = 16, 16
BITS = 48
BLACK, WHITE, GREY = 16, 235, 128


def crc8(data: bytes) -> int:
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def clock_bits(ms: int) -> np.ndarray:
    """The ``ROWS`` x ``COLS`` cells for ``ms``: 48 bits of it, then its CRC-8."""
    data = ms.to_bytes(BITS // 8, "big")
    word = (ms << 8) | crc8(data)
    bits = [(word >> (BITS + 8 - 1 - i)) & 1 for i in range(BITS + 8)]
    return np.array(bits, dtype=np.uint8).reshape(ROWS, COLS)


def read_bits(cells: np.ndarray) -> int | None:
    """The milliseconds in ``cells`` (as ``clock_bits`` made them), None if the CRC fails."""
    word = 0
    for bit in cells.ravel():
        word = (word << 1) | int(bit)
    ms, crc = word >> 8, word & 0xFF
    return ms if crc8(ms.to_bytes(BITS // 8, "big")) == crc else None


def planes(frame: VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A yuv420p frame's Y, U and V planes as arrays."""
    flat = frame.to_ndarray().ravel()
    y_size, c_size = WIDTH * HEIGHT, WIDTH * HEIGHT // 4
    luma = flat[:y_size].reshape(HEIGHT, WIDTH)
    u = flat[y_size : y_size + c_size].reshape(HEIGHT // 2, WIDTH // 2)
    v = flat[y_size + c_size :].reshape(HEIGHT // 2, WIDTH // 2)
    return luma, u, v


def paint(ms: int, background: tuple[np.ndarray, np.ndarray, np.ndarray]) -> VideoFrame:
    """A frame of ``background`` with the clock for ``ms`` painted on it."""
    luma, u, v = (plane.copy() for plane in background)
    levels = np.where(clock_bits(ms) == 1, WHITE, BLACK).astype(np.uint8)
    block = np.repeat(np.repeat(levels, CELL, axis=0), CELL, axis=1)
    luma[Y0 : Y0 + ROWS * CELL, X0 : X0 + COLS * CELL] = block
    for chroma in (u, v):
        chroma[Y0 // 2 : (Y0 + ROWS * CELL) // 2, X0 // 2 : (X0 + COLS * CELL) // 2] = GREY
    buffer = np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(HEIGHT * 3 // 2, WIDTH)
    return VideoFrame.from_ndarray(buffer, format="yuv420p")


class ClockVideo(VideoStreamTrack):
    """30 fps of the moving pattern, each frame with the wall clock of its making painted on."""

    def __init__(self) -> None:
        super().__init__()
        self.backgrounds = [planes(frame) for frame in synthetic_video()]
        self.sent = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = paint(time.time_ns() // 1_000_000, self.backgrounds[self.sent % 60])
        self.sent += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


class ClockPublisher(Publisher):
    """The tests' publisher (offer, answer, close), with the painted clock as its camera."""

    def __init__(self, codec: str) -> None:
        self.pc = loopback_pc()
        self.video = ClockVideo()
        self.pc.addTrack(self.video)
        self.pc.addTrack(AudioStreamTrack())
        only_video_codec(self.pc, codec)


async def publish(endpoint: str, key: str, codec: str) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    publisher = ClockPublisher(codec)
    try:
        status, headers, body = await whip_publish(endpoint, key, publisher)
        print(json.dumps({"status": status, "location": headers["Location"], "error": body[:200]}))
        sys.stdout.flush()
        if status != 201:
            return
        await asyncio.to_thread(sys.stdin.read)  # until the bench closes our stdin
        session = endpoint.split("/broadcasts/")[0] + headers["Location"]
        await asyncio.to_thread(http, "DELETE", session, Authorization=f"Bearer {key}")
    finally:
        await publisher.close()
        print(json.dumps({"frames": publisher.video.sent}), flush=True)


# The page: hls.js plays ?src= with the JSON ?config=; every presented frame's clock is read.
PAGE = """<!doctype html>
<meta charset="utf-8"><title>HLS clock</title>
<video muted playsinline width="640" height="360"></video>
<script type="module">
import Hls from "/static/vendor/hls.js-1.7.4/hls.light.min.mjs";
const [CELL, COLS, ROWS, X0, Y0] = LAYOUT;
const params = new URLSearchParams(location.search);
const video = document.querySelector("video");
const canvas = document.createElement("canvas");
canvas.width = COLS * CELL; canvas.height = ROWS * CELL;
const ctx = canvas.getContext("2d", { willReadFrequently: true });
const state = (window.__clock = {
  samples: [], unreadable: 0, errors: [], stalls: 0, parts: 0, live: null, target: null,
  programDateTime: false,
});
function crc8(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}
function read() {
  ctx.drawImage(video, X0, Y0, COLS * CELL, ROWS * CELL, 0, 0, COLS * CELL, ROWS * CELL);
  const pixels = ctx.getImageData(0, 0, COLS * CELL, ROWS * CELL).data;
  const bytes = [];
  let byte = 0;
  for (let i = 0; i < COLS * ROWS; i++) {
    const cx = (i % COLS) * CELL + CELL / 2, cy = Math.floor(i / COLS) * CELL + CELL / 2;
    let sum = 0;
    for (let dy = -6; dy < 6; dy++) for (let dx = -6; dx < 6; dx++) {
      const p = ((cy + dy) * COLS * CELL + cx + dx) * 4;
      sum += pixels[p] + pixels[p + 1] + pixels[p + 2];
    }
    byte = (byte << 1) | (sum / (144 * 3) > 128 ? 1 : 0);
    if (i % 8 === 7) { bytes.push(byte); byte = 0; }
  }
  const crc = bytes.pop();
  if (crc8(bytes) !== crc) return null;
  return bytes.reduce((ms, b) => ms * 256 + b, 0);
}
const hls = new Hls(JSON.parse(params.get("config") || "{}"));
hls.on(Hls.Events.ERROR, (_, d) => {
  const code = d.response && d.response.code !== undefined ? ` (HTTP ${d.response.code})` : "";
  state.errors.push(d.details + code + (d.fatal ? " (fatal)" : ""));
  if (d.fatal && d.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
  else if (d.fatal) hls.startLoad();
});
hls.on(Hls.Events.LEVEL_LOADED, (_, d) => {
  state.live = d.details.live;
  state.target = d.details.targetduration;
  state.parts = d.details.partList ? d.details.partList.length : 0;
  state.programDateTime = state.programDateTime || d.details.hasProgramDateTime;
});
hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => state.errors.push(String(e))));
video.addEventListener("waiting", () => { if (state.samples.length) state.stalls++; });
const onFrame = () => {
  const now = Date.now();
  const painted = read();
  if (painted === null) state.unreadable++;
  else {
    const behind = hls.playingDate ? now - hls.playingDate.getTime() : null;
    state.samples.push([now, now - painted, hls.latency, behind]);
  }
  video.requestVideoFrameCallback(onFrame);
};
video.requestVideoFrameCallback(onFrame);
hls.loadSource(params.get("src"));
hls.attachMedia(video);
</script>
""".replace("LAYOUT", json.dumps([CELL, COLS, ROWS, X0, Y0]))


def parse_args() -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the broadcast's WHIP endpoint")
    parser.add_argument("--key", required=True, help="a stream key of the broadcast")
    parser.add_argument("--codec", default="video/H264", help="video/H264 or video/VP8")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    asyncio.run(publish(args.endpoint, args.key, args.codec))
