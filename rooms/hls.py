"""A broadcast's HLS tier, the web app's side: starting it, and signed URLs for its audience.

A broadcast room's first camera stream gets an HLS tier on its worker (``HLS_ENABLED``, on by
default): the worker packages it into ``DATA_DIR/hls/<broadcast id>/`` (``media.hls``) and stops
when the stream ends. Someone in the room (a host or an approved registrant: nobody else gets
in) asks for its address with the ``hls.url`` event; the address carries a watch token, an
HMAC-signed grant for (broadcast, user, expiry), checked on every request for the playlist or a
segment (``webinar.hls``).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from lectern.extensions import db
from media import tokens
from media.channel import MediaUnavailable
from rooms.context import Actor, Outbox
from rooms.events import Event
from rooms.models import MediaStream

logger = logging.getLogger(__name__)
WATCH_OP = "hls-watch"
DEFAULT_URL_LIFETIME_S = 4 * 3600  # a long broadcast; the page asks again for a fresh one
BROADCAST_KIND = "broadcast"
# The files a tier has: what the route serves (and nginx, after asking the app, all but the
# playlist): the playlist, the init segment, segments and LL-HLS parts (media.hls).
FILE_NAME = re.compile(r"^(index\.m3u8|init\.mp4|seg\d{1,9}\.m4s|part\d{1,9}\.\d{1,3}\.m4s)$")


def enabled() -> bool:
    return bool(current_app.config.get("HLS_ENABLED", True))


def folder(broadcast_id: int) -> Path:
    """Where the tier of a broadcast is written."""
    return Path(current_app.config["DATA_DIR"]) / "hls" / str(int(broadcast_id))


def watch_secret() -> str:
    return str(current_app.config["SECRET_KEY"])


def watch_token(broadcast_id: int, user_id: int, lifetime_s: int | None = None) -> str:
    """A signed, expiring grant to watch ``broadcast_id``'s tier."""
    lifetime = lifetime_s or int(current_app.config.get("HLS_URL_LIFETIME_S", 0) or 0)
    exp = int(time.time()) + (lifetime or DEFAULT_URL_LIFETIME_S)
    return tokens.sign(watch_secret(), op=WATCH_OP, broadcast=broadcast_id, user=user_id, exp=exp)


def may_watch(token: str, broadcast_id: int) -> bool:
    """Whether ``token`` is a genuine, unexpired watch grant for ``broadcast_id``."""
    try:
        grant = tokens.verify(watch_secret(), token, WATCH_OP)
    except tokens.BadToken:
        return False
    return grant.get("broadcast") == broadcast_id


def url_for_actor(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """``hls.url``: the tier's playlist address for someone in a broadcast room; ``None`` in
    other rooms, or where HLS is turned off."""
    if actor.kind != BROADCAST_KIND or not enabled():
        return {"url": None, "expires": None}
    token = watch_token(actor.ref_id, actor.user_id)
    expires = tokens.verify(watch_secret(), token, WATCH_OP)["exp"]
    return {"url": f"/broadcasts/{actor.ref_id}/hls/{token}/index.m3u8", "expires": expires}


def stream_started(actor: Actor, worker: str, key: str, stream_id: str, source: str) -> None:
    """Give a broadcast's first camera stream an HLS tier; a failure only loses the tier."""
    if actor.kind != BROADCAST_KIND or source != "camera" or not enabled():
        return
    others = db.session.scalar(
        select(MediaStream.id).where(
            MediaStream.room_id == actor.room_id,
            MediaStream.source == "camera",
            MediaStream.id != stream_id,
        )
    )
    if others is not None:
        return
    media = current_app.extensions.get("media")
    if media is None or not media.available:
        return
    grant = tokens.sign(
        str(current_app.config["MEDIA_SECRET"]),
        op="hls",
        room=key,
        stream=stream_id,
        dir=str(folder(actor.ref_id)),
    )
    try:
        reply = media.call(worker, "hls_start", token=grant)
    except MediaUnavailable as exc:
        logger.warning("hls_start failed: %s", exc)
        return
    if not reply.get("ok"):
        logger.warning("hls_start refused: %s", reply.get("error"))


EVENTS = [Event("hls.url", {}, url_for_actor)]
