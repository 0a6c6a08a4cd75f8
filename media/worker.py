"""A media worker: an asyncio + aiortc process that forwards published streams to viewers.

It listens on a loopback TCP port for the web app's requests, one JSON object per line (see
``docs/protocol.md``, "Media worker channel"): ``publish`` and ``view`` take a browser's SDP offer
and a token signed by the web app and return the answer; ``close``, ``close_stream``,
``close_room`` and ``stats`` manage and describe what runs. ``relay`` makes this worker receive a
stream published on another worker (a cascade leg: this worker is a viewer of the origin) and
serve it to its own viewers. Run it with ``python -m media.worker --host H --port P``
(``MEDIA_SECRET`` in the environment; ``MEDIA_CAPACITY``, the viewers it accepts, in ``stats``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx
from aiortc.exceptions import OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import aiortc_internals, ice, sdp, tokens
from media.adapt import Quality
from media.channel import MediaUnavailable, call_async, parse_addr
from media.hls import HlsPackager
from media.hub import TrackHub, tap_receiver
from media.recorder import RoomRecording
from media.rtp import LayerRoute, RtpFanout, RtpViewer, tap_rtp

log = logging.getLogger("media.worker")

MAX_LINE = 256 * 1024
VIDEO_CODECS = ("video/H264", "video/VP8")  # H.264: packetization-mode 1 (aiortc's only)
CODECS = {"video": (*VIDEO_CODECS, "video/rtx"), "audio": ("audio/opus",)}
COUNTERS = {"encoders": 0, "decoders": 0}
DEFAULT_CAPACITY = 150  # viewers a worker accepts (MEDIA_CAPACITY), cascade legs it feeds included
LEG_TIMEOUT_S = 10.0  # a cascade leg's view request to its origin worker
PUBLISHER_REMB_FLOOR = 1_500_000  # bits/s: room for every simulcast layer (aiortc_internals)
LEG_LAYERS = ("low", "high")  # what a leg receives of a simulcast stream, one receiver each


def count_codecs() -> None:
    """Count every encoder and decoder aiortc creates here: forwarding must create none."""
    aiortc_internals.count_codecs(COUNTERS)


def pin_codecs(pc: RTCPeerConnection, video: RTCRtpCodecCapability | None = None) -> None:
    """H.264, VP8 and Opus only, or for a viewer exactly the stream's ``video`` codec, so every
    viewer decodes what the publisher sends.

    An answerer's codecs were negotiated in ``setRemoteDescription``, before preferences set
    here could apply: the negotiated list is narrowed too, or the answer would keep others.

    :raises ValueError: the offer has no codec wanted (a viewer's: not the stream's)
    """
    for transceiver in pc.getTransceivers():
        caps = RTCRtpSender.getCapabilities(transceiver.kind) or RTCRtpReceiver.getCapabilities(
            transceiver.kind
        )
        if caps is None:
            continue
        wanted = [c for c in caps.codecs if c.mimeType in CODECS.get(transceiver.kind, ())]
        if transceiver.kind == "video" and video is not None:
            wanted = [c for c in wanted if is_rtx(c) or same_codec(c, video)]
        transceiver.setCodecPreferences(wanted)
        if aiortc_internals.narrow_negotiated_codecs(transceiver, wanted):
            continue
        if transceiver.kind == "video" and video is not None:
            raise ValueError(f"the viewer's browser cannot receive {codec_name(video)}")
        raise ValueError(f"the offer has no {transceiver.kind} codec this server forwards")


def settle_video_codec(pc: RTCPeerConnection) -> RTCRtpCodecCapability | None:
    """The publisher's video codec: the first one its offer lists of those forwarded (a browser
    lists what it prefers first); the answer is narrowed to it (and its RTX), so the publisher
    cannot switch to another one viewers were not offered."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            codec = video_codec(transceiver)
            if codec is not None:
                caps = codec_capabilities("video")
                chosen = [c for c in caps if is_rtx(c) or same_codec(c, codec)]
                transceiver.setCodecPreferences(chosen)
                aiortc_internals.narrow_negotiated_codecs(transceiver, chosen)
            return codec
    return None


