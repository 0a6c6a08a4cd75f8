"""Cascade: one publisher on media worker A, worker B relaying it over one leg, viewers split.

    python bench/cascade.py [--viewers N] [--window S] [--windows K] [--per-process P]

Starts two real ``python -m media.worker`` processes on loopback (A and B), one publisher process
(``fanout.py``'s: aiortc, VP8 pinned at 600 kb/s + Opus, from precomputed frames) publishing to
A, and viewer processes of ``bench/viewers.py``'s light viewers (ICE and DTLS, then RTP only
counted), each holding viewers of both workers, so both halves see the same event-loop delays.
One more process holds two probes, one real aiortc viewer per worker that decodes every frame.

Phases: the publisher alone on A (a window); B's ``relay`` (the leg: B becomes a viewer of A,
with the grants the web app would sign) and a window; N viewers joining, half on A, half on B
(B's over the leg), then ``--windows`` steady windows of ``--window`` seconds (defaults: 60
viewers, 3 windows of 8 s: about a minute in all). Figures per window:

- CPU per viewer on A and on B: the worker's CPU (``/proc/PID/stat``) in the window, minus the
  same in the leg window, over its viewers, in % of one core.
- The leg's cost: A's CPU with the leg minus alone (A serving one more viewer), and B's CPU
  with the leg and no viewers (receiving the stream).
- Added latency through the leg: for each video frame seen by viewers of both workers (frames
  are named by their payload, which both workers forward unchanged), the median arrival at B's
  viewers minus the median arrival at A's; p50 and p95 over the frames of a window. It is what
  a viewer on B waits more than a viewer on A (the leg's hop and B's own forwarding). Beside
  it, each path's added latency (``e2e``): the publisher sending a frame's last packet -> a
  viewer receiving it, p95, through A and through B.
- Viewers ok: light viewers that got at least 90 % of the frames the publisher sent in the
  window; none when B's viewers got frames A's did not (B forwards only what the leg brings),
  or when a probe decoded less than 90 % of the publisher's frame rate.

The machine's CPU is read too (all processes, interrupts, other tenants): a window where the
cores were at least 90 % busy is marked SATURATED, with the load generator's and the other
tenants' shares; one where the viewer processes' event loops woke more than 10 ms late (p95)
is marked STARVED. Such figures describe the machine, not the workers. The summary is the
median over the other windows (over all when every one is marked). Its last line is one JSON
object: ``viewers``, ``viewers_ok`` (the fewest of a window), ``cpu_per_viewer_pct`` (A's and
B's added CPU over all N), ``cpu_per_viewer_pct_a``/``_b``, ``leg_cost_pct_a``/``_b``,
``leg_latency_p50_ms``/``p95_ms``, ``added_latency_p95_ms_a``/``_b``, ``probes_fps``,
``windows`` (those summarized), ``saturated`` and ``starved`` (those marked so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: the app's packages live one level up

import viewers  # noqa: E402
from fanout import (  # noqa: E402
    JOIN_CONCURRENCY,
    LAG_TICK_S,
    ROOM,
    SATURATED,
    SECRET,
    START_TIMEOUT_S,
    WARMUP_S,
    Child,
    Publisher,
    Reading,
    ask_all,
    call,
    progress,
    split,
    start_server,
    stop_server,
)

from media import tokens  # noqa: E402
from media.channel import MediaChannel  # noqa: E402

WORKERS = ("a", "b")
SETTLE_S = 2.0
EDGE_FRAMES = 2  # frames per viewer process that may reach B's viewers in a window, not A's
OK_SHARE = 0.9  # a viewer is ok with at least this share of the publisher's frames
STARVED_MS = 10.0  # viewer processes' event-loop lag p95 above which latencies are the machine's


# --- the viewer processes ---------------------------------------------------------------------


def view_call(addr: str, stream: str, user: int) -> viewers.ViewCall:
    """``user``'s view request for ``stream`` to the worker at ``addr``, given an offer."""
    token = tokens.sign(SECRET, op="view", room=ROOM, user=user, stream=stream)

    async def view(sdp: str) -> dict[str, Any]:
        return await call(MediaChannel([addr]), addr, "view", token=token, sdp=sdp)

    return view


