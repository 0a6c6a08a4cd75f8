"""Lectern: virtual classroom and webinar system. :func:`create_app` builds the web app."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from lectern import i18n, messagequeue, urls
from lectern.config import build_config
from lectern.extensions import csrf, db, login, migrate, socketio
from media.channel import MediaChannel
from rooms import wire

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; ``config`` overrides settings read from the environment."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(build_config(config))
    urls.register(app)  # before the blueprints add their rules
    Path(app.config["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    init_extensions(app)
    if app.config["PROXY_HOPS"]:  # behind reverse proxies: the visitor's address and scheme
        # Outermost, around Socket.IO's middleware too: its per-address connection limits must
        # count visitors, not the proxy (everyone would share one address's allowance).
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.extensions["media"] = MediaChannel(app.config["MEDIA_WORKER_ADDRS"])
    register_blueprints(app)
    register_rooms()
    from lectern import errors, security, timefmt

    errors.register(app)
    security.register(app)
    timefmt.register(app)
    return app


def init_extensions(app: Flask) -> None:
    """Bind the unbound extensions to ``app``."""
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    login.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    socketio.init_app(
        app,
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
        # Redis as the message queue between web workers (None: one worker, no queue).
        client_manager=messagequeue.client_manager(
            app.config["REDIS_URL"], app.config["SOCKETIO_CHANNEL"]
        ),
        cors_allowed_origins=None,
        **wire.server_options(app.config),
    )
    wire.install(app, socketio.server)


def register_rooms() -> None:
    """Make lessons and broadcasts joinable as live rooms, served on the ``/room`` namespace."""
    from classroom.room import LESSON_ROOM
    from rooms import namespace
    from rooms.registry import register_kind
    from webinar.room import BROADCAST_ROOM

    register_kind(LESSON_ROOM)
    register_kind(BROADCAST_ROOM)
    namespace.register(socketio)


def register_blueprints(app: Flask) -> None:
    """One blueprint per feature."""
    from accounts import bp as accounts_bp
    from classroom import bp as classroom_bp
    from lectern.dashboard import bp as dashboard_bp
    from recordings import bp as recordings_bp
    from rooms.routes import bp as rooms_bp
    from webinar import bp as webinar_bp
    from webinar.hls import bp as hls_bp
    from webinar.whip import bp as whip_bp

    app.register_blueprint(accounts_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(classroom_bp, url_prefix="/courses")
    app.register_blueprint(webinar_bp, url_prefix="/broadcasts")
    app.register_blueprint(whip_bp, url_prefix="/broadcasts")  # WHIP ingest: no cookies, no CSRF
    app.register_blueprint(hls_bp, url_prefix="/broadcasts")  # HLS tier: signed URLs, no cookies
    app.register_blueprint(rooms_bp, url_prefix="/rooms")
    app.register_blueprint(recordings_bp, url_prefix="/recordings")
