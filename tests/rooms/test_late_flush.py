"""A worker too busy to run its periodic flush (a vote storm) sends the coalesced updates from
the handlers instead, so live results do not freeze."""

from __future__ import annotations

import time

from rooms import namespace

POLL = {"question": "Tea?", "options": ["yes", "no"]}


def test_an_overdue_flush_is_done_by_the_next_event(app, room):
    host = room.join(room.host)
    voters = [room.join(a) for a in room.attendees]
    pid = host.emit("poll.open", POLL)["poll"]["id"]
    app.config["ROOMS_FLUSH_INTERVAL"] = 0.25  # the periodic flusher was not started (it was 0)
    host.drain()

    namespace.last_flush = time.monotonic()  # just flushed: the vote's results wait
    assert voters[0].emit("poll.vote", {"id": pid, "choices": [0]})["ok"]
    assert host.got("poll.results") == []

    namespace.last_flush = time.monotonic() - 1.0  # the flusher is late: the handler sends
    assert voters[1].emit("poll.vote", {"id": pid, "choices": [1]})["ok"]
    assert host.got("poll.results") == [{"id": pid, "counts": [1, 1], "ballots": 2}]
    app.config["ROOMS_FLUSH_INTERVAL"] = 0