class SplitViewers:
    """A viewer process: light viewers of the stream on both workers, on one event loop."""

    def __init__(self) -> None:
        self.addrs: dict[str, str] = {}
        self.viewers: dict[str, list[viewers.LightViewer]] = {w: [] for w in WORKERS}
        self.started: dict[str, tuple[float, list[int]]] = {}
        self.lags: list[float] = []
        self.probe: asyncio.Task[None] | None = None

    async def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid()}

    def view_call(self, worker: str, stream: str, user: int) -> viewers.ViewCall:
        return view_call(self.addrs[worker], stream, user)

    async def join(
        self, addrs: dict[str, str], stream: str, counts: dict[str, int], first_user: int
    ) -> dict[str, Any]:
        """``counts[w]`` viewers on worker ``w``, all asking at once (``JOIN_CONCURRENCY``
        each), each until its first video frame; the errors of those that got none."""
        self.addrs = addrs
        calls = {
            w: [self.view_call(w, stream, first_user + 100 * i + k) for k in range(counts[w])]
            for i, w in enumerate(WORKERS)
        }
        joined = await asyncio.gather(
            *(viewers.connect(calls[w], JOIN_CONCURRENCY) for w in WORKERS)
        )
        errors = []
        for w, (got, failed) in zip(WORKERS, joined, strict=True):
            self.viewers[w] += got
            errors += [f"{w}: {e}" for e in failed]
        return {"got_video": {w: len(self.viewers[w]) for w in WORKERS}, "errors": errors}

    async def mark(self) -> dict[str, Any]:
        """Start a window on every viewer."""
        self.started = {w: viewers.start_window(self.viewers[w]) for w in WORKERS}
        self.lags = []
        self.probe = asyncio.ensure_future(self.probe_lag())
        return {}

    async def report(self) -> dict[str, Any]:
        """End the window: per worker, each viewer's fps and the frames' arrivals."""
        if self.probe is not None:
            self.probe.cancel()
        out: dict[str, Any] = {"lag_p95_s": viewers.percentile(self.lags, 95)}
        for w in WORKERS:
            figures = viewers.window(self.viewers[w], self.started[w])
            out[w] = {
                "fps": figures["fps"],
                "samples": figures["samples"],
                "connected": figures["connected"],
            }
        return out

    async def probe_lag(self) -> None:
        """How late this event loop wakes up (it delays every packet it reads)."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self.lags.append(time.monotonic() - start - LAG_TICK_S)

    async def leave(self) -> dict[str, Any]:
        """Close every viewer and tell its worker (as the web app would)."""
        for w in WORKERS:
            leaving, self.viewers[w] = self.viewers[w], []
            if not leaving:
                continue
            await asyncio.gather(*(v.close() for v in leaving), return_exceptions=True)
            channel = MediaChannel([self.addrs[w]])
            for viewer in leaving:
                with contextlib.suppress(Exception):
                    await call(channel, self.addrs[w], "close", peer=viewer.peer)
        return {}

    async def shutdown(self) -> None:
        await self.leave()


# --- the decoding probes ----------------------------------------------------------------------


class Probe:
    """One real aiortc viewer: every video frame is decoded (libvpx, aiortc's decoder thread)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for kind in ("video", "audio"):
            self.pc.addTransceiver(kind, direction="recvonly")
        self.peer = ""
        self.decoded = 0
        self.sizes: set[tuple[int, int]] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self.track)

    def track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self.tasks.append(asyncio.ensure_future(self.read(track)))

    async def read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.decoded += 1
                if isinstance(frame, VideoFrame):
                    self.sizes.add((frame.width, frame.height))

    async def open(self, view: viewers.ViewCall) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        reply = await view(self.pc.localDescription.sdp)
        if not reply.get("ok"):
            raise RuntimeError(f"view refused: {reply.get('error')}")
        self.peer = reply["peer"]
        await self.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()


