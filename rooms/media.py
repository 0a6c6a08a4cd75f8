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
from media import tokens
from media.channel import MediaChannel, MediaUnavailable
from rooms import log, recording
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.grants import may_publish
from rooms.models import MediaStream, Room
from rooms.people import names
from rooms.policy import Perm
from rooms.validate import Choice, Text

SDP_MAX = 64 * 1024
SOURCES = ("camera", "screen")
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
    """Relay a publisher's offer; the stream is announced to the room once it is recorded."""
    if not may_publish(actor):
        raise Refused("you may not publish in this room (ask to be called on)")
    key = room_key(actor.room_id)
    media = channel()
    worker = media.worker_for(key)
    grant = tokens.sign(secret(), op="publish", room=key, user=actor.user_id)
    try:
        reply = media.call(worker, "publish", token=grant, sdp=data["sdp"])
    except MediaUnavailable as exc:
        logger.warning("publish failed: %s", exc)
        raise Refused("the media server is not reachable; try again in a moment") from exc
    if not reply.get("ok"):
        raise Refused("media server refused: %(why)s", why=reply.get("error"))
    stream = MediaStream(
        id=reply["stream"],
        room_id=actor.room_id,
        user_id=actor.user_id,
        sid=actor.sid,
        source=data["source"],
        worker=worker,
    )
    db.session.add(stream)
    recording.stream_started(actor.room_id, stream)
    log.record(
        actor.room_id, actor.user_id, "media.publish", stream=reply["stream"], source=data["source"]
    )
    db.session.commit()
    announce(actor.room_id, out)
    recording.auto_start(actor, out)
    return {"stream": reply["stream"], "sdp": reply["sdp"], "type": reply["type"]}


def view(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Relay a viewer's offer for one of the room's streams."""
    stream = db.session.get(MediaStream, data["stream"])
    if stream is None or stream.room_id != actor.room_id:
        raise Refused("no such stream in this room")
    key = room_key(actor.room_id)
    grant = tokens.sign(secret(), op="view", room=key, user=actor.user_id, stream=stream.id)
    try:
        reply = channel().call(stream.worker, "view", token=grant, sdp=data["sdp"])
    except MediaUnavailable as exc:
        raise Refused("the media server is not reachable; try again in a moment") from exc
    if not reply.get("ok"):
        raise Refused("media server refused: %(why)s", why=reply.get("error"))
    return {"peer": reply["peer"], "sdp": reply["sdp"], "type": reply["type"]}


def stop_streams(room_id: int, out: Outbox, **match: Any) -> int:
    """End the room's streams matching ``match`` (user_id, sid or id) on their worker."""
    query = select(MediaStream).where(MediaStream.room_id == room_id)
    for column, value in match.items():
        query = query.where(getattr(MediaStream, column) == value)
    found = list(db.session.scalars(query))
    media: MediaChannel | None = current_app.extensions.get("media")
    for stream in found:
        if media is not None and media.available:
            try:
                media.call(stream.worker, "close_stream", stream=stream.id)
            except MediaUnavailable:
                logger.warning("could not close stream %s on %s", stream.id, stream.worker)
        recording.stream_stopped(room_id, stream.id)
        log.record(room_id, stream.user_id, "media.unpublish", stream=stream.id)
        db.session.delete(stream)
    if found:
        db.session.commit()
        announce(room_id, out)
    return len(found)


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
