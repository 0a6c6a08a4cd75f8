"""An aiortc peer to run inside a network namespace: a publisher or a viewer of a media worker.

    ip netns exec NS python -m tests.netns_peer publish --address A --channel HOST:PORT --token T
    ip netns exec NS python -m tests.netns_peer view --address A --url URL --cookie C --stream S

The peer sends its offer one of two ways: straight to a worker's channel at ``--channel``, with
the grant the test signed as the web app would (``--token``); or to the web app at ``--url`` over
Socket.IO (``media.publish``, ``media.view`` of ``--stream``), signed in by a session ``--cookie``,
in room ``--room`` (the demo lesson's by default). It offers ``--address`` as its one ICE host
candidate and uses no ICE server. It prints one JSON object per line: ``{"event": "published",
"stream": ...}`` or ``{"event": "viewing", "peer": ..., "worker": ...}`` once the answer is
applied (``worker``: the web app's id of the worker serving it; ``{"event": "error", "error":
...}`` and exit status 1 if it is refused), then answers commands read from stdin, one per line,
until ``quit`` or the end of stdin:

- ``stats``: ``{"event": "stats", "state": <connection state>, ...}``; a publisher adds
  ``keyframe_requests`` (keyframe requests, PLI, its video sender received), a viewer
  ``frames`` (decoded frames per kind), ``sizes`` (decoded video sizes), ``first_video_s``
  (answer applied -> first decoded video frame) and ``back_s`` (``media.moved`` -> the first
  frame decoded after viewing again).
- ``pli`` (a viewer): send the worker one keyframe request; ``{"event": "pli", "ssrc": ...}``.

A viewer through the web app does what the room page does on ``media.moved`` for the worker
serving it: it views again (``{"event": "moved", "worker": ...}``, then ``viewing`` anew), and
its stats describe the new connection from then on.

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
from tests.live import ROOT, stop_process
from tests.netns import Namespace

REPLY_TIMEOUT_S = 20.0
NAMESPACE = "/room"  # the web app's Socket.IO namespace of live rooms


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


class Channel:
    """Offers sent straight to a worker's channel, with a grant the test signed."""

    def __init__(self, addr: str, token: str) -> None:
        self.addr, self.token = addr, token
        self.moves: asyncio.Queue[str] = asyncio.Queue()  # never any: no web app to tell

    async def publish(self, sdp: str) -> dict[str, Any]:
        return await channel_call(self.addr, "publish", token=self.token, sdp=sdp)

    async def view(self, sdp: str) -> dict[str, Any]:
        return await channel_call(self.addr, "view", token=self.token, sdp=sdp)

    def close(self) -> None:
        pass


