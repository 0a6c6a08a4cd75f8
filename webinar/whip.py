"""WHIP ingest (RFC 9725): an encoder such as OBS publishes into a broadcast's room.

The host makes a stream key on the broadcast page (shown once; only its HMAC is kept). The
encoder POSTs its SDP offer to ``/broadcasts/<id>/whip`` with ``Authorization: Bearer <key>``
and gets ``201 Created``, the answer and the session's ``Location``; a DELETE of that URL ends
the stream. The stream is the key creator's camera: a ``media_streams`` row whose sid is
``whip:<key id>:<resource>`` (``rooms.media.EXTERNAL``), announced and recorded like any other.
No trickle ICE nor ICE restarts: a PATCH is answered 405. This blueprint takes no cookies and
no CSRF token (bearer keys only), so any origin may call it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace

from flask import Blueprint, Response, request, url_for
from sqlalchemy import select

from accounts.models import User
from accounts.tokens import digest
from lectern.extensions import csrf, db
from rooms import media
from rooms.context import Outbox, Refused
from rooms.models import MediaStream, Room
from rooms.namespace import deliver
from rooms.ratelimit import Limiter, Rate
from rooms.state import actor_for, room_for
from webinar.models import WhipKey
from webinar.room import BROADCAST_ROOM, resolve

bp = Blueprint("whip", __name__)
csrf.exempt(bp)  # bearer keys, never cookies: nothing a forged cross-site request could use

SDP_TYPE = "application/sdp"
KEY_MAX = 100  # longer bearer values are not ours: refused before any hashing
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Post, Allow",
}
limiter = Limiter({"whip": Rate(burst=10, per_second=0.5)})  # per address: 10, then one in 2 s


def answer(status: int, body: str = "", **headers: str) -> Response:
    """A plain response with the CORS headers of the endpoint."""
    response = Response(body, status=status, mimetype="text/plain")
    response.headers.update(CORS)
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def address_key(address: str | None) -> int:
    """The rate limiter's key for a remote address."""
    return int.from_bytes(hashlib.sha256((address or "").encode()).digest()[:8], "big")