def video_codec(transceiver: Any) -> RTCRtpCodecCapability | None:
    """The first video codec forwarded that a transceiver has negotiated, as a capability."""
    for codec in aiortc_internals.negotiated_codecs(transceiver):
        if codec.mimeType in VIDEO_CODECS:
            return RTCRtpCodecCapability(
                mimeType=codec.mimeType,
                clockRate=codec.clockRate,
                parameters=dict(codec.parameters),
            )
    return None


def codec_capabilities(kind: str) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpReceiver.getCapabilities(kind)
    return [] if caps is None else [c for c in caps.codecs if c.mimeType in CODECS[kind]]


def same_codec(a: RTCRtpCodecCapability, b: RTCRtpCodecCapability) -> bool:
    """The same codec with the same format parameters (an H.264 profile, for one)."""
    return a.mimeType.lower() == b.mimeType.lower() and a.parameters == b.parameters


def codec_name(codec: RTCRtpCodecCapability | None) -> str:
    """``H264``, ``VP8`` (what stats and refusals name)."""
    return "" if codec is None else codec.mimeType.split("/")[-1]


@dataclass
class Stream:
    """One publisher connection (camera + microphone, or a screen) and its fan-out hubs."""

    id: str
    room: str
    user: int
    pc: RTCPeerConnection
    hubs: dict[str, TrackHub] = field(default_factory=dict)
    fanouts: dict[str, RtpFanout] = field(default_factory=dict)
    viewers: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    leg: Leg | None = None  # relayed from another worker (a cascade leg), not published here
    rids: list[str] = field(default_factory=list)  # its video's simulcast layers (RFC 8853)
    video_codec: RTCRtpCodecCapability | None = None  # negotiated with its publisher (or origin)

    @property
    def video_mime(self) -> str:
        """The video codec's MIME type (VP8's for an audio-only stream)."""
        return "video/VP8" if self.video_codec is None else self.video_codec.mimeType

    def use_video_codec(self, codec: RTCRtpCodecCapability | None) -> None:
        """The negotiated video codec: viewers get exactly it, keyframes are found by it."""
        self.video_codec = codec
        if codec is not None and "video" in self.fanouts:
            self.fanouts["video"].codec = codec.mimeType


@dataclass(frozen=True)
class Leg:
    """Where a relayed stream comes from: the origin worker's channel and our peer there."""

    origin: str
    peer: str


