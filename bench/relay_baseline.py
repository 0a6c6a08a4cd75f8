"""The stock aiortc way to fan out, for comparison with the media worker: decode, then re-encode.

    python bench/relay_baseline.py --port 0      (MEDIA_SECRET and MEDIA_HOST_ADDRESSES as for
                                                 ``python -m media.worker``)

It speaks the media worker's channel (``publish``, ``view``, ``close``, ``stats``, ...; see
``docs/protocol.md``) so ``bench/fanout.py`` drives both servers the same way. The publisher's
tracks are decoded once and handed to every viewer through ``MediaRelay().subscribe(track)``, so
each viewer's ``RTCRtpSender`` runs its own VP8 and Opus encoder (``stats`` counts them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from aiortc.codecs.vpx import Vp8Encoder
from aiortc.contrib.media import MediaBlackhole, MediaRelay
from aiortc.mediastreams import MediaStreamTrack

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: the app's packages live one level up

from media import ice, tokens  # noqa: E402
from media.worker import (  # noqa: E402
    Stream,
    Worker,
    count_codecs,
    describe,
    offer,
    pin_codecs,
    serve_client,
)

BITRATE = 600_000  # what bench/fanout.py's publisher sends, so both servers carry the same load


class PinnedVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder held at one target bitrate: it ignores the receiver's REMB estimates.

    On loopback REMB soon asks for aiortc's maximum (1.5 Mb/s); a benchmark wants a fixed load.
    """

    def __init__(self, bitrate: int = BITRATE) -> None:
        super().__init__()
        self._pinned = bitrate
        self._Vp8Encoder__target_bitrate = bitrate  # read directly for libvpx's buffer size

    @property
    def target_bitrate(self) -> int:
        return self._pinned

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        pass


class RelayWorker(Worker):
    """A media worker whose streams are decoded once and re-encoded for every viewer."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret, [])
        self.media_relay = MediaRelay()  # not "relay": the cascade op
        self.sources: dict[str, dict[str, MediaStreamTrack]] = {}  # stream id -> kind -> track
        self.sinks: dict[str, MediaBlackhole] = {}  # keeps decoding when nobody watches

    async def publish(self, msg: dict[str, Any]) -> dict[str, Any]:
        grant = tokens.verify(self.secret, msg.get("token"), "publish")
        stream_id = str(grant.get("stream") or uuid.uuid4().hex)
        pc = self.new_pc(lambda: self.close_stream({"stream": stream_id}))
        tracks: dict[str, MediaStreamTrack] = {}
        pc.on("track", lambda track: tracks.setdefault(track.kind, track))
        await pc.setRemoteDescription(offer(msg))
        pin_codecs(pc)
        sink = MediaBlackhole()
        for track in tracks.values():
            sink.addTrack(self.media_relay.subscribe(track))
        await sink.start()
        self.streams[stream_id] = Stream(
            id=stream_id, room=grant["room"], user=grant["user"], pc=pc
        )
        self.sources[stream_id], self.sinks[stream_id] = tracks, sink
        await pc.setLocalDescription(await pc.createAnswer())
        return {"ok": True, "stream": stream_id, "kinds": sorted(tracks), **describe(pc)}

    async def view(self, msg: dict[str, Any]) -> dict[str, Any]:
        grant = tokens.verify(self.secret, msg.get("token"), "view")
        stream = self.streams.get(grant.get("stream", ""))
        sources = self.sources.get(stream.id) if stream else None
        if stream is None or sources is None or stream.room != grant["room"]:
            return {"ok": False, "error": "no such stream"}
        peer = uuid.uuid4().hex
        pc = self.new_pc(lambda: self.close({"peer": peer}))
        await pc.setRemoteDescription(offer(msg))
        for kind, track in sources.items():
            sender = pc.addTrack(self.media_relay.subscribe(track))
            if kind == "video":
                sender._RTCRtpSender__encoder = PinnedVp8Encoder()
        pin_codecs(pc)
        self.viewers[peer] = (pc, stream.id)
        stream.viewers.add(peer)
        await pc.setLocalDescription(await pc.createAnswer())
        return {"ok": True, "peer": peer, **describe(pc)}

    async def close_stream(self, msg: dict[str, Any]) -> dict[str, Any]:
        stream_id = str(msg.get("stream"))
        self.sources.pop(stream_id, None)
        sink = self.sinks.pop(stream_id, None)
        if sink is not None:
            await sink.stop()
        return await super().close_stream(msg)


async def main(host: str, port: int) -> None:
    secret = os.environ.get("MEDIA_SECRET", "")
    if not secret:
        raise SystemExit("MEDIA_SECRET must be set")
    ice.limit_host_addresses(
        [a for a in os.environ.get("MEDIA_HOST_ADDRESSES", "").split(",") if a]
    )
    count_codecs()
    worker = RelayWorker(secret)
    server = await asyncio.start_server(lambda r, w: serve_client(worker, r, w), host, port)
    print(f"baseline relay listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    with contextlib.suppress(Exception):
        await worker.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="MediaRelay baseline server (decode + encode).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("MEDIA_LOG_LEVEL", "WARNING"))
    asyncio.run(main(args.host, args.port))
