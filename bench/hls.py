"""The HLS tier end to end: glass-to-glass latency in Chromium, the packager's CPU per stream,
and many HLS clients pulling from nginx.

    python bench/hls.py                       # ~9 minutes: H.264 and VP8, 1,000 clients
    python bench/hls.py --quick               # a smoke run (~3 minutes, 100 clients)
    python bench/hls.py --clients 2000 --load-seconds 60 --codecs video/H264

Starts ``python app.py`` (demo data, one media worker; ``tests/live.py``'s ``LiveServer``) and
Debian's nginx with the site of ``deploy/`` in front of it (``tests.live.Nginx``: TLS, the tier's
files served from the data folder after the app's ``auth_request``). The demo host makes a stream
key; for each codec (``--codecs``: H.264, then VP8) a process of ``bench/hls_clock.py``
publishes over WHIP into the demo all-hands a 640x360 30 fps camera whose frames carry the wall
clock as painted blocks; the app starts the tier as it does for an encoder; an attendee asks for
the signed playlist URL (``hls.url``). Then:

1. **Packager CPU**: the media worker's CPU (``/proc/PID/stat``) over ``--window`` seconds with
   the tier on, then with it stopped (the worker's ``hls_stop``, signed as the app signs it),
   ``--pairs`` times; the tier's cost is the median of on minus the median of off, in % of one
   core. H.264 in is remuxed; VP8 in is decoded and encoded once with libx264.
2. **Glass-to-glass latency**: Chromium (headless, ``tests.live.launch_chromium``) opens a page
   of the bench's own on nginx's origin (``hls_clock.PAGE``, served by Playwright's router)
   that plays the signed URL through nginx with the vendored hls.js, in four configurations
   (``CONFIGS``): the attendee page's own, hls.js's defaults (LL-HLS on),
   ``lowLatencyMode: false`` (a plain HLS player) and tuned to keep to the live edge. Each
   presented frame's
   clock is read back from a canvas: ``Date.now()`` minus the painted time, over
   ``--latency-seconds`` after ``--warmup`` seconds of playing. p50 / p95 of those samples,
   with hls.js's own estimate beside them (``hls.latency``; and ``Date.now() - playingDate``
   where the playlist has ``#EXT-X-PROGRAM-DATE-TIME``), frames whose clock did not read
   (CRC), and stalls (``waiting`` after playing started). Whether the playlist has partial
   segments (``EXT-X-PART``, LL-HLS) is printed: the bench measures whatever the packager makes.
3. **Many clients** (first codec only): ``bench/hls_clients.py`` processes (``--client-procs``)
   with ``--clients`` keep-alive HTTP/1.1 clients in all, each reloading the playlist every
   second through nginx and fetching every new segment once, for ``--load-seconds``; then as
   many LL-HLS clients (blocking playlist reloads, every part once; ``--client-modes``), each
   with a signed URL of its own (as viewers have: nginx caches the app's check per token, the
   playlist for all). Counted: segments served (the clients' and nginx's access log), errors
   (anything but 200, timeouts, broken connections), bytes, fetch times; CPU of nginx, the app
   (the playlists and token checks that nginx's cache does not answer), the media worker, the
   publisher and the load generator; the whole machine's busy share. The load generator is
   *saturated* when its event loop woke up over 100 ms late (p95) or it used ≥ 90 % of a core
   per process: then fetch times include its own wait, and the count of clients is bounded by
   this machine, not by nginx.

Every packet stays on 127.0.0.1. Every process started is stopped at the end, also on Ctrl-C.
The last line is one JSON object: ``latency_p50_s`` (H.264, the page's hls.js configuration),
``latency_p95_s``, ``latency_p50_s_default``, ``latency_p50_s_plain``, ``latency_p50_s_tuned``,
``packager_cpu_pct`` (H.264 in), ``packager_cpu_pct_vp8``,
``clients``, ``errors``, ``segments_served``, ``segment_fetch_p95_ms``, ``nginx_cpu_pct``,
``app_cpu_pct``, ``load_generator_cpu_pct``, ``load_generator_saturated``, ``ll_hls_parts`` and
the rest of what is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # run as a script: the app's packages and the benches

from fanout import cpu_seconds, machine_seconds, percentile  # noqa: E402
from hls_clock import PAGE  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from media import tokens  # noqa: E402
from media.channel import MediaChannel  # noqa: E402
from tests.live import (  # noqa: E402
    CHROMIUM_ARGS,
    LiveServer,
    Nginx,
    group_members,
    insecure_tls,
    launch_chromium,
    parent_death_signal,
)
from tests.webinar.test_whip_live import BROADCAST, EMPLOYEE, HOST, ROOM, Attendee, make_key  # noqa: E402

SECRET_KEY = "hls-bench-secret-key"
MEDIA_SECRET = "hls-bench-media-secret"
PAGE_PATH = "/bench-hls-clock"
# hls.js configurations: its defaults (1.7: lowLatencyMode on, so parts are used where the
# playlist has them), a player without LL-HLS (segments only, three target durations behind),
# and one tuned to keep to the live edge: it plays up to 1.5x (default 1x: never) to catch up
# with its target latency (PART-HOLD-BACK where the playlist has parts); and the attendee
# page's own (static/js/room/tier.js HLS_CONFIG, copied here: keep the two alike).
CONFIGS: dict[str, dict[str, Any]] = {
    "page": {
        "lowLatencyMode": True,
        "maxLiveSyncPlaybackRate": 1.2,
        "backBufferLength": 10,
    },
    "default": {},
    "plain": {"lowLatencyMode": False},
    "tuned": {"lowLatencyMode": True, "maxLiveSyncPlaybackRate": 1.5},
}
READY_TIMEOUT_S = 40.0
FIRST_SAMPLE_TIMEOUT_S = 45.0
SATURATED_LAG_MS = 100.0


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the stack ---------------------------------------------------------------------------------


def session_cookie(user_id: int) -> str:
    """A session cookie for ``user_id`` of the bench's server (signed with its secret key), as
    ``tests/media/test_app_media.py``'s ``cookies`` fixture makes it."""
    from lectern import create_app

    with tempfile.TemporaryDirectory(prefix="lectern-hls-cookie-") as folder:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": SECRET_KEY,
                "DATA_DIR": folder,
                "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "REDIS_URL": None,
                "DEMO_DATA": False,
            }
        )
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        name = app.config["SESSION_COOKIE_NAME"]
        return f"{name}={serializer.dumps({'_user_id': str(user_id), '_fresh': True})}"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


