"""Many HLS clients in one process: a load generator for ``bench/hls.py``.

Not run by hand: ``bench/hls.py`` starts it as a process of its own,

    python bench/hls_clients.py --url https://127.0.0.1:PORT/broadcasts/1/hls/TOKEN/index.m3u8 \\
        --clients 1000 --duration 30

With ``--tokens FILE`` (one signed token a line) client ``i`` uses line ``--token-offset`` + ``i``
(modulo their count) in place of ``--url``'s token, as each viewer has a token of their own.

Each client is one HTTP/1.1 keep-alive connection (TLS, certificate not checked: the bench's
nginx has a throwaway one) written on asyncio streams, no HTTP library. It behaves as a plain
HLS player does: it reloads the playlist every ``--interval`` (1 s, the segment length) and
fetches every segment it has not fetched before, once, in order; on its first playlist it
fetches ``init.mp4`` and the newest segment only (a player starts near the live edge). With
``--ll`` it is an LL-HLS player instead: after its first playlist it asks for the next part with
a blocking reload (``?_HLS_msn=N&_HLS_part=I``, which the web app holds until that part is
listed) and fetches every part listed that it has not fetched yet (``#EXT-X-PART``). The
clients open their connections first (``--connect-concurrency`` at a time), then print one JSON
line ``{"ready": ...}``; each starts polling at a random moment within the first interval, and
after ``--duration`` seconds from then the last line is one JSON object: requests, segments,
errors (any answer but 200, a timeout, a broken connection), bytes, fetch times, and how late
this process's event loop woke up (``loop_lag_p95_ms``: above ~100 ms the generator itself was
short of CPU, and its fetch times include that wait).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import resource
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

REQUEST_TIMEOUT_S = 15.0
PART_URI = re.compile(r'#EXT-X-PART:[^\n]*URI="(part(\d+)\.(\d+)\.m4s)"')
LAG_TICK_S = 0.05


@dataclass
class Tally:
    """What all clients saw during the measured phase."""

    counting: bool = False
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    segment_ms: list[float] = field(default_factory=list)
    playlist_ms: list[float] = field(default_factory=list)
    reconnects: int = 0
    lag_ms: list[float] = field(default_factory=list)


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, limit=1 << 20
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of one GET; raises ``ConnectionError`` on a closed connection."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "User-Agent: lectern-hls-bench\r\n\r\n".encode()
        )
        await self.writer.drain()
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise ConnectionError("closed before answering") from exc
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self.chunked()
        else:
            body = await self.reader.read()  # until the server closes
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    async def chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await self.reader.readexactly(size + 2))
            if size == 0:
                return b"".join(parts)[:-2]


class Client:
    """One viewer: reloads the playlist every interval, fetches each new segment once."""

    def __init__(self, url: str, tls: ssl.SSLContext | None, tally: Tally) -> None:
        parts = urlsplit(url)
        self.base = parts.path.rsplit("/", 1)[0]
        self.playlist = parts.path
        self.conn = Connection(parts.hostname or "127.0.0.1", parts.port or 443, tls)
        self.tally = tally
        self.seen: set[str] = set()
        self.started = False
        self.next_part = (0, 0)
        self.end = math.inf  # no request starts after it

    async def fetch(self, path: str, kind: str) -> bytes | None:
        """GET ``path`` (one retry on a connection the server had closed); None on failure,
        and when the measured time is over."""
        began = time.monotonic()
        if began >= self.end:
            return None
        while True:
            reused = self.conn.writer is not None  # nginx may have closed an idle one
            try:
                status, body = await asyncio.wait_for(self.conn.get(path), REQUEST_TIMEOUT_S)
                break
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                self.conn.close()
                if not reused:
                    return self.failed(kind, type(exc).__name__)
                self.count(lambda t: setattr(t, "reconnects", t.reconnects + 1))
            except TimeoutError:
                self.conn.close()
                return self.failed(kind, "timeout")
        elapsed = (time.monotonic() - began) * 1000
        tally = self.tally
        if tally.counting:
            tally.requests[kind] += 1
            tally.statuses[str(status)] += 1
            tally.bytes += len(body)
            (tally.playlist_ms if kind == "playlist" else tally.segment_ms).append(elapsed)
            if status != 200:
                tally.errors[f"{kind} {status}"] += 1
        return body if status == 200 else None

    def failed(self, kind: str, why: str) -> bytes | None:
        if self.tally.counting:
            self.tally.requests[kind] += 1
            self.tally.errors[f"{kind} {why}"] += 1
        return None

    def count(self, change: Any) -> None:
        if self.tally.counting:
            change(self.tally)

    async def poll(self) -> None:
        body = await self.fetch(self.playlist, "playlist")
        if body is None:
            return
        names = [
            line
            for line in body.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("#")
        ]
        if not self.started:
            self.started = True
            await self.fetch(f"{self.base}/init.mp4", "init")
            self.seen.update(names[:-1])
        for name in names:
            if name not in self.seen:
                self.seen.add(name)
                await self.fetch(f"{self.base}/{name}", "segment")

    async def poll_ll(self) -> None:
        """One LL-HLS round: a blocking reload for the part after the newest one seen, then
        every part listed that was not fetched yet (the first round: init and the newest)."""
        query = f"?_HLS_msn={self.next_part[0]}&_HLS_part={self.next_part[1]}"
        body = await self.fetch(self.playlist + (query if self.started else ""), "playlist")
        if body is None:
            await asyncio.sleep(0.5)
            return
        parts = PART_URI.findall(body.decode("utf-8", "replace"))
        if not parts:
            await asyncio.sleep(0.5)
            return
        if not self.started:
            self.started = True
            await self.fetch(f"{self.base}/init.mp4", "init")
            self.seen.update(name for name, _, _ in parts[:-1])
        for name, _, _ in parts:
            if name not in self.seen:
                self.seen.add(name)
                await self.fetch(f"{self.base}/{name}", "part")
        newest = (int(parts[-1][1]), int(parts[-1][2]))
        if newest < self.next_part:
            await asyncio.sleep(0.1)  # answered without the part asked for (held too long)
        self.next_part = (newest[0], newest[1] + 1)

    async def run_ll(self, start: float, end: float) -> None:
        self.end = end
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        while time.monotonic() < end:
            await self.poll_ll()
        self.conn.close()

    async def run(self, start: float, end: float, interval: float) -> None:
        self.end = end
        next_poll = start + random.random() * interval
        while True:
            await asyncio.sleep(max(0.0, next_poll - time.monotonic()))
            if time.monotonic() >= end:
                break
            await self.poll()
            next_poll += interval
            while next_poll < time.monotonic():  # fell behind: skip, as a player would
                next_poll += interval
        self.conn.close()


async def watch_lag(tally: Tally, end: float) -> None:
    """How late the event loop wakes up from a short sleep (the generator's own CPU shortage)."""
    while time.monotonic() < end:
        before = time.monotonic()
        await asyncio.sleep(LAG_TICK_S)
        if tally.counting:
            tally.lag_ms.append((time.monotonic() - before - LAG_TICK_S) * 1000)


def served(tally: Tally, kind: str) -> int:
    """Requests of ``kind`` answered 200."""
    return tally.requests[kind] - sum(n for k, n in tally.errors.items() if k.startswith(kind))


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)], 1)


