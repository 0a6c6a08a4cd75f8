"""Coalescing frequent room-wide updates (vote counts, presence counts, poll results).

Fan-out costs per recipient, so instead of one emit per vote the latest state of each marked
key is built and sent once per interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rooms.context import Outbox

Builder = Callable[[Outbox], None]

INTERVAL_S = 0.25


class Coalescer:
    """Keys marked since the last flush, each with the builder that renders its update."""

    def __init__(self) -> None:
        self._pending: dict[tuple[object, ...], Builder] = {}
        self._lock = threading.Lock()

    def mark(self, key: tuple[object, ...], build: Builder) -> None:
        """Ask for ``build`` to run at the next flush; marking a key twice sends it once."""
        with self._lock:
            self._pending[key] = build

    def flush(self) -> Outbox:
        """Build every pending update (the caller holds an app context) and clear them."""
        with self._lock:
            pending, self._pending = self._pending, {}
        out = Outbox()
        for build in pending.values():
            build(out)
        return out
