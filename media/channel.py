"""The web app's side of the media worker channel: one JSON request and reply per line over TCP.

Plain blocking sockets (green under eventlet's monkey-patching); imports no aiortc. A room is
placed on a worker by a stable hash of its key, so every web worker picks the same one.
"""

from __future__ import annotations

import json
import socket
import zlib
from typing import Any

TIMEOUT_S = 15.0


class MediaUnavailable(Exception):
    """No media worker answered."""


def parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


class MediaChannel:
    """Requests to the media workers at ``addrs`` (``"127.0.0.1:7001"``, ...)."""

    def __init__(self, addrs: list[str], timeout: float = TIMEOUT_S) -> None:
        self.addrs = list(addrs)
        self.timeout = timeout

    @property
    def available(self) -> bool:
        return bool(self.addrs)

    def worker_for(self, room_key: str) -> str:
        """The worker that hosts ``room_key``'s media."""
        if not self.addrs:
            raise MediaUnavailable("no media workers are configured")
        return self.addrs[zlib.crc32(room_key.encode()) % len(self.addrs)]

    def call(self, addr: str, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request to the worker at ``addr`` and return its reply."""
        request = json.dumps({"op": op, **fields}).encode() + b"\n"
        try:
            with socket.create_connection(parse_addr(addr), timeout=self.timeout) as conn:
                conn.sendall(request)
                reply = conn.makefile("rb").readline()
        except OSError as exc:
            raise MediaUnavailable(f"media worker {addr} did not answer: {exc}") from exc
        if not reply:
            raise MediaUnavailable(f"media worker {addr} closed the connection")
        result: dict[str, Any] = json.loads(reply)
        return result

    def call_room(self, room_key: str, op: str, **fields: Any) -> dict[str, Any]:
        return self.call(self.worker_for(room_key), op, **fields)