def bearer_key(broadcast_id: int) -> WhipKey | None:
    """The live key of this broadcast that the request's ``Authorization`` carries."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > KEY_MAX:
        return None
    key: WhipKey | None = db.session.scalar(
        select(WhipKey).where(
            WhipKey.broadcast_id == broadcast_id,
            WhipKey.key_hash == digest(token),
            WhipKey.revoked_at.is_(None),
        )
    )
    return key


def unauthorized() -> Response:
    return answer(401, "unknown or revoked stream key\n", WWW_Authenticate="Bearer")


def live_ingest(room_id: int, key_id: int | None = None) -> list[MediaStream]:
    """The room's streams published over WHIP (with ``key_id``: through that key), oldest
    first."""
    prefix = media.EXTERNAL + (f"{key_id}:" if key_id is not None else "")
    return list(
        db.session.scalars(
            select(MediaStream)
            .where(MediaStream.room_id == room_id, MediaStream.sid.startswith(prefix))
            .order_by(MediaStream.started_at, MediaStream.id)
        )
    )


def room_id_of(broadcast_id: int) -> int | None:
    return db.session.scalar(
        select(Room.id).where(Room.kind == BROADCAST_ROOM.name, Room.ref_id == broadcast_id)
    )


@bp.route("/<int:broadcast_id>/whip", methods=["POST", "OPTIONS"])
def ingest(broadcast_id: int) -> Response:
    """Publish an encoder's offer as the key creator's camera: 201 with the answer. OPTIONS:
    the CORS preflight, and what the endpoint accepts."""
    if request.method == "OPTIONS":
        return answer(204, Accept_Post=SDP_TYPE, Allow="POST, OPTIONS")
    if not limiter.allow(address_key(request.remote_addr), "whip"):
        return answer(429, "too many requests\n", Retry_After="2")
    key = bearer_key(broadcast_id)
    if key is None:
        return unauthorized()
    if request.mimetype != SDP_TYPE:
        return answer(415, "the offer must be application/sdp\n", Accept_Post=SDP_TYPE)
    if (request.content_length or 0) > media.SDP_MAX:
        return answer(413, "the offer is too large\n")
    body = request.stream.read(media.SDP_MAX + 1)  # a chunked body has no Content-Length
    if len(body) > media.SDP_MAX:
        return answer(413, "the offer is too large\n")
    try:
        offer = body.decode("utf-8")
        media.check(offer, sending=True)
    except (UnicodeDecodeError, Refused) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
        return answer(400, f"{reason}\n")
    return publish(broadcast_id, key, offer)


def publish(broadcast_id: int, key: WhipKey, offer: str) -> Response:
    """Relay a checked offer to the room's media worker as the key creator (its host)."""
    user = db.session.get(User, key.created_by)
    membership = resolve(user, broadcast_id) if user is not None else None
    if user is None or membership is None or membership.role != "host":
        return answer(403, "the key's creator no longer hosts this broadcast\n")
    room = room_for(BROADCAST_ROOM, broadcast_id, membership)
    if live_ingest(room.id):
        return answer(409, "another encoder is already publishing\n")
    resource = secrets.token_urlsafe(16)
    actor = actor_for(user, BROADCAST_ROOM, broadcast_id, room.id, membership)
    actor = replace(actor, sid=f"{media.EXTERNAL}{key.id}:{resource}")
    out = Outbox()
    try:
        reply = media.publish(actor, {"sdp": offer, "source": "camera"}, out)
    except Refused as exc:
        status = 403 if exc.message == media.MAY_NOT_PUBLISH else 503
        return answer(status, f"{exc}\n")
    deliver(out)
    if bearer_key(broadcast_id) is None:  # revoked while the worker answered
        stop(room.id, actor.sid)
        return unauthorized()
    first = next(iter(live_ingest(room.id)), None)
    if first is None:  # ended as it started (the session ended, the worker was lost)
        return answer(503, "the stream ended as it started; try again\n")
    if first.sid != actor.sid:  # another encoder's POST won the race
        stop(room.id, actor.sid)
        return answer(409, "another encoder is already publishing\n")
    location = url_for("whip.session", broadcast_id=broadcast_id, resource=resource)
    response = answer(201, reply["sdp"], Location=location)
    response.mimetype = SDP_TYPE
    return response


def stop(room_id: int, sid: str) -> int:
    """End an ingest stream; the room is told."""
    out = Outbox()
    ended = media.stop_streams(room_id, out, sid=sid)
    deliver(out)
    return ended


@bp.route("/<int:broadcast_id>/whip/<resource>", methods=["DELETE", "PATCH", "OPTIONS"])
def session(broadcast_id: int, resource: str) -> Response:
    """DELETE ends the session's stream for every viewer; PATCH (trickle ICE, ICE restart) is
    not supported; OPTIONS is the CORS preflight."""
    if request.method == "OPTIONS":
        return answer(204, Allow="DELETE, PATCH, OPTIONS")
    key = bearer_key(broadcast_id)
    if key is None:
        return unauthorized()
    if request.method == "PATCH":
        return answer(405, "trickle ICE and ICE restarts are not supported\n", Allow="DELETE")
    room_id = room_id_of(broadcast_id)
    if room_id is None or not stop(room_id, f"{media.EXTERNAL}{key.id}:{resource}"):
        return answer(404, "no such session\n")
    return answer(200)


def new_key(broadcast_id: int, user_id: int) -> str:
    """Add a stream key made by ``user_id`` (the caller commits); returns the key itself, which
    is shown once and never stored."""
    token = secrets.token_urlsafe(32)
    db.session.add(WhipKey(broadcast_id=broadcast_id, key_hash=digest(token), created_by=user_id))
    return token


def keys_of(broadcast_id: int) -> list[WhipKey]:
    """The broadcast's live stream keys, newest first."""
    return list(
        db.session.scalars(
            select(WhipKey)
            .where(WhipKey.broadcast_id == broadcast_id, WhipKey.revoked_at.is_(None))
            .order_by(WhipKey.id.desc())
        )
    )


def end_key_streams(broadcast_id: int, key_id: int) -> None:
    """A key was revoked: its encoder's stream ends for everyone."""
    room_id = room_id_of(broadcast_id)
    if room_id is not None:
        for stream in live_ingest(room_id, key_id):
            stop(room_id, stream.sid)
