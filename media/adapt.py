"""What each viewer's link can carry, and which layer of a stream it gets.

One :class:`Adapter` per viewer of a video stream. It reads what the viewer's browser already
sends (``media.aiortc_internals.Feedback``, through the viewer's sender): the fraction lost in
its receiver reports and the round trip they give; its NACKs, which come at once when a packet
is missing (those of packets older than ``media.rtp.NACK_LOST_S`` count as lost); its keyframe
requests; and REMB, the browser's estimate of the bandwidth it receives. The link is congested
when the median of the latest losses is heavy (``HEAVY_LOSS``: a rate cap queues for a fraction
of a second, then drops), or when the viewer asks for keyframes again and again (a browser that
loses most packets gives up asking for them, and its reports may then show no loss). REMB is
no guide to capacity here: a browser's receive-side estimate starts from a default, grows
slowly with what arrives, and collapses on a link that merely jitters; it sizes a downgrade and
ends probes.

Every ``TICK_S`` :meth:`Adapter.tick` decides the layer, from the layers' measured bitrates:
- **down** after ``DOWN_AFTER_S`` of congestion: to the best layer that fits in what the link
  delivers (what is sent less what is lost, or the estimate over ``OVERUSE_BACKOFF``), or to
  audio only when even the lowest does not;
- **up** only by probing: after ``STABLE_S`` (times a back-off that doubles with each failed
  probe or downgrade, up to ``MAX_BACKOFF``) without congestion, the viewer is sent padding
  packets on its video stream (``media.rtp.RtpViewer.pad``: numbered with the media, so their
  loss shows), ramped up over ``PROBE_RAMP_S`` and held for ``PROBE_HOLD_S``, to what the next
  layer needs but at most ``PROBE_STEP`` times what it is sent (``PROBE_GROWTH`` times further
  after each probe that held). The first sign of a full link ends a probe at once, between
  ticks: a NACK of a packet sent during it, loss, a keyframe request, a round trip that grows,
  an estimate that falls below what is sent. Once the next layer's need is proven the viewer
  moves up; a downgrade soon after an upgrade counts twice, so a viewer does not oscillate.

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
CONGESTED = 0.7  # during a probe, an estimate that falls below this share of what is sent
OVERUSE_BACKOFF = 0.85  # a browser's estimate on a full link: this share of what arrives
HEAVY_LOSS = 0.2  # loss (the median of the latest figures) above this: congested
DOWN_AFTER_S = 1.0  # congested this long: downgrade
STABLE_S = 1.5  # uncongested this long (times the back-off): probe for the next layer up
MAX_BACKOFF = 4
PROBE_RAMP_S = 0.75
PROBE_HOLD_S = 1.0
PROBE_STEP = 1.6  # a first probe takes what is sent to at most this many times over
PROBE_GROWTH = 1.0  # ... each one after a probe that held, this many times more
PROBE_AGAIN_S = 0.3  # calm this long after a probe that held: the next step
PROBE_LOSS = 0.03  # reported loss above this during a probe: it failed
PROBE_DELAY_S = 0.05  # a round trip this much above the least lately, during a probe: failed
RTT_MEMORY_S = 20.0  # how long the least round trip is remembered
REMB_FALL = 0.95  # an estimate below this share of the previous one: it fell
UPGRADE_GRACE_S = 10.0  # a downgrade this soon after an upgrade: the upgrade failed
LOSS_REPORTS = 5  # loss is the median of this many latest reports (one may spike)
PLI_BURST = 2  # keyframe requests from the viewer within PLI_WINDOW_S: it cannot decode
PLI_WINDOW_S = 3.0
AUDIO_ONLY = -1  # the "layer" of a viewer that gets no video


class Quality(enum.StrEnum):
    """What a viewer asked for."""

    AUTO = "auto"
    HIGH = "high"
    LOW = "low"
    AUDIO = "audio"


def layer_name(layer: int, layers: int) -> str:
    """How stats and tests name a layer: "single" when the stream has one, else "low",
    "mid", "high" (ranked by picture size), and "audio" for none."""
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
    ``AUDIO_ONLY``) and the extra rate to probe with (bits/s, reached over ``PROBE_RAMP_S``
    from the probe's start; 0: no probe)."""

    layer: int
    probe_bps: int = 0


