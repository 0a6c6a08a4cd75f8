"""Publishing and viewing media: the room checks who may publish, a media worker does the rest.

The browser sends its SDP offer over Socket.IO; the web app checks the permission, signs a
short-lived grant and relays the offer to the room's media worker (``media.channel``); the
answer comes back as the event's reply. Streams are rows in ``media_streams``, written before
the room is told about them.

A stream is published on one worker (its origin); its viewers may be placed on others
(``rooms.placement``), which receive it from the origin over one leg each (rows in
``media_relays``). A worker that dies resets the streams published on it (``media.reset``) and
moves the viewers it served (``media.moved``: their pages view again, elsewhere).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from lectern.extensions import db
from media import sdp, tokens
from media.channel import MediaChannel, MediaUnavailable
from rooms import hls, log, recording
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.grants import may_publish
from rooms.models import Connection, MediaRelay, MediaStream, Room
from rooms.people import names
from rooms.placement import origin_for, placement, worker_id
from rooms.policy import Perm
from rooms.validate import N_, Choice, Text

SDP_MAX = 64 * 1024
SOURCES = ("camera", "screen")
# What a viewer asks to receive: the worker picks the layer ("auto"), or the best, the lowest,
# or no video at all ("audio": a data saver).
QUALITIES = ("auto", "high", "low", "audio")
# The worker's answer to ``prefer`` for a peer it does not serve (or one of another user's).
NOT_HERE = "no such viewer"
# The stream sid of a publisher without a Socket.IO connection (an encoder over WHIP).
EXTERNAL = "whip:"
MAY_NOT_PUBLISH = N_("you may not publish in this room (ask to be called on)")
# The media package's refusals of malformed offers (media/sdp.py), marked here for the
# catalogue: media/ is not extracted. tests/media/test_sdp.py keeps the two lists equal.
OFFER_REFUSALS = (
    N_("the offer is not valid SDP"),
    N_("the SDP is not an offer (an offer's DTLS role is actpass)"),
    N_("the offer has no audio or video"),
    N_("the offer rejects one of its media sections (port 0)"),
    N_("the offer has no DTLS fingerprint"),
    N_("the offer has no ICE credentials"),
    N_("a publish offer must send every audio and video section"),
    N_("a view offer must receive every audio and video section"),
)
logger = logging.getLogger(__name__)


def channel() -> MediaChannel:
    found: MediaChannel | None = current_app.extensions.get("media")
    if found is None or not found.available:
        raise Refused("live media is not available on this server")
    return found


def secret() -> str:
    return str(current_app.config["MEDIA_SECRET"])


def prefer_h264() -> bool:
    """Whether presenters' pages offer H.264 first (``MEDIA_PREFER_H264``; else VP8)."""
    return bool(current_app.config.get("MEDIA_PREFER_H264"))


def ice_servers() -> list[dict[str, Any]]:
    """The ICE servers browsers should use (the ``ICE_SERVERS`` setting; none by default)."""
    return list(current_app.config.get("ICE_SERVERS") or [])


def room_key(room_id: int) -> str:
    room = db.session.get(Room, room_id)
    assert room is not None
    return room.key


def streams(room_id: int) -> list[dict[str, Any]]:
    """The room's live streams, oldest first, with the publisher's name."""
    rows = list(
        db.session.scalars(
            select(MediaStream)
            .where(MediaStream.room_id == room_id)
            .order_by(MediaStream.started_at)
        )
    )
    who = names(s.user_id for s in rows)
    return [
        {"id": s.id, "user_id": s.user_id, "name": who.get(s.user_id, "?"), "source": s.source}
        for s in rows
    ]


def announce(room_id: int, out: Outbox) -> None:
    out.to_all(room_id, "media.streams", {"streams": streams(room_id)})


