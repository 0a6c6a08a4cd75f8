"""Fan-out load on one media worker: one 640x360@30 publisher, N viewers, measured end to end.

    python bench/fanout.py [--viewers N [N ...]] [--baseline-viewers N [N ...]]
                           [--before DIR] [--window S] [--no-viewer-pli]

Starts the real ``python -m media.worker`` on loopback, one publisher process (aiortc, VP8
pinned at 600 kb/s + Opus, from a precomputed loop of frames) and viewer processes
(``--per-process`` viewers each, plus one for late joiners). Viewers are the light viewers of
``bench/viewers.py``: aiortc for ICE and DTLS, then every RTP datagram is only counted from its
plain header (a video frame = a video packet with the marker bit), so a hundred of them fit
beside the server on a small machine. With ``--before DIR`` the worker of another checkout (e.g.
``git worktree add /tmp/before <commit>``) is measured first, with the same load. Then the same
viewers watch ``bench/relay_baseline.py`` (stock ``MediaRelay``: decode once, encode per viewer).

Figures per run (the last line of output is one JSON object, for the largest N):

- CPU per viewer: the server process's CPU (``/proc/PID/stat``) over the steady window with N
  viewers, minus the same with the publisher alone, over N, in % of one core.
- fps per viewer: video frames each viewer received in the window, min and median.
- Late join: a viewer joins once the others are steady; from sending its ``view`` request to its
  first video frame (median of ``--late-joins``).
- Added latency: from the publisher sending a video frame's last packet to a viewer receiving it.
  Packets are matched by a hash of their payload (the worker forwards the publisher's bytes; the
  viewers decrypt only those marker packets). Every process reads the same ``time.monotonic()``.
  It includes the viewers' own event-loop delay, which is printed beside it (``lag p95``).

A viewer still without video a second after connecting sends a keyframe request (PLI), again
every second; the table counts the viewers that had to (``--no-viewer-pli``: they just wait).
Every process's CPU is read too (publisher, viewers, this coordinator, interrupts, the rest of
the machine): when the machine is saturated the output says so, and the figures of that run
describe the machine, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aioice.ice
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import vp8_depayload
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame
from av.video.frame import PictureType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: the app's packages live one level up

import viewers as light  # noqa: E402
from relay_baseline import BITRATE, PinnedVp8Encoder  # noqa: E402

from media import ice, tokens  # noqa: E402
from media.channel import MediaChannel  # noqa: E402
from media.packets import is_vp8_keyframe  # noqa: E402

SECRET = "fanout-bench"
ROOM = "bench"
WIDTH, HEIGHT = 640, 360
AUDIO_RATE, AUDIO_SAMPLES = 48000, 960  # 20 ms of mono
LOOP_FRAMES = 60  # the publisher cycles through 2 s of precomputed video
JOIN_CONCURRENCY = 5  # viewers of one process connecting at once
CONNECT_TIMEOUT_S = 20.0
FIRST_FRAME_TIMEOUT_S = 30.0
LATE_TIMEOUT_S = 15.0
START_TIMEOUT_S = 60.0  # a child process importing aiortc on a busy machine
WARMUP_S = 3.0
SETTLE_S = 3.0
LAG_TICK_S = 0.02
PLI_AFTER_S = 1.0  # a connected viewer with no video yet asks for a keyframe this often
SATURATED = 0.9  # share of all cores busy above which the machine limits the figures
MIN_SOURCE_FPS = 27.0  # below this the publisher, not the server, set a window's pace
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKER = [sys.executable, "-m", "media.worker", "--port", "0"]
BASELINE = [sys.executable, str(ROOT / "bench" / "relay_baseline.py"), "--port", "0"]


# --- shared by the child processes -------------------------------------------------------------


def new_pc() -> RTCPeerConnection:
    """A peer connection that never leaves loopback (no STUN server)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def call(channel: MediaChannel, addr: str, op: str, **fields: Any) -> dict[str, Any]:
    """A media-channel request without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, partial(channel.call, addr, op, **fields))


async def next_command(conn: Connection) -> tuple[str, dict[str, Any]]:
    """Wait on the event loop for the coordinator's next ``(method, kwargs)``."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(conn.fileno(), ready.set)
    try:
        await ready.wait()
    finally:
        loop.remove_reader(conn.fileno())
    try:
        return conn.recv()
    except EOFError:  # the coordinator is gone
        return "exit", {}


async def serve(conn: Connection, handler: Any) -> None:
    """Run the coordinator's commands on ``handler`` one at a time until "exit"."""
    try:
        while (command := await next_command(conn))[0] != "exit":
            name, kwargs = command
            try:
                reply = await getattr(handler, name)(**kwargs)
            except Exception as exc:
                reply = {"error": f"{name}: {type(exc).__name__}: {exc}"}
            conn.send(reply)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(handler.shutdown(), 10)


