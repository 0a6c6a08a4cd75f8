"""Settings, read from environment variables; tests pass overrides as a mapping."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from media.settings import derive_secret, parse_ice_servers

TRUE_WORDS = {"1", "true", "yes", "on"}


def env_flag(name: str, default: bool) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" mean true)."""
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in TRUE_WORDS


def default_data_dir() -> Path:
    """The local data folder: ``DATA_DIR`` or ``./data`` beside the working directory."""
    return Path(os.environ.get("DATA_DIR", "data")).resolve()


def persistent_secret(data_dir: Path) -> str:
    """A secret key kept in the data folder so sessions survive a restart."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def build_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge environment settings with ``overrides`` into one Flask config mapping."""
    overrides = dict(overrides or {})
    data_dir = Path(overrides.get("DATA_DIR") or default_data_dir()).resolve()
    config: dict[str, Any] = {
        "DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL")
        or f"sqlite:///{data_dir / 'lectern.db'}",
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        # Redis channel shared by the web workers of one deployment.
        "SOCKETIO_CHANNEL": os.environ.get("SOCKETIO_CHANNEL", "lectern"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env_flag("SESSION_COOKIE_SECURE", False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # Sign-in backoff (accounts/throttle.py, SECURITY.md): free failures per account and
        # address, then a wait doubling from BACKOFF_SECONDS up to LOCK_SECONDS; the same per
        # address after ADDRESS_FAILURES; tries on an account failed from ACCOUNT_ADDRESSES
        # addresses spaced ACCOUNT_SPACING seconds; failures remembered WINDOW_SECONDS.
        "LOGIN_MAX_FAILURES": int(os.environ.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_BACKOFF_SECONDS": int(os.environ.get("LOGIN_BACKOFF_SECONDS", "2")),
        "LOGIN_LOCK_SECONDS": int(os.environ.get("LOGIN_LOCK_SECONDS", "300")),
        "LOGIN_ADDRESS_FAILURES": int(os.environ.get("LOGIN_ADDRESS_FAILURES", "20")),
        "LOGIN_ACCOUNT_ADDRESSES": int(os.environ.get("LOGIN_ACCOUNT_ADDRESSES", "10")),
        "LOGIN_ACCOUNT_SPACING": int(os.environ.get("LOGIN_ACCOUNT_SPACING", "10")),
        "LOGIN_WINDOW_SECONDS": int(os.environ.get("LOGIN_WINDOW_SECONDS", "3600")),
        "DEMO_DATA": env_flag("DEMO_DATA", True),
        "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
        # Largest slide deck (PDF) a presenter may upload, in MiB; below MAX_CONTENT_LENGTH.
        "SLIDES_MAX_MB": float(os.environ.get("SLIDES_MAX_MB", "50")),
        # Media: worker addresses to use ("host:port,..."), or how many workers app.py starts.
        "MEDIA_WORKER_ADDRS": [a for a in os.environ.get("MEDIA_WORKER_ADDRS", "").split(",") if a],
        "MEDIA_WORKERS": int(os.environ.get("MEDIA_WORKERS") or os.cpu_count() or 1),
        "ICE_SERVERS": parse_ice_servers(os.environ.get("ICE_SERVERS")),
        "MEDIA_HOST_ADDRESSES": os.environ.get("MEDIA_HOST_ADDRESSES", ""),
        # Presenters' pages offer H.264 first where the browser sends it (else VP8): the HLS
        # tier then remuxes it rather than encoding once per stream.
        "MEDIA_PREFER_H264": env_flag("MEDIA_PREFER_H264", True),
        # A broadcast's first camera stream is also packaged as HLS (rooms/hls.py); its signed
        # URLs stay valid this many seconds.
        "HLS_ENABLED": env_flag("HLS_ENABLED", True),
        "HLS_URL_LIFETIME_S": int(os.environ.get("HLS_URL_LIFETIME_S", "14400")),
        "WTF_CSRF_TIME_LIMIT": None,
        # Outgoing e-mail (join links, reminders): printed to the console unless SMTP_HOST is set.
        "SMTP_HOST": os.environ.get("SMTP_HOST", ""),
        "SMTP_PORT": int(os.environ.get("SMTP_PORT", "25")),
        "SMTP_USER": os.environ.get("SMTP_USER", ""),
        "SMTP_PASSWORD": os.environ.get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": env_flag("SMTP_STARTTLS", False),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Lectern <no-reply@localhost>"),
        # Reverse proxies in front of the web workers (their X-Forwarded-* headers are trusted).
        "PROXY_HOPS": int(os.environ.get("PROXY_HOPS", "0")),
        # Registrants get a reminder e-mail this many minutes before a broadcast (0: never).
        "REMINDER_MINUTES": int(os.environ.get("REMINDER_MINUTES", "60")),
        # The address people reach this server at, for links in e-mails sent outside a request.
        "PUBLIC_URL": os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000"),
        "SOCKETIO_ASYNC_MODE": "threading",
        # Self sign-up (off by default): who may, by e-mail domain ("school.edu,staff.school.edu";
        # empty: any), and the role the new accounts get (student or attendee).
        "SIGNUP_ENABLED": env_flag("SIGNUP_ENABLED", False),
        "SIGNUP_DOMAINS": [
            d.strip().lower().lstrip("@")
            for d in os.environ.get("SIGNUP_DOMAINS", "").split(",")
            if d.strip()
        ],
        "SIGNUP_ROLE": os.environ.get("SIGNUP_ROLE", "student"),
        # Socket.IO bounds (rooms/wire.py): the largest message (a 64 KiB SDP offer fits), open
        # connections per signed-in user and per client address, new connections per second
        # per address (a burst of five seconds' worth).
        "SOCKETIO_MAX_MESSAGE_BYTES": int(os.environ.get("SOCKETIO_MAX_MESSAGE_BYTES", "100000")),
        "SOCKETIO_CONNECTIONS_PER_USER": int(os.environ.get("SOCKETIO_CONNECTIONS_PER_USER", "20")),
        "SOCKETIO_CONNECTIONS_PER_ADDRESS": int(
            os.environ.get("SOCKETIO_CONNECTIONS_PER_ADDRESS", "500")
        ),
        "SOCKETIO_HANDSHAKE_RATE": float(os.environ.get("SOCKETIO_HANDSHAKE_RATE", "20")),
    }
    config.update(overrides)
    config["DATA_DIR"] = str(data_dir)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or persistent_secret(data_dir)
    if not config.get("MEDIA_SECRET"):
        config["MEDIA_SECRET"] = os.environ.get("MEDIA_SECRET") or derive_secret(
            config["SECRET_KEY"]
        )
    return config
