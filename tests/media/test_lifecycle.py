"""A media worker over time: viewers come and go without leaking, and a dead one comes back.

The leak check counts the worker's open file descriptors (every peer connection holds UDP
sockets) and its resident memory before and after many viewers joined and left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from media.supervisor import Supervisor

from .conftest import (
    START_TIMEOUT_S,
    Publisher,
    Viewer,
    WorkerProcess,
    call,
    grant,
    published,
    until,
    until_async,
    view,
    worker_env,
)

CYCLES = 200
CONCURRENCY = 4  # viewers joining at once: 200 one by one would take too long on 2 cores
WARMUP = 8  # first viewers, before the baseline: imports and caches are not leaks
FD_MARGIN = 8
RSS_MARGIN_KB = 30 * 1024
CYCLE_TIMEOUT_S = 10.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def join_and_leave(port: int, stream: str) -> bool:
    """One viewer: answered, connected, a frame decoded (or not: the result), then closed."""
    viewer = Viewer()
    try:
        reply = await view(port, stream, viewer)
        got_frame = await until(
            lambda: viewer.frames["audio"] + viewer.frames["video"] > 0, CYCLE_TIMEOUT_S
        )
        closed = await call(port, "close", peer=reply["peer"])
        assert closed == {"ok": True, "closed": 1}, closed
    finally:
        await viewer.close()
    return got_frame


async def cycles(port: int, stream: str, count: int) -> list[bool]:
    """``count`` join/leave cycles, ``CONCURRENCY`` at a time."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> bool:
        async with gate:
            return await join_and_leave(port, stream)

    return await asyncio.gather(*(one() for _ in range(count)))


async def settled(port: int, pid: int, fds_at_most: int) -> dict[str, Any]:
    """The worker's stats once its viewers are gone and its descriptors closed (or 10 s on)."""

    async def quiet() -> bool:
        stats = await call(port, "stats")
        return stats["viewers"] == 0 and open_fds(pid) <= fds_at_most

    await until_async(quiet, timeout=10)
    return await call(port, "stats")


def test_no_leak_after_200_viewers_join_and_leave(worker: WorkerProcess) -> None:
    pid = worker.proc.pid

    async def scenario() -> dict[str, Any]:
        async with published(worker.port) as stream:
            await cycles(worker.port, stream.id, WARMUP)
            await settled(worker.port, pid, fds_at_most=10_000)
            fds, rss = open_fds(pid), rss_kb(pid)
            started = time.monotonic()
            results = await cycles(worker.port, stream.id, CYCLES)
            elapsed = time.monotonic() - started
            stats = await settled(worker.port, pid, fds_at_most=fds + FD_MARGIN)
            return {
                "results": results,
                "elapsed": elapsed,
                "stats": stats,
                "fds": (fds, open_fds(pid)),
                "rss_kb": (rss, rss_kb(pid)),
            }

    got = asyncio.run(scenario())

    assert len(got["results"]) == CYCLES
    assert all(got["results"]), f"{got['results'].count(False)} viewers decoded no frame"
    assert got["stats"]["viewers"] == 0
    assert got["stats"]["streams"] == 1
    before, after = got["fds"]
    assert after <= before + FD_MARGIN, got["fds"]
    before, after = got["rss_kb"]
    assert after - before < RSS_MARGIN_KB, got["rss_kb"]


def test_supervisor_restarts_a_killed_worker_on_its_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started from elsewhere than the repository, as ``python /path/to/app.py`` would be.
    monkeypatch.chdir(tmp_path)
    supervisor = Supervisor(1, worker_env())
    try:
        [addr] = supervisor.start()
        port = supervisor.ports[0]
        first = asyncio.run(call(port, "stats"))
        os.kill(first["pid"], signal.SIGKILL)
        proc = supervisor.procs[0]
        assert proc is not None
        proc.wait(timeout=START_TIMEOUT_S)

        restarted = supervisor.check()
        second = asyncio.run(call(port, "stats"))
        answered = asyncio.run(publish_once(port))
    finally:
        supervisor.stop()

    assert restarted == [addr]
    assert supervisor.restarts == 1
    assert second["pid"] != first["pid"]
    assert supervisor.ports == [port]
    assert answered["ok"] is True, answered
    assert answered["kinds"] == ["audio", "video"]
    assert all(proc is not None and proc.poll() is not None for proc in supervisor.procs)


async def publish_once(port: int) -> dict[str, Any]:
    """A publish request with a real offer, answered by the worker (then closed again)."""
    publisher = Publisher()
    try:
        reply = await call(port, "publish", token=grant("publish"), sdp=await publisher.offer())
        if reply.get("ok"):
            await call(port, "close_stream", stream=reply["stream"])
        return reply
    finally:
        await publisher.close()
