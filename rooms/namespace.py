"""The ``/room`` Socket.IO namespace: authenticate, dispatch each event to its handler, deliver.

Handlers validate, check the sender's permission, write to the database (with the event log)
and commit; only then are their messages emitted. Every event is acknowledged with
``{"ok": true, ...}`` or ``{"ok": false, "error": reason}``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import SocketIO, join_room

from lectern.extensions import db
from lectern.messagequeue import RedisQueue
from rooms import (
    chat,
    hands,
    hls,
    media,
    polls,
    presence,
    questions,
    recording,
    session,
    slides,
    stage,
)
from rooms.coalesce import INTERVAL_S, Coalescer
from rooms.context import Actor, Outbox, Refused, mods_target, room_target, user_target
from rooms.events import Event
from rooms.models import Room
from rooms.policy import Perm
from rooms.ratelimit import Limiter
from rooms.state import enter, forget_snapshots, snapshot, watch
from rooms.validate import Invalid, Reason, clean
from rooms.wire import REFUSED_EVENT

NAMESPACE = "/room"
log = logging.getLogger(__name__)

EVENTS: dict[str, Event] = {
    e.name: e
    for module in (hands, questions, chat, polls, slides, media, recording, stage, session, hls)
    for e in module.EVENTS
}
COALESCERS: tuple[Coalescer, ...] = (questions.votes_coalescer, polls.results_coalescer)
# The attendee count goes to the whole room and changes with every join: during a join storm
# it is sent only every SLOW_EVERY flushes (2 s), not every 250 ms.
SLOW_COALESCERS: tuple[Coalescer, ...] = (presence.count_coalescer,)
SLOW_EVERY = 8

actors: dict[str, Actor] = {}  # sid -> the participant on that connection (this worker's)
limiter = Limiter()


def socketio_ext() -> SocketIO:
    return current_app.extensions["socketio"]


def deliver(out: Outbox) -> None:
    """Emit the outbox's messages, then close its connections (both through the message queue
    when there is one: a sid on another web worker is closed there, after these messages)."""
    sio = socketio_ext()
    for target, event, data in out.messages:
        sio.emit(event, data, to=target, namespace=NAMESPACE)
    for sid in out.disconnects:
        sio.server.disconnect(sid, namespace=NAMESPACE)


def error(reason: str | Reason) -> dict[str, Any]:
    """A refused event's answer, in the sender's language: a text already translated, or a
    ``Refused``/``Invalid`` whose message is a msgid (extracted by their names) with named
    placeholders, translated here; with the reason's ``code`` where it has one."""
    if not isinstance(reason, Reason):
        return {"ok": False, "error": reason}
    if reason.code is None:
        return {"ok": False, "error": reason.translated()}
    return {"ok": False, "error": reason.translated(), "code": reason.code}


