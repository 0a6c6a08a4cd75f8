"""The per-viewer layer choice (``media.adapt``), fed the feedback a browser sends.

A viewer is simulated tick by tick: REMB and receiver-report loss arrive as a browser on a link
of a given capacity would send them, and the layer it is given decides what it is sent. The
link itself is real in tests/media/test_weak_links.py; here the rules are checked one by one.
"""

from __future__ import annotations

import pytest

from media.adapt import (
    AUDIO_BPS,
    AUDIO_ONLY,
    DOWN_AFTER_S,
    HEADROOM,
    PROBE_STEP,
    STABLE_S,
    TICK_S,
    Adapter,
    Quality,
    layer_name,
)

RATES = [150_000.0, 700_000.0]  # a low and a high layer, bits/s
LOW, HIGH = 0, 1


class Link:
    """A viewer behind a link of ``capacity`` bits/s, as its browser reports it: when more is
    sent than fits, packets are lost (NACKs, receiver-report loss) and its estimate falls to
    85 % of what arrives; otherwise its estimate grows with what arrives, at most 1.5 times it.
    """

    def __init__(self, capacity: float, adapter: Adapter) -> None:
        self.capacity = capacity
        self.adapter = adapter
        self.now = 0.0
        self.layer = HIGH
        self.history: list[int] = []
        self.probes: list[float] = []
        self.overflows = 0  # ticks in which more was sent than the link carries

    def sent(self, probe: float = 0.0) -> float:
        video = RATES[self.layer] if self.layer != AUDIO_ONLY else 0.0
        return video + AUDIO_BPS + probe

    def run(self, seconds: float) -> None:
        probe = 0.0
        for _ in range(round(seconds / TICK_S)):
            self.now += TICK_S
            offered = self.sent(probe)
            arriving = min(offered, self.capacity)
            last = self.adapter.remb_bps
            if offered > self.capacity * 1.02:
                self.overflows += 1
                self.adapter.nack(5)
                self.adapter.loss(1 - self.capacity / offered)
                self.adapter.remb(min(last or arriving, 0.85 * arriving))
            else:
                self.adapter.loss(0.0)
                self.adapter.remb(arriving if last is None else min(1.5 * arriving, last * 1.08))
            decision = self.adapter.tick(self.now, RATES, self.layer, offered)
            self.layer, probe = decision.layer, float(decision.probe_bps)
            self.history.append(self.layer)
            if probe:
                self.probes.append(self.now)


def test_a_capped_viewer_goes_down_within_seconds_and_stays_there() -> None:
    link = Link(10_000_000, Adapter())
    link.run(10.0)
    assert link.history.count(HIGH) == len(link.history)
    link.capacity = 300_000
    link.run(3.0)
    assert link.layer == LOW
    assert link.history[20:].index(LOW) * TICK_S <= DOWN_AFTER_S + 1.5
    overflows = link.overflows
    link.run(60.0)
    assert link.history[-100:].count(LOW) == 100  # failed probes never moved it up
    assert len(link.probes) < 60 / STABLE_S  # and they back off
    assert link.overflows - overflows <= len(link.probes)  # each ended at its first sign


def test_a_viewer_whose_lowest_layer_does_not_fit_gets_audio_only_then_video_again() -> None:
    link = Link(100_000, Adapter())
    link.run(4.0)
    assert link.layer == AUDIO_ONLY
    link.run(30.0)
    assert link.history[-40:].count(AUDIO_ONLY) == 40
    link.capacity = 10_000_000  # the cap is lifted
    link.run(20.0)  # probes in steps of PROBE_STEP from what audio takes to the low layer
    assert link.layer != AUDIO_ONLY
    link.run(20.0)
    assert link.layer == HIGH


def test_lifting_a_cap_brings_the_high_layer_back_within_15_s() -> None:
    link = Link(300_000, Adapter())
    link.run(30.0)
    assert link.layer == LOW
    link.capacity = 10_000_000
    link.run(15.0)
    assert link.layer == HIGH


def test_a_free_link_keeps_the_high_layer_through_a_noisy_estimate() -> None:
    adapter = Adapter()
    now = 0.0
    for i in range(120):
        now += TICK_S
        # a browser's estimate that dips by 15 % now and then (overuse noise on a busy host)
        adapter.remb(RATES[HIGH] * (0.85 if i % 7 == 0 else 1.3))
        adapter.loss(0.02)
        assert adapter.tick(now, RATES, HIGH, RATES[HIGH] + AUDIO_BPS).layer == HIGH


def test_random_loss_alone_does_not_downgrade_but_heavy_loss_does() -> None:
    adapter = Adapter()
    now = 0.0
    for _ in range(40):
        now += TICK_S
        adapter.loss(0.05)
        assert adapter.tick(now, RATES, HIGH, RATES[HIGH]).layer == HIGH
    layer = HIGH
    for _ in range(10):
        now += TICK_S
        adapter.loss(0.4)
        layer = adapter.tick(now, RATES, layer, RATES[HIGH]).layer
    assert layer in (LOW, AUDIO_ONLY)


def test_a_probe_goes_up_in_steps_and_ends_at_the_first_nack() -> None:
    adapter = Adapter()
    adapter.remb(400_000)
    need_low = RATES[LOW] * HEADROOM + AUDIO_BPS
    now, probes = 0.0, []
    for _ in range(round(STABLE_S / TICK_S) + 1):
        now += TICK_S
        probes.append(adapter.tick(now, RATES, LOW, need_low).probe_bps)
    assert probes[-1] == pytest.approx(need_low * (PROBE_STEP - 1), rel=0.01)  # a first step
    assert adapter.probing
    adapter.nack(1)  # a packet sent during the probe was lost: the link is full
    assert not adapter.probing  # the viewer's sender stops probing at once
    now += TICK_S
    assert adapter.tick(now, RATES, LOW, need_low).probe_bps == 0
    assert adapter.backoff == 2


def test_probes_that_hold_grow_until_the_next_layer_is_proven() -> None:
    adapter = Adapter()
    need_low = RATES[LOW] * HEADROOM + AUDIO_BPS
    now, layer, steps = 0.0, LOW, []
    while layer == LOW and now < 30:
        now += TICK_S
        decision = adapter.tick(now, RATES, layer, need_low)
        layer = decision.layer
        if decision.probe_bps and (not steps or steps[-1] != decision.probe_bps):
            steps.append(decision.probe_bps)
    assert layer == HIGH
    assert len(steps) >= 2 and steps == sorted(steps)  # each step further than the last
    assert now < 15


def test_the_viewers_own_choice_overrides_the_estimate() -> None:
    adapter = Adapter(Quality.HIGH)
    adapter.remb(50_000)
    for i in range(10):
        assert adapter.tick(i * TICK_S, RATES, HIGH, 0).layer == HIGH
    adapter.choose(Quality.LOW)
    assert adapter.tick(6.0, RATES, HIGH, 0).layer == LOW
    adapter.choose(Quality.AUDIO)
    assert adapter.tick(6.5, RATES, LOW, 0).layer == AUDIO_ONLY
    assert Adapter().tick(0.5, [], 0, 0).layer == AUDIO_ONLY  # nothing to forward


def test_layers_are_named_for_stats() -> None:
    assert layer_name(0, 1) == "single"
    assert [layer_name(i, 2) for i in (0, 1)] == ["low", "high"]
    assert [layer_name(i, 3) for i in (0, 1, 2)] == ["low", "mid", "high"]
    assert layer_name(AUDIO_ONLY, 2) == "audio"
