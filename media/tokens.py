"""Signed grants from the web app to the media workers: the worker checks who may publish.

``token = base64url(json payload) + "." + hex(HMAC-SHA256(secret, that base64 text))``; the payload
carries ``room``, ``user``, ``op`` ("publish" or "view") and ``exp`` (Unix time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

LIFETIME_S = 60


class BadToken(Exception):
    """A token that is malformed, forged, expired or for another operation."""


def sign(secret: str, **payload: Any) -> str:
    """A token for ``payload``, valid for ``LIFETIME_S`` seconds."""
    payload.setdefault("exp", int(time.time()) + LIFETIME_S)
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def verify(secret: str, token: object, op: str) -> dict[str, Any]:
    """The payload of a genuine, unexpired ``op`` token.

    :raises BadToken: otherwise.
    """
    if not isinstance(token, str) or token.count(".") != 1:
        raise BadToken("malformed token")
    body, mac = token.split(".")
    expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        raise BadToken("bad signature")
    try:
        payload = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError as exc:
        raise BadToken("malformed token") from exc
    if not isinstance(payload, dict) or payload.get("op") != op:
        raise BadToken(f"not a {op} token")
    if not isinstance(payload.get("exp"), int) or payload["exp"] < time.time():
        raise BadToken("expired token")
    return payload
