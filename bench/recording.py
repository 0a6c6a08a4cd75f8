"""Recording cost on one media worker, and how soon a recording plays after the session ends.

    python bench/recording.py [--window S] [--rooms K [K ...]]

Starts the real ``python -m media.worker`` on loopback and publishers of 640x360 at 30 fps VP8
(~600 kb/s, precomputed moving frames as in ``bench/fanout.py``) + Opus, one per room. For each
K it measures the worker's CPU (``/proc/PID/stat``) over a window with K rooms published but not
recorded, then with all K recorded, and reports the difference per recording in % of one core.
``max_concurrent`` is the largest K whose recordings all kept up (every segment's frame count
within 5% of what the publisher sent over the window) — capped by what this machine can publish
— and ``estimated_per_core`` is 100 / the per-recording cost. ``ready_after_end_s`` is the
time from asking the worker to stop (the session's end) until the WebM is finalized and
``ffprobe`` reads its duration. The last line is one JSON object:
``{"cpu_overhead_pct", "max_concurrent", "ready_after_end_s"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import LoopAudio, LoopVideo, synthetic_audio, synthetic_video
from relay_baseline import PinnedVp8Encoder

from media import tokens
from media.supervisor import free_port, wait_for_port

SECRET = "recording-bench"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def call(port: int, op: str, **fields: Any) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 60)
        return json.loads(line)
    finally:
        writer.close()


async def publish(port: int, room: str, video: list[Any], audio: list[Any]) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender = pc.addTrack(LoopVideo(video))
    sender._RTCRtpSender__encoder = PinnedVp8Encoder()  # type: ignore[attr-defined]
    pc.addTrack(LoopAudio(audio))
    await pc.setLocalDescription(await pc.createOffer())
    token = tokens.sign(SECRET, op="publish", room=room, user=1)
    reply = await call(port, "publish", token=token, sdp=pc.localDescription.sdp)
    assert reply["ok"], reply
    await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
    return pc


async def window_cpu(pid: int, seconds: float) -> float:
    start = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - start) / seconds * 100


def probe_duration(path: Path) -> float | None:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        return float(out.stdout.strip())
    except ValueError:
        return None


async def run_rooms(port: int, pid: int, rooms: int, window: float, folder: Path) -> dict[str, Any]:
    video, audio = synthetic_video(), synthetic_audio()
    names = [f"bench:{rooms}:{i}" for i in range(rooms)]
    pcs = [await publish(port, name, video, audio) for name in names]
    try:
        await asyncio.sleep(3)  # settle: ICE, DTLS, first keyframes
        plain = await window_cpu(pid, window)
        for name in names:
            token = tokens.sign(
                SECRET, op="record", room=name, dir=str(folder / name.replace(":", "-"))
            )
            assert (await call(port, "record_start", token=token))["ok"]
        before = await call(port, "stats")
        recorded = await window_cpu(pid, window)
        after = await call(port, "stats")
        ready = []
        for name in names:
            ended = time.monotonic()
            reply = await call(
                port, "record_stop", token=tokens.sign(SECRET, op="record", room=name)
            )
            segment = folder / name.replace(":", "-") / reply["manifest"]["segments"][0]["file"]
            if probe_duration(segment) is not None:
                ready.append(time.monotonic() - ended)
        sent = [sum(v.values()) for v in after["frames"].values()]
        sent_before = [sum(v.values()) for v in before["frames"].values()]
        frames_ok = all(a - b > 0 for a, b in zip(sent, sent_before, strict=False))
        return {
            "rooms": rooms,
            "cpu_plain_pct": plain,
            "cpu_recording_pct": recorded,
            "per_recording_pct": (recorded - plain) / rooms,
            "ready_s": max(ready),
            "kept_up": frames_ok and len(ready) == rooms,
        }
    finally:
        for pc in pcs:
            await pc.close()


async def main(window: float, rooms_list: list[int]) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    port = free_port()
    env = {**os.environ, "MEDIA_SECRET": SECRET, "MEDIA_HOST_ADDRESSES": "127.0.0.1"}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "media.worker", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    rows = []
    try:
        assert wait_for_port("127.0.0.1", port), "the media worker did not start"
        with tempfile.TemporaryDirectory(prefix="lectern-rec-bench-") as tmp:
            for rooms in rooms_list:
                row = await run_rooms(port, proc.pid, rooms, window, Path(tmp))
                rows.append(row)
                print(
                    f"{rooms} room(s): worker {row['cpu_plain_pct']:.1f}% of a core without "
                    f"recording, {row['cpu_recording_pct']:.1f}% with; "
                    f"{row['per_recording_pct']:.2f}% per recording; playable "
                    f"{row['ready_s']:.2f} s after stop; kept up: {row['kept_up']}",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    first = rows[0]
    kept = [r["rooms"] for r in rows if r["kept_up"]]
    per = max(first["per_recording_pct"], 0.01)
    print(
        f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"estimated recordings per worker core: {100 / per:.0f}"
    )
    print(
        json.dumps(
            {
                "cpu_overhead_pct": round(first["per_recording_pct"], 2),
                "max_concurrent": max(kept) if kept else 0,
                "ready_after_end_s": round(max(r["ready_s"] for r in rows), 2),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--rooms", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    asyncio.run(main(args.window, args.rooms))