async def main(args: argparse.Namespace) -> None:
    tls = None
    if args.url.startswith("https:"):
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    tally = Tally()
    urls = [args.url]
    if args.tokens:
        with open(args.tokens) as listed:
            head, _, name = args.url.rpartition("/")
            base = head.rpartition("/")[0]
            urls = [f"{base}/{token}/{name}" for token in listed.read().split()] or urls
    offset = args.token_offset
    clients = [Client(urls[(offset + i) % len(urls)], tls, tally) for i in range(args.clients)]
    gate = asyncio.Semaphore(args.connect_concurrency)
    began = time.monotonic()

    async def connect(client: Client) -> bool:
        async with gate:
            try:
                await asyncio.wait_for(client.conn.open(), REQUEST_TIMEOUT_S)
                return True
            except (OSError, TimeoutError):
                return False

    connected = sum(await asyncio.gather(*(connect(c) for c in clients)))
    print(
        json.dumps({"ready": True, "connected": connected, "connect_s": time.monotonic() - began}),
        flush=True,
    )
    start = time.monotonic()
    end = start + args.duration
    tally.counting = True
    lag = asyncio.create_task(watch_lag(tally, end))
    if args.ll:
        starts = [start + random.random() * args.interval for _ in clients]
        runs = [c.run_ll(s, end) for c, s in zip(clients, starts, strict=True)]
    else:
        runs = [c.run(start, end, args.interval) for c in clients]
    tasks = [asyncio.ensure_future(run) for run in runs]
    _, late = await asyncio.wait(tasks, timeout=args.duration + 2 * REQUEST_TIMEOUT_S + 5)
    for task in late:  # a request that hangs past its own timeout
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    tally.counting = False
    wall = time.monotonic() - start
    lag.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lag
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "clients": args.clients,
                "connected": connected,
                "seconds": round(wall, 1),
                "requests": dict(tally.requests),
                "statuses": dict(tally.statuses),
                "errors": sum(tally.errors.values()),
                "error_kinds": dict(tally.errors),
                "reconnects": tally.reconnects,
                "mode": "ll" if args.ll else "plain",
                "segments": served(tally, "segment"),
                "parts": served(tally, "part"),
                "bytes": tally.bytes,
                "segment_ms_p50": percentile(tally.segment_ms, 50),
                "segment_ms_p95": percentile(tally.segment_ms, 95),
                "playlist_ms_p50": percentile(tally.playlist_ms, 50),
                "playlist_ms_p95": percentile(tally.playlist_ms, 95),
                "loop_lag_p95_ms": percentile(tally.lag_ms, 95),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            }
        ),
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the playlist's signed URL")
    parser.add_argument("--tokens", default="", help="a file of signed tokens, one per client")
    parser.add_argument("--token-offset", type=int, default=0, help="this process's first line")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--interval", type=float, default=1.0, help="playlist reload, seconds")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--ll", action="store_true", help="LL-HLS clients: blocking reloads, parts")
    return parser.parse_args()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(parse_args()))