class Meter:
    """CPU seconds of named groups of processes, and of the whole machine, between marks."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.marks: tuple[float, dict[str, float], float] | None = None

    def read(self) -> tuple[float, dict[str, float], float]:
        used = {name: sum(cpu_seconds(p) for p in pids()) for name, pids in self.groups.items()}
        return time.monotonic(), used, machine_seconds()[0]

    def start(self) -> None:
        self.marks = self.read()

    def pct(self) -> dict[str, float]:
        """% of one core per group since ``start``, and ``machine`` (% of all cores)."""
        assert self.marks is not None
        now, used, busy = self.read()
        then, used0, busy0 = self.marks
        wall = max(now - then, 1e-6)
        out = {name: round((used[name] - used0[name]) / wall * 100, 1) for name in used}
        out["machine"] = round((busy - busy0) / wall / (os.cpu_count() or 1) * 100, 1)
        return out


class Publisher:
    """A ``bench/hls_clock.py`` process publishing the painted clock over WHIP."""

    def __init__(self, endpoint: str, key: str, codec: str) -> None:
        command = [sys.executable, str(ROOT / "bench" / "hls_clock.py")]
        command += ["--endpoint", endpoint, "--key", key, "--codec", codec]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=parent_death_signal(),
        )
        reply = read_json_line(self.proc, 60)
        if reply.get("status") != 201:
            self.stop()
            raise RuntimeError(f"WHIP publish refused: {reply}")

    def stop(self) -> dict[str, Any]:
        """Close its stdin (it ends the WHIP session); its last line (frames sent)."""
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            return read_json_line(self.proc, 20)
        except (RuntimeError, ValueError):
            return {}
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def read_json_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The next line ``proc`` prints that is a JSON object (within ``timeout`` seconds)."""
    found: list[dict[str, Any]] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                found.append(json.loads(line))
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        raise RuntimeError(f"no JSON line from process {proc.pid} within {timeout} s")
    return found[0]


