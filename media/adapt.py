"""What each viewer's link can carry, and which layer of a stream it gets.

One :class:`Adapter` per viewer of a video stream. It reads what the viewer's browser already
sends (``media.aiortc_internals.Feedback``): REMB, the browser's own estimate of the bandwidth
it receives, which drops to below the arriving rate as soon as packets queue up on the way; the
fraction lost in its receiver reports; and its NACKs. From these it keeps a ``capacity``: it
falls to the estimate when the estimate falls (congestion) or when loss is heavy, and rises
with the estimate or after a successful probe.

Every ``TICK_S`` :meth:`Adapter.tick` decides the layer, from the layers' measured bitrates:
- **down** when the current layer has needed more than the capacity (with ``TOLERANCE``
  slack, so one noisy estimate does not move anybody) for ``DOWN_AFTER_S``: to the best layer
  that fits, or to audio only when even the lowest does not;
- **up** only by probing: after ``STABLE_S`` (times a back-off that doubles with each failed
  probe, up to ``MAX_BACKOFF``) without congestion, the viewer is sent retransmissions of what
  it already has, at the extra rate the next layer needs, for ``PROBE_S``. A browser's estimate
  only grows slowly with the rate it receives, so the probe is judged by what would show
  congestion: an estimate that falls or loss that rises ends it at once (a failure); a probe
  that lasts its time moves the viewer one layer up. A downgrade soon after an upgrade counts
  as a failed probe too, so a viewer never oscillates.

The viewer's own choice (:class:`Quality`) overrides all of this: High and Low pin a layer,
Audio only sends no video. Plain arithmetic on numbers given to it: no I/O, no clock of its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

TICK_S = 0.5  # how often each viewer's layer is decided
AUDIO_BPS = 48_000  # what the stream's audio takes, packet headers included
HEADROOM = 1.1  # a layer needs its measured bitrate this many times over (headers, bursts)
TOLERANCE = 0.8  # a viewer is congested when its capacity is below this share of its need
DOWN_AFTER_S = 1.0  # congested this long: downgrade
STABLE_S = 2.5  # uncongested this long (times the back-off): probe for the next layer up
MAX_BACKOFF = 4
PROBE_S = 1.5
UPGRADE_GRACE_S = 10.0  # a downgrade this soon after an upgrade: the upgrade failed
HEAVY_LOSS = 0.1  # receiver-report loss (smoothed) above this: congested
PROBE_LOSS = 0.05  # ... above this during a probe: the probe failed
REMB_FALL = 0.95  # an estimate below this share of the previous one: it fell
LOSS_ALPHA = 0.5  # smoothing of the reported loss
AUDIO_ONLY = -1  # the "layer" of a viewer that gets no video


class Quality(enum.StrEnum):
    """What a viewer asked for."""

    AUTO = "auto"
    HIGH = "high"
    LOW = "low"
    AUDIO = "audio"


def layer_name(layer: int, layers: int) -> str:
    """How stats and tests name a layer: "single" when the stream has one, else "low",
    "mid", "high" (ranked by bitrate), and "audio" for none."""
    if layer == AUDIO_ONLY:
        return "audio"
    if layers <= 1:
        return "single"
    if layer == layers - 1:
        return "high"
    return "low" if layer == 0 else "mid"


@dataclass
class Decision:
    """A tick's outcome: the layer to get (an index into the ranked layers, or
    ``AUDIO_ONLY``) and the extra rate to probe with (bits/s; 0: no probe)."""

    layer: int
    probe_bps: int = 0


class Adapter:
    """One viewer's bandwidth estimate and layer choice."""

    def __init__(self, quality: Quality = Quality.AUTO) -> None:
        self.quality = quality
        self.capacity: float | None = None  # bits/s the link is believed to carry
        self.last_remb: float | None = None
        self.loss_ewma = 0.0
        self.nacked = 0  # packets asked for again (for stats)
        self.congested_since: float | None = None
        self.calm_since: float | None = None  # uncongested since
        self.backoff = 1
        self.probe_until: float | None = None
        self.probe_failed = False
        self.upgraded_at: float | None = None

    # -- feedback --------------------------------------------------------------------------

    def remb(self, bitrate: float) -> None:
        """The browser's estimate: a fall sets the capacity, a rise raises it."""
        if self.last_remb is not None and bitrate < self.last_remb * REMB_FALL:
            self.capacity = bitrate
            if self.probe_until is not None:
                self.probe_failed = True
        elif self.capacity is None or bitrate > self.capacity:
            self.capacity = bitrate
        self.last_remb = bitrate

    def loss(self, fraction: float) -> None:
        self.loss_ewma = LOSS_ALPHA * fraction + (1 - LOSS_ALPHA) * self.loss_ewma
        if self.probe_until is not None and self.loss_ewma > PROBE_LOSS:
            self.probe_failed = True

    def nack(self, packets: int) -> None:
        self.nacked += packets

    # -- decisions -------------------------------------------------------------------------

    def choose(self, quality: Quality) -> None:
        """The viewer's own choice; Auto starts from what is known."""
        self.quality = quality
        self.probe_until = None
        self.congested_since = self.calm_since = None

    @property
    def probing(self) -> bool:
        return self.probe_until is not None

    def tick(self, now: float, rates: list[float], current: int, sent_bps: float) -> Decision:
        """The layer for the next ``TICK_S``: ``rates`` are the layers' bitrates, lowest first;
        ``current`` the layer the viewer gets now; ``sent_bps`` what it was sent lately."""
        top = len(rates) - 1
        if top < 0 or self.quality is Quality.AUDIO:
            return Decision(AUDIO_ONLY)
        if self.quality is Quality.HIGH:
            return Decision(top)
        if self.quality is Quality.LOW:
            return Decision(0)
        current = min(current, top)

        def need(layer: int) -> float:
            return AUDIO_BPS + (rates[layer] * HEADROOM if layer >= 0 else 0.0)

        capacity = self.capacity
        if self.loss_ewma > HEAVY_LOSS and sent_bps > 0:
            lossy = sent_bps * (1 - self.loss_ewma)
            capacity = lossy if capacity is None else min(capacity, lossy)
        congested = capacity is not None and capacity < need(current) * TOLERANCE
        if self.probe_until is not None:
            return self._probe(now, current, top, need, sent_bps, congested)
        if congested and current != AUDIO_ONLY:
            self.calm_since = None
            self.congested_since = self.congested_since or now
            if now - self.congested_since < DOWN_AFTER_S:
                return Decision(current)
            self.congested_since = None
            if self.upgraded_at is not None and now - self.upgraded_at < UPGRADE_GRACE_S:
                self.backoff = min(self.backoff * 2, MAX_BACKOFF)
            assert capacity is not None
            fits = [layer for layer in range(current) if need(layer) <= capacity]
            return Decision(fits[-1] if fits else AUDIO_ONLY)
        self.congested_since = None
        self.calm_since = self.calm_since or now
        if self.upgraded_at is not None and now - self.upgraded_at >= UPGRADE_GRACE_S:
            self.upgraded_at, self.backoff = None, 1  # the last upgrade held
        if current < top and now - self.calm_since >= STABLE_S * self.backoff:
            gap = need(current + 1) - max(sent_bps, need(current))
            if gap <= 0:  # already fits (the layers' rates changed)
                return self._upgraded(now, current + 1)
            self.probe_until, self.probe_failed = now + PROBE_S, False
            return Decision(current, math.ceil(gap))
        return Decision(current)

    def _probe(
        self,
        now: float,
        current: int,
        top: int,
        need: Callable[[int], float],
        sent: float,
        congested: bool,
    ) -> Decision:
        """A probe going on: ends at the first sign of congestion, or moves up at its end."""
        if self.probe_failed or congested:
            self.probe_until = None
            self.backoff = min(self.backoff * 2, MAX_BACKOFF)
            self.calm_since = now
            return Decision(current)
        if self.probe_until is not None and now < self.probe_until:
            gap = need(current + 1) - max(sent, need(current))
            return Decision(current, max(0, math.ceil(gap)))
        self.probe_until = None
        self.capacity = max(self.capacity or 0.0, need(current + 1))
        return self._upgraded(now, current + 1 if current < top else top)

    def _upgraded(self, now: float, layer: int) -> Decision:
        self.upgraded_at = now
        self.calm_since = now
        return Decision(layer)
