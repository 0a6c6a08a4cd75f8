"""Running the media workers beside an embedded web worker (``python app.py``)."""

from __future__ import annotations

import atexit
import json

from flask import Flask
from flask_socketio import SocketIO

from media.supervisor import Supervisor
from rooms import media
from rooms.namespace import deliver

WATCH_INTERVAL_S = 1.0


def start(app: Flask, socketio: SocketIO) -> Supervisor | None:
    """Start ``MEDIA_WORKERS`` workers unless ``MEDIA_WORKER_ADDRS`` names running ones."""
    if app.config["MEDIA_WORKER_ADDRS"] or app.config["MEDIA_WORKERS"] < 1:
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
    """Restart dead workers and tell their rooms to renegotiate."""
    while True:
        socketio.sleep(WATCH_INTERVAL_S)
        for addr in supervisor.check():
            with app.app_context():
                deliver(media.worker_restarted(addr))