class Bench:
    """The server, nginx, the worker's channel, the attendee asking for URLs."""

    def __init__(self, stack: contextlib.ExitStack, tmp: Path) -> None:
        env = {
            "SECRET_KEY": SECRET_KEY,
            "MEDIA_SECRET": MEDIA_SECRET,
            "MEDIA_WORKERS": "1",
            "DEMO_DATA": "true",
            "MEDIA_HOST_ADDRESSES": "127.0.0.1",
        }
        progress("starting the app (demo data, one media worker) and nginx")
        self.server = stack.enter_context(LiveServer(tmp / "data", env, die_with_parent=True))
        self.media = self.server.wait_for_output(r"^Media workers: (\S+)$").group(1)
        self.channel = MediaChannel([self.media], timeout=30)
        self.front = stack.enter_context(
            Nginx(tmp / "nginx", [self.server.port], data_dir=self.server.data_dir)
        )
        self.folder = self.server.data_dir / "hls" / str(BROADCAST)
        self.endpoint, self.key = make_key(self.server, session_cookie(HOST))
        self.cookie = session_cookie(EMPLOYEE)

    def worker_pids(self) -> list[int]:
        assert self.server.proc is not None
        members = group_members(self.server.proc.pid)
        return [p for p in members if "media.worker" in cmdline(p)]

    def nginx_pids(self) -> list[int]:
        assert self.front.proc is not None
        return [self.front.proc.pid, *children(self.front.proc.pid)]

    def app_pids(self) -> list[int]:
        assert self.server.proc is not None
        return [self.server.proc.pid]

    def hls(self, op: str, stream: str) -> dict[str, Any]:
        """The worker's ``hls_start`` / ``hls_stop``, granted as ``rooms.hls`` grants it."""
        grant = tokens.sign(MEDIA_SECRET, op="hls", room=ROOM, stream=stream, dir=str(self.folder))
        reply: dict[str, Any] = self.channel.call(self.media, op, token=grant)
        return reply

    def playlist(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=10, context=insecure_tls()) as response:
            return str(response.read().decode())

    def wait_playlist(self, url: str, segments: int = 3) -> str:
        deadline = time.monotonic() + READY_TIMEOUT_S
        text = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                text = self.playlist(url)
                if len(segment_names(text)) >= segments:
                    return text
            time.sleep(0.5)
        time.sleep(1)  # and the app has heard of it
        raise RuntimeError(f"the playlist has no {segments} segments after {READY_TIMEOUT_S} s")


def segment_names(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def last_segment(playlist: str) -> int:
    """The media sequence number of the playlist's last complete segment."""
    first = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist, re.MULTILINE)
    return (int(first.group(1)) if first else 0) + len(segment_names(playlist)) - 1


def describe_playlist(text: str, folder: Path) -> dict[str, Any]:
    """What the packager makes: parts or not, program date-time, segment lengths and sizes."""
    durations = [float(d) for d in re.findall(r"^#EXTINF:([\d.]+)", text, re.MULTILINE)]
    target = re.search(r"^#EXT-X-TARGETDURATION:(\d+)", text, re.MULTILINE)
    sizes = [p.stat().st_size for p in folder.glob("seg*.m4s")]
    return {
        "parts": "#EXT-X-PART:" in text,
        "program_date_time": "#EXT-X-PROGRAM-DATE-TIME" in text,
        "target_duration": int(target.group(1)) if target else None,
        "segment_s": round(statistics.median(durations), 2) if durations else None,
        "longest_s": round(max(durations), 2) if durations else None,
        "segment_kb": round(statistics.median(sizes) / 1024, 1) if sizes else None,
    }


# --- the measurements --------------------------------------------------------------------------


def packager_cpu(bench: Bench, stream: str, window: float, pairs: int) -> dict[str, Any]:
    """The worker's CPU with the tier on and off, ``pairs`` times; it is left on."""
    worker = Meter({"worker": bench.worker_pids})
    on: list[float] = []
    off: list[float] = []
    for _ in range(pairs):
        worker.start()
        time.sleep(window)
        on.append(worker.pct()["worker"])
        assert bench.hls("hls_stop", stream)["ok"]
        time.sleep(1)
        worker.start()
        time.sleep(window)
        off.append(worker.pct()["worker"])
        assert bench.hls("hls_start", stream)["ok"]
        time.sleep(2)  # the first keyframe, the muxer opened
    return {
        "worker_pct_on": on,
        "worker_pct_off": off,
        "packager_pct": round(statistics.median(on) - statistics.median(off), 1),
    }


