"""Guards on the Socket.IO transport, below the ``/room`` namespace: one client cannot stall the
web worker.

- **Handshake** (engine.io): only signed-in users get a connection; at most
  ``SOCKETIO_CONNECTIONS_PER_USER`` open connections per user and
  ``SOCKETIO_CONNECTIONS_PER_ADDRESS`` per client address, and at most
  ``SOCKETIO_HANDSHAKE_RATE`` new ones per second per address (a burst of five seconds' worth).
- **Packets**: at most ``SOCKETIO_MAX_MESSAGE_BYTES`` per message (engine.io's
  ``max_http_buffer_size``, also eventlet's websocket frame limit), JSON nested at most
  ``MAX_DEPTH`` deep (checked before decoding), at most ``MAX_ATTACHMENTS`` binary attachments,
  and a per-connection budget of ``PACKET_BURST`` packets refilled at ``PACKET_RATE`` a second,
  taken before a packet is decoded or a handler started.
- **Strikes**: a malformed packet or one over the budget is a strike, never a traceback;
  ``MAX_STRIKES`` strikes close the connection with one log line, and its user may not connect
  again for ``BAR_S`` seconds (a flooder reconnecting at once made every reconnect cost a
  sign-in check, a join and a leave).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import socketio
from engineio import json as eio_json
from flask import Flask
from flask_login import current_user

log = logging.getLogger(__name__)

MAX_DEPTH = 20  # lists and objects inside each other; the deepest event payload needs 3
MAX_ATTACHMENTS = 2  # binary parts of one packet; no room event takes binary data
PACKET_BURST = 100  # packets a connection may send at once ...
PACKET_RATE = 20.0  # ... and per second after that
MAX_STRIKES = 20  # malformed or excess packets before the connection is closed ...
BAR_S = 10.0  # ... and its user may not connect again for this long
# The event name a packet refused while decoding is delivered as (see BoundedPacket).
REFUSED_EVENT = "\x00refused"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


class TooDeep(ValueError):
    """A JSON text nested deeper than ``MAX_DEPTH``."""


def too_deep(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``text`` (JSON) nests lists/objects deeper than ``limit``, without decoding it:
    strings are dropped, then each pass removes the innermost pairs (C-speed regex passes,
    at most ``limit + 1`` of them)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):
        if not brackets:
            return False
        brackets, removed = _INNERMOST.subn("", brackets)
        if not removed:
            return False  # unbalanced: not JSON, the decoder refuses it
    return bool(_INNERMOST.search(brackets))


class BoundedJSON:
    """engine.io's JSON module, refusing texts nested deeper than ``MAX_DEPTH`` before
    decoding them (the decoder recurses: a 1,000-deep text raised ``RecursionError``)."""

    @staticmethod
    def dumps(*args: Any, **kwargs: Any) -> str:
        return str(eio_json.dumps(*args, **kwargs))

    @staticmethod
    def loads(text: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if too_deep(text):
            raise TooDeep(f"nested more than {MAX_DEPTH} deep")
        return eio_json.loads(text, *args, **kwargs)


class BoundedPacket(socketio.packet.Packet):
    """Socket.IO's packet with bounded JSON depth and binary attachments.

    An event too deep to decode keeps its namespace and ack id and becomes the event
    ``REFUSED_EVENT``, which the namespace answers with an error: the client hears why.
    """

    json = BoundedJSON

    def decode(self, encoded_packet: Any) -> int:
        try:
            count = int(super().decode(encoded_packet) or 0)
        except TooDeep:
            self.packet_type = socketio.packet.EVENT
            self.data = [REFUSED_EVENT, "too deep"]
            return 0
        if count > MAX_ATTACHMENTS:
            raise ValueError(f"{count} binary attachments (at most {MAX_ATTACHMENTS})")
        return count


@dataclass
class Bucket:
    """A token bucket: ``burst`` at once, refilled at ``rate`` per second."""

    burst: float
    rate: float
    tokens: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def full(self, now: float) -> bool:
        return self.tokens < 0 or self.tokens + (now - self.at) * self.rate >= self.burst


@dataclass
class Conn:
    """What the guard keeps per engine.io connection."""

    address: str
    user_id: int
    packets: Bucket
    strikes: int = 0
    stream: Any = None  # eventlet's socket of a websocket connection, to stop reading it


@dataclass(frozen=True)
class Limits:
    per_user: int
    per_address: int
    handshake_rate: float

    @classmethod
    def of(cls, config: Any) -> Limits:
        return cls(
            per_user=int(config["SOCKETIO_CONNECTIONS_PER_USER"]),
            per_address=int(config["SOCKETIO_CONNECTIONS_PER_ADDRESS"]),
            handshake_rate=float(config["SOCKETIO_HANDSHAKE_RATE"]),
        )


class Guard:
    """Installed on one ``socketio.Server``: wraps its engine.io connect, message and
    disconnect handlers (also the methods, so in-process test clients pass through it)."""

    def __init__(self, app: Flask, server: Any, limits: Limits) -> None:
        self.app, self.server, self.limits = app, server, limits
        self.conns: dict[str, Conn] = {}  # eio sid -> its state
        self.by_user: Counter[int] = Counter()
        self.by_address: Counter[str] = Counter()
        self.handshakes: dict[str, Bucket] = {}  # address -> new connections bucket
        self.refused: Counter[str] = Counter()  # why handshakes were refused, for tests/ops
        self.barred: dict[int, float] = {}  # user id -> until when (monotonic) after a close
        self._lock = threading.RLock()
        self._connect = server._handle_eio_connect
        self._message = server._handle_eio_message
        self._disconnect = server._handle_eio_disconnect

    def install(self) -> Guard:
        self.server._handle_eio_connect = self.connect
        self.server._handle_eio_message = self.message
        self.server._handle_eio_disconnect = self.disconnect
        self.server.eio.on("connect", self.connect)
        self.server.eio.on("message", self.message)
        self.server.eio.on("disconnect", self.disconnect)
        return self

    # -- handshake -------------------------------------------------------------------------
    def connect(self, eio_sid: str, environ: dict[str, Any]) -> bool:
        """Admit an engine.io connection, or refuse it (HTTP 401) before it holds anything."""
        address = str(environ.get("REMOTE_ADDR") or "?")
        if not self.handshake_allowed(address):
            return self.refuse("rate", address)
        user_id = self.user_of(environ)
        if user_id is None:
            return self.refuse("anonymous", address)
        with self._lock:
            if self.barred.get(user_id, 0.0) > time.monotonic():
                return self.refuse("barred", address)
            if self.by_address[address] >= self.limits.per_address:
                return self.refuse("address", address)
            if self.by_user[user_id] >= self.limits.per_user:
                return self.refuse("user", address)
            self.by_address[address] += 1
            self.by_user[user_id] += 1
            self.conns[eio_sid] = Conn(address, user_id, Bucket(PACKET_BURST, PACKET_RATE))
            if "transport=websocket" in str(environ.get("QUERY_STRING")):
                self.conns[eio_sid].stream = environ.get("eventlet.input")
        self._connect(eio_sid, environ)
        return True

    def handshake_allowed(self, address: str) -> bool:
        now = time.monotonic()
        rate = self.limits.handshake_rate
        with self._lock:
            if len(self.handshakes) > 10_000:  # forget addresses whose bucket is full again
                self.handshakes = {a: b for a, b in self.handshakes.items() if not b.full(now)}
            bucket = self.handshakes.setdefault(address, Bucket(burst=5 * rate, rate=rate))
            return bucket.take(now)

    def refuse(self, why: str, address: str) -> bool:
        with self._lock:
            self.refused[why] += 1
        return False

    def user_of(self, environ: dict[str, Any]) -> int | None:
        """The signed-in user of the handshake's cookies (Flask-Login, as the pages do)."""
        try:
            with self.app.request_context(environ):
                return int(current_user.id) if current_user.is_authenticated else None
        except Exception:  # a cookie the session or user loader cannot read
            return None

    # -- packets ---------------------------------------------------------------------------
    def message(self, eio_sid: str, data: Any) -> None:
        """One Socket.IO packet: budget first, then python-socketio; failures are strikes."""
        conn = self.conns.get(eio_sid)
        if conn is None:  # never admitted (an in-process test client goes on regardless)
            return
        if conn.strikes >= MAX_STRIKES:  # being closed: read no further
            return
        if not conn.packets.take():
            self.strike(eio_sid, conn, "over the packet budget")
            return
        try:
            self._message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
            self.strike(eio_sid, conn, "malformed packet")

    def strike(self, eio_sid: str, conn: Conn, what: str) -> None:
        conn.strikes += 1
        if conn.strikes == MAX_STRIKES:
            log.warning(
                "closing Socket.IO connection %s (user %s, %s) after %d strikes; last: %s",
                eio_sid,
                conn.user_id,
                conn.address,
                MAX_STRIKES,
                what,
            )
            with self._lock:
                now = time.monotonic()
                self.barred = {u: t for u, t in self.barred.items() if t > now}
                self.barred[conn.user_id] = now + BAR_S
            self.close(eio_sid)
            if conn.stream is not None:  # engine.io would read (and drop) all that still comes
                with contextlib.suppress(OSError):
                    conn.stream.get_socket().shutdown(socket.SHUT_RDWR)

    def strike_sid(self, sid: str, namespace: str, what: str) -> None:
        """A strike against the connection of the namespace session ``sid``."""
        eio_sid = self.server.manager.eio_sid_from_sid(sid, namespace)
        conn = self.conns.get(eio_sid) if eio_sid else None
        if conn is not None:
            self.strike(eio_sid, conn, what)

    def close(self, eio_sid: str) -> None:
        """Close the engine.io connection now, without waiting for its queue to drain (we are
        in its reader); its namespaces' disconnect handlers run through ``disconnect``."""
        sock = self.server.eio.sockets.pop(eio_sid, None)
        if sock is None:  # an in-process test client has no engine.io socket
            self.disconnect(eio_sid, self.server.reason.SERVER_DISCONNECT)
        else:
            sock.close(wait=False, reason=self.server.reason.SERVER_DISCONNECT)

    def disconnect(self, eio_sid: str, reason: Any = None) -> None:
        with self._lock:
            conn = self.conns.pop(eio_sid, None)
            if conn is not None:
                self.by_address[conn.address] -= 1
                self.by_user[conn.user_id] -= 1
                if self.by_address[conn.address] <= 0:
                    del self.by_address[conn.address]
                if self.by_user[conn.user_id] <= 0:
                    del self.by_user[conn.user_id]
        self._disconnect(eio_sid, reason)


def install(app: Flask, server: Any) -> Guard:
    """Guard ``server`` (just made by ``socketio.init_app``) with ``app``'s limits."""
    guard = Guard(app, server, Limits.of(app.config)).install()
    app.extensions["socketio_guard"] = guard
    return guard


def server_options(config: Any) -> dict[str, Any]:
    """Options for ``socketio.init_app``: bounded packets, only ``/room`` served."""
    return {
        "serializer": BoundedPacket,
        "max_http_buffer_size": int(config["SOCKETIO_MAX_MESSAGE_BYTES"]),
        "namespaces": ["/room"],
    }
