"""The web workers' Socket.IO message queue on Redis, back within a second of Redis returning.

python-socketio's ``RedisManager`` retries a lost Redis after 1 s and then doubles the wait, up
to 60 s: after an outage of half a minute, events would not cross between web workers for up to
another half minute once Redis was back. This manager retries every ``RETRY_S`` instead, and says
once when the queue is lost and once when it is back.

What is emitted while Redis is down reaches the clients of the emitting worker only (it handles
its own emits before publishing them); the database already holds the change (rooms commit
before they emit), so clients of other workers see it in their next ``state.get``. Once the
queue is back the manager calls ``resumed`` (the room runtime sets it: it tells its own clients
to load their state again).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import socketio

log = logging.getLogger(__name__)
RETRY_S = 0.5
CONNECT_TIMEOUT_S = 2.0  # a Redis host that does not answer at all is given up this soon


class RedisQueue(socketio.RedisManager):
    """``RedisManager`` that retries a lost Redis at a steady ``RETRY_S``."""

    def __init__(self, url: str, channel: str) -> None:
        options = {"socket_connect_timeout": CONNECT_TIMEOUT_S, "socket_keepalive": True}
        super().__init__(url, channel=channel, redis_options=options)
        # Called in the listener once the queue is back after a loss: what other workers
        # emitted meanwhile never reached this worker's clients.
        self.resumed: Callable[[], None] | None = None

    def _redis_listen_with_retries(self) -> Iterator[dict[str, Any]]:
        lost_at: float | None = None
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                if lost_at is not None:
                    log.warning("message queue back after %.1f s", time.monotonic() - lost_at)
                    lost_at = None
                    self.tell_resumed()
                yield from self.pubsub.listen()
            except Exception as exc:  # any failure: reconnect, as RedisManager does
                if lost_at is None:
                    lost_at = time.monotonic()
                    log.error("message queue lost (%s); retrying every %s s", exc, RETRY_S)
            self.close_pubsub()
            time.sleep(RETRY_S)  # green under eventlet: only this listener waits

    def tell_resumed(self) -> None:
        """Run the ``resumed`` hook; its failure must not stop the listener."""
        if self.resumed is None:
            return
        try:
            self.resumed()
        except Exception:
            log.exception("after the message queue came back")

    def close_pubsub(self) -> None:
        """Drop the broken subscription's connection; the next attempt makes a new one."""
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                self.pubsub.close()


def client_manager(url: str | None, channel: str) -> RedisQueue | None:
    """The manager for ``REDIS_URL``, or None: one worker alone needs no queue."""
    return RedisQueue(url, channel) if url else None