def latency(
    browser: Any, origin: str, url: str, config: dict[str, Any], warmup: float, seconds: float
) -> dict[str, Any]:
    """Glass-to-glass latency of one hls.js configuration, in a fresh browser context."""
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.route(
            f"{origin}{PAGE_PATH}*",
            lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE),
        )
        query = urllib.parse.urlencode({"src": url, "config": json.dumps(config)})
        page.goto(f"{origin}{PAGE_PATH}?{query}")
        try:
            page.wait_for_function(
                "window.__clock && window.__clock.samples.length > 0",
                timeout=FIRST_SAMPLE_TIMEOUT_S * 1000,
            )
        except PlaywrightTimeout:
            state = page.evaluate("window.__clock && {...window.__clock, samples: undefined}")
            progress(f"no frame with a readable clock in {FIRST_SAMPLE_TIMEOUT_S:g} s: {state}")
            state = {**(state or {}), "samples": []}
            return latency_row(state, seconds, failed=True)
        time.sleep(warmup)
        since = time.time() * 1000
        time.sleep(seconds)
        state = page.evaluate(
            """(since) => {
              const s = window.__clock;
              return {samples: s.samples.filter((x) => x[0] >= since), unreadable: s.unreadable,
                      errors: s.errors, stalls: s.stalls, parts: s.parts, target: s.target,
                      pdt: s.programDateTime};
            }""",
            since,
        )
    finally:
        context.close()
    return latency_row(state, seconds)


def latency_row(state: dict[str, Any], seconds: float, failed: bool = False) -> dict[str, Any]:
    """Figures of one latency run from the page's ``window.__clock``."""
    samples = state["samples"]
    clock = [s[1] / 1000 for s in samples]
    estimate = [s[2] for s in samples if s[2] is not None]
    behind = [s[3] / 1000 for s in samples if s[3] is not None]
    return {
        "p50_s": rounded(statistics.median(clock) if clock else None, 2),
        "p95_s": rounded(percentile(clock, 95), 2),
        "min_s": rounded(min(clock) if clock else None, 2),
        "max_s": rounded(max(clock) if clock else None, 2),
        "fps": round(len(samples) / seconds, 1),
        "unreadable": state.get("unreadable", 0),
        "stalls": state.get("stalls", 0),
        "failed": failed,
        "hls_latency_s": rounded(statistics.median(estimate) if estimate else None, 2),
        "behind_program_date_s": rounded(statistics.median(behind) if behind else None, 2),
        "player_parts": state.get("parts"),
        "errors": sorted(set(state.get("errors", [])))[:5],
    }


def percent_with(lines: list[str], mark: str) -> float | None:
    """The % of ``lines`` that hold ``mark`` (None for no lines)."""
    return round(100 * sum(mark in line for line in lines) / len(lines), 1) if lines else None


