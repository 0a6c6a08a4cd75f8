"""An aiortc peer to run inside a network namespace: a publisher or a viewer of a media worker.

    ip netns exec NS python -m tests.netns_peer publish --channel HOST:PORT --token T --address A
    ip netns exec NS python -m tests.netns_peer view --channel HOST:PORT --token T --address A

The peer sends its offer to the worker's channel at ``--channel`` itself (with the grant the
test signed, as the web app would), offers ``--address`` as its one ICE host candidate and
uses no ICE server. It prints one JSON object per line: ``{"event": "published", "stream":
...}`` or ``{"event": "viewing", "peer": ...}`` once the answer is applied (``{"event":
"error", "error": ...}`` and exit status 1 if the worker refuses), then answers commands read
from stdin, one per line, until ``quit`` or the end of stdin:

- ``stats``: ``{"event": "stats", "state": <connection state>, ...}``; a publisher adds
  ``keyframe_requests`` (keyframe requests, PLI, its video sender received), a viewer
  ``frames`` (decoded frames per kind), ``sizes`` (decoded video sizes) and ``first_video_s``
  (answer applied -> first decoded video frame).
- ``pli`` (a viewer): send the worker one keyframe request; ``{"event": "pli", "ssrc": ...}``.

The publisher and the viewer are those of the media tests (``tests/media/conftest.py``): 30 fps
synthetic VP8 video at 320x240 and Opus audio; the viewer decodes every frame.

:class:`PeerProcess` is the test's side: it starts the script in a namespace and reads its lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import IO, Any

from aiortc import RTCRtpSender
from aiortc.sdp import SessionDescription

from media import ice
from media.channel import MediaChannel
from tests.live import ROOT
from tests.netns import Namespace, stop

REPLY_TIMEOUT_S = 20.0


# -- inside the namespace ---------------------------------------------------------------------
def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def channel_call(addr: str, op: str, **fields: Any) -> dict[str, Any]:
    """One worker-channel request, off the event loop (``MediaChannel`` blocks)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, partial(MediaChannel([addr]).call, addr, op, **fields))


def video_ssrc(answer: str) -> int | None:
    """The worker's video SSRC in its answer: where a viewer's keyframe request goes."""
    for media in SessionDescription.parse(answer).media:
        groups = [g.items for g in media.ssrc_group if g.semantic == "FID"]
        if media.kind == "video" and (groups or media.ssrc):
            return int(groups[0][0]) if groups else media.ssrc[0].ssrc
    return None


def count_keyframe_requests(sender: RTCRtpSender) -> list[int]:
    """A one-item counter of the keyframe requests ``sender`` gets from its remote end."""
    counter = [0]
    original = sender._send_keyframe

    def counted() -> None:
        counter[0] += 1
        original()

    sender._send_keyframe = counted  # type: ignore[method-assign]
    return counter


async def commands() -> AsyncIterator[str]:
    """The lines of stdin, read off the event loop; stops at ``quit`` or the end."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = line.strip()
        if command == "quit":
            return
        yield command


async def publish(args: argparse.Namespace) -> int:
    from tests.media.conftest import Publisher

    publisher = Publisher()
    video = next(s for s in publisher.pc.getSenders() if s.track and s.track.kind == "video")
    requests = count_keyframe_requests(video)
    try:
        reply = await channel_call(
            args.channel, "publish", token=args.token, sdp=await publisher.offer()
        )
        if not reply.get("ok"):
            emit("error", error=reply.get("error"))
            return 1
        await publisher.answer(reply["sdp"])
        emit("published", stream=reply["stream"])
        async for command in commands():
            if command == "stats":
                emit("stats", state=publisher.pc.connectionState, keyframe_requests=requests[0])
            else:
                emit("error", error=f"unknown command {command!r}")
    finally:
        await publisher.close()
    return 0


async def view(args: argparse.Namespace) -> int:
    from tests.media.conftest import Viewer

    viewer = Viewer()
    try:
        reply = await channel_call(args.channel, "view", token=args.token, sdp=await viewer.offer())
        if not reply.get("ok"):
            emit("error", error=reply.get("error"))
            return 1
        await viewer.answer(reply["sdp"])
        answered = time.monotonic()
        ssrc = video_ssrc(reply["sdp"])
        emit("viewing", peer=reply["peer"])
        async for command in commands():
            if command == "stats":
                first = viewer.first_video_at
                emit(
                    "stats",
                    state=viewer.pc.connectionState,
                    frames=viewer.frames,
                    sizes=sorted(viewer.sizes),
                    first_video_s=None if first is None else round(first - answered, 3),
                )
            elif command == "pli" and ssrc is not None:
                receiver = next(
                    t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video"
                )
                await receiver._send_rtcp_pli(ssrc)
                emit("pli", ssrc=ssrc)
            else:
                emit("error", error=f"unknown command {command!r}")
    finally:
        await viewer.close()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="A publisher or viewer for a media worker.")
    parser.add_argument("role", choices=["publish", "view"])
    parser.add_argument("--channel", required=True, help="the worker's channel, HOST:PORT")
    parser.add_argument("--token", required=True, help="the grant the web app would sign")
    parser.add_argument("--address", required=True, help="this peer's one ICE host address")
    args = parser.parse_args()
    ice.limit_host_addresses([args.address])
    run = publish if args.role == "publish" else view
    sys.exit(asyncio.run(run(args)))


# -- the test's side --------------------------------------------------------------------------
class PeerProcess:
    """This script running in ``namespace``: commands in, JSON events out."""

    def __init__(self, namespace: Namespace, role: str, channel: str, token: str) -> None:
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.output: list[str] = []
        command = [sys.executable, "-m", "tests.netns_peer", role, "--channel", channel]
        command += ["--token", token, "--address", namespace.address]
        self.proc = namespace.popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.output.append(line)
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    self.lines.put(json.loads(line))
        self.lines.put(None)  # the process is gone

    def expect(self, event: str, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        """The next event, which must be ``event`` (else an AssertionError with the output)."""
        try:
            got = self.lines.get(timeout=timeout)
        except queue.Empty:
            got = None
        assert got is not None and got.get("event") == event, (
            f"expected {event!r}, got {got!r}; the peer's output:\n{''.join(self.output)}"
        )
        return got

    def ask(self, command: str, event: str | None = None) -> dict[str, Any]:
        """Send one command and return its reply (event ``command`` unless given)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.expect(event or command)

    def close(self) -> None:
        """Ask it to quit (it closes its connection), then make sure it is gone."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        stop(self.proc)


if __name__ == "__main__":
    main()
