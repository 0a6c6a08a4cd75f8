"""Attendance figures from a room's presence log: who watched when, for how long, how many at once.

Pure computation on plain data (no database, no clock), so every figure can be checked exactly.
Times are Unix float seconds, as ``room_events.ts`` stores them. A viewer's presence is a list
of half-open intervals ``[start, end)``: someone who leaves at 10:30 is not counted at 10:30.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from flask_babel import ngettext

Interval = tuple[float, float]

# The chart's bucket: one minute, unless that makes more than MAX_BUCKETS (then the smallest
# coarser step that fits) or fewer than MIN_BUCKETS (then the largest finer step that still
# gives MIN_BUCKETS, down to one second).
MAX_BUCKETS = 120
MIN_BUCKETS = 30
STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)

# After this long past its scheduled end a broadcast is over: a viewer whose leave was never
# logged (the server stopped) counts until the room's last logged event, not until now.
GRACE_S = 3600.0


@dataclass(frozen=True)
class Presence:
    """One ``presence.join`` (``joined``) or ``presence.leave`` of a user, in log order."""

    ts: float
    user_id: int
    joined: bool


def open_until(last_event: float, now: float, scheduled_end: float) -> float:
    """Where a join without a leave ends: now while the broadcast may still be running (until
    GRACE_S past its scheduled end), else the room's last logged event."""
    return now if now < scheduled_end + GRACE_S else last_event


def sessions(log: Iterable[Presence], until: float) -> dict[int, list[Interval]]:
    """user id -> merged presence intervals of everyone who joined: each join runs to the user's
    next leave, or to ``until`` when no leave follows it (still connected, or the leave was never
    logged)."""
    pending: dict[int, list[float]] = {}  # user -> starts of joins not yet closed by a leave
    raw: dict[int, list[Interval]] = {}
    for p in log:
        if p.joined:
            pending.setdefault(p.user_id, []).append(p.ts)
            raw.setdefault(p.user_id, [])
        else:  # a leave closes every open join; a leave with none open is ignored
            for start in pending.pop(p.user_id, []):
                raw[p.user_id].append((start, p.ts))
    for user_id, starts in pending.items():
        raw[user_id] += [(start, max(start, until)) for start in starts]
    return {user_id: merge(intervals) for user_id, intervals in raw.items()}


def bounds(log: Iterable[Presence]) -> dict[int, tuple[float, float | None]]:
    """user id -> (first join, last leave) of everyone who joined; the last leave is None when
    the user's last event is a join (still there, or the leave was never logged)."""
    first: dict[int, float] = {}
    last: dict[int, Presence] = {}
    for p in log:
        if p.joined:
            first.setdefault(p.user_id, p.ts)
        last[p.user_id] = p
    return {uid: (ts, None if last[uid].joined else last[uid].ts) for uid, ts in first.items()}


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of ``intervals`` as sorted, disjoint intervals; empty ones are dropped."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def watched(intervals: Iterable[Interval]) -> float:
    """Seconds covered by a user's merged intervals."""
    return sum(end - start for start, end in intervals)


def median_minutes(seconds: Sequence[float]) -> float:
    """The median of watched times in minutes (0 when nobody watched)."""
    return statistics.median(seconds) / 60 if seconds else 0.0


def steps(by_user: dict[int, list[Interval]]) -> list[tuple[float, int]]:
    """The viewer count as a step function: ``(ts, viewers from ts on)``, one entry per change."""
    deltas: dict[float, int] = {}
    for intervals in by_user.values():
        for start, end in intervals:
            deltas[start] = deltas.get(start, 0) + 1
            deltas[end] = deltas.get(end, 0) - 1
    changes, viewers = [], 0
    for ts in sorted(deltas):
        viewers += deltas[ts]
        changes.append((ts, viewers))
    return changes


def peak(by_user: dict[int, list[Interval]]) -> int:
    """The most viewers present at the same moment."""
    return max((viewers for _, viewers in steps(by_user)), default=0)


def bucket_seconds(span: float) -> int:
    """The chart's bucket size for ``span`` seconds of attendance (see MAX_BUCKETS)."""
    if 60 * MIN_BUCKETS <= span <= 60 * MAX_BUCKETS:
        return 60
    if span > 60 * MAX_BUCKETS:
        return next((s for s in STEPS if span / s <= MAX_BUCKETS), STEPS[-1])
    return next((s for s in reversed(STEPS) if s < 60 and span / s >= MIN_BUCKETS), 1)