def many_clients(bench: Bench, url: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """``--clients`` HLS clients (``mode``: plain or ll) through nginx for ``--load-seconds``,
    and everyone's CPU."""
    procs = []
    shares = [args.clients // args.client_procs] * args.client_procs
    shares[0] += args.clients - sum(shares)
    tokens_file = bench.folder.parent / f"tokens-{mode}.txt"  # a token per client, as viewers
    expires = int(time.time()) + 4 * 3600
    tokens_file.write_text(
        "\n".join(
            tokens.sign(
                SECRET_KEY, op="hls-watch", broadcast=BROADCAST, user=10_000 + n, exp=expires
            )
            for n in range(args.clients)
        )
    )
    for number, share in enumerate(shares):
        command = [sys.executable, str(ROOT / "bench" / "hls_clients.py"), "--url", url]
        command += ["--tokens", str(tokens_file)]
        command += ["--token-offset", str(sum(shares[:number]))]
        command += ["--clients", str(share), "--duration", str(args.load_seconds)]
        command += ["--ll"] if mode == "ll" else []
        procs.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=parent_death_signal(),
            )
        )
    try:
        ready = [read_json_line(p, 120) for p in procs]
        log_start = bench.front.access_log.stat().st_size
        meter = Meter(
            {
                "nginx": bench.nginx_pids,
                "app": bench.app_pids,
                "worker": bench.worker_pids,
                "load_generator": lambda: [p.pid for p in procs],
            }
        )
        meter.start()
        on_disk = bench.folder / "index.m3u8"  # not over HTTP: the clients keep nginx busy
        first_msn = last_segment(on_disk.read_text())
        time.sleep(args.load_seconds)
        produced = last_segment(on_disk.read_text()) - first_msn
        results = [read_json_line(p, 120) for p in procs]
        cpu = meter.pct()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    with bench.front.access_log.open("rb") as log:
        log.seek(log_start)
        lines = log.read().decode(errors="replace").splitlines()
    served = sum(1 for line in lines if '.m4s HTTP/1.1" 200 ' in line)
    playlists = [line for line in lines if "index.m3u8" in line]
    checked = [line for line in lines if "hls_auth=" in line and "hls_auth=-" not in line]
    seconds = args.load_seconds  # no client starts a request after it (held ones end later)
    total_bytes = sum(r["bytes"] for r in results)
    merged: dict[str, int] = {}
    for r in results:
        for kind, count in r["error_kinds"].items():
            merged[kind] = merged.get(kind, 0) + count
    lag = max((r["loop_lag_p95_ms"] or 0) for r in results)
    per_proc = cpu["load_generator"] / len(procs)
    return {
        "mode": mode,
        "clients": args.clients,
        "connected": sum(r["connected"] for r in ready),
        "connect_s": round(max(r["connect_s"] for r in ready), 1),
        "seconds": seconds,
        "requests": sum(sum(r["requests"].values()) for r in results),
        "produced": produced,
        "segments": sum(r["segments"] for r in results),
        "parts": sum(r["parts"] for r in results),
        "segments_served_nginx": served,
        # shares of requests that nginx's cache answered without the app
        "playlist_cache_hit_pct": percent_with(playlists, "cache=HIT"),
        "auth_cache_hit_pct": percent_with(checked, "hls_auth=HIT"),
        "errors": sum(r["errors"] for r in results),
        "error_kinds": merged,
        "reconnects": sum(r["reconnects"] for r in results),
        "mb_per_s": round(total_bytes / seconds / 1e6, 1),
        "segment_ms_p50": max(r["segment_ms_p50"] or 0 for r in results),
        "segment_ms_p95": max(r["segment_ms_p95"] or 0 for r in results),
        "playlist_ms_p50": max(r["playlist_ms_p50"] or 0 for r in results),
        "playlist_ms_p95": max(r["playlist_ms_p95"] or 0 for r in results),
        "loop_lag_p95_ms": lag,
        "cpu": cpu,
        "saturated": lag > SATURATED_LAG_MS or per_proc >= 90,
    }


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@contextlib.contextmanager
def publishing(bench: Bench, codec: str) -> Iterator[tuple[Publisher, str, str]]:
    """A painted-clock publisher of ``codec``: (it, its stream id, the signed playlist URL
    through nginx)."""
    attendee = Attendee(EMPLOYEE)  # one per stream: a crowd may cost it its connection
    attendee.join(bench.server.url, bench.cookie)
    since = attendee.mark()
    publisher = Publisher(bench.endpoint, bench.key, codec)
    try:
        [stream] = attendee.streams_shown(since)
        reply = attendee.call("hls.url", {})
        if not reply.get("url"):
            raise RuntimeError(f"hls.url gave no URL: {reply}")
        yield publisher, stream["id"], bench.front.url + reply["url"]
    finally:
        publisher.stop()
        if attendee.sio.connected:
            attendee.sio.disconnect()
        gone = time.monotonic() + 30  # the next publisher's key is refused while this one lives
        while bench.channel.call(bench.media, "stats").get("frames") and time.monotonic() < gone:
            time.sleep(0.5)


