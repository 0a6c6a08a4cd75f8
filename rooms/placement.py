"""Placing viewers on media workers (a cascade): the live worker with the most spare capacity.

Each worker reports its load in ``stats`` (``capacity``, ``viewers`` and ``relays``); this web
worker keeps the replies for up to ``LOAD_TTL_S`` and counts the viewers it places meanwhile, so a
burst of viewers spreads. A worker other than the stream's own (its origin) first receives the
stream over one leg (the ``relay`` op), which the origin counts as one more viewer. Workers the
health loop (``lectern.mediaworkers``) found dead are skipped until they answer again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select

from lectern.extensions import db
from media.channel import MediaChannel, MediaUnavailable
from rooms.context import Refused
from rooms.models import MediaStream
from rooms.validate import N_

LOAD_TTL_S = 1.0
STATS_TIMEOUT_S = 2.0  # a worker slower than this to describe its load is not placed on now
ALL_FULL = N_("every media server is full; try again in a minute")
logger = logging.getLogger(__name__)


class AllFull(Refused):
    """No media server has room for one more viewer: pages move to the HLS tier on it."""

    code = "full"


def worker_id(addr: str) -> str:
    """A short opaque id of a worker (``media.view``'s ``worker``, ``media.moved``'s)."""
    return hashlib.sha256(addr.encode()).hexdigest()[:10]


@dataclass
class Load:
    """One worker's load as its ``stats`` reply told it, plus the viewers placed since."""

    capacity: int
    viewers: int
    relays: set[str] = field(default_factory=set)
    at: float = field(default_factory=time.monotonic)

    @property
    def spare(self) -> int:
        return self.capacity - self.viewers


@dataclass
class Placement:
    """This web worker's view of the media workers' loads (which are dead: ``media.dead``)."""

    loads: dict[str, Load] = field(default_factory=dict)

    def mark_dead(self, media: MediaChannel, addr: str) -> None:
        """Place nothing on ``addr`` (publishers, recordings, viewers) until it is back. Every
        load is asked again: the legs it received no longer load their origins."""
        media.dead.add(addr)
        self.loads.clear()

    def mark_alive(self, media: MediaChannel, addr: str) -> None:
        """Place on ``addr`` again (back, or restarted: every load is asked again)."""
        media.dead.discard(addr)
        self.loads.clear()

    def load(self, media: MediaChannel, addr: str) -> Load | None:
        """``addr``'s load, asked again when older than ``LOAD_TTL_S``; None if it is unreachable
        or dead."""
        if addr in media.dead:
            return None
        known = self.loads.get(addr)
        if known is not None and time.monotonic() - known.at <= LOAD_TTL_S:
            return known
        try:
            stats = MediaChannel([addr], timeout=STATS_TIMEOUT_S).call(addr, "stats")
        except MediaUnavailable as exc:
            logger.warning("media worker %s left out of placement: %s", addr, exc)
            self.loads.pop(addr, None)
            return None
        if not stats.get("ok"):
            return None
        fresh = self.loads[addr] = Load(
            capacity=int(stats.get("capacity") or 0),
            viewers=int(stats.get("viewers") or 0),
            relays=set(stats.get("relays") or ()),
        )
        return fresh

    def choose(self, media: MediaChannel, origin: str, stream_id: str) -> str:
        """The worker to serve a new viewer of ``stream_id`` (published on ``origin``), counted
        as placed. A worker without the stream needs a leg from the origin: the origin must have
        room for that leg too. Ties go to the origin.

        :raises Refused: every worker is full (or none answers)
        """
        loads = {addr: load for addr in media.live if (load := self.load(media, addr))}
        origin_load = loads.get(origin)
        if origin_load is None:
            raise Refused("the media server is not reachable; try again in a moment")

        def usable(addr: str) -> bool:
            load = loads[addr]
            if load.spare <= 0:
                return False
            return addr == origin or stream_id in load.relays or origin_load.spare > 0

        candidates = [addr for addr in loads if usable(addr)]
        if not candidates:
            raise AllFull(ALL_FULL)
        best = max(candidates, key=lambda addr: (loads[addr].spare, addr == origin))
        loads[best].viewers += 1
        if best != origin and stream_id not in loads[best].relays:
            loads[best].relays.add(stream_id)
            origin_load.viewers += 1  # the new leg
        return best


def placement() -> Placement:
    """This app's placement state (one per web worker process)."""
    found = current_app.extensions.get("media_placement")
    if found is None:
        found = current_app.extensions["media_placement"] = Placement()
    assert isinstance(found, Placement)
    return found


def origin_for(media: MediaChannel, room_id: int, key: str) -> str:
    """The worker a new stream of the room is published on: where its live streams are (one
    worker records them all), else the room's own (which skips dead workers)."""
    current = db.session.scalars(
        select(MediaStream.worker).where(MediaStream.room_id == room_id)
    ).all()
    live = [worker for worker in current if worker in media.live]
    return live[0] if live else media.worker_for(key)