@dataclass(frozen=True)
class Bucket:
    """``viewers``: the most present at once during ``[start, start + size)``."""

    start: float
    size: int
    viewers: int


def buckets(by_user: dict[int, list[Interval]]) -> list[Bucket]:
    """Concurrent viewers per bucket, from the first join to the last moment anyone watched.

    Buckets start on whole multiples of their size (10:04:00, not 10:03:37), so a bar is a
    clock minute; aligning may add one bucket to the MAX_BUCKETS that the size allows.
    """
    changes = steps(by_user)
    if not changes:
        return []
    first, last = changes[0][0], changes[-1][0]
    size = bucket_seconds(last - first)
    origin = math.floor(first / size) * size
    found, i, viewers = [], 0, 0
    for n in range(max(1, math.ceil((last - origin) / size))):
        start, end = origin + n * size, origin + (n + 1) * size
        most = viewers  # the count carried in from the previous bucket
        while i < len(changes) and changes[i][0] < end:
            viewers = changes[i][1]
            most = max(most, viewers) if changes[i][0] > start else viewers
            i += 1
        found.append(Bucket(start, size, most))
    return found


# --- the chart's geometry (the template only draws it) ----------------------------------------

# The view box; the margins leave room for labels up to 20 units high (the phone size: the
# stylesheet sets the text size, and a phone shrinks the whole chart to about half).
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 70, 30, 14, 58
X_TICKS = 6  # at most this many time marks


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    bucket: Bucket


@dataclass(frozen=True)
class Tick:
    """An axis mark at ``at`` (pixels along its axis) labelled ``label``."""

    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    """An SVG bar chart of viewers over time, in a WIDTH x HEIGHT view box."""

    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    step: str = ""  # the bucket size in words: "1 minute", "20 seconds"
    seconds: bool = False  # whether times need seconds (buckets under a minute)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def clock(ts: float, seconds: bool = False) -> str:
    """``ts`` as a UTC wall-clock time, HH:MM (or HH:MM:SS): the default time-mark label (the
    report page passes one in the viewer's zone and language)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


def y_scale(top: int) -> tuple[int, int]:
    """(axis maximum, tick step) for counts up to ``top``: at most about five whole-number
    steps of 1, 2 or 5 times a power of ten."""
    step, k = 1, 0
    while step * 5 < top:
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    return step * max(1, math.ceil(top / step)), step


def layout(found: Sequence[Bucket], label: Callable[[float, bool], str] = clock) -> Chart:
    """Bars, time marks (about six, written by ``label(ts, seconds)``) and viewer-count marks
    for ``found``."""
    if not found:
        return Chart([], [], [])
    axis_max, y_step = y_scale(max(b.viewers for b in found))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(found)
    gap = slot * 0.15 if slot >= 4 else 0.0
    bars = [
        Bar(
            x=round(LEFT + n * slot + gap / 2, 2),
            y=round(TOP + plot_h * (1 - b.viewers / axis_max), 2),
            width=round(slot - gap, 2),
            height=round(plot_h * b.viewers / axis_max, 2),
            bucket=b,
        )
        for n, b in enumerate(found)
    ]
    every = tick_every(found)
    x_ticks = [
        Tick(round(LEFT + n * slot, 2), label(b.start, every % 60 != 0))
        for n, b in enumerate(found)
        if round(b.start) % every == 0
    ]
    y_ticks = [
        Tick(round(TOP + plot_h * (1 - v / axis_max), 2), str(v))
        for v in range(0, axis_max + 1, y_step)
    ]
    size = found[0].size
    return Chart(bars, x_ticks, y_ticks, step=in_words(size), seconds=size < 60)


def tick_every(found: Sequence[Bucket]) -> int:
    """Seconds between time marks: the smallest round step (a multiple of the bucket size)
    that gives at most X_TICKS marks."""
    size, span = found[0].size, len(found) * found[0].size
    fits = (s for s in STEPS if s % size == 0 and span / s <= X_TICKS)
    return next(fits, STEPS[-1])


def in_words(seconds: int) -> str:
    """A bucket size in words: "1 minute", "2 hours", "20 seconds"."""
    if seconds % 3600 == 0:
        return ngettext("%(num)s hour", "%(num)s hours", seconds // 3600)
    if seconds % 60 == 0:
        return ngettext("%(num)s minute", "%(num)s minutes", seconds // 60)
    return ngettext("%(num)s second", "%(num)s seconds", seconds)
