"""Media settings shared by the web app and the workers (no aiortc here)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


def parse_ice_servers(raw: str | None) -> list[dict[str, Any]]:
    """The ``ICE_SERVERS`` setting as a list of dicts (browser ``RTCIceServer`` shape)."""
    if not raw:
        return []
    servers = json.loads(raw)
    if not isinstance(servers, list) or not all(
        isinstance(s, dict) and "urls" in s for s in servers
    ):
        raise ValueError('ICE_SERVERS must be a JSON list of {"urls": ...} objects')
    return servers


def derive_secret(secret_key: str) -> str:
    """The web app's key for signing media grants, derived from ``SECRET_KEY``."""
    return hmac.new(secret_key.encode(), b"lectern-media-grants", hashlib.sha256).hexdigest()
