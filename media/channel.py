"""The web app's side of the media worker channel: one JSON request and reply per line over TCP.

Plain blocking sockets (green under eventlet's monkey-patching); imports no aiortc.
:func:`call_async` is the same request from inside an event loop: a media worker calling another
(a cascade leg, see ``docs/protocol.md``). A room is
placed on a worker by a stable hash of its key, so every web worker picks the same one; its
viewers may be placed on others (``rooms.placement``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import zlib
from typing import Any

TIMEOUT_S = 15.0
MAX_REPLY = 256 * 1024  # a reply line: an SDP answer and its fields


class MediaUnavailable(Exception):
    """No media worker answered."""


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` as a pair (host 127.0.0.1 when left out).

    :raises ValueError: the port is not a number from 1 to 65535
    """
    host, _, port = addr.rpartition(":")
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"port out of range: {port}")
    return host.strip("[]") or "127.0.0.1", number


async def call_async(
    addr: str, op: str, timeout: float = TIMEOUT_S, **fields: Any
) -> dict[str, Any]:
    """One request to the worker at ``addr`` from inside an event loop (a worker asking another,
    e.g. a cascade leg's ``view``); the same line protocol as :meth:`MediaChannel.call`.

    :raises MediaUnavailable: the worker could not be reached or did not answer in time
    """
    host, port = parse_addr(addr)
    request = json.dumps({"op": op, **fields}).encode() + b"\n"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=MAX_REPLY), timeout
        )
    except (TimeoutError, OSError) as exc:
        raise MediaUnavailable(f"media worker {addr} did not answer: {exc!r}") from exc
    try:
        writer.write(request)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), timeout)
    except (TimeoutError, OSError, ValueError) as exc:
        raise MediaUnavailable(f"media worker {addr} did not answer: {exc!r}") from exc
    finally:
        writer.close()
    if not reply:
        raise MediaUnavailable(f"media worker {addr} closed the connection")
    result = json.loads(reply)
    if not isinstance(result, dict):
        raise MediaUnavailable(f"media worker {addr} answered something else than an object")
    return result


class MediaChannel:
    """Requests to the media workers at ``addrs`` (``"127.0.0.1:7001"``, ...)."""

    def __init__(self, addrs: list[str], timeout: float = TIMEOUT_S) -> None:
        self.addrs = list(addrs)
        self.timeout = timeout
        # Workers the health loop found dead (lectern.mediaworkers): nothing is placed on them
        # until they answer again.
        self.dead: set[str] = set()

    @property
    def available(self) -> bool:
        return bool(self.addrs)

    @property
    def live(self) -> list[str]:
        """The workers not known to be dead."""
        return [addr for addr in self.addrs if addr not in self.dead]

    def worker_for(self, room_key: str) -> str:
        """The worker that hosts ``room_key``'s published media (and its recording): of the live
        workers, the one a stable hash of the room and the worker ranks first (rendezvous
        hashing: every web worker picks the same one, and a worker that dies moves only its own
        rooms)."""
        if not self.addrs:
            raise MediaUnavailable("no media workers are configured")
        return max(self.live or self.addrs, key=lambda a: zlib.crc32(f"{room_key} {a}".encode()))

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