def dispatch(name: str, sid: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """Run one client event for the connection ``sid``; never raises."""
    actor = actors.get(sid)
    if actor is None:
        return error(_("not connected to a room"))
    event = EVENTS[name]
    if len(args) > 1:
        return error(_("send one payload object"))
    if not limiter.allow(actor.user_id, event.bucket):
        return error(_("too many requests: slow down"))
    out = Outbox()
    try:
        extra = event.handler(actor, clean(event.fields, args[0] if args else None), out) or {}
    except (Invalid, Refused) as refusal:
        db.session.rollback()
        return error(refusal)
    except Exception:
        db.session.rollback()
        log.exception("event %s failed", name)
        return error(_("internal error: nothing was changed"))
    deliver(out)
    flush_if_late()
    return {"ok": True, **extra}


def spoofed(event: str) -> dict[str, Any] | None:
    """A client's ordinary event named ``connect`` or ``disconnect`` reaches these handlers too
    (python-socketio dispatches it by name); refuse and count it. Only a real transport
    event finds the connection not (or no longer) connected: python-socketio marks it pending
    while its handler runs."""
    sid = getattr(request, "sid", None)  # None: called directly, not by Socket.IO
    if sid is None:
        return None
    connected = socketio_ext().server.manager.is_connected(sid, NAMESPACE)
    if not connected and not (event == "connect" and sid in actors):
        return None
    guard = current_app.extensions.get("socketio_guard")
    if guard is not None:
        guard.strike_sid(sid, NAMESPACE, f"an event named {event}")
    return error(_("%(event)s is not an event", event=event))


def on_connect(auth: Any = None) -> dict[str, Any] | None:
    """Admit a signed-in member to the room ``auth["room"]``; the client then asks ``state.get``.
    A connection belongs to one room for its whole life."""
    if (refused := spoofed("connect")) is not None:
        return refused
    if not current_user.is_authenticated:
        raise ConnectionRefusedError(_("sign in first"))
    key = auth.get("room") if isinstance(auth, dict) else None
    try:
        actor, room = enter(current_user, key)
    except Refused as refusal:
        raise refused_connection(refusal) from None
    sid = request.sid  # type: ignore[attr-defined]
    actor = dataclasses.replace(actor, sid=sid)
    actors[sid] = actor
    join_room(room_target(room.id))
    join_room(user_target(room.id, actor.user_id))
    if actor.may(Perm.MODERATE):
        join_room(mods_target(room.id))
    out = Outbox()
    presence.beat(due=presence.HEARTBEAT_S)
    presence.connect(actor, sid, out)
    try:
        # Entering again, now that the row is committed: a removal that looked for the user's
        # connections before this one was recorded missed it, and is caught here instead.
        enter(current_user, key)
    except Refused as refusal:
        actors.pop(sid, None)
        forget(actor.room_id, actor.user_id, actor.name, sid, out)
        deliver(out)
        raise refused_connection(refusal) from None
    deliver(out)
    start_flusher(current_app._get_current_object())  # type: ignore[attr-defined]
    return None


def refused_connection(refusal: Refused) -> ConnectionRefusedError:
    """The connect handler's refusal, in the user's language."""
    # "this session has ended" stays English: the page reloads on it (signaling.js), and
    # the reloaded page says so in the user's language
    ended = str(refusal) == session.ENDED
    return ConnectionRefusedError(session.ENDED if ended else refusal.translated())


def on_disconnect(reason: Any = None) -> dict[str, Any] | None:
    """Forget the connection; the user's last connection leaving is a leave."""
    if (refused := spoofed("disconnect")) is not None:
        return refused
    actor = actors.pop(request.sid, None)  # type: ignore[attr-defined]
    if actor is None:
        return None
    out = Outbox()
    forget(actor.room_id, actor.user_id, actor.name, actor.sid, out)
    deliver(out)
    return None


def forget(room_id: int, user_id: int, name: str, sid: str, out: Outbox) -> None:
    """A connection ended (or its web worker died): its presence row, then its streams."""
    # The row goes first (committed): a publish in flight re-checks it as it records its stream.
    presence.disconnect(room_id, user_id, name, sid, out)
    media.stop_streams(room_id, out, sid=sid)


def sweep(app: Flask) -> None:
    """Beat for this worker, and end the connections of web workers that stopped beating
    (killed) as their own disconnects would have: leaves logged, counts and streams updated."""
    with app.app_context():
        presence.beat()
        out = Outbox()
        for room_id, user_id, name, sid in presence.orphans():
            forget(room_id, user_id, name, sid, out)
        deliver(out)
        db.session.remove()


def on_state(*args: Any) -> dict[str, Any]:
    """``state.get``: the room's full state as the reply; clients ask on every (re)connect.
    Rate limited (bucket ``state``); a snapshot still current is reused (rooms/state.py)."""
    actor = actors.get(request.sid)  # type: ignore[attr-defined]
    if actor is None:
        return error(_("not connected to a room"))
    if not limiter.allow(actor.user_id, "state"):
        return error(_("too many requests: slow down"))
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    return {"ok": True, "state": snapshot(actor, room)}


def on_refused(*args: Any) -> dict[str, Any]:
    """A packet refused while it was decoded (``rooms.wire``): its payload nests too deep."""
    return error(_("the payload is nested too deeply"))


def on_default_connect(auth: Any = None) -> bool:
    """The default namespace ``/`` serves nothing: every connection to it is refused."""
    return False


# When the periodic flush last ran (or a handler did its work for it).
last_flush = time.monotonic()


def flush_if_late() -> None:
    """From a handler: send the coalesced updates when the periodic flush is overdue.

    A worker busy with a burst of events (a vote storm) runs the flusher only after the events
    queued before it, so vote counts and live results would freeze; the handlers then take its
    turn. Off when the interval is 0 (tests flush by hand).
    """
    global last_flush
    interval = current_app.config.get("ROOMS_FLUSH_INTERVAL", INTERVAL_S)
    now = time.monotonic()
    if not interval or now - last_flush < 2 * interval:
        return
    last_flush = now
    out = Outbox()
    for coalescer in COALESCERS:
        out.messages.extend(coalescer.flush().messages)
    deliver(out)


def flush(app: Flask, slow: bool = True) -> None:
    """Send the coalesced updates (with ``slow``, the attendee counts too)."""
    global last_flush
    last_flush = time.monotonic()
    with app.app_context():
        out = Outbox()
        for coalescer in COALESCERS + (SLOW_COALESCERS if slow else ()):
            out.messages.extend(coalescer.flush().messages)
        deliver(out)
        db.session.remove()


def start_flusher(app: Flask) -> None:
    """Start the periodic flush once per app (``ROOMS_FLUSH_INTERVAL`` 0: tests flush by hand),
    with this worker's presence heartbeat and sweep every ``presence.HEARTBEAT_S``."""
    interval = app.config.get("ROOMS_FLUSH_INTERVAL", INTERVAL_S)
    if not interval or app.extensions.get("rooms_flusher"):
        return
    sio: SocketIO = app.extensions["socketio"]
    running = app.extensions["rooms_flusher_running"] = [True]

    def loop() -> None:
        tick = 0
        swept = time.monotonic()
        while True:
            sio.sleep(interval)
            if not running[0]:
                return
            tick += 1
            try:
                flush(app, slow=tick % SLOW_EVERY == 0)
            except Exception:
                log.exception("flushing room updates failed")
            if time.monotonic() - swept >= presence.HEARTBEAT_S:
                swept = time.monotonic()
                try:
                    sweep(app)
                except Exception:
                    log.exception("presence heartbeat or sweep failed")

    app.extensions["rooms_flusher"] = sio.start_background_task(loop)


def stop_flusher(app: Flask) -> None:
    """End ``app``'s periodic flush at its next tick (an app that is done: the coalescers are
    shared by the process, so a flusher left running would send another app's updates)."""
    running = app.extensions.pop("rooms_flusher_running", None)
    if running is not None:
        running[0] = False


def stale_everywhere(manager: RedisQueue) -> Callable[[], None]:
    """After a message-queue outage: tell this worker's own clients, in every room, to load
    the state again (``state.stale``), locally: other workers' emits during the outage never
    reached them. Snapshots built meanwhile missed those emits too, so they are dropped."""

    def tell() -> None:
        forget_snapshots()
        manager.emit("state.stale", {}, namespace=NAMESPACE, ignore_queue=True)

    return tell


def handler_for(name: str) -> Callable[..., dict[str, Any]]:
    def handle(*args: Any) -> dict[str, Any]:
        return dispatch(name, request.sid, args)  # type: ignore[attr-defined]

    return handle


def register(sio: SocketIO) -> None:
    """Attach the namespace's handlers to the Socket.IO server just bound by ``init_app``.

    Flask-SocketIO registers handlers on its current server, so this runs once per app.
    """
    watch(sio.server.manager)
    if isinstance(sio.server.manager, RedisQueue):
        sio.server.manager.resumed = stale_everywhere(sio.server.manager)
    sio.on_event("connect", on_connect, namespace=NAMESPACE)
    sio.on_event("disconnect", on_disconnect, namespace=NAMESPACE)
    sio.on_event("state.get", on_state, namespace=NAMESPACE)
    sio.on_event(REFUSED_EVENT, on_refused, namespace=NAMESPACE)
    sio.on_event("connect", on_default_connect, namespace="/")
    for name in EVENTS:
        sio.on_event(name, handler_for(name), namespace=NAMESPACE)