def child_main(conn: Connection, make_handler: Callable[[], Any]) -> None:
    """Entry of every child process: loopback-only ICE, then serve commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    ice.limit_host_addresses(["127.0.0.1"])
    # aioice closes a connection after 6 consent checks in a row (5 s apart) got no answer
    # within 0.5 s, where a browser counts any answer within 30 s (RFC 7675). A starved load
    # generator would close its own connections that way: the clients here never do; the
    # server under test still applies aioice's rule.
    aioice.ice.CONSENT_FAILURES = 1_000_000
    asyncio.run(serve(conn, make_handler()))


# --- the publisher -----------------------------------------------------------------------------


def synthetic_video(count: int = LOOP_FRAMES) -> list[VideoFrame]:
    """A seamless loop of frames: a drifting pattern, a moving block and sensor-like noise."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    frames = []
    for i in range(count):
        phase = 2 * np.pi * i / count
        luma = 128 + 50 * np.sin(x / 37 + phase) * np.cos(y / 23 - 2 * phase)
        left = int((WIDTH - 160) * (0.5 + 0.5 * np.sin(phase)))
        luma[100:260, left : left + 160] = 40 + (x[100:260, :160] * 1.5) % 180
        luma += rng.normal(0, 5, luma.shape)
        u = 128 + 30 * np.sin(x[::2, ::2] / 50 + phase)
        v = 128 + 30 * np.cos(y[::2, ::2] / 40 - phase)
        planes = [np.clip(p, 0, 255).astype(np.uint8).ravel() for p in (luma, u, v)]
        buffer = np.concatenate(planes).reshape(HEIGHT * 3 // 2, WIDTH)
        frames.append(VideoFrame.from_ndarray(buffer, format="yuv420p"))
    return frames


def synthetic_audio(count: int = 50) -> list[np.ndarray]:
    """One second of 20 ms chunks of a 440 Hz tone (noise is added live, see ``LoopAudio``)."""
    t = np.arange(count * AUDIO_SAMPLES) / AUDIO_RATE
    wave = 6000 * np.sin(2 * np.pi * 440 * t)
    return list(wave.reshape(count, 1, AUDIO_SAMPLES))


class LoopVideo(VideoStreamTrack):
    """30 fps from precomputed frames: cheap to produce, as costly to encode as a camera."""

    def __init__(self, frames: list[VideoFrame]) -> None:
        super().__init__()
        self.frames = frames
        self.index = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self.frames[self.index % len(self.frames)]
        self.index += 1
        frame.pts, frame.time_base = pts, time_base
        frame.pict_type = PictureType.NONE  # the encoder marks a forced keyframe on the frame
        return frame


class LoopAudio(MediaStreamTrack):
    """48 kHz mono in 20 ms frames, paced like aiortc's ``AudioStreamTrack``."""

    kind = "audio"

    def __init__(self, chunks: list[np.ndarray]) -> None:
        super().__init__()
        self.chunks = chunks
        self.pts = -1
        self.start = 0.0
        # Fresh noise every frame: a loop repeated exactly makes Opus repeat its packets,
        # and packets are matched between processes by their bytes.
        self.rng = np.random.default_rng(11)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.pts < 0:
            self.start, self.pts = time.time(), 0
        else:
            self.pts += AUDIO_SAMPLES
            await asyncio.sleep(self.start + self.pts / AUDIO_RATE - time.time())
        chunk = self.chunks[(self.pts // AUDIO_SAMPLES) % len(self.chunks)]
        noisy = (chunk + self.rng.normal(0, 300, chunk.shape)).astype(np.int16)
        frame = AudioFrame.from_ndarray(noisy, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = self.pts, Fraction(1, AUDIO_RATE)
        return frame


class SendLog:
    """What the publisher encoded, and when each video frame's last packet left it.

    ``sent`` holds ``(time.monotonic(), payload key)`` of every video marker packet, keyed as
    the light viewers key what they receive (``viewers.payload_key`` of the plain RTP).
    """

    def __init__(self) -> None:
        self.sent: list[tuple[float, int]] = []
        self.frames: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.keyframes = 0

    def encoded(self, kind: str, start: bytes, size: int) -> None:
        """One encoded frame of ``size`` bytes beginning with ``start``."""
        self.frames[kind] += 1
        self.bytes[kind] += size
        self.keyframes += kind == "video" and is_vp8_keyframe(start)

    def watch(self, video: RTCRtpSender) -> None:
        """Note the send time of every marker packet (the last of a frame) of ``video``."""
        transport, ssrc = video.transport, video._ssrc.to_bytes(4, "big")
        send = transport._send_rtp

        async def noting_send(data: bytes) -> None:
            await send(data)
            if data[8:12] == ssrc and data[1] & 0x80:
                self.sent.append((time.monotonic(), light.payload_key(data)))

        transport._send_rtp = noting_send


class LoggedVp8Encoder(PinnedVp8Encoder):
    """The publisher's VP8 encoder, pinned at ``BITRATE``, telling the log each frame."""

    def __init__(self, log: SendLog) -> None:
        super().__init__(BITRATE)
        self.log = log

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        payloads, timestamp = super().encode(frame, force_keyframe)
        if payloads:
            size = sum(len(vp8_depayload(p)) for p in payloads)
            self.log.encoded("video", vp8_depayload(payloads[0]), size)
        return payloads, timestamp


class LoggedOpusEncoder(OpusEncoder):
    """The publisher's Opus encoder, telling the log each packet."""

    def __init__(self, log: SendLog) -> None:
        super().__init__()
        self.log = log

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], Any]:
        payloads, timestamp = super().encode(frame, force_keyframe)
        if payloads:
            self.log.encoded("audio", payloads[0], sum(len(p) for p in payloads))
        return payloads, timestamp


class Publisher:
    """The publisher process: one camera-like stream to one server at a time."""

    def __init__(self) -> None:
        self.video = synthetic_video()
        self.audio = synthetic_audio()
        self.log = SendLog()
        self.pc: RTCPeerConnection | None = None

    async def publish(self, addr: str) -> dict[str, Any]:
        pc = self.pc = new_pc()
        video = pc.addTrack(LoopVideo(self.video))
        audio = pc.addTrack(LoopAudio(self.audio))
        video._RTCRtpSender__encoder = LoggedVp8Encoder(self.log)
        audio._RTCRtpSender__encoder = LoggedOpusEncoder(self.log)
        await pc.setLocalDescription(await pc.createOffer())
        token = tokens.sign(SECRET, op="publish", room=ROOM, user=1)
        reply = await call(
            MediaChannel([addr]), addr, "publish", token=token, sdp=pc.localDescription.sdp
        )
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error"))
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        self.log.watch(video)
        return {"stream": reply["stream"]}

    async def stats(self) -> dict[str, Any]:
        return {
            "at": time.monotonic(),
            "state": self.pc.connectionState if self.pc else "none",
            "frames": dict(self.log.frames),
            "bytes": dict(self.log.bytes),
            "keyframes": self.log.keyframes,
        }

    async def sent(self, since: float) -> dict[int, float]:
        """``{payload key: sent at}`` of video marker packets since ``since``; keys seen twice
        left out (a repeated payload cannot be matched)."""
        seen = Counter(key for _, key in self.log.sent)
        return {key: at for at, key in self.log.sent if at >= since and seen[key] == 1}

    async def unpublish(self) -> dict[str, Any]:
        if self.pc is not None:
            await self.pc.close()
        self.pc = None
        return {}

    async def shutdown(self) -> None:
        await self.unpublish()


# --- the viewers -------------------------------------------------------------------------------


class ViewerHost:
    """A viewer process: many viewers on one event loop, driven by the coordinator."""

    def __init__(self) -> None:
        self.viewers: list[light.LightViewer] = []
        self.started: tuple[float, list[int]] = (0.0, [])
        self.addr = ""
        self.channel = MediaChannel([])
        self.lags: list[float] = []
        self.probe: asyncio.Task[None] | None = None

    async def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid()}

    def view_call(self, addr: str, stream: str, user: int) -> light.ViewCall:
        """A view request for ``user`` to ``addr``'s ``stream`` (the worker's ``view`` op)."""
        if addr != self.addr:
            self.addr, self.channel = addr, MediaChannel([addr])
        token = tokens.sign(SECRET, op="view", room=ROOM, user=user, stream=stream)
        channel = self.channel

        async def view(sdp: str) -> dict[str, Any]:
            return await call(channel, addr, "view", token=token, sdp=sdp)

        return view

    async def join(
        self, addr: str, stream: str, count: int, first_user: int, pli: bool
    ) -> dict[str, Any]:
        """``count`` light viewers, ``JOIN_CONCURRENCY`` connecting at once; their first-frame
        times. With ``pli``, a viewer still without video ``PLI_AFTER_S`` after connecting asks
        for a keyframe (again every ``PLI_AFTER_S``); "pli" counts the viewers that had to."""
        calls = [self.view_call(addr, stream, first_user + i) for i in range(count)]
        joined, errors = await light.connect(calls, JOIN_CONCURRENCY, pli)
        self.viewers += joined
        return {
            "first_frame_s": [v.first_frame_s for v in joined] + [None] * len(errors),
            "pli": sum(1 for v in joined if v.plis),
            "errors": errors,
        }

    async def mark(self) -> dict[str, Any]:
        """Start the steady window: count frames and keep arrival samples from now."""
        self.started = light.start_window(self.viewers)
        self.lags = []
        self.probe = asyncio.ensure_future(self.probe_lag())
        return {}

    async def report(self) -> dict[str, Any]:
        """End the window: each viewer's fps, every arrival sample, this loop's lag."""
        if self.probe is not None:
            self.probe.cancel()
        figures = light.window(self.viewers, self.started)
        return {
            "fps": figures["fps"],
            "samples": figures["samples"],
            "lag_p95_s": percentile(self.lags, 95),
            "connected": figures["connected"],
        }

    async def probe_lag(self) -> None:
        """How late this event loop wakes up: a late wake-up delays every packet it reads."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self.lags.append(time.monotonic() - start - LAG_TICK_S)

    async def late(self, addr: str, stream: str, user: int, pli: bool) -> dict[str, Any]:
        """One viewer joining a steady stream: ms to connect and to its first complete frame."""
        viewer = light.LightViewer()
        try:
            await viewer.open(self.view_call(addr, stream, user))
            self.viewers.append(viewer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(viewer.connected.wait(), LATE_TIMEOUT_S)
                await asyncio.wait_for(viewer.wait_for_video(pli), LATE_TIMEOUT_S)
        finally:
            await self.leave()
        return {
            "first_frame_s": viewer.first_frame_s,
            "connected_s": viewer.connected_s,
            "pli": viewer.plis,
        }

    async def leave(self) -> dict[str, Any]:
        """Close every viewer, and tell the server (as the web app would)."""
        leaving, self.viewers = self.viewers, []
        await asyncio.gather(*(v.close() for v in leaving), return_exceptions=True)
        for viewer in leaving:
            if viewer.peer:
                with contextlib.suppress(Exception):
                    await call(self.channel, self.addr, "close", peer=viewer.peer)
        return {"closed": len(leaving)}

    async def shutdown(self) -> None:
        await self.leave()


# --- measuring from the coordinator ------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``, all its threads (``/proc/PID/stat`` fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_seconds() -> tuple[float, float]:
    """CPU seconds all cores spent busy, and of those in interrupts (loopback packets), since boot.

    ``/proc/stat``: user nice system idle iowait irq softirq steal ... (in clock ticks).
    """
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK, (ticks[5] + ticks[6]) / CLK_TCK


def socket_inodes(pids: list[int]) -> set[int]:
    """The inodes of the sockets ``pids`` hold open."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(int(link[8:-1]))
    return inodes


class QueueWatch:
    """The kernel's UDP receive queues of each role's sockets (``/proc/net/udp``): where packets
    wait while a process falls behind (invisible to its own clock), and how many were dropped."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.inodes = {role: socket_inodes(group) for role, group in pids.items()}
        self.peak = dict.fromkeys(pids, 0)  # bytes
        self.first: dict[int, int] = {}  # inode -> its drop count at the first sample
        self.last: dict[int, int] = {}

    def sample(self) -> None:
        queued = dict.fromkeys(self.inodes, 0)
        drops: dict[int, int] = {}
        with open("/proc/net/udp") as table:
            next(table)
            for line in table:
                fields = line.split()  # ... tx_queue:rx_queue ... inode ref pointer drops
                inode = int(fields[9])
                for role, inodes in self.inodes.items():
                    if inode in inodes:
                        queued[role] += int(fields[4].split(":")[1], 16)
                        drops[inode] = int(fields[12])
        self.peak = {role: max(self.peak[role], queued[role]) for role in queued}
        self.first, self.last = self.first or drops, drops

    def dropped(self) -> dict[str, int]:
        """Drops during the window, per role, on the sockets open from start to end."""
        return {
            role: sum(
                self.last[i] - self.first[i] for i in inodes if i in self.first and i in self.last
            )
            for role, inodes in self.inodes.items()
        }


@dataclass
class Reading:
    """CPU seconds by role at one moment."""

    at: float
    cpu: dict[str, float]
    machine: tuple[float, float]  # busy, of which interrupts

    @classmethod
    def take(cls, pids: dict[str, list[int]]) -> Reading:
        cpu = {role: sum(cpu_seconds(p) for p in group) for role, group in pids.items()}
        return cls(time.monotonic(), cpu, machine_seconds())

    def usage(self, later: Reading) -> dict[str, float]:
        """Share of one core each role used from ``self`` to ``later``.

        "irq" is interrupt time (mostly the kernel moving loopback packets), charged to no
        process; "others" is the rest: other tenants of this machine.
        """
        wall = later.at - self.at
        used = {role: (later.cpu[role] - self.cpu[role]) / wall for role in self.cpu}
        used["machine"] = (later.machine[0] - self.machine[0]) / wall
        used["irq"] = (later.machine[1] - self.machine[1]) / wall
        used["others"] = max(0.0, used["machine"] - used["irq"] - sum(used[r] for r in self.cpu))
        return used


class Child:
    """A child process and the pipe the coordinator drives it through."""

    def __init__(self, ctx: Any, name: str, make_handler: Callable[[], Any]) -> None:
        self.name = name
        self.conn, theirs = ctx.Pipe()
        self.process = ctx.Process(
            target=child_main, args=(theirs, make_handler), name=name, daemon=True
        )
        self.process.start()
        theirs.close()

    def send(self, name: str, **kwargs: Any) -> None:
        self.conn.send((name, kwargs))

    def reply(self, timeout: float) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.name} gave no answer in {timeout:.0f} s")
        answer: dict[str, Any] = self.conn.recv()
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def ask(self, name: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
        self.send(name, **kwargs)
        return self.reply(timeout)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.send("exit")
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)


def ask_all(children: list[Child], name: str, timeout: float, **kwargs: Any) -> list[dict]:
    """The same command to several children at once; their answers, in order."""
    for child in children:
        child.send(name, **kwargs)
    deadline = time.monotonic() + timeout
    return [child.reply(max(0.1, deadline - time.monotonic())) for child in children]


def poll_server(
    channel: MediaChannel, addr: str, until: float, queues: QueueWatch
) -> tuple[list[float], dict[str, Any]]:
    """Ask the server for ``stats`` every half second until ``until``: the round-trip times
    (its event loop's responsiveness, seen from outside) and the last answer. Samples
    ``queues`` as often."""
    rtts: list[float] = []
    last: dict[str, Any] = {}
    while (now := time.monotonic()) < until:
        last = channel.call(addr, "stats")
        rtts.append(time.monotonic() - now)
        queues.sample()
        time.sleep(max(0.0, min(0.5, until - time.monotonic())))
    return rtts, last


def split(total: int, parts: int) -> list[int]:
    """``total`` viewers over ``parts`` processes, as evenly as possible."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_server(
    kind: str, log_dir: str, before: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start the media worker ("rtp"), the one of another checkout ("before": ``before``) or
    the baseline; its address."""
    root = before if kind == "before" and before else ROOT
    env = dict(os.environ, MEDIA_SECRET=SECRET, MEDIA_HOST_ADDRESSES="127.0.0.1")
    env["MEDIA_LOG_LEVEL"] = "INFO"  # aioice says when a connection's ICE consent expired
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    command = BASELINE if kind == "baseline" else WORKER
    log = open(os.path.join(log_dir, f"{kind}.log"), "w")  # noqa: SIM115 (the child holds it)
    proc = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=log, text=True
    )
    log.close()
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"{kind} server did not start ({line!r}); see {log.name}")
    return proc, line.split()[-1]


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def added_latency(samples: list[list[Any]], sent: dict[int, float]) -> dict[str, Any]:
    """Publisher's last packet of a video frame out -> a viewer's in, matched by payload."""
    found = light.added_latency([(key, at) for key, at in samples], sent)
    return {
        "unmatched": found["unmatched"],
        "video": (found["p50_ms"], found["p95_ms"], found["matched"]),
        "audio": (None, None, 0),  # not sampled: the light viewers decrypt only video
    }


class Bench:
    """The processes of one benchmark run; everything is stopped on exit, whatever happens."""

    def __init__(
        self, hosts: int, window_s: float, late_joins: int, pli: bool, before: Path | None = None
    ) -> None:
        self.before = before  # another checkout whose worker is measured too ("before")
        self.host_count, self.window_s, self.late_joins = hosts, window_s, late_joins
        self.pli = pli  # viewers ask for a keyframe when video does not come
        self.log_dir = tempfile.mkdtemp(prefix="fanout-")
        self.servers: list[subprocess.Popen[str]] = []
        self.children: list[Child] = []
        self.pids: dict[str, list[int]] = {}

    def __enter__(self) -> Bench:
        try:
            self.start_children()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def start_children(self) -> None:
        """The publisher, the viewer processes and the late joiner's, ready to take commands."""
        ctx = mp.get_context("spawn")  # children start clean, not as copies of this process
        self.publisher = Child(ctx, "publisher", Publisher)
        self.children.append(self.publisher)
        self.hosts = [Child(ctx, f"viewers-{i}", ViewerHost) for i in range(self.host_count)]
        self.late_host = Child(ctx, "late-viewer", ViewerHost)
        self.children += [*self.hosts, self.late_host]
        for child in self.children:
            child.send("stats" if child is self.publisher else "ping")
        for child in self.children:
            child.reply(START_TIMEOUT_S)
        self.pids = {
            "publisher": [self.publisher.process.pid],
            "viewers": [c.process.pid for c in [*self.hosts, self.late_host]],
            "bench": [os.getpid()],
        }

    def __exit__(self, *exc: object) -> None:
        for child in self.children:
            with contextlib.suppress(Exception):
                child.stop()
        for proc in self.servers:
            stop_server(proc)
        if exc[0] is not None and exc[0] is not KeyboardInterrupt:
            for name in os.listdir(self.log_dir):
                tail = Path(self.log_dir, name).read_text()[-2000:]
                print(f"--- {name} (tail)\n{tail}", file=sys.stderr)
        for name in os.listdir(self.log_dir):
            os.unlink(os.path.join(self.log_dir, name))
        os.rmdir(self.log_dir)

    def measure(self, kind: str, counts: list[int]) -> list[dict[str, Any]]:
        """The publisher alone, then each N in ``counts``, on a fresh ``kind`` server
        ("rtp": the media worker; "before": the one of ``--before``; or "baseline")."""
        proc, addr = start_server(kind, self.log_dir, self.before)
        self.servers.append(proc)
        channel = MediaChannel([addr])
        try:
            stream = self.publisher.ask("publish", 30, addr=addr)["stream"]
            progress(f"{kind}: publishing to {addr}; warming up")
            time.sleep(WARMUP_S)
            rows = [self.window(kind, proc.pid, addr, 0, [])]
            progress(f"{kind}: alone, server {100 * rows[0]['server_core']:.1f}% of a core")
            for n in counts:
                rows.append(self.with_viewers(kind, proc.pid, addr, stream, n))
                self.wait_for_no_viewers(channel, addr)
                if rows[-1]["publisher_lost"]:
                    progress(f"{kind}: the publisher's connection was lost; no larger N")
                    break
            self.publisher.ask("unpublish", 15)
            channel.call(addr, "close_stream", stream=stream)
        finally:
            stop_server(proc)
        return rows

    def with_viewers(self, kind: str, pid: int, addr: str, stream: str, n: int) -> dict:
        hosts = [h for h, c in zip(self.hosts, split(n, len(self.hosts)), strict=True) if c]
        progress(f"{kind}: {n} viewers joining from {len(hosts)} processes")
        started = time.monotonic()
        for i, (host, count) in enumerate(zip(hosts, split(n, len(hosts)), strict=True)):
            host.send(
                "join",
                addr=addr,
                stream=stream,
                count=count,
                first_user=1000 + 100 * i,
                pli=self.pli,
            )
        joined = [host.reply(120) for host in hosts]
        firsts = [s for r in joined for s in r["first_frame_s"]]
        errors = [e for r in joined for e in r["errors"]]
        progress(f"{kind}: joined in {time.monotonic() - started:.1f} s; settling")
        time.sleep(SETTLE_S)
        row = self.window(kind, pid, addr, n, hosts)
        row["first_frame_s"] = firsts
        row["join_errors"] = errors
        row["pli"] = sum(r["pli"] for r in joined)
        log = Path(self.log_dir, f"{kind}.log").read_text(errors="replace")
        row["consent_expired"] = log.count("Consent to send expired")  # so far, this server
        row["late"] = [self.late_join(addr, stream, 90 + i) for i in range(self.late_joins)]
        ask_all(hosts, "leave", 60)
        progress(f"{kind}: {n} viewers: {summary_line(row)}")
        return row

    def window(self, kind: str, pid: int, addr: str, n: int, hosts: list[Child]) -> dict[str, Any]:
        """Measure ``window_s`` of steady state: CPU by role, fps, latency samples."""
        pids = {"server": [pid], **self.pids}
        pub0 = self.publisher.ask("stats", 10)
        before = Reading.take(pids)
        ask_all(hosts, "mark", 30)
        queues = QueueWatch({"server": [pid], "viewers": self.pids["viewers"]})
        rtts, server = poll_server(MediaChannel([addr]), addr, before.at + self.window_s, queues)
        reports = ask_all(hosts, "report", 60)
        after = Reading.take(pids)
        pub1 = self.publisher.ask("stats", 10)
        sent = self.publisher.ask("sent", 30, since=before.at - 30)
        elapsed = pub1["at"] - pub0["at"]
        usage = before.usage(after)
        return {
            "server": kind,
            "viewers": n,
            "server_core": usage["server"],
            "usage": usage,
            "fps": [f for r in reports for f in r["fps"]],
            "lag_p95_s": max((r["lag_p95_s"] or 0 for r in reports), default=None),
            "latency": added_latency([s for r in reports for s in r["samples"]], sent),
            "pub_fps": (pub1["frames"]["video"] - pub0["frames"]["video"]) / elapsed,
            "pub_kbps": 8 * (pub1["bytes"]["video"] - pub0["bytes"]["video"]) / elapsed / 1000,
            "pub_keyframes": pub1["keyframes"] - pub0["keyframes"],
            "rtt_p95_s": percentile(rtts, 95),
            "rxq_peak": queues.peak,
            "udp_drops": queues.dropped(),
            "lost": n - sum(r["connected"] for r in reports),
            "publisher_lost": pub1["state"] != "connected" or not server.get("streams"),
        }

    def late_join(self, addr: str, stream: str, user: int) -> dict[str, Any]:
        time.sleep(1.0)  # past the worker's keyframe-request interval (0.3 s)
        try:
            return self.late_host.ask(
                "late", LATE_TIMEOUT_S + 30, addr=addr, stream=stream, user=user, pli=self.pli
            )
        except RuntimeError as exc:  # e.g. the stream is gone
            return {"first_frame_s": None, "connected_s": None, "pli": 0, "error": str(exc)}

    def wait_for_no_viewers(self, channel: MediaChannel, addr: str) -> None:
        deadline = time.monotonic() + 15
        while channel.call(addr, "stats")["viewers"] and time.monotonic() < deadline:
            time.sleep(0.2)


# --- the report --------------------------------------------------------------------------------


def late_ms(row: dict[str, Any], key: str = "first_frame_s") -> float | None:
    """Median over the late joiners: ms to their first frame (or to "connected_s")."""
    times = [1000 * r[key] for r in row.get("late", []) if r[key] is not None]
    return statistics.median(times) if times else None


def per_viewer(row: dict[str, Any], alone: dict[str, Any]) -> float | None:
    """Server CPU per viewer in % of one core."""
    if not row["viewers"]:
        return None
    return 100 * (row["server_core"] - alone["server_core"]) / row["viewers"]


def per_viewer_stream(row: dict[str, Any], alone: dict[str, Any]) -> float | None:
    """Server CPU per 30 fps of video delivered to viewers (audio included), in % of one core:
    the cost of a viewer when the source or a starved machine delivers fewer frames."""
    delivered = sum(row["fps"])
    if not row["viewers"] or delivered <= 0:
        return None
    return 100 * (row["server_core"] - alone["server_core"]) * 30 / delivered


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def summary_line(row: dict[str, Any]) -> str:
    fps = row["fps"]
    median = statistics.median(fps) if fps else None
    return (
        f"server {100 * row['server_core']:.0f}% of a core, "
        f"fps min {fmt(min(fps, default=None))} median {fmt(median)}, "
        f"machine {100 * row['usage']['machine']:.0f}% of one core busy"
    )


LEGEND = f"""\
  srv CPU: the server process over the window; /viewer: (srv CPU - srv CPU alone) / N;
    /30fps: the same per 30 video frames/s delivered (the cost of a viewer who got them all).
  got: viewers with a first frame within {FIRST_FRAME_TIMEOUT_S:.0f} s; join 1st s: from their
    view request to their first complete video frame ({JOIN_CONCURRENCY} at once per process).
  late: a viewer joining the steady stream, from its view request: connected (ICE + DTLS) and
    first complete video frame, ms (median of the late joins).
  ms p50/p95: a frame's last packet leaving the publisher -> reaching a viewer, matched by
    payload; "-" for the baseline, which re-encodes (no payload to match).
  pli: viewers that had no video {PLI_AFTER_S:.0f} s after connecting and sent a keyframe request
    (without them they wait; --no-viewer-pli). lost: viewers not connected at the window's end.
  lag p95: how late the viewer processes' event loops woke up (it adds to those latencies);
    srv rtt p95: round trip of a ``stats`` request to the server during the window (its loop).
  rxq KB: the most kernel memory held by packets waiting in the UDP receive queues of the
    server's / all the viewers' sockets (sampled every 0.5 s; per-packet overhead included);
    drops: packets the kernel dropped there during the window (queue full).
  irq: interrupt time (the kernel moving loopback packets), charged to no process;
    others: everything else on this machine (other tenants)."""


def print_report(rows: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    """The tables, notes and the ratio; returns the summary of the largest forwarding run."""
    print(f"\nServer ({cores} cores; CPU in % of one core)")
    print(
        f"{'server':9} {'N':>4} {'got':>4} {'pli':>4} {'lost':>4} {'srv CPU':>8} {'/viewer':>8} "
        f"{'/30fps':>7} "
        f"{'fps min':>8} {'fps med':>8} {'join 1st s med/max':>19} {'late conn/1st ms':>17} "
        f"{'video ms p50/p95':>17} {'audio ms p50/p95':>17}"
    )
    alone: dict[str, dict[str, Any]] = {}
    for row in rows:
        alone.setdefault(row["server"], row)
        print(server_row(row, alone[row["server"]]))
    print("\nLoad (CPU in % of one core, same windows)")
    print(
        f"{'server':9} {'N':>4} {'pub fps':>8} {'pub kbps':>9} {'pub kf':>6} {'publisher':>10} "
        f"{'viewers':>8} {'bench':>6} {'irq':>5} {'others':>7} {'machine':>8} {'lag p95':>8} "
        f"{'srv rtt p95':>11} {'rxq KB srv/view':>15} {'drops srv/view':>14}"
    )
    for row in rows:
        print(load_row(row, cores))
    print(LEGEND)
    return conclusions(rows, alone, cores)


def pair(a: float | None, b: float | None, spec: str = ".0f") -> str:
    return f"{fmt(a, spec)}/{fmt(b, spec)}"


def server_row(row: dict[str, Any], alone: dict[str, Any]) -> str:
    fps = row["fps"]
    firsts = [f for f in row.get("first_frame_s", []) if f is not None]
    video, audio = row["latency"]["video"], row["latency"]["audio"]
    join = pair(statistics.median(firsts) if firsts else None, max(firsts, default=None), ".2f")
    return (
        f"{row['server']:9} {row['viewers']:>4} {len(firsts) if row['viewers'] else '-':>4} "
        f"{row.get('pli', '-'):>4} {row['lost'] if row['viewers'] else '-':>4} "
        f"{100 * row['server_core']:>7.1f}% {fmt(per_viewer(row, alone), '.2f'):>8} "
        f"{fmt(per_viewer_stream(row, alone), '.2f'):>7} "
        f"{fmt(min(fps, default=None)):>8} {fmt(statistics.median(fps) if fps else None):>8} "
        f"{join:>19} {pair(late_ms(row, 'connected_s'), late_ms(row)):>17} "
        f"{pair(video[0], video[1]):>17} {pair(audio[0], audio[1]):>17}"
    )


def load_row(row: dict[str, Any], cores: int) -> str:
    use = {k: 100 * v for k, v in row["usage"].items()}
    lag = fmt(1000 * row["lag_p95_s"] if row["lag_p95_s"] is not None else None, ".0f")
    rtt = fmt(1000 * row["rtt_p95_s"] if row["rtt_p95_s"] is not None else None, ".0f")
    flag = "  SATURATED" if row["usage"]["machine"] >= SATURATED * cores else ""
    return (
        f"{row['server']:9} {row['viewers']:>4} {row['pub_fps']:>8.1f} {row['pub_kbps']:>9.0f} "
        f"{row['pub_keyframes']:>6} {use['publisher']:>9.0f}% {use['viewers']:>7.0f}% "
        f"{use['bench']:>5.0f}% {use['irq']:>4.0f}% {use['others']:>6.0f}% "
        f"{use['machine']:>7.0f}% {lag:>6}ms {rtt:>9}ms "
        f"{pair(row['rxq_peak']['server'] / 1024, row['rxq_peak']['viewers'] / 1024):>15} "
        f"{row['udp_drops']['server']:>7}/{row['udp_drops']['viewers']:<6}{flag}"
    )


def valid(row: dict[str, Any]) -> bool:
    """A window whose publisher kept its connection and sent (nearly) 30 fps."""
    return row["pub_fps"] >= MIN_SOURCE_FPS and not row["publisher_lost"]


def notes(row: dict[str, Any], cores: int) -> list[str]:
    """What limited one window, in words."""
    found = []
    if row["usage"]["machine"] >= SATURATED * cores:
        found.append(
            f"the machine was saturated ({100 * row['usage']['machine']:.0f}% of "
            f"{100 * cores}%): its figures are bounded by the load generator and the other "
            "tenants, not by the server"
        )
    if row["server_core"] >= SATURATED:
        found.append(f"the server used {100 * row['server_core']:.0f}% of one core: its limit")
    if row["pub_fps"] < MIN_SOURCE_FPS:
        found.append(f"the publisher sent only {row['pub_fps']:.1f} fps (starved source)")
    if row["publisher_lost"]:
        found.append(
            "the publisher's connection was lost (the server's log has "
            f"{row.get('consent_expired', 0)} 'Consent to send expired' so far)"
        )
    if row["viewers"] and row["lost"]:
        found.append(f"{row['lost']} viewers were lost")
    late = row.get("late", [])
    if any(r["pli"] for r in late):
        found.append(f"{sum(1 for r in late if r['pli'])} late joiners had to send a PLI")
    found += [f"late join failed: {r['error']}" for r in late[:1] if "error" in r]
    errors = row.get("join_errors") or []
    if errors:
        found.append(f"{len(errors)} joins failed, e.g. {errors[0]}")
    return found


def best(rows: list[dict[str, Any]], first: bool) -> dict[str, Any] | None:
    """The first (or last) valid row; else one whose publisher stayed connected; else any."""
    ordered = rows if first else rows[::-1]
    for usable in (valid, lambda r: not r["publisher_lost"], lambda r: True):
        found = [r for r in ordered if usable(r)]
        if found:
            return found[0]
    return None


def ratio_line(
    base: dict[str, Any], base_alone: dict[str, Any], row: dict[str, Any], alone: dict[str, Any]
) -> str:
    """Baseline over forwarding CPU, per viewer and per 30 fps delivered."""
    ratios = []
    for cost in (per_viewer, per_viewer_stream):
        b, f = cost(base, base_alone), cost(row, alone)
        ratio = b / f if b and f and b > 0 and f > 0 else None
        ratios.append(f"{fmt(b, '.2f')}% / {fmt(f, '.2f')}% = {fmt(ratio, '.1f')}x")
    caveat = "" if valid(base) and valid(row) else "  (a starved or lost window: rough)"
    return (
        f"baseline N={base['viewers']} / {row['server']} N={row['viewers']}: per viewer "
        f"{ratios[0]}; per 30 fps delivered {ratios[1]}{caveat}"
    )


def conclusions(rows: list[dict[str, Any]], alone: dict[str, Any], cores: int) -> dict[str, Any]:
    """Notes on every window, the baseline ratio, and the summary of the largest valid N."""
    print()
    for row in rows:
        for note in notes(row, cores):
            print(f"note: {row['server']} N={row['viewers']}: {note}.")
    forward = [r for r in rows if r["server"] == "rtp" and r["viewers"]]
    baseline = [r for r in rows if r["server"] == "baseline" and r["viewers"]]
    mode = "rtp"
    base = best(baseline, first=True)
    base_pv = per_viewer(base, alone["baseline"]) if base else None
    for row in forward if base else []:
        print(ratio_line(base, alone["baseline"], row, alone[mode]))
    largest = best(forward, first=False) or forward[-1]
    if largest is not forward[-1]:
        print(f"summary: N={largest['viewers']}, the largest N with a usable window")
    fps = largest["fps"]
    usage = largest["usage"]
    load = usage["publisher"] + usage["viewers"] + usage["bench"]
    return {
        "viewers": largest["viewers"],
        "cpu_per_viewer_pct": rounded(per_viewer(largest, alone[mode]), 2),
        "cpu_per_viewer_pct_by_n": by_n(rows, alone, "rtp"),
        "before_cpu_per_viewer_pct_by_n": by_n(rows, alone, "before"),
        "server_share_of_machine": rounded(usage["server"] / max(usage["machine"], 1e-9), 2),
        "load_generator_cores": rounded(load, 2),
        "saturated": any(r["usage"]["machine"] >= SATURATED * cores for r in forward),
        "fps_min": rounded(min(fps, default=None), 1),
        "fps_median": rounded(statistics.median(fps) if fps else None, 1),
        "late_join_first_frame_ms": rounded(late_ms(largest), 0),
        "added_latency_p95_ms": rounded(largest["latency"]["video"][1], 1),
        "baseline_cpu_per_viewer_pct": rounded(base_pv, 2),
    }


def by_n(rows: list[dict[str, Any]], alone: dict[str, Any], kind: str) -> dict[str, Any]:
    """CPU per viewer (% of one core) of ``kind``'s windows, by N."""
    return {
        str(r["viewers"]): rounded(per_viewer(r, alone[kind]), 3)
        for r in rows
        if r["server"] == kind and r["viewers"]
    }


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--baseline-viewers", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--per-process", type=int, default=25, help="viewers per process")
    parser.add_argument("--window", type=float, default=10.0, help="steady window, seconds")
    parser.add_argument("--late-joins", type=int, default=3)
    parser.add_argument(
        "--no-viewer-pli",
        action="store_true",
        help="viewers never ask for a keyframe (by default one without video asks every 1 s)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="also measure the media worker of this checkout (e.g. a git worktree of an older "
        "commit), first, with the same load: rows 'before'",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    counts = sorted(args.viewers)
    hosts = max(1, math.ceil(counts[-1] / args.per_process))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as for Ctrl-C
    started = time.monotonic()
    progress(f"starting the publisher and {hosts} + 1 viewer processes")
    with Bench(hosts, args.window, args.late_joins, not args.no_viewer_pli, args.before) as bench:
        rows = bench.measure("before", counts) if args.before else []
        rows += bench.measure("rtp", counts)
        if args.baseline_viewers:
            rows += bench.measure("baseline", sorted(args.baseline_viewers))
    summary = print_report(rows, os.cpu_count() or 1)
    print(f"(total {time.monotonic() - started:.0f} s)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
