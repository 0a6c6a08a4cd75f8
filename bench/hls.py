"""The HLS tier's cost on one media worker: one stream, H.264 in (remux) and VP8 in (transcode).

    python bench/hls.py [--window S]

Starts the real ``python -m media.worker`` on loopback and one publisher of 640x360 at 30 fps
(the moving frames of ``bench/fanout.py``) + Opus, first sending H.264, then VP8. For each it
measures the worker's CPU (``/proc/PID/stat``) over a window without the tier, then with it
(``hls_start``), and prints the difference in % of one core and the segments written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import LoopAudio, LoopVideo, synthetic_audio, synthetic_video
from recording import call, window_cpu

from media import tokens
from tests.media.conftest import start_worker, stop_process

SECRET = "hls-bench"
ROOM = "broadcast:1"


async def publish(port: int, codec: str, video: list[Any], audio: list[Any]) -> tuple[Any, str]:
    """A publisher sending only ``codec`` video; (its connection, the stream id)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(LoopVideo(video))
    pc.addTrack(LoopAudio(audio))
    caps = RTCRtpSender.getCapabilities("video").codecs
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences([c for c in caps if c.mimeType == codec])
    await pc.setLocalDescription(await pc.createOffer())
    token = tokens.sign(SECRET, op="publish", room=ROOM, user=1)
    reply = await call(port, "publish", token=token, sdp=pc.localDescription.sdp)
    assert reply["ok"], reply
    await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
    return pc, reply["stream"]


async def measure(port: int, pid: int, codec: str, window: float, folder: Path) -> dict[str, Any]:
    pc, stream = await publish(port, codec, synthetic_video(), synthetic_audio())
    try:
        await asyncio.sleep(3)  # settle: ICE, DTLS, first keyframes
        plain = await window_cpu(pid, window)
        token = tokens.sign(SECRET, op="hls", room=ROOM, stream=stream, dir=str(folder))
        assert (await call(port, "hls_start", token=token))["ok"]
        await asyncio.sleep(2)
        tier = await window_cpu(pid, window)
        stats = await call(port, "stats")
        await call(port, "hls_stop", token=token)
        segments = len(list(folder.glob("seg*.m4s")))
        return {
            "codec": codec,
            "worker_pct_without": round(plain, 1),
            "worker_pct_with": round(tier, 1),
            "tier_pct": round(tier - plain, 1),
            "segments_kept": segments,
            "dropped": stats["hls"][stream]["dropped"],
        }
    finally:
        await pc.close()


async def main(window: float) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    with tempfile.TemporaryDirectory(prefix="lectern-hls-bench-") as tmp:
        worker = start_worker(Path(tmp) / "worker.log", MEDIA_SECRET=SECRET)
        try:
            for codec in ("video/H264", "video/VP8"):
                folder = Path(tmp) / codec.split("/")[1]
                row = await measure(worker.port, worker.proc.pid, codec, window, folder)
                print(json.dumps(row), flush=True)
        finally:
            stop_process(worker.proc)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0)
    asyncio.run(main(parser.parse_args().window))
