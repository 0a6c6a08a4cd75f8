"""Finding a participant's room and building the full state a (re)connecting client receives."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from accounts.models import User
from lectern.extensions import db
from rooms import chat, hands, media, polls, presence, questions, recording, session, slides
from rooms.context import Actor, Refused
from rooms.grants import may_publish
from rooms.models import Room
from rooms.policy import Perm
from rooms.registry import Membership, RoomKind, parse_key


def room_for(kind: RoomKind, ref_id: int, membership: Membership) -> Room:
    """The room of ``kind:ref_id``, created with the policy's defaults on first use."""
    query = select(Room).where(Room.kind == kind.name, Room.ref_id == ref_id)
    room = db.session.scalar(query)
    if room is not None:
        return room
    anonymous = membership.anonymous_questions
    room = Room(
        kind=kind.name,
        ref_id=ref_id,
        moderated=kind.policy.moderated,
        anonymous_questions=kind.policy.anonymous_questions if anonymous is None else anonymous,
    )
    db.session.add(room)
    try:
        db.session.commit()
    except IntegrityError:  # another worker created it first
        db.session.rollback()
        room = db.session.scalar(query)
    assert room is not None
    return room


def actor_for(
    user: User, kind: RoomKind, ref_id: int, room_id: int, membership: Membership
) -> Actor:
    """``user`` in room ``kind:ref_id`` (row ``room_id``) with the role ``membership`` gives."""
    return Actor(
        user_id=user.id,
        name=user.name,
        role=membership.role,
        room_id=room_id,
        policy=kind.policy,
        title=membership.title,
        kind=kind.name,
        ref_id=ref_id,
        share_register=membership.share_register,
    )


def member_of(user: User, room: Room) -> Actor | None:
    """Who ``user`` is in an existing ``room`` (None: not a member), whatever the state of its
    session: only a lookup, it admits, creates and reopens nothing (recordings use it)."""
    parsed = parse_key(room.key)
    if parsed is None:
        return None
    kind, ref_id = parsed
    membership = kind.resolve(user, ref_id)
    return None if membership is None else actor_for(user, kind, ref_id, room.id, membership)


def enter(user: User, key: object) -> tuple[Actor, Room]:
    """Admit ``user`` into the live room ``key``: their actor (role, permissions) and the room.

    :raises Refused: for a malformed key, an unknown room, a user who may not join it, or a
        session ended for everyone (``rooms.session.ENDED``).
    """
    parsed = parse_key(key)
    if parsed is None:
        raise Refused("no such room")
    kind, ref_id = parsed
    membership = kind.resolve(user, ref_id)
    if membership is None:
        raise Refused("you are not a member of this room")
    room = room_for(kind, ref_id, membership)
    actor = actor_for(user, kind, ref_id, room.id, membership)
    session.admit(room, actor)
    return actor, room


# A snapshot is reused while nothing was emitted to its room (every change is emitted, on
# every web worker: see ``watch``) and for at most CACHE_S: a flood of state.get or a storm of
# reconnects by one user builds it once.
CACHE_S = 2.0
CACHE_MAX = 10_000
versions: dict[int, int] = {}  # room id -> how many emits to the room this worker has seen
_cache: dict[tuple[int, int, str], tuple[int, float, dict[str, Any]]] = {}
_lock = threading.Lock()
_pruned = 0.0  # when expired snapshots were last dropped
_ROOM_ID = re.compile(r"room:(\d+)")


def touch(target: object) -> None:
    """An emit to the Socket.IO room ``target`` (``room:<id>...``): its room changed."""
    found = _ROOM_ID.match(target) if isinstance(target, str) else None
    if found:
        room_id = int(found.group(1))
        with _lock:
            versions[room_id] = versions.get(room_id, 0) + 1


def watch(manager: Any) -> None:
    """Count the emits that pass through Socket.IO's client manager: this worker's own, and
    with a message queue every worker's (each arrives through ``_handle_emit``)."""
    if hasattr(manager, "_handle_emit"):
        received = manager._handle_emit

        def handle_emit(message: dict[str, Any]) -> Any:
            touch(message.get("room"))
            return received(message)

        manager._handle_emit = handle_emit
    else:
        emit = manager.emit

        def emit_and_touch(*args: Any, **kwargs: Any) -> Any:
            touch(kwargs.get("to") or kwargs.get("room"))
            return emit(*args, **kwargs)

        manager.emit = emit_and_touch


def snapshot(actor: Actor, room: Room) -> dict[str, Any]:
    """``build``'s snapshot, reused while current (see ``CACHE_S``)."""
    key = (room.id, actor.user_id, actor.role)
    now = time.monotonic()
    with _lock:
        version = versions.get(room.id, 0)
        cached = _cache.get(key)
        if cached is not None and cached[0] == version and now - cached[1] < CACHE_S:
            return cached[2]
    built = build(actor, room)
    with _lock:
        global _pruned
        if now - _pruned >= CACHE_S or len(_cache) >= CACHE_MAX:  # drop the expired ones
            _pruned = now
            for old in [k for k, v in _cache.items() if now - v[1] >= CACHE_S]:
                del _cache[old]
            if len(_cache) >= CACHE_MAX:
                _cache.clear()
        _cache[key] = (version, now, built)
    return built


def forget_snapshots() -> None:
    with _lock:
        _cache.clear()


def build(actor: Actor, room: Room) -> dict[str, Any]:
    """Everything the participant may see, in one message: a reconnect replaces all state."""
    queue = hands.queue(room.id)
    if not (actor.may(Perm.MANAGE_HANDS) or actor.policy.hand_queue_public):
        queue = [h for h in queue if h["user_id"] == actor.user_id]
    return {
        "room": {
            "id": room.id,
            "key": room.key,
            "title": actor.title,
            "chat_mode": room.chat_mode,
            "moderated": room.moderated,
            "auto_record": room.auto_record,
            "anonymous_questions": room.anonymous_questions,
            "share_register": actor.share_register,
        },
        "me": {
            "user_id": actor.user_id,
            "name": actor.name,
            "role": actor.role,
            "permissions": sorted(actor.perms),
            "can_publish": may_publish(actor),
        },
        "presence": {
            "count": presence.count(room.id),
            "people": presence.people(room.id) if actor.may(Perm.SEE_PRESENCE) else None,
        },
        "hands": {"queue": queue, "position": hands.position(hands.queue(room.id), actor.user_id)},
        "questions": questions.visible(room.id, actor),
        "my_votes": questions.my_votes(room.id, actor.user_id),
        "chat": chat.history(room.id),
        "polls": polls.visible(actor),
        "slides": slides.current(room),
        "decks": slides.decks(room.id) if actor.may(Perm.PRESENT) else None,
        "streams": media.streams(room.id),
        "recording": recording.view(recording.running(room.id)),
        "ice_servers": media.ice_servers(),
        "prefer_h264": media.prefer_h264(),
        "session": session.schedule_of(actor.kind, actor.ref_id, room),
    }
