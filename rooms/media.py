"""Publishing and viewing media: the room checks who may publish, a media worker does the rest.

The browser sends its SDP offer over Socket.IO; the web app checks the permission, signs a
short-lived grant and relays the offer to the room's media worker (``media.channel``); the
answer comes back as the event's reply. Streams are rows in ``media_streams``, written before
the room is told about them.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import delete, select

from lectern.extensions import db
from media import sdp, tokens
from media.channel import MediaChannel, MediaUnavailable
from rooms import log, recording
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.grants import may_publish
from rooms.models import Connection, MediaStream, Room
from rooms.people import names
from rooms.policy import Perm
from rooms.validate import N_, Choice, Text

SDP_MAX = 64 * 1024
SOURCES = ("camera", "screen")
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
    worker = media.worker_for(key)
    grant = tokens.sign(secret(), op="publish", room=key, user=actor.user_id)
    reply = relay(media, worker, "publish", token=grant, sdp=data["sdp"])
    stream_id = reply["stream"]
    try:
        recorded = record(actor, data["source"], worker, stream_id)
    except Exception:
        db.session.rollback()
        close_on_worker(worker, stream_id)
        raise
    if not recorded:
        close_on_worker(worker, stream_id)
        raise Refused(MAY_NOT_PUBLISH)
    announce(actor.room_id, out)
    recording.auto_start(actor, out)
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


def record(actor: Actor, source: str, worker: str, stream_id: str) -> bool:
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
    """The actor's connection is open, the session not ended, and they may publish."""
    connected = db.session.scalar(
        select(Connection.sid).where(Connection.sid == actor.sid).with_for_update(read=True)
    )
    ended = db.session.scalar(
        select(Room.ended_at).where(Room.id == actor.room_id).with_for_update(read=True)
    )
    return connected is not None and ended is None and may_publish(actor, lock=True)


def view(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Relay a viewer's offer for one of the room's streams."""
    stream = db.session.get(MediaStream, data["stream"])
    if stream is None or stream.room_id != actor.room_id:
        raise Refused("no such stream in this room")
    check(data["sdp"], sending=False)
    key = room_key(actor.room_id)
    grant = tokens.sign(secret(), op="view", room=key, user=actor.user_id, stream=stream.id)
    reply = relay(channel(), stream.worker, "view", token=grant, sdp=data["sdp"])
    return {"peer": reply["peer"], "sdp": reply["sdp"], "type": reply["type"]}


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
    ended = [(s.worker, s.id) for s in rows]
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
    if media is None or not media.available:
        return
    try:
        media.call(worker, "close_stream", stream=stream_id)
    except MediaUnavailable:
        logger.warning("could not close stream %s on %s", stream_id, worker)


def unpublish(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Stop one's own stream (a presenter may stop anyone's)."""
    stream = db.session.get(MediaStream, data["stream"])
    if stream is None or stream.room_id != actor.room_id:
        raise Refused("no such stream in this room")
    if stream.user_id != actor.user_id and not actor.may(Perm.MANAGE_HANDS):
        raise Refused("you may only stop your own stream")
    stop_streams(actor.room_id, out, id=stream.id)
    return {}


def forget_worker(worker: str) -> list[int]:
    """A worker restarted: its streams are gone. Returns the rooms that lost streams."""
    rooms = sorted(
        set(db.session.scalars(select(MediaStream.room_id).where(MediaStream.worker == worker)))
    )
    db.session.execute(delete(MediaStream).where(MediaStream.worker == worker))
    db.session.commit()
    return rooms


def worker_restarted(worker: str) -> Outbox:
    """Tell the rooms of a restarted worker that their streams are gone: clients renegotiate."""
    out = Outbox()
    recording.interrupt_worker(worker, out)
    for room_id in forget_worker(worker):
        announce(room_id, out)
        out.to_all(room_id, "media.reset", {"reason": "the media server restarted"})
    return out


def forget_all() -> None:
    """Drop every stream row (an embedded deployment starting fresh has no live streams)."""
    db.session.execute(delete(MediaStream))
    db.session.commit()


SDP = Text(max=SDP_MAX, strip=False)
STREAM = Text(max=64)

EVENTS = [
    Event("media.publish", {"sdp": SDP, "source": Choice(SOURCES)}, publish, "media"),
    Event("media.view", {"stream": STREAM, "sdp": SDP}, view, "media"),
    Event("media.unpublish", {"stream": STREAM}, unpublish, "media"),
]
