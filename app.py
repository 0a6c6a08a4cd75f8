"""Lectern's entry point: ``python app.py [--host H] [--port P] [--data-dir D]``.

Only this file knows the web process runs on eventlet; everything else uses Flask-SocketIO's
async-mode-neutral API, so the mode can change here alone.
"""

import warnings

# eventlet's own metadata discourages new use and warns on import; the web process still uses it.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import eventlet
import eventlet.wsgi

eventlet.monkey_patch()

import argparse
import os
import signal
import socket
import sys

from flask import Flask

from accounts.setup import first_admin_link
from lectern import create_app, mediaworkers, sqlite_gate
from lectern.demo import DEMO_PASSWORD, DEMO_USERS
from lectern.extensions import db, socketio
from lectern.schema import prepare
from media.supervisor import Supervisor
from webinar import reminders

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run Lectern (web app and media workers).")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--data-dir", default=None, help="local data folder (default: ./data)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # logins show at once
    overrides = {"SOCKETIO_ASYNC_MODE": "eventlet"}
    if args.data_dir:
        overrides["DATA_DIR"] = args.data_dir
    if args.host in LOOPBACK and "MEDIA_HOST_ADDRESSES" not in os.environ:
        # Served on loopback only: keep media there too (aioice skips 127.0.0.1 by itself).
        overrides["MEDIA_HOST_ADDRESSES"] = "127.0.0.1"
    if "PUBLIC_URL" not in os.environ:  # links in e-mails sent outside a request point here
        overrides["PUBLIC_URL"] = f"http://{args.host}:{args.port}"
    app = create_app(overrides)
    seeded = prepare(app)
    with app.app_context():  # green threads must not wait for SQLite's lock in C
        sqlite_gate.install(db.engine)
    supervisor = mediaworkers.start(app, socketio)
    reminders.start(app, socketio)
    # SIGTERM ends the process without atexit handlers: stop the media workers first.
    signal.signal(signal.SIGTERM, lambda *_: shutdown(supervisor))
    print(f"Lectern is running on http://{args.host}:{args.port}/", flush=True)
    print(f"Data folder: {app.config['DATA_DIR']}" + (" (demo data created)" if seeded else ""))
    if supervisor is not None:
        print(f"Media workers: {', '.join(supervisor.addrs)}")
    if app.config["DEMO_DATA"]:
        print(f"Demo logins (password: {DEMO_PASSWORD}):")
        for email, name, role in DEMO_USERS:
            print(f"  {role:<10} {email:<26} {name}")
    setup_url = first_admin_link(app)
    if setup_url:  # no administrator yet: this single-use link creates the first one
        print(f"Create the first administrator (link works once): {setup_url}")
    serve(app, args.host, args.port)


def shutdown(supervisor: Supervisor | None) -> None:
    if supervisor is not None:
        supervisor.terminate()
    os._exit(0)


def serve(app: Flask, host: str, port: int) -> None:
    """eventlet's WSGI server with room for large audiences: a deep accept backlog, up to
    ``MAX_CONNECTIONS`` simultaneous clients (eventlet's default is 1,024) and TCP_NODELAY, so a
    message sent right after another is not held back ~40 ms by Nagle's algorithm."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = eventlet.listen(
        (host, port), family, backlog=int(os.environ.get("LISTEN_BACKLOG", "1024"))
    )
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
    max_size = int(os.environ.get("MAX_CONNECTIONS", "10000"))
    eventlet.wsgi.server(listener, app, log_output=False, max_size=max_size)


if __name__ == "__main__":
    main()