class WebApp:
    """Offers sent to the web app over Socket.IO, as the room page sends them."""

    def __init__(
        self, url: str, cookie: str, room: str, stream: str | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        import socketio

        self.stream = stream
        self.moves: asyncio.Queue[str] = asyncio.Queue()  # media.moved's workers
        self.sio = socketio.Client(reconnection=False)
        self.sio.on(
            "media.moved",
            lambda data: loop.call_soon_threadsafe(self.moves.put_nowait, data.get("worker")),
            namespace=NAMESPACE,
        )
        self.sio.connect(
            url,
            headers={"Cookie": cookie},
            transports=["websocket"],
            namespaces=[NAMESPACE],
            auth={"room": room},
            wait_timeout=REPLY_TIMEOUT_S,
        )

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = await asyncio.to_thread(
            self.sio.call, event, data, namespace=NAMESPACE, timeout=REPLY_TIMEOUT_S
        )
        return reply

    async def publish(self, sdp: str) -> dict[str, Any]:
        return await self.call("media.publish", {"sdp": sdp, "source": "camera"})

    async def view(self, sdp: str) -> dict[str, Any]:
        return await self.call("media.view", {"stream": self.stream, "sdp": sdp})

    def close(self) -> None:
        self.sio.disconnect()


Signaling = Channel | WebApp


async def publish(signaling: Signaling) -> int:
    from tests.media.conftest import Publisher

    publisher = Publisher()
    video = next(s for s in publisher.pc.getSenders() if s.track and s.track.kind == "video")
    requests = count_keyframe_requests(video)
    try:
        reply = await signaling.publish(await publisher.offer())
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


class Watching:
    """A viewer's current connection; after ``media.moved`` for its worker, a new one (the old
    closed), as the room page does."""

    def __init__(self, signaling: Signaling) -> None:
        self.signaling = signaling
        self.viewer: Any = None
        self.worker: str | None = None
        self.ssrc: int | None = None
        self.answered = 0.0
        self.moved_at: float | None = None

    async def open(self) -> bool:
        """View the stream (again); False, with an error line, if it is refused."""
        from tests.media.conftest import Viewer

        viewer = Viewer()
        reply = await self.signaling.view(await viewer.offer())
        if not reply.get("ok"):
            await viewer.close()
            emit("error", error=reply.get("error"))
            return False
        await viewer.answer(reply["sdp"])
        old, self.viewer = self.viewer, viewer
        self.answered, self.ssrc = time.monotonic(), video_ssrc(reply["sdp"])
        self.worker = reply.get("worker")
        emit("viewing", peer=reply["peer"], worker=self.worker)
        if old is not None:
            await old.close()
        return True

    async def follow(self, moves: asyncio.Queue[str]) -> None:
        """View again whenever the worker serving this viewer is reported moved."""
        while True:
            worker = await moves.get()
            if worker == self.worker:
                self.moved_at = time.monotonic()
                emit("moved", worker=worker)
                await self.open()

    def stats(self) -> dict[str, Any]:
        viewer, first = self.viewer, self.viewer.first_video_at
        moved = self.moved_at
        return {
            "state": viewer.pc.connectionState,
            "frames": viewer.frames,
            "sizes": sorted(viewer.sizes),
            "first_video_s": None if first is None else round(first - self.answered, 3),
            # media.moved -> the first frame decoded from the worker it views now
            "back_s": None if moved is None or first is None else round(first - moved, 3),
        }

    async def close(self) -> None:
        if self.viewer is not None:
            await self.viewer.close()


async def view(signaling: Signaling) -> int:
    watching = Watching(signaling)
    follower = asyncio.ensure_future(watching.follow(signaling.moves))
    try:
        if not await watching.open():
            return 1
        async for command in commands():
            if command == "stats":
                emit("stats", **watching.stats())
            elif command == "pli" and watching.ssrc is not None:
                video = next(t for t in watching.viewer.pc.getTransceivers() if t.kind == "video")
                await video.receiver._send_rtcp_pli(watching.ssrc)
                emit("pli", ssrc=watching.ssrc)
            else:
                emit("error", error=f"unknown command {command!r}")
    finally:
        follower.cancel()
        await watching.close()
    return 0


async def run(args: argparse.Namespace) -> int:
    """Sign in or not, then publish or view; the exit status."""
    signaling: Signaling
    if args.channel:
        signaling = Channel(args.channel, args.token)
    else:
        loop = asyncio.get_running_loop()
        signaling = await asyncio.to_thread(
            WebApp, args.url, args.cookie, args.room, args.stream, loop
        )
    try:
        return await (publish(signaling) if args.role == "publish" else view(signaling))
    finally:
        signaling.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A publisher or viewer for a media worker.")
    parser.add_argument("role", choices=["publish", "view"])
    parser.add_argument("--address", required=True, help="this peer's one ICE host address")
    parser.add_argument("--channel", help="a worker's channel, HOST:PORT")
    parser.add_argument("--token", help="with --channel: the grant the web app would sign")
    parser.add_argument("--url", help="the web app (Socket.IO), instead of --channel")
    parser.add_argument("--cookie", help="with --url: a session cookie, name=value")
    parser.add_argument("--room", default="lesson:1", help="with --url: the room to join")
    parser.add_argument("--stream", help="with --url: the stream to view")
    args = parser.parse_args()
    if not (args.channel and args.token) and not (args.url and args.cookie):
        parser.error("give --channel and --token, or --url and --cookie")
    if args.url and args.role == "view" and not args.stream:
        parser.error("a viewer through the web app needs --stream")
    ice.limit_host_addresses([args.address])
    sys.exit(asyncio.run(run(args)))


# -- the test's side --------------------------------------------------------------------------
class PeerProcess:
    """This script running in ``namespace``: commands in, JSON events out."""

    def __init__(self, namespace: Namespace, role: str, **options: str) -> None:
        """``options``: the script's, e.g. ``channel=..., token=...`` or ``url=..., cookie=...``."""
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.output: list[str] = []
        command = [sys.executable, "-m", "tests.netns_peer", role, "--address", namespace.address]
        for name, value in options.items():
            command += [f"--{name}", value]
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
        stop_process(self.proc)


if __name__ == "__main__":
    main()
