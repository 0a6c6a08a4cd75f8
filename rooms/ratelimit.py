"""Per-user token buckets: a flood from one participant is refused without slowing others.

Buckets live in the web worker's memory; a user's connection stays on one worker, so each
worker's limit is that user's limit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    burst: int  # events allowed at once
    per_second: float  # refill rate


# bucket name -> rate; events name their bucket in the dispatch table
RATES: dict[str, Rate] = {
    "default": Rate(burst=20, per_second=5.0),
    "question": Rate(burst=5, per_second=0.2),  # 5 at once, then one every 5 s
    "chat": Rate(burst=10, per_second=1.0),
    "hand": Rate(burst=10, per_second=1.0),
    "media": Rate(burst=10, per_second=1.0),
    "state": Rate(burst=10, per_second=1.0),  # state.get: one per (re)connect is the need
}


class Limiter:
    """Token buckets keyed by (user, bucket)."""

    def __init__(self, rates: dict[str, Rate] | None = None) -> None:
        self.rates = rates or RATES
        self._buckets: dict[tuple[int, str], tuple[float, float]] = {}  # -> (tokens, at)
        self._lock = threading.Lock()

    MAX_BUCKETS = 100_000  # beyond this, buckets idle long enough to be full again are dropped

    def allow(self, user_id: int, bucket: str) -> bool:
        """Take one token from the user's bucket; False when it is empty."""
        rate = self.rates[bucket]
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > self.MAX_BUCKETS:
                self._prune(now)
            tokens, at = self._buckets.get((user_id, bucket), (float(rate.burst), now))
            tokens = min(float(rate.burst), tokens + (now - at) * rate.per_second)
            if tokens < 1.0:
                self._buckets[(user_id, bucket)] = (tokens, now)
                return False
            self._buckets[(user_id, bucket)] = (tokens - 1.0, now)
            return True

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled: forgetting one changes nothing."""
        for key, (tokens, at) in list(self._buckets.items()):
            rate = self.rates[key[1]]
            if tokens + (now - at) * rate.per_second >= rate.burst:
                del self._buckets[key]

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