class Worker:
    """The registry of streams and peer connections of this process."""

    def __init__(
        self,
        secret: str,
        ice_servers: list[dict[str, Any]],
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.secret = secret
        self.ice_servers = ice_servers
        self.capacity = capacity  # advisory: the web app places viewers by it (stats)
        self.streams: dict[str, Stream] = {}
        self.opening: dict[str, asyncio.Future[Stream]] = {}  # relays being connected, by stream
        self.viewers: dict[str, tuple[RTCPeerConnection, str]] = {}  # peer -> (pc, stream id)
        self.recordings: dict[str, RoomRecording] = {}  # room -> its running recording
        self.hls: dict[str, tuple[HlsPackager, list[tuple[TrackHub, Any]]]] = {}  # by stream
        self.peers: dict[str, Peer] = {}  # viewer connections' grants and video senders

    def new_pc(self, on_dead: Any) -> RTCPeerConnection:
        pc = RTCPeerConnection(ice.configuration(self.ice_servers))

        @pc.on("connectionstatechange")
        async def state_changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await on_dead()

        return pc

    async def publish(self, msg: dict[str, Any]) -> dict[str, Any]:
        grant = tokens.verify(self.secret, msg.get("token"), "publish")
        description = offer(msg, sending=True)  # refused before a connection exists
        stream_id = str(grant.get("stream") or uuid.uuid4().hex)
        pc = self.new_pc(lambda: self.close_stream({"stream": stream_id}))
        stream = Stream(id=stream_id, room=grant["room"], user=grant["user"], pc=pc)
        layers = sdp.simulcast_rids(description.sdp)
        stream.rids = next(iter(layers.values()), [])  # one video section is taken
        try:
            await self.receive(stream, description)
        except Exception:
            await stream.pc.close()  # an offer it refuses leaves no connection behind
            raise
        if not stream.hubs:
            await stream.pc.close()
            return {"ok": False, "error": "the offer has no audio or video to publish"}
        self.streams[stream.id] = stream
        if stream.room in self.recordings:
            self.recordings[stream.room].attach(
                stream.id, stream.user, stream.hubs, stream.video_mime
            )
        answer = await stream.pc.createAnswer()
        await stream.pc.setLocalDescription(answer)
        return {
            "ok": True,
            "stream": stream.id,
            "kinds": sorted(stream.hubs),
            "video_codec": codec_name(stream.video_codec),
            "layers": len(stream.rids) or 1,
            "type": "answer",
            "sdp": sdp.answer_simulcast(stream.pc.localDescription.sdp, layers),
        }

    async def receive(self, stream: Stream, description: RTCSessionDescription) -> None:
        """Apply the publisher's offer and tap each audio and video track it sends."""
        await apply_offer(stream.pc, description)
        for transceiver in stream.pc.getTransceivers():
            self.tap(stream, transceiver.receiver, transceiver.kind)
        if stream.hubs:
            stream.use_video_codec(settle_video_codec(stream.pc))  # in the offer's order
            pin_codecs(stream.pc)

    def tap(
        self, stream: Stream, receiver: RTCRtpReceiver, kind: str, layer: str | None = None
    ) -> None:
        """Serve what ``receiver`` gets to the stream's viewers (once per kind; a cascade leg's
        video: once per ``layer``, the first one assembled into frames)."""
        if layer is not None and kind in stream.fanouts:
            tap_rtp(receiver, stream.fanouts[kind], LayerRoute(stream.fanouts[kind], layer, False))
            return
        if layer is not None:
            hub = stream.hubs[kind] = tap_receiver(receiver, kind)
            fanout = RtpFanout(kind, hub.request_keyframe, stream.rids)
            stream.fanouts[kind] = fanout
            hub.frames_ssrc = lambda: fanout.recorded_ssrc
            tap_rtp(receiver, fanout, LayerRoute(fanout, layer, True))
            return
        if kind == "video":
            aiortc_internals.floor_estimate(receiver, PUBLISHER_REMB_FLOOR)
        if kind in CODECS and kind not in stream.hubs:
            hub = stream.hubs[kind] = tap_receiver(receiver, kind)
            fanout = RtpFanout(kind, hub.request_keyframe, stream.rids if kind == "video" else ())
            stream.fanouts[kind] = fanout
            hub.frames_ssrc = lambda: fanout.recorded_ssrc
            tap_rtp(receiver, fanout)

    async def relay(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Receive a stream of another worker (its origin) over one leg, to serve it here.

        Idempotent: a stream this worker has already, or is connecting, is not asked for again.
        """
        grant = tokens.verify(self.secret, msg.get("token"), "relay")
        stream_id, origin, origin_token = relay_fields(grant)
        existing = self.streams.get(stream_id)
        if existing is None and stream_id in self.opening:
            existing = await asyncio.shield(self.opening[stream_id])
        if existing is not None:
            if existing.room != grant["room"]:
                return {"ok": False, "error": "no such stream"}
            return relayed(existing, created=False)
        opening = self.opening[stream_id] = asyncio.ensure_future(
            self.open_leg(stream_id, grant, origin, origin_token)
        )
        try:
            return relayed(await opening, created=True)
        except LegRefused as exc:
            return {"ok": False, "error": str(exc)}
        finally:
            self.opening.pop(stream_id, None)

    async def open_leg(
        self, stream_id: str, grant: dict[str, Any], origin: str, origin_token: str
    ) -> Stream:
        """Connect to ``origin`` as a viewer of ``stream_id``; what arrives is served here."""
        pc = self.new_pc(lambda: self.close_stream({"stream": stream_id}))
        stream = Stream(id=stream_id, room=grant["room"], user=int(grant.get("user") or 0), pc=pc)
        try:
            # One video receiver per layer it may get (the origin answers how many it sends).
            video = [pc.addTransceiver("video", direction="recvonly") for _ in LEG_LAYERS]
            audio = pc.addTransceiver("audio", direction="recvonly")
            pin_codecs(pc)
            await pc.setLocalDescription(await pc.createOffer())
            try:
                reply = await call_async(  # the top layer: its viewers here adapt on their own
                    origin,
                    "view",
                    LEG_TIMEOUT_S,
                    token=origin_token,
                    sdp=describe(pc)["sdp"],
                    quality=Quality.HIGH.value,
                )
            except MediaUnavailable as exc:
                raise LegRefused(f"the origin worker did not answer: {exc}") from exc
            if not reply.get("ok") or not isinstance(reply.get("sdp"), str):
                raise LegRefused(f"the origin worker refused: {reply.get('error')}")
            stream.leg = Leg(origin, str(reply.get("peer")))
            if reply.get("layers") == len(LEG_LAYERS):  # top layer first, as the origin adds
                stream.rids = list(LEG_LAYERS)
                self.tap(stream, video[0].receiver, "video", LEG_LAYERS[-1])
                self.tap(stream, video[1].receiver, "video", LEG_LAYERS[0])
            else:
                self.tap(stream, video[0].receiver, "video")
            self.tap(stream, audio.receiver, "audio")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
            stream.use_video_codec(
                next((video_codec(t) for t in pc.getTransceivers() if t.kind == "video"), None)
            )
        except BaseException:
            await self.end_stream(stream)
            raise
        self.streams[stream_id] = stream
        return stream

    async def view(self, msg: dict[str, Any]) -> dict[str, Any]:
        grant = tokens.verify(self.secret, msg.get("token"), "view")
        description = offer(msg, sending=False)
        quality = quality_field(msg)
        stream = self.streams.get(grant.get("stream", ""))
        if stream is None or stream.room != grant["room"]:
            return {"ok": False, "error": "no such stream"}
        peer = uuid.uuid4().hex
        pc = self.new_pc(lambda: self.close({"peer": peer}))
        try:  # before subscribing: an offer it refuses must leave nothing behind
            await apply_offer(pc, description)
            pin_codecs(pc, stream.video_codec)
        except ValueError:
            await pc.close()
            raise
        video = None
        for kind in stream.hubs:
            viewer = RtpViewer(pc.addTrack(IdleTrack(kind)), stream.fanouts[kind], quality)
            video = viewer if kind == "video" else video
        layers = 1
        sections = sum(1 for t in pc.getTransceivers() if t.kind == "video")
        if video is not None and sections > 1 and len(video.fanout.layers) > 1:
            # A cascade leg's second video receiver: the lowest layer, for its viewers there.
            RtpViewer(pc.addTrack(IdleTrack("video")), video.fanout, Quality.LOW)
            layers = 2
        self.peers[peer] = Peer(grant["room"], int(grant.get("user") or 0), stream.id, video)
        self.viewers[peer] = (pc, stream.id)
        stream.viewers.add(peer)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return {"ok": True, "peer": peer, "layers": layers, **describe(pc)}

    async def close(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Close one viewer connection."""
        entry = self.viewers.pop(str(msg.get("peer")), None)
        self.peers.pop(str(msg.get("peer")), None)
        if entry is None:
            return {"ok": True, "closed": 0}
        pc, stream_id = entry
        if stream_id in self.streams:
            self.streams[stream_id].viewers.discard(str(msg.get("peer")))
        for sender in pc.getSenders():
            if sender.track:
                sender.track.stop()
        await pc.close()
        return {"ok": True, "closed": 1}

    async def prefer(self, msg: dict[str, Any]) -> dict[str, Any]:
        """A viewer's own choice of quality (Auto, High, Low, Audio only), applied at once."""
        grant = tokens.verify(self.secret, msg.get("token"), "prefer")
        quality = quality_field(msg)
        peer = self.peers.get(str(msg.get("peer")))
        if peer is None or peer.room != grant["room"] or peer.user != grant.get("user"):
            return {"ok": False, "error": "no such viewer"}
        if peer.video is not None:
            peer.video.fanout.prefer(peer.video, quality)
        return {"ok": True}

    async def close_stream(self, msg: dict[str, Any]) -> dict[str, Any]:
        """End a published (or relayed) stream and every viewer connection of it."""
        stream = self.streams.pop(str(msg.get("stream")), None)
        if stream is None:
            return {"ok": True, "closed": 0}
        await self.end_stream(stream)
        return {"ok": True, "closed": 1}

    async def end_stream(self, stream: Stream) -> None:
        """Stop what serves ``stream`` here; a relayed one's leg is closed at its origin too."""
        if stream.room in self.recordings:
            self.recordings[stream.room].detach(stream.id)
        await self.stop_hls(stream.id)
        for hub in stream.hubs.values():
            hub.end()
        for fanout in stream.fanouts.values():
            fanout.end()
        for peer in tuple(stream.viewers):
            await self.close({"peer": peer})
        await stream.pc.close()
        if stream.leg is not None:
            with contextlib.suppress(MediaUnavailable):  # an origin that is gone closed it
                await call_async(stream.leg.origin, "close", LEG_TIMEOUT_S, peer=stream.leg.peer)

    async def close_room(self, msg: dict[str, Any]) -> dict[str, Any]:
        ids = [s.id for s in self.streams.values() if s.room == msg.get("room")]
        for stream_id in ids:
            await self.close_stream({"stream": stream_id})
        return {"ok": True, "closed": len(ids)}

    async def record_start(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Record the room's streams, present and future, into the grant's folder."""
        grant = tokens.verify(self.secret, msg.get("token"), "record")
        room, directory = grant["room"], Path(grant["dir"])
        if room in self.recordings:
            return {"ok": False, "error": "this room is already being recorded"}
        directory.mkdir(parents=True, exist_ok=True)
        recording = self.recordings[room] = RoomRecording(room, directory)
        for stream in self.streams.values():
            if stream.room == room and stream.leg is None:  # recorded where it is published
                recording.attach(stream.id, stream.user, stream.hubs, stream.video_mime)
        recording.write_manifest()
        return {"ok": True, "started_at": recording.started_at}

    async def record_stop(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Finish the room's recording; the reply carries its manifest."""
        grant = tokens.verify(self.secret, msg.get("token"), "record")
        recording = self.recordings.pop(grant["room"], None)
        if recording is None:
            return {"ok": False, "error": "this room is not being recorded"}
        return {"ok": True, "manifest": await recording.stop()}

    async def hls_start(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Package one stream of the grant's room as HLS into the grant's folder."""
        grant = tokens.verify(self.secret, msg.get("token"), "hls")
        stream = self.streams.get(str(grant.get("stream", "")))
        if stream is None or stream.room != grant["room"]:
            return {"ok": False, "error": "no such stream in this room"}
        if stream.id in self.hls:
            return {"ok": True, "created": False}
        video = stream.hubs.get("video")
        packager = HlsPackager(
            Path(grant["dir"]),
            set(stream.hubs),
            stream.video_mime,
            video.request_keyframe if video is not None else None,
        )
        taps: list[tuple[TrackHub, Any]] = []
        for kind, hub in stream.hubs.items():
            sink = partial(packager.on_frame, kind)
            hub.sinks.append(sink)
            taps.append((hub, sink))
            hub.request_keyframe()
        self.hls[stream.id] = (packager, taps)
        return {"ok": True, "created": True, "transcoding": packager.transcode}

    async def hls_stop(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Stop a stream's HLS tier; its files stay (the next tier into the folder clears them)."""
        grant = tokens.verify(self.secret, msg.get("token"), "hls")
        stream_id = str(grant.get("stream", ""))
        stream = self.streams.get(stream_id)
        if stream is not None and stream.room != grant["room"]:
            return {"ok": False, "error": "no such stream in this room"}
        return {"ok": True, "stopped": await self.stop_hls(stream_id)}

    async def stop_hls(self, stream_id: str) -> bool:
        """Detach and finish a stream's packager, if it has one."""
        entry = self.hls.pop(stream_id, None)
        if entry is None:
            return False
        packager, taps = entry
        for hub, sink in taps:
            if sink in hub.sinks:
                hub.sinks.remove(sink)
        await asyncio.get_running_loop().run_in_executor(None, packager.stop)
        return True

    async def stats(self, msg: dict[str, Any]) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "ok": True,
            "pid": os.getpid(),
            "streams": len(self.streams),
            "viewers": len(self.viewers),  # cascade legs this worker feeds included
            "capacity": self.capacity,
            "relays": sorted(s.id for s in self.streams.values() if s.leg is not None),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "encoders": COUNTERS["encoders"],
            "decoders": COUNTERS["decoders"],
            "frames": {
                s.id: {k: h.frames for k, h in s.hubs.items()} for s in self.streams.values()
            },
            "codecs": {s.id: codec_name(s.video_codec) for s in self.streams.values()},
            "hls": {i: {"dropped": p.dropped} for i, (p, _) in self.hls.items()},
            "layers": {
                s.id: s.fanouts["video"].describe_layers()
                for s in self.streams.values()
                if "video" in s.fanouts
            },
            "peers": {peer: describe_peer(entry) for peer, entry in self.peers.items()},
        }

    async def ping(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid()}

    async def shutdown(self) -> None:
        for stream_id in tuple(self.hls):
            await self.stop_hls(stream_id)
        for room in tuple(self.recordings):
            await self.recordings.pop(room).stop()
        for stream_id in tuple(self.streams):
            await self.close_stream({"stream": stream_id})


@dataclass
class Peer:
    """A viewer connection: whose view grant it came with, and its video's sender."""

    room: str
    user: int
    stream: str
    video: RtpViewer | None


def describe_peer(peer: Peer) -> dict[str, Any]:
    """``stats``' account of one viewer: its choice, layer, estimate and rate."""
    described: dict[str, Any] = {"stream": peer.stream}
    if peer.video is not None:
        described.update(peer.video.describe(peer.video.fanout.live()))
    else:
        described.update(quality="auto", layer="audio", estimate_kbps=None, sent_kbps=0)
    return described


def quality_field(msg: dict[str, Any]) -> Quality:
    """The request's ``quality`` (default Auto).

    :raises ValueError: not one of auto, high, low, audio
    """
    raw = msg.get("quality", Quality.AUTO.value)
    try:
        return Quality(raw)
    except ValueError:
        raise ValueError("quality must be one of auto, high, low, audio") from None


class LegRefused(ValueError):
    """The origin worker of a relay could not be reached or refused the leg."""


def relayed(stream: Stream, created: bool) -> dict[str, Any]:
    """The ``relay`` reply: the leg's peer id at the origin lets the web app close it there
    when this worker dies."""
    reply = {"ok": True, "stream": stream.id, "created": created}
    if stream.leg is not None:
        reply["origin_peer"] = stream.leg.peer
    return reply


def relay_fields(grant: dict[str, Any]) -> tuple[str, str, str]:
    """A relay grant's stream id, origin address and origin view token, checked.

    :raises ValueError: one is missing or malformed
    """
    stream_id, origin, origin_token = (grant.get(k) for k in ("stream", "origin", "origin_token"))
    if not isinstance(stream_id, str) or not 0 < len(stream_id) <= 64:
        raise ValueError("a relay grant needs the stream id")
    if not isinstance(origin, str) or len(origin) > 300 or ":" not in origin:
        raise ValueError('a relay grant needs the origin worker as "host:port"')
    parse_addr(origin)  # a port from 1 to 65535
    if not isinstance(origin_token, str) or not origin_token:
        raise ValueError("a relay grant needs a view token for the origin")
    return stream_id, origin, origin_token


class IdleTrack(MediaStreamTrack):
    """The track an RTP-forwarding viewer's sender holds: it is never read."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        raise MediaStreamError


def offer(msg: dict[str, Any], sending: bool) -> RTCSessionDescription:
    """The request's SDP offer, checked (``media.sdp``) before any connection is made for it.

    :raises ValueError: not an offer a publisher (``sending``) or a viewer could use
    """
    text = msg.get("sdp")
    if not isinstance(text, str) or not text.startswith("v=0") or len(text) > MAX_LINE:
        raise ValueError("sdp must be an SDP offer")
    sdp.check_offer(text, sending)
    return RTCSessionDescription(sdp=text, type="offer")


async def apply_offer(pc: RTCPeerConnection, description: RTCSessionDescription) -> None:
    """``pc.setRemoteDescription``, with aiortc's refusal of an offer whose codecs it has none
    of (VP9 or AV1 only, say) told as the worker's other codec refusals are.

    :raises ValueError: no codec in common for one of the offer's kinds
    """
    try:
        await pc.setRemoteDescription(description)
    except OperationError as exc:
        kind = "video" if "video" in str(exc) else "audio"
        raise ValueError(f"the offer has no {kind} codec this server forwards") from exc


def describe(pc: RTCPeerConnection) -> dict[str, str]:
    return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}


OPS = (
    "publish",
    "view",
    "close",
    "close_stream",
    "close_room",
    "record_start",
    "record_stop",
    "hls_start",
    "hls_stop",
    "stats",
    "ping",
    "relay",
    "prefer",
)


async def handle_line(worker: Worker, line: bytes) -> dict[str, Any]:
    """Run one request; errors become ``{"ok": false, "error": ...}``, never a crash."""
    msg: Any = None  # stays None when the line is not JSON
    try:
        msg = json.loads(line)
        if not isinstance(msg, dict) or msg.get("op") not in OPS:
            return {"ok": False, "error": "unknown op"}
        reply: dict[str, Any] = await getattr(worker, msg["op"])(msg)
    except tokens.BadToken as exc:
        reply = {"ok": False, "error": f"refused: {exc}"}
    except (ValueError, KeyError, TypeError) as exc:
        reply = {"ok": False, "error": f"bad request: {exc}"}
    except Exception as exc:  # a broken peer must not take the worker down
        log.exception("request failed")
        reply = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
    if isinstance(msg, dict) and "id" in msg:
        reply["id"] = msg["id"]
    return reply


async def serve_client(
    worker: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while line := await reader.readline():
            reply = await handle_line(worker, line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (its children are re-parented)."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    stop.set()


async def main(host: str, port: int, parent: int | None = None) -> None:
    secret = os.environ.get("MEDIA_SECRET", "")
    if not secret:
        raise SystemExit("MEDIA_SECRET must be set")
    ice.limit_host_addresses(
        [a for a in os.environ.get("MEDIA_HOST_ADDRESSES", "").split(",") if a]
    )
    try:
        aiortc_internals.check_version()
    except aiortc_internals.UnsupportedAiortc as exc:
        raise SystemExit(str(exc)) from exc
    count_codecs()
    aiortc_internals.accept_h264_main()
    aiortc_internals.accept_simulcast()
    worker = Worker(
        secret, ice.parse_ice_servers(os.environ.get("ICE_SERVERS")), capacity_setting()
    )
    server = await asyncio.start_server(
        lambda r, w: serve_client(worker, r, w), host, port, limit=MAX_LINE
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"media worker listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.ensure_future(watch_parent(parent, stop)) if parent else None
    async with server:
        await stop.wait()
    if watcher is not None:
        watcher.cancel()
    with contextlib.suppress(Exception):
        await worker.shutdown()


def capacity_setting() -> int:
    """``MEDIA_CAPACITY``: the viewers this worker accepts (default 150)."""
    raw = os.environ.get("MEDIA_CAPACITY") or str(DEFAULT_CAPACITY)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit("MEDIA_CAPACITY must be a whole number of viewers, at least 1")
    return int(raw)


def run() -> None:
    parser = argparse.ArgumentParser(description="Lectern media worker (asyncio + aiortc).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent", type=int, default=None, help="exit when this pid is gone")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("MEDIA_LOG_LEVEL", "WARNING"))
    asyncio.run(main(args.host, args.port, args.parent))


if __name__ == "__main__":
    run()
