"""One SQLite write transaction at a time in a web process whose threads are green (eventlet).

SQLite lets one connection write at a time and makes the others wait in C (``busy_timeout``).
Under eventlet that wait blocks the whole process: a request that wrote (the INSERT holds the
lock) and then waits on the network, such as asking a media worker to start recording, can
never run on to its commit, so the waiting request fails with "database is locked" after five
seconds, and everyone else stalls meanwhile.

:func:`install` puts a gate in front of the first write of each transaction: a semaphore,
green once eventlet has patched ``threading``, taken before the statement and given back at
the transaction's commit or rollback, or when the connection goes back to the pool. The next
writer then waits cooperatively while the first one's network call goes on. Readers never
wait (write-ahead log). A thread that already holds the gate and writes on a second
connection goes straight on (SQLite decides, as without the gate); a wait longer than
``WAIT_S`` goes on too, so the gate can slow a writer down but never deadlock one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
WAIT_S = 30.0
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
HELD = "lectern.sqlite_gate"  # key in the DBAPI connection's info: this connection holds it


class Gate:
    def __init__(self) -> None:
        self.semaphore = threading.Semaphore(1)
        self.owner: int | None = None  # threading.get_ident() of the holder

    def before_write(self, info: dict[str, Any], statement: str) -> None:
        if info.get(HELD) or not statement.lstrip()[:7].upper().startswith(WRITES):
            return
        me = threading.get_ident()
        if self.owner == me:
            return  # this thread's other connection holds it: SQLite decides
        if not self.semaphore.acquire(timeout=WAIT_S):
            log.warning("waited %s s for the SQLite write gate; writing anyway", WAIT_S)
            return
        self.owner = me
        info[HELD] = True

    def release(self, info: dict[str, Any]) -> None:
        if info.pop(HELD, False):
            self.owner = None
            self.semaphore.release()


def install(engine: Engine) -> Gate | None:
    """Gate ``engine``'s writes if it is SQLite (other databases lock rows, not the file)."""
    if engine.dialect.name != "sqlite":
        return None
    gate = Gate()

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        gate.before_write(conn.info, statement)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def ended(conn: Any) -> None:
        gate.release(conn.info)

    @event.listens_for(engine.pool, "reset")
    @event.listens_for(engine.pool, "checkin")
    def returned(dbapi_connection: Any, record: Any, *args: Any) -> None:
        if record is not None:
            gate.release(record.info)

    return gate