def publish(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Relay a publisher's offer; the stream is announced to the room once it is recorded, and
    only if the right to publish outlived the worker's answer."""
    if not may_publish(actor):
        raise Refused(MAY_NOT_PUBLISH)
    check(data["sdp"], sending=True)
    key = room_key(actor.room_id)
    media = channel()
    worker = origin_for(media, actor.room_id, key)
    grant = tokens.sign(secret(), op="publish", room=key, user=actor.user_id)
    reply = relay(media, worker, "publish", token=grant, sdp=data["sdp"])
    stream_id = reply["stream"]
    try:
        recorded = record(actor, data["source"], worker, stream_id, reply.get("video_codec"))
    except Exception:
        db.session.rollback()
        close_on_worker(worker, stream_id)
        raise
    if not recorded:
        close_on_worker(worker, stream_id)
        raise Refused(MAY_NOT_PUBLISH)
    announce(actor.room_id, out)
    recording.auto_start(actor, out)
    hls.stream_started(actor, worker, key, stream_id, data["source"])
    return {"stream": stream_id, "sdp": reply["sdp"], "type": reply["type"]}


def check(sdp_text: str, sending: bool) -> None:
    """Refuse a malformed offer before it reaches a worker (``media.sdp``; the worker checks
    again)."""
    try:
        sdp.check_offer(sdp_text, sending)
    except sdp.BadOffer as exc:
        raise Refused(str(exc)) from None  # one of OFFER_REFUSALS: translated when sent


def relay(media: MediaChannel, worker: str, op: str, **fields: Any) -> dict[str, Any]:
    """One request to the room's worker; refused when it cannot be reached or says no."""
    try:
        reply = media.call(worker, op, **fields)
    except MediaUnavailable as exc:
        logger.warning("%s failed: %s", op, exc)
        raise Refused("the media server is not reachable; try again in a moment") from exc
    if not reply.get("ok"):
        raise Refused("media server refused: %(why)s", why=reply.get("error"))
    return reply


def record(actor: Actor, source: str, worker: str, stream_id: str, video_codec: Any = None) -> bool:
    """Record the worker's new stream, unless the right to publish ended while the worker was
    answering (a hand lowered, a demotion, a removal, the publisher gone, the session ended).

    The check runs after the INSERT, in its transaction: on SQLite that INSERT holds the write
    lock, on PostgreSQL the rows checked are locked, and whoever withdraws the right commits that
    before looking for the user's streams. So either this sees the right gone, or the withdrawal
    finds this stream and stops it: no stream outlives its grant or its connection.
    """
    stream = MediaStream(
        id=stream_id,
        room_id=actor.room_id,
        user_id=actor.user_id,
        sid=actor.sid,
        source=source,
        worker=worker,
        video_codec=str(video_codec)[:16] if video_codec else None,
    )
    db.session.add(stream)
    db.session.flush()
    if not still_allowed(actor):
        db.session.rollback()
        return False
    recording.stream_started(actor.room_id, stream)
    log.record(actor.room_id, actor.user_id, "media.publish", stream=stream_id, source=source)
    db.session.commit()
    return True


def still_allowed(actor: Actor) -> bool:
    """The actor's connection is open, the session not ended, and they may publish. An
    encoder publishing over HTTP (``EXTERNAL``: WHIP) has no connection; it is ended by its
    own route, by its key's revocation, the session's end or its worker's loss."""
    connected = actor.sid.startswith(EXTERNAL) or db.session.scalar(
        select(Connection.sid).where(Connection.sid == actor.sid).with_for_update(read=True)
    )
    ended = db.session.scalar(
        select(Room.ended_at).where(Room.id == actor.room_id).with_for_update(read=True)
    )
    return connected is not None and ended is None and may_publish(actor, lock=True)


def view(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Relay a viewer's offer for one of the room's streams to the worker placed to serve it
    (``rooms.placement``); one that is not the stream's origin receives the stream first."""
    stream = db.session.get(MediaStream, data["stream"])
    if stream is None or stream.room_id != actor.room_id:
        raise Refused("no such stream in this room")
    check(data["sdp"], sending=False)
    key = room_key(actor.room_id)
    media = channel()
    stream_id, origin = stream.id, stream.worker
    worker = placement().choose(media, origin, stream_id)
    if worker != origin:
        cascade(media, stream_id, origin, worker, key)
    grant = tokens.sign(secret(), op="view", room=key, user=actor.user_id, stream=stream_id)
    reply = relay(media, worker, "view", token=grant, sdp=data["sdp"], quality=data["quality"])
    return {
        "peer": reply["peer"],
        "sdp": reply["sdp"],
        "type": reply["type"],
        "worker": worker_id(worker),
    }


def prefer(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Change what one of the actor's own views receives, on the worker serving it: the
    stream's origin or one of its legs (the page does not say which; each worker but the one
    serving the view answers ``NOT_HERE``, and so do they all for another user's view)."""
    stream = db.session.get(MediaStream, data["stream"])
    if stream is None or stream.room_id != actor.room_id:
        raise Refused("no such stream in this room")
    workers = [stream.worker] + [worker for worker, _ in relays_of([stream.id])]
    grant = tokens.sign(secret(), op="prefer", room=room_key(actor.room_id), user=actor.user_id)
    media = channel()
    db.session.rollback()  # nothing written: end the read before the calls
    for worker in workers:
        if worker not in media.dead and ask_prefer(media, worker, grant, data):
            return {}
    raise Refused("you have no such view of this stream (it may have ended): view it again")


def ask_prefer(media: MediaChannel, worker: str, grant: str, data: dict[str, Any]) -> bool:
    """Whether ``worker`` serves the view and took the choice; False when it does not serve it
    or cannot be reached (another may); refused when it says no for another reason."""
    try:
        reply = media.call(
            worker, "prefer", token=grant, peer=data["peer"], quality=data["quality"]
        )
    except MediaUnavailable as exc:
        logger.warning("prefer failed on %s: %s", worker, exc)
        return False
    if reply.get("ok"):
        return True
    if reply.get("error") == NOT_HERE:
        return False
    raise Refused("media server refused: %(why)s", why=reply.get("error"))


def cascade(media: MediaChannel, stream_id: str, origin: str, worker: str, key: str) -> None:
    """Have ``worker`` receive a stream from its ``origin`` (once: the worker keeps one leg per
    stream), and record the leg so that ending the stream closes it."""
    origin_grant = tokens.sign(secret(), op="view", room=key, user=0, stream=stream_id)
    grant = tokens.sign(
        secret(), op="relay", room=key, stream=stream_id, origin=origin, origin_token=origin_grant
    )
    reply = relay(media, worker, "relay", token=grant)
    if db.session.get(MediaRelay, (stream_id, worker)) is not None:
        return
    peer = reply.get("origin_peer")
    db.session.add(
        MediaRelay(
            stream_id=stream_id, worker=worker, origin_peer=peer if isinstance(peer, str) else None
        )
    )
    try:
        db.session.commit()
    except IntegrityError:  # recorded by another web worker meanwhile, or the stream ended
        db.session.rollback()
        if db.session.get(MediaStream, stream_id) is None:
            close_on_worker(worker, stream_id)
            raise Refused("no such stream in this room") from None


def stop_streams(room_id: int, out: Outbox, **match: Any) -> int:
    """End the room's streams matching ``match`` (user_id, sid or id), then on their worker.

    The rows go first, in one commit, and the worker is asked only after it: no database lock
    is held while waiting for a worker. Callers that withdraw a grant or drop a connection
    commit that before calling, so a publish in flight either sees it or is found here.
    """
    query = select(MediaStream).where(MediaStream.room_id == room_id)
    for column, value in match.items():
        query = query.where(getattr(MediaStream, column) == value)
    rows = list(db.session.scalars(query))
    if not rows:
        return 0
    ended = [(s.worker, s.id) for s in rows] + relays_of([s.id for s in rows])
    for stream in rows:
        recording.stream_stopped(room_id, stream.id)
        log.record(room_id, stream.user_id, "media.unpublish", stream=stream.id)
        db.session.delete(stream)
    db.session.commit()
    for worker, stream_id in ended:
        close_on_worker(worker, stream_id)
    announce(room_id, out)
    return len(rows)


def close_on_worker(worker: str, stream_id: str) -> None:
    """Ask ``worker`` to end a stream (its viewers too); a worker that is gone has ended it."""
    media: MediaChannel | None = current_app.extensions.get("media")
    if media is None or not media.available or worker in media.dead:
        return
    try:
        media.call(worker, "close_stream", stream=stream_id)
    except MediaUnavailable:
        logger.warning("could not close stream %s on %s", stream_id, worker)


def close_peer(worker: str, peer: str) -> None:
    """Ask ``worker`` to close one viewer connection (a dead worker's leg); best effort."""
    media: MediaChannel | None = current_app.extensions.get("media")
    if media is None or worker in media.dead:
        return
    try:
        media.call(worker, "close", peer=peer)
    except MediaUnavailable:
        logger.warning("could not close peer %s on %s", peer, worker)


def unpublish(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Stop one's own stream (a presenter may stop anyone's)."""
    stream = db.session.get(MediaStream, data["stream"])
    if stream is None or stream.room_id != actor.room_id:
        raise Refused("no such stream in this room")
    if stream.user_id != actor.user_id and not actor.may(Perm.MANAGE_HANDS):
        raise Refused("you may only stop your own stream")
    stop_streams(actor.room_id, out, id=stream.id)
    return {}


def relays_of(stream_ids: list[str]) -> list[tuple[str, str]]:
    """(worker, stream id) of every leg of these streams to another worker."""
    rows = db.session.execute(
        select(MediaRelay.worker, MediaRelay.stream_id).where(MediaRelay.stream_id.in_(stream_ids))
    )
    return [(worker, stream_id) for worker, stream_id in rows]


@dataclass
class Forgotten:
    """What a dead worker took with it (see :func:`forget_worker`)."""

    reset: list[int]  # rooms whose streams were published on it
    moved: list[int]  # rooms whose viewers it served through legs from other workers
    relays: list[tuple[str, str]]  # (worker, stream id): legs of its streams on other workers
    legs: list[tuple[str, str]]  # (origin, peer): the legs it received, viewers at their origin


def forget_worker(worker: str) -> Forgotten:
    """A worker died: the streams published on it are gone, and so are the legs it received."""
    lost = list(db.session.scalars(select(MediaStream).where(MediaStream.worker == worker)))
    relays = [leg for leg in relays_of([s.id for s in lost]) if leg[0] != worker]
    received = db.session.execute(
        select(MediaStream.room_id, MediaStream.worker, MediaRelay.origin_peer)
        .join(MediaRelay, MediaRelay.stream_id == MediaStream.id)
        .where(MediaRelay.worker == worker, MediaStream.worker != worker)
    ).all()
    db.session.execute(delete(MediaRelay).where(MediaRelay.worker == worker))
    db.session.execute(delete(MediaRelay).where(MediaRelay.stream_id.in_([s.id for s in lost])))
    db.session.execute(delete(MediaStream).where(MediaStream.worker == worker))
    db.session.commit()
    reset = {s.room_id for s in lost}
    return Forgotten(
        reset=sorted(reset),
        moved=sorted({room_id for room_id, _, _ in received} - reset),
        relays=relays,
        legs=[(origin, peer) for _, origin, peer in received if peer],
    )


def worker_restarted(worker: str) -> Outbox:
    """A worker died (and may have been restarted): the rooms of its streams are told they are
    gone (clients renegotiate: ``media.reset``), the rooms whose viewers it served through a
    leg that it moved (``media.moved``: those pages view again), and the legs of its streams
    on other workers are closed."""
    out = Outbox()
    recording.interrupt_worker(worker, out)
    gone = forget_worker(worker)
    for room_id in gone.reset:
        announce(room_id, out)
        out.to_all(room_id, "media.reset", {"reason": "the media server restarted"})
    for room_id in gone.moved:
        out.to_all(room_id, "media.moved", {"worker": worker_id(worker)})
    for relay_worker, stream_id in gone.relays:
        close_on_worker(relay_worker, stream_id)
    for origin, peer in gone.legs:  # the origin would feed the dead leg until ICE gave up
        close_peer(origin, peer)
    return out


def drop_leftovers(worker: str) -> list[str]:
    """A worker counted lost answers again (cut off, not dead): end the streams it still holds
    that this app forgot when it was lost (published ones reset, legs closed at their origin),
    so no new viewer is placed on a leg that no longer receives. Returns the streams ended."""
    media = channel()
    try:
        held = set(media.call(worker, "stats").get("frames") or ())
    except MediaUnavailable:
        return []
    known = set(
        db.session.scalars(select(MediaStream.id).where(MediaStream.worker == worker))
    ) | set(db.session.scalars(select(MediaRelay.stream_id).where(MediaRelay.worker == worker)))
    db.session.rollback()  # nothing written: end the read before the calls
    leftovers = sorted(held - known)
    for stream_id in leftovers:
        try:
            media.call(worker, "close_stream", stream=stream_id)
        except MediaUnavailable:
            logger.warning("could not close stream %s on %s", stream_id, worker)
    if leftovers:
        logger.warning("media worker %s is back; ended forgotten streams %s", worker, leftovers)
    return leftovers


def forget_all() -> None:
    """Drop every stream row (an embedded deployment starting fresh has no live streams)."""
    db.session.execute(delete(MediaRelay))
    db.session.execute(delete(MediaStream))
    db.session.commit()


@dataclass(frozen=True)
class Quality(Choice):
    """One of ``QUALITIES``; "auto" when not given (``media.view`` from an older page)."""

    def clean(self, name: str, value: Any) -> Any:
        return "auto" if value is None else super().clean(name, value)


SDP = Text(max=SDP_MAX, strip=False)
STREAM = Text(max=64)
PEER = Text(max=64)

EVENTS = [
    Event("media.publish", {"sdp": SDP, "source": Choice(SOURCES)}, publish, "media"),
    Event(
        "media.view", {"stream": STREAM, "sdp": SDP, "quality": Quality(QUALITIES)}, view, "media"
    ),
    Event("media.unpublish", {"stream": STREAM}, unpublish, "media"),
    Event(
        "media.quality",
        {"stream": STREAM, "peer": PEER, "quality": Choice(QUALITIES)},
        prefer,
        "media",
    ),
]