def run_codec(
    bench: Bench, browser: Any, codec: str, first: bool, args: argparse.Namespace
) -> dict[str, Any]:
    name = codec.split("/")[1].lower()
    row: dict[str, Any] = {"codec": name}
    progress(f"{name}: publishing the painted clock over WHIP")
    with publishing(bench, codec) as (publisher, stream, url):
        row["playlist"] = describe_playlist(bench.wait_playlist(url), bench.folder)
        progress(f"{name}: the tier plays: {row['playlist']}")
        progress(f"{name}: packager CPU, {args.pairs} x {args.window:g} s on / off")
        row["cpu"] = packager_cpu(bench, stream, args.window, args.pairs)
        bench.wait_playlist(url)
        meter = Meter({"publisher": lambda: [publisher.proc.pid]})
        row["latency"] = {}
        for config_name, config in CONFIGS.items():
            progress(f"{name}: latency in Chromium, hls.js {config_name}")
            meter.start()
            row["latency"][config_name] = latency(
                browser, bench.front.url, url, config, args.warmup, args.latency_seconds
            )
            row["publisher_cpu_pct"] = meter.pct()["publisher"]
        first_target = row["playlist"]["target_duration"]
        row["playlist"] = describe_playlist(bench.playlist(url), bench.folder)
        row["playlist"]["first_target_duration"] = first_target
        if first and args.clients:
            row["load"] = {}
            for mode in args.client_modes:
                progress(f"{name}: {args.clients} {mode} HLS clients for {args.load_seconds:g} s")
                row["load"][mode] = many_clients(bench, url, mode, args)
    return row


# --- the report --------------------------------------------------------------------------------


def print_row(row: dict[str, Any]) -> None:
    """One codec's figures (640x360 30 fps + Opus over WHIP, the tier served by nginx)."""
    p, c = row["playlist"], row["cpu"]
    print(
        f"\n{row['codec']} in: segments {p['segment_s']} s (longest listed {p['longest_s']} s), "
        f"{p['segment_kb']} KB, target duration {p['first_target_duration']} s at the start, "
        f"{p['target_duration']} s later; EXT-X-PART: {'yes' if p['parts'] else 'no'}, "
        f"PROGRAM-DATE-TIME: {'yes' if p['program_date_time'] else 'no'}"
    )
    if p["first_target_duration"] != p["target_duration"]:
        print("  NOTE: the target duration changed; RFC 8216 (6.2.1) says it must not")
    on, off = statistics.median(c["worker_pct_on"]), statistics.median(c["worker_pct_off"])
    print(
        f"  packager: {c['packager_pct']:.1f} % of a core (worker {on:.1f} % with the tier, "
        f"{off:.1f} % without; windows on {c['worker_pct_on']}, off {c['worker_pct_off']})"
    )
    print("  glass-to-glass   p50     p95    min    max   fps  unread stalls  hls.latency")
    for config, lat in row["latency"].items():
        print(
            f"  {config:<14} {fmt(lat['p50_s'])} s {fmt(lat['p95_s'])} s {fmt(lat['min_s'])} "
            f"{fmt(lat['max_s'])} {lat['fps']:5.1f} {lat['unreadable']:6d} {lat['stalls']:6d}"
            f"  {fmt(lat['hls_latency_s'])} s"
            + (f"  errors: {', '.join(lat['errors'])}" if lat["errors"] else "")
        )
    print(f"  publisher process (aiortc encoding): {row['publisher_cpu_pct']:.0f} % of a core")
    for one in row.get("load", {}).values():
        print_load(one)