def median(figures: list[float]) -> float:
    return sorted(figures)[len(figures) // 2] if figures else 0.0


class Adapter:
    """One viewer's view of its link, and its layer choice."""

    def __init__(self, quality: Quality = Quality.AUTO) -> None:
        self.quality = quality
        self.started: float | None = None  # the first tick
        self.remb_bps: float | None = None  # the browser's latest estimate
        self.loss_median = 0.0  # the median of the latest reports
        self.losses: list[float] = []  # from receiver reports
        self.nack_losses: list[float] = []  # from NACKs
        self.nacked = 0  # packets asked for again, in all
        self.sent_bps = 0.0  # what the viewer was sent over the latest tick, probes included
        self.capacity: float | None = None  # what the link delivered when last congested
        self.congested_since: float | None = None
        self.calm_since: float | None = None  # uncongested since
        self.backoff = 1
        self.probe_started: float | None = None
        self.probe_failed = False  # set between ticks by the feedback that ends a probe
        self.upgraded_at: float | None = None
        self.step = PROBE_STEP  # how far the next probe goes
        self.proven = 0.0  # the most a probe has sent it without congestion, since the last
        self.probe_total = 0.0  # what the probe going on takes it to (bits/s)
        self.calm_ticks = 0  # uncongested ticks in a row
        self.current = 0  # the layer it was given at the latest tick
        self.plis: list[float] = []  # tick times of its latest keyframe requests
        # A probe failed or the viewer moved down: packets were lost, and a keyframe of its
        # layer brings its picture back sooner than its own requests would (the sender asks).
        self.recover = False
        self.clock = 0.0  # the latest tick's time
        self.rtts: list[tuple[float, float]] = []  # (tick time, round trip) of late

    # -- feedback (between ticks) ----------------------------------------------------------

    def remb(self, bitrate: float) -> None:
        falls = self.remb_bps is not None and bitrate < self.remb_bps * REMB_FALL
        # Below what it is sent: the link is full.
        if falls and bitrate < self.sent_bps * CONGESTED:
            self._probe_ends()
        self.remb_bps = bitrate

    def loss(self, fraction: float, reported: bool = True) -> None:
        """A fraction lost: from a receiver report, or (``reported`` False) worked out from
        the NACKs of a tick (the viewer's sender does). Each kind keeps its own latest
        figures; the loss is the larger of their medians (a browser's reports swing between
        a tenth and half of the truth on a full link, and may stop showing loss at all)."""
        if reported:
            self.losses = [*self.losses[1 - LOSS_REPORTS :], fraction]
        else:
            self.nack_losses = [*self.nack_losses[1 - LOSS_REPORTS :], fraction]
        self.loss_median = max(median(self.losses), median(self.nack_losses))
        if fraction > PROBE_LOSS:
            self._probe_ends()

    def nack(self, packets: int) -> None:
        """Packets asked for again, of those sent lately (the viewer's sender leaves out
        NACKs of packets from before its last layer switch, which say nothing of now)."""
        self.nacked += packets
        if packets:
            self._probe_ends()

    def rtt(self, seconds: float) -> None:
        """A round trip: one well above the least of late means packets queue on the way."""
        if seconds <= 0:
            return
        self.rtts.append((self.clock, seconds))
        least = min(rtt for _, rtt in self.rtts)
        if seconds > least + PROBE_DELAY_S:
            self._probe_ends()

    def pli(self) -> None:
        """The viewer asks for a keyframe: it lost so much that it gave up asking for packets
        (a browser does that when most are lost, and its reports may then show no loss)."""
        self.plis = [*[at for at in self.plis if self.clock - at <= PLI_WINDOW_S], self.clock]
        self._probe_ends()

    def _probe_ends(self) -> None:
        if self.probe_started is not None:
            self.probe_failed = True

    @property
    def probing(self) -> bool:
        return self.probe_started is not None and not self.probe_failed

    # -- decisions -------------------------------------------------------------------------

    def choose(self, quality: Quality) -> None:
        """The viewer's own choice; Auto starts again from what is known."""
        self.quality = quality
        self.probe_started = None
        self.congested_since = self.calm_since = None

    def congestion(self, now: float) -> float | None:
        """What the link delivers when it is congested now (bits/s), else None.

        Loss tells it: a browser's delay-based estimate collapses on a link that only jitters
        (50 ms of jitter made it fall below the lowest layer), and a full link loses packets
        soon enough (a rate cap queues a fraction of a second at most)."""
        if self.sent_bps <= 0:
            return None
        if len([at for at in self.plis if now - at <= PLI_WINDOW_S]) >= PLI_BURST:
            return self.sent_bps * 0.1  # what arrives is not known: little (REMB says more)
        if self.loss_median <= HEAVY_LOSS:
            return None
        return self.sent_bps * (1 - self.loss_median)

    def tick(self, now: float, rates: list[float], current: int, sent_bps: float) -> Decision:
        """The layer for the next ``TICK_S``: ``rates`` are the layers' bitrates, lowest first;
        ``current`` the layer the viewer gets now; ``sent_bps`` what it was sent over the last
        tick (probes included)."""
        self.started = self.started if self.started is not None else now
        self.sent_bps, self.clock = sent_bps, now
        self.rtts = [(at, rtt) for at, rtt in self.rtts if now - at <= RTT_MEMORY_S]
        top = len(rates) - 1
        if top < 0 or self.quality is Quality.AUDIO:
            return Decision(AUDIO_ONLY)
        if self.quality is Quality.HIGH:
            return Decision(top)
        if self.quality is Quality.LOW:
            return Decision(0)
        current = self.current = min(current, top)

        def need(layer: int) -> float:
            return AUDIO_BPS + (rates[layer] * HEADROOM if layer >= 0 else 0.0)

        if self.probe_started is not None:
            return self._probe(now, current, top, need)
        delivered = self.congestion(now) if current != AUDIO_ONLY else None
        self.calm_ticks = 0 if delivered is not None else self.calm_ticks + 1
        if delivered is None and self.congested_since is not None and self.calm_ticks < 2:
            return Decision(current)  # one calm tick amid congestion: reports vary
        if delivered is not None:
            self.calm_since = None
            self.proven, self.step = 0.0, PROBE_STEP
            self.congested_since = self.congested_since or now
            if now - self.congested_since < DOWN_AFTER_S:
                return Decision(current)
            self.congested_since = None
            if self.remb_bps is not None:  # a full link's estimate: 85 % of what arrives
                delivered = max(delivered, self.remb_bps / OVERUSE_BACKOFF)
            self.capacity = delivered
            recent = self.upgraded_at is not None and now - self.upgraded_at < UPGRADE_GRACE_S
            self.backoff = min(self.backoff * (4 if recent else 2), MAX_BACKOFF)
            self.recover = True
            self.losses, self.nack_losses, self.loss_median = [], [], 0.0  # the new layer's
            self.plis = []
            fits = [layer for layer in range(current) if need(layer) <= delivered]
            return Decision(fits[-1] if fits else AUDIO_ONLY)
        self.congested_since = None
        self.calm_since = self.calm_since or now
        if self.upgraded_at is not None and now - self.upgraded_at >= UPGRADE_GRACE_S:
            self.upgraded_at, self.backoff = None, 1  # the last upgrade held
        wait = PROBE_AGAIN_S if self.proven else STABLE_S * self.backoff
        if current < top and now - self.calm_since >= wait:
            self.probe_started, self.probe_failed = now, False
            self.losses, self.nack_losses, self.loss_median = [], [], 0.0  # what the probe meets
            sent = max(self.sent_bps, need(current), self.proven)
            self.probe_total = min(need(current + 1), sent * self.step)
            return Decision(current, self._probe_rate(now, current, need))
        return Decision(current)

    def _probe_rate(self, now: float, current: int, need: Callable[[int], float]) -> int:
        """The probe's rate: what takes the viewer to ``probe_total`` (the viewer's sender ramps
        up to it over ``PROBE_RAMP_S``)."""
        return max(1, math.ceil(self.probe_total - need(current)))

    def _probe(self, now: float, current: int, top: int, need: Callable[[int], float]) -> Decision:
        """A probe going on: ended by congestion, or up one layer when it lasted."""
        assert self.probe_started is not None
        if self.probe_failed or self.loss_median > HEAVY_LOSS:
            self.probe_started = None
            self.backoff = min(self.backoff * 2, MAX_BACKOFF)
            self.calm_since, self.proven, self.step = now, 0.0, PROBE_STEP
            self.recover = True
            # What the probe lost says nothing of the layer it gets: judge that afresh.
            self.losses, self.nack_losses, self.loss_median, self.plis = [], [], 0.0, []
            return Decision(current)
        if now - self.probe_started < PROBE_RAMP_S + PROBE_HOLD_S:
            return Decision(current, self._probe_rate(now, current, need))
        self.probe_started = None
        self.calm_since = now
        self.proven = max(self.proven, self.probe_total)
        self.step *= PROBE_GROWTH
        if self.proven < need(current + 1) - 1:
            return Decision(current)  # a step of the way: the next probe goes on from here
        self.upgraded_at, self.proven = now, 0.0
        return Decision(min(current + 1, top))
