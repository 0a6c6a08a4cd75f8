"""The SQLite write gate (``lectern.sqlite_gate``) in a process whose threads are green, as the
web process's are: one green thread writes, then waits (as on a media worker's answer) before
its commit; another writes meanwhile. Without the gate the second one's wait for SQLite's lock
blocks the whole process and it fails with "database is locked"; with it both commit, and a
reader is never held. Each case runs in a fresh process, on a real SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import eventlet
eventlet.monkey_patch()
from sqlalchemy import create_engine, text
import lectern.extensions  # WAL, as the app's engine has
from lectern import sqlite_gate

path, gated, ending = sys.argv[1], sys.argv[2] == "gated", sys.argv[3]
engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 1})
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE t (who TEXT)"))
if gated:
    sqlite_gate.install(engine)
results = {"order": []}

def first():
    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES ('first')"))
    eventlet.sleep(1.5)  # a network call while the write lock is held
    if ending == "commit":
        conn.commit()
    elif ending == "rollback":
        conn.rollback()
    conn.close()  # "close": back to the pool without either
    results["order"].append("first")

def second():
    eventlet.sleep(0.2)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('second')"))
        results["second"] = "committed"
    except Exception as exc:
        results["second"] = str(exc).splitlines()[0]

def reader():
    eventlet.sleep(0.4)
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()
    results["order"].append("reader")

threads = [eventlet.spawn(f) for f in (first, second, reader)]
for t in threads:
    t.wait()
with engine.connect() as conn:
    results["rows"] = sorted(r[0] for r in conn.execute(text("SELECT who FROM t")))
print(json.dumps(results))
"""


def run(tmp_path: Path, gated: bool, ending: str = "commit") -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "g.db"), "gated" if gated else "no", ending],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_the_gate_a_second_writer_fails_while_the_first_waits(tmp_path: Path) -> None:
    result = run(tmp_path, gated=False)
    assert result["second"] == "(sqlite3.OperationalError) database is locked"
    assert result["rows"] == ["first"]


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_with_the_gate_the_second_writer_waits_its_turn(tmp_path: Path, ending: str) -> None:
    result = run(tmp_path, gated=True, ending=ending)
    assert result["second"] == "committed"
    assert result["rows"] == (["first", "second"] if ending == "commit" else ["second"])
    assert result["order"] == ["reader", "first"]  # the reader did not wait for the writer