class Probes:
    """The probe process: one decoding viewer per worker."""

    def __init__(self) -> None:
        self.probes: dict[str, Probe] = {}
        self.counts: dict[str, int] = {}
        self.at = 0.0

    async def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid()}

    async def join(self, addrs: dict[str, str], stream: str) -> dict[str, Any]:
        for i, w in enumerate(WORKERS):
            probe = self.probes[w] = Probe()
            await probe.open(view_call(addrs[w], stream, 50 + i))
        return {}

    async def mark(self) -> dict[str, Any]:
        self.at, self.counts = time.monotonic(), {w: p.decoded for w, p in self.probes.items()}
        return {}

    async def report(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.at
        return {
            w: {"fps": (p.decoded - self.counts[w]) / elapsed, "sizes": sorted(p.sizes)}
            for w, p in self.probes.items()
        }

    async def leave(self) -> dict[str, Any]:
        probes, self.probes = self.probes, {}
        await asyncio.gather(*(p.close() for p in probes.values()), return_exceptions=True)
        return {}

    async def shutdown(self) -> None:
        await self.leave()


# --- the coordinator --------------------------------------------------------------------------


def leg_latency(reports: list[dict[str, Any]]) -> list[float]:
    """Per video frame seen on both workers: median arrival on B minus on A, in ms."""
    arrivals: dict[str, dict[int, list[float]]] = {w: {} for w in WORKERS}
    for report in reports:
        for w in WORKERS:
            for key, at in report[w]["samples"]:
                arrivals[w].setdefault(key, []).append(at)
    return [
        1000 * (statistics.median(arrivals["b"][key]) - statistics.median(at_a))
        for key, at_a in arrivals["a"].items()
        if key in arrivals["b"]
    ]


class Cascade:
    """The processes of one run; everything is stopped on exit, whatever happens."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log_dir = tempfile.mkdtemp(prefix="cascade-")
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.addrs: dict[str, str] = {}
        self.children: list[Child] = []
        self.counts = dict.fromkeys(WORKERS, 0)
        self.join_errors: list[str] = []

    def __enter__(self) -> Cascade:
        try:
            self.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def start(self) -> None:
        for w in WORKERS:
            os.mkdir(os.path.join(self.log_dir, w))  # one log folder each: worker a, b
            self.procs[w], self.addrs[w] = start_server("rtp", os.path.join(self.log_dir, w))
        ctx = mp.get_context("spawn")
        hosts = max(1, math.ceil(self.args.viewers / self.args.per_process))
        progress(f"workers at {self.addrs}; starting the publisher, {hosts} viewer processes")
        self.publisher = Child(ctx, "publisher", Publisher)
        self.hosts = [Child(ctx, f"viewers-{i}", SplitViewers) for i in range(hosts)]
        self.probes = Child(ctx, "probes", Probes)
        self.children = [self.publisher, *self.hosts, self.probes]
        for child in self.children:
            child.send("stats" if child is self.publisher else "ping")
        for child in self.children:
            child.reply(START_TIMEOUT_S)
        self.pids = {
            **{f"worker_{w}": [p.pid] for w, p in self.procs.items()},
            "publisher": [self.publisher.process.pid],
            "viewers": [c.process.pid for c in [*self.hosts, self.probes]],
            "bench": [os.getpid()],
        }

    def __exit__(self, *exc: object) -> None:
        for child in self.children:
            with contextlib.suppress(Exception):
                child.stop()
        for proc in self.procs.values():
            stop_server(proc)
        if exc[0] is not None and exc[0] is not KeyboardInterrupt:
            for log in sorted(Path(self.log_dir).glob("*/*.log")):
                tail = log.read_text(errors="replace")[-2000:]
                print(f"--- worker {log.parent.name} (tail)\n{tail}", file=sys.stderr)
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def worker_call(self, w: str, op: str, **fields: Any) -> dict[str, Any]:
        return MediaChannel([self.addrs[w]]).call(self.addrs[w], op, **fields)

    def run(self) -> dict[str, Any]:
        """Every phase; the figures of each window."""
        stream = self.publisher.ask("publish", 30, addr=self.addrs["a"])["stream"]
        progress("publishing to A; warming up")
        time.sleep(WARMUP_S)
        alone = self.window([])
        progress(f"alone: A {100 * alone['usage']['worker_a']:.1f}% of a core")
        self.relay(stream)
        leg = self.window([])
        usage = leg["usage"]
        progress(f"leg: A {100 * usage['worker_a']:.1f}%, B {100 * usage['worker_b']:.1f}%")
        self.join(stream)
        time.sleep(SETTLE_S)
        windows = []
        for i in range(self.args.windows):
            windows.append(self.window([*self.hosts, self.probes]))
            progress(f"window {i + 1}: {summary_line(windows[-1], leg, self.counts)}")
        ask_all([*self.hosts, self.probes], "leave", 60)
        self.worker_call("b", "close_stream", stream=stream)
        self.publisher.ask("unpublish", 15)
        self.worker_call("a", "close_stream", stream=stream)
        return {"alone": alone, "leg": leg, "windows": windows, "counts": self.counts}

    def relay(self, stream: str) -> None:
        """B's leg to A (the grants the web app would sign), until B receives video."""
        origin_token = tokens.sign(SECRET, op="view", room=ROOM, user=0, stream=stream)
        token = tokens.sign(
            SECRET,
            op="relay",
            room=ROOM,
            user=0,
            stream=stream,
            origin=self.addrs["a"],
            origin_token=origin_token,
        )
        reply = self.worker_call("b", "relay", token=token)
        if not reply.get("ok"):
            raise RuntimeError(f"relay refused: {reply.get('error')}")
        deadline = time.monotonic() + 20
        while self.worker_call("b", "stats")["frames"].get(stream, {}).get("video", 0) < 30:
            if time.monotonic() > deadline:
                raise RuntimeError("the leg brought B no video in 20 s")
            time.sleep(0.2)
        progress("B relays the stream")

    def join(self, stream: str) -> None:
        """Every viewer process's viewers, half on each worker, then the probes."""
        per_host = split(self.args.viewers, len(self.hosts))
        started = time.monotonic()
        for i, (host, n) in enumerate(zip(self.hosts, per_host, strict=True)):
            counts = dict(zip(WORKERS, split(n, len(WORKERS)), strict=True))
            for w in WORKERS:
                self.counts[w] += counts[w]
            first = 1000 * (i + 1)
            host.send("join", addrs=self.addrs, stream=stream, counts=counts, first_user=first)
        joined = [host.reply(180) for host in self.hosts]
        self.probes.ask("join", 60, addrs=self.addrs, stream=stream)
        self.join_errors = [e for r in joined for e in r["errors"]]
        got = {w: sum(r["got_video"][w] for r in joined) for w in WORKERS}
        progress(f"viewers with video {got} of {self.counts} in {time.monotonic() - started:.1f} s")
        for error in self.join_errors[:5]:
            progress(f"join error: {error}")

    def window(self, hosts: list[Child]) -> dict[str, Any]:
        """``--window`` seconds of steady state: CPU by role, the viewers' figures."""
        pub0 = self.publisher.ask("stats", 10)
        before = Reading.take(self.pids)
        ask_all(hosts, "mark", 30)
        time.sleep(self.args.window)
        reports = ask_all(hosts, "report", 60)
        after = Reading.take(self.pids)
        pub1 = self.publisher.ask("stats", 10)
        # {payload key: when the publisher sent it}, for the added latency of each path
        sent = {int(k): t for k, t in self.publisher.ask("sent", 30, since=before.at - 5).items()}
        elapsed = pub1["at"] - pub0["at"]
        views = [r for h, r in zip(hosts, reports, strict=True) if h is not self.probes]
        samples = {w: [s for r in views for s in r[w]["samples"]] for w in WORKERS}
        return {
            "usage": before.usage(after),
            "pub_fps": (pub1["frames"]["video"] - pub0["frames"]["video"]) / elapsed,
            "publisher_state": pub1["state"],
            "fps": {w: [f for r in views for f in r[w]["fps"]] for w in WORKERS},
            "connected": {w: sum(r[w]["connected"] for r in views) for w in WORKERS},
            "leg_ms": leg_latency(views),
            "keys": {w: {k for k, _ in samples[w]} for w in WORKERS},
            "added": {w: viewers.added_latency(samples[w], sent) for w in WORKERS},
            "processes": len(views),
            "lag_p95_s": max((r["lag_p95_s"] or 0 for r in views), default=None),
            "probes": reports[-1] if hosts else {},
        }


# --- the report --------------------------------------------------------------------------------


def per_viewer(row: dict[str, Any], leg: dict[str, Any], w: str, n: int) -> float | None:
    """Worker ``w``'s CPU added by its ``n`` viewers, per viewer, in % of one core."""
    key = f"worker_{w}"
    return 100 * (row["usage"][key] - leg["usage"][key]) / n if n else None


def saturated(row: dict[str, Any], cores: int) -> bool:
    return bool(row["usage"]["machine"] >= SATURATED * cores)


def ok_viewers(row: dict[str, Any]) -> int:
    """Viewers with ``OK_SHARE`` of the publisher's frames; none when B's viewers got frames
    that A's did not (a window's edges excepted: a frame may reach A before it starts and B
    after, ``EDGE_FRAMES`` per viewer process)."""
    floor = OK_SHARE * row["pub_fps"]
    if len(row["keys"]["b"] - row["keys"]["a"]) > EDGE_FRAMES * row["processes"]:
        return 0
    return sum(f >= floor for w in WORKERS for f in row["fps"][w])


def summary_line(row: dict[str, Any], leg: dict[str, Any], counts: dict[str, int]) -> str:
    usage, legs = row["usage"], row["leg_ms"]
    cost = {w: fmt(per_viewer(row, leg, w, counts[w])) for w in WORKERS}
    fps = {w: fmt(min(row["fps"][w], default=None), ".1f") for w in WORKERS}
    p50, p95 = (fmt(viewers.percentile(legs, p), ".1f") for p in (50, 95))
    probes = {w: round(p["fps"], 1) for w, p in row["probes"].items()}
    return (
        f"CPU A {100 * usage['worker_a']:.0f}% B {100 * usage['worker_b']:.0f}% "
        f"(/viewer {cost['a']}% {cost['b']}%), viewers {100 * usage['viewers']:.0f}%, "
        f"machine {100 * usage['machine']:.0f}%; fps min A {fps['a']} B {fps['b']}; "
        f"leg p50/p95 {p50}/{p95} ms ({len(legs)} frames); probes decode {probes} fps"
    )


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def figures(row: dict[str, Any], leg: dict[str, Any], counts: dict[str, int], cores: int) -> dict:
    """One window's figures (CPU in % of one core, latencies in ms)."""
    usage, n = row["usage"], counts["a"] + counts["b"]
    added = sum(usage[f"worker_{w}"] - leg["usage"][f"worker_{w}"] for w in WORKERS)
    probes_ok = all(p["fps"] >= OK_SHARE * row["pub_fps"] for p in row["probes"].values())
    return {
        "per_viewer": 100 * added / n if n else None,
        "a": per_viewer(row, leg, "a", counts["a"]),
        "b": per_viewer(row, leg, "b", counts["b"]),
        "p50": viewers.percentile(row["leg_ms"], 50),
        "p95": viewers.percentile(row["leg_ms"], 95),
        "ok": ok_viewers(row) if probes_ok else 0,
        "e2e_a": row["added"]["a"]["p95_ms"],
        "e2e_b": row["added"]["b"]["p95_ms"],
        "probes": min((p["fps"] for p in row["probes"].values()), default=0.0),
        "saturated": saturated(row, cores),
        "starved": row["lag_p95_s"] is not None and 1000 * row["lag_p95_s"] > STARVED_MS,
        "machine": 100 * usage["machine"] / cores,  # % of all cores
        "load": 100 * sum(usage[r] for r in ("publisher", "viewers", "bench")),
        "others": 100 * usage["others"],
        "pub_fps": row["pub_fps"],
        "lag": None if row["lag_p95_s"] is None else 1000 * row["lag_p95_s"],
    }


HEADER = (
    "win  /viewer  A/viewer  B/viewer  leg p50  leg p95   ok  probes  pub fps  load gen  "
    "others  machine  lag p95  e2e p95 A/B"
)


def table_row(i: int, r: dict[str, Any]) -> str:
    return (
        f"{i:>3}  {fmt(r['per_viewer']):>6}%  {fmt(r['a']):>7}%  {fmt(r['b']):>7}%  "
        f"{fmt(r['p50'], '.1f'):>4} ms  {fmt(r['p95'], '.1f'):>4} ms  {r['ok']:>3}  "
        f"{r['probes']:>6.1f}  {r['pub_fps']:>7.1f}  {r['load']:>7.0f}%  {r['others']:>5.0f}%  "
        f"{r['machine']:>6.0f}%  {fmt(r['lag'], '.1f'):>4} ms  "
        f"{fmt(r['e2e_a'], '.1f')}/{fmt(r['e2e_b'], '.1f')} ms"
        + ("  SATURATED" if r["saturated"] else "  STARVED" if r["starved"] else "")
    )


def report(result: dict[str, Any], cores: int) -> dict[str, Any]:
    """Print the table and notes; the summary (medians over the windows)."""
    alone, leg, windows, counts = (result[k] for k in ("alone", "leg", "windows", "counts"))
    rows = [figures(row, leg, counts, cores) for row in windows]
    leg_a = 100 * (leg["usage"]["worker_a"] - alone["usage"]["worker_a"])
    leg_b = 100 * leg["usage"]["worker_b"]
    print()
    print(f"viewers: {counts['a']} on A (the origin), {counts['b']} on B (over the leg)")
    print(f"publisher alone: A {100 * alone['usage']['worker_a']:.1f}% of a core")
    print(f"the leg: A +{leg_a:.1f}% (serving it), B {leg_b:.1f}% (receiving it)")
    print(HEADER)
    for i, r in enumerate(rows):
        print(table_row(i + 1, r))
    for i, r in enumerate(rows):
        if r["saturated"]:
            print(
                f"note: window {i + 1} SATURATED the machine ({r['machine']:.0f}% of {cores} "
                f"cores busy; the load generator {r['load']:.0f}% of a core, other tenants "
                f"{r['others']:.0f}%): its figures describe the machine, not the workers"
            )
        elif r["starved"]:
            print(
                f"note: window {i + 1}: the viewer processes STARVED (their event loops woke "
                f"{r['lag']:.0f} ms late at p95; other tenants {r['others']:.0f}% of a core): "
                "its latencies are the machine's"
            )
    if result.get("join_errors"):
        print(f"note: {len(result['join_errors'])} viewers got no video when joining")
    flagged = {
        "saturated": sum(r["saturated"] for r in rows),
        "starved": sum(r["starved"] and not r["saturated"] for r in rows),
    }
    used = [r for r in rows if not r["saturated"] and not r["starved"]]
    if used and len(used) < len(rows):
        print(f"summary: the {len(used)} windows where the machine kept up")
    rows = used or rows
    return {
        "viewers": counts["a"] + counts["b"],
        "viewers_ok": int(min(r["ok"] for r in rows)) if rows else 0,
        "cpu_per_viewer_pct": rounded(median([r["per_viewer"] for r in rows])),
        "cpu_per_viewer_pct_a": rounded(median([r["a"] for r in rows])),
        "cpu_per_viewer_pct_b": rounded(median([r["b"] for r in rows])),
        "leg_cost_pct_a": rounded(leg_a),
        "leg_cost_pct_b": rounded(leg_b),
        "leg_latency_p50_ms": rounded(median([r["p50"] for r in rows]), 1),
        "leg_latency_p95_ms": rounded(median([r["p95"] for r in rows]), 1),
        "added_latency_p95_ms_a": rounded(median([r["e2e_a"] for r in rows]), 1),
        "added_latency_p95_ms_b": rounded(median([r["e2e_b"] for r in rows]), 1),
        "probes_fps": rounded(median([r["probes"] for r in rows]), 1),
        "windows": len(rows),
        **flagged,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=60, help="viewers, split between A and B")
    parser.add_argument("--per-process", type=int, default=20, help="viewers per process")
    parser.add_argument("--window", type=float, default=8.0, help="steady window, seconds")
    parser.add_argument("--windows", type=int, default=3, help="windows with viewers")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as for Ctrl-C
    started = time.monotonic()
    with Cascade(args) as bench:
        result = bench.run()
        result["join_errors"] = bench.join_errors
    summary = report(result, os.cpu_count() or 1)
    print(f"(total {time.monotonic() - started:.0f} s)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