sys.stdout.flush()


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    first = rows[0]
    by_codec = {r["codec"]: r for r in rows}
    loads: dict[str, dict[str, Any]] = first.get("load", {})
    load: dict[str, Any] = loads.get("plain") or next(iter(loads.values()), {})
    cpu: dict[str, Any] = load.get("cpu", {})
    return {
        "latency_p50_s": first["latency"]["page"]["p50_s"],  # the attendee page's player
        "latency_p95_s": first["latency"]["page"]["p95_s"],
        "latency_p50_s_default": first["latency"]["default"]["p50_s"],
        "latency_p50_s_plain": first["latency"]["plain"]["p50_s"],
        "latency_p50_s_tuned": first["latency"]["tuned"]["p50_s"],
        "latency_by_codec": {
            r["codec"]: {k: [v["p50_s"], v["p95_s"]] for k, v in r["latency"].items()} for r in rows
        },
        "packager_cpu_pct": first["cpu"]["packager_pct"],
        "packager_cpu_pct_vp8": by_codec["vp8"]["cpu"]["packager_pct"]
        if "vp8" in by_codec
        else None,
        "ll_hls_parts": first["playlist"]["parts"],
        "clients": load.get("clients", 0),
        "errors": sum(one["errors"] for one in loads.values()) if loads else None,
        "errors_by_mode": {mode: one["errors"] for mode, one in loads.items()},
        "segments_served": load.get("segments"),
        "parts_served_ll": loads.get("ll", {}).get("parts"),
        "segment_fetch_p95_ms": load.get("segment_ms_p95"),
        "mb_per_s": load.get("mb_per_s"),
        "nginx_cpu_pct": cpu.get("nginx"),
        "app_cpu_pct": cpu.get("app"),
        "load_generator_cpu_pct": cpu.get("load_generator"),
        "machine_busy_pct": cpu.get("machine"),
        "load_generator_saturated": load.get("saturated"),
        "cpu_by_mode": {mode: one["cpu"] for mode, one in loads.items()},
        "cache_hit_pct_by_mode": {
            mode: [one["playlist_cache_hit_pct"], one["auth_cache_hit_pct"]]
            for mode, one in loads.items()
        },
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def print_load(load: dict[str, Any]) -> None:
    cpu = load["cpu"]
    media = "segments" if load["mode"] == "plain" else "parts"
    print(
        f"  {load['clients']} {load['mode']} clients ({load['connected']} connected in "
        f"{load['connect_s']} s), {load['seconds']} s: {load[media]} {media} "
        f"({load[media] / load['seconds']:.0f}/s; nginx logged {load['segments_served_nginx']} "
        f".m4s with 200), {load['requests']} requests, {load['errors']} errors "
        f"{load['error_kinds'] or ''}, {load['mb_per_s']} MB/s"
    )
    if load["mode"] == "plain":
        per_client = load["segments"] / max(load["clients"], 1)
        print(
            f"    {per_client:.1f} segments per client while the packager made "
            f"{load['produced']} in {load['seconds']} s (each client's first is the newest)"
        )
    held = " (held: blocking reloads)" if load["mode"] == "ll" else ""
    print(
        f"    fetch ms: {media} p50 {load['segment_ms_p50']} p95 {load['segment_ms_p95']}, "
        f"playlist p50 {load['playlist_ms_p50']} p95 {load['playlist_ms_p95']}{held}; "
        f"generator loop lag p95 {load['loop_lag_p95_ms']} ms; answered by nginx's cache: "
        f"playlists {load['playlist_cache_hit_pct']} %, token checks {load['auth_cache_hit_pct']} %"
    )
    print(
        f"    CPU, % of a core: nginx {cpu['nginx']}, app (nginx's cache misses) {cpu['app']}, "
        f"worker {cpu['worker']}, load generator {cpu['load_generator']}; machine "
        f"{cpu['machine']} % of {os.cpu_count()} cores"
    )
    if load["saturated"]:
        print(
            "    SATURATED: the load generator fell behind (loop lag or CPU): fetch times "
            "include its own wait, and the figures are bounded by this machine"
        )


def fmt(value: float | None) -> str:
    return "   -" if value is None else f"{value:5.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", nargs="+", default=["video/H264", "video/VP8"])
    parser.add_argument("--clients", type=int, default=1000, help="HLS clients (0: none)")
    parser.add_argument("--client-procs", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--client-modes",
        nargs="+",
        default=["plain", "ll"],
        choices=["plain", "ll"],
        help="plain HLS clients (playlist every second, segments), LL-HLS (blocking, parts)",
    )
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--latency-seconds", type=float, default=25.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="playing before sampling, s")
    parser.add_argument("--window", type=float, default=6.0, help="one CPU window, s")
    parser.add_argument("--pairs", type=int, default=3, help="CPU windows on and off")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients = min(args.clients, 100)
        args.load_seconds, args.latency_seconds, args.warmup = 10.0, 8.0, 3.0
        args.window, args.pairs = 3.0, 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="lectern-hls-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        bench = Bench(stack, Path(tmp))
        browser = stack.enter_context(
            launch_chromium([*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
        )
        rows = []
        for i, codec in enumerate(args.codecs):
            rows.append(run_codec(bench, browser, codec, i == 0, args))
            print_row(rows[-1])
        summary = headline(rows)
    print(
        f"\nsummary: latency p50 {summary['latency_p50_s']} s (the attendee page's hls.js), "
        f"{summary['latency_p50_s_plain']} s (no LL-HLS), {summary['latency_p50_s_tuned']} s "
        f"(tuned); packager {summary['packager_cpu_pct']} % of a core (H.264 in), "
        f"{summary['packager_cpu_pct_vp8']} % (VP8 in); {summary['clients']} clients, "
        f"{summary['errors']} errors"
    )
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
