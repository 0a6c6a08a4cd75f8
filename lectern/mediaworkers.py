"""Running the media workers beside an embedded web worker (``python app.py``), or watching the
running ones that ``MEDIA_WORKER_ADDRS`` names.

A worker that dies is told to the rooms at once (``rooms.media.worker_restarted``: streams
published on it reset, viewers it served moved) and nothing is placed on it until it is back:
an embedded one is restarted on its port first; a listed one is pinged every second by each web
worker and counted lost after ``MISSES`` pings unanswered (or when it answers with another pid:
it restarted in between, losing its streams).
"""

from __future__ import annotations

import atexit
import json
import logging
from dataclasses import dataclass

from flask import Flask
from flask_socketio import SocketIO

from media.channel import MediaChannel, MediaUnavailable
from media.supervisor import Supervisor
from rooms import media
from rooms.namespace import deliver
from rooms.placement import placement

WATCH_INTERVAL_S = 1.0
PING_TIMEOUT_S = 0.8
MISSES = 2
log = logging.getLogger(__name__)


def start(app: Flask, socketio: SocketIO) -> Supervisor | None:
    """Start ``MEDIA_WORKERS`` workers unless ``MEDIA_WORKER_ADDRS`` names running ones (then
    watch those)."""
    if app.config["MEDIA_WORKER_ADDRS"]:
        addrs = list(app.config["MEDIA_WORKER_ADDRS"])
        socketio.start_background_task(health, app, socketio, addrs)
        return None
    if app.config["MEDIA_WORKERS"] < 1:
        return None
    supervisor = Supervisor(
        app.config["MEDIA_WORKERS"],
        {
            "MEDIA_SECRET": app.config["MEDIA_SECRET"],
            "ICE_SERVERS": json.dumps(app.config["ICE_SERVERS"]),
            "MEDIA_HOST_ADDRESSES": app.config["MEDIA_HOST_ADDRESSES"],
        },
    )
    app.extensions["media"].addrs = supervisor.start()
    atexit.register(supervisor.stop)
    socketio.start_background_task(watch, app, socketio, supervisor)
    return supervisor


def watch(app: Flask, socketio: SocketIO, supervisor: Supervisor) -> None:
    """Restart dead workers, then tell their rooms (publishers republish on the restarted one;
    meanwhile placement skips it, as its ``stats`` go unanswered)."""
    while True:
        socketio.sleep(WATCH_INTERVAL_S)
        for addr in supervisor.check():
            lost(app, addr, restarted=True)


def lost(app: Flask, addr: str, restarted: bool = False) -> None:
    """``addr`` died: tell the rooms that used it; skip it from now on unless it was restarted
    already (the views its rooms ask for again may go to it, empty as it is)."""
    log.warning("media worker %s is gone", addr)
    with app.app_context():
        if restarted:
            placement().mark_alive(app.extensions["media"], addr)
        else:
            placement().mark_dead(app.extensions["media"], addr)
        deliver(media.worker_restarted(addr))


def back(app: Flask, addr: str) -> None:
    """``addr`` answers again: it was cut off, not restarted (same pid), so it may still hold
    what this app forgot when it counted it lost; that is ended first, then it is placed on
    again."""
    with app.app_context():
        media.drop_leftovers(addr)
        placement().mark_alive(app.extensions["media"], addr)


@dataclass
class Health:
    """What the pings of one worker found so far."""

    misses: int = 0
    pid: int | None = None


def health(app: Flask, socketio: SocketIO, addrs: list[str]) -> None:
    """Ping every listed worker each second, for as long as this web worker runs."""
    seen = {addr: Health() for addr in addrs}
    while True:
        socketio.sleep(WATCH_INTERVAL_S)
        for addr, known in seen.items():
            try:
                check(app, addr, known)
            except Exception:  # one worker's trouble must not end the watch of the others
                log.exception("checking media worker %s failed", addr)


def ping(addr: str) -> int | None:
    """The worker's pid, or None when it does not answer in ``PING_TIMEOUT_S``."""
    try:
        reply = MediaChannel([addr], timeout=PING_TIMEOUT_S).call(addr, "ping")
    except (MediaUnavailable, ValueError):
        return None
    return int(reply.get("pid") or 0) if reply.get("ok") else None


def check(app: Flask, addr: str, known: Health) -> None:
    """One ping of ``addr``: lost after ``MISSES`` unanswered ones, or on a new pid."""
    pid = ping(addr)
    if pid is None:
        known.misses += 1
        if known.misses == MISSES:
            lost(app, addr)
        return
    if known.misses >= MISSES:
        back(app, addr)
    elif known.pid is not None and pid != known.pid:  # restarted between two pings
        lost(app, addr, restarted=True)
    known.misses, known.pid = 0, pid
