"""Behind nginx (``PROXY_HOPS=1``) every request reaches a web worker from the proxy's address;
the visitor's is the last ``X-Forwarded-For`` entry. Pages and the live rooms' Socket.IO
handshakes must both see the visitor's: the per-address connection limits of Socket.IO
(``SOCKETIO_CONNECTIONS_PER_ADDRESS``, ``SOCKETIO_HANDSHAKE_RATE``) would otherwise count a
whole audience as one address and refuse it past 500 connections or 20 new ones a second."""

from __future__ import annotations

from pathlib import Path

from lectern import create_app
from tests import conftest


def test_socketio_handshakes_count_the_visitor_address(migrated: str, tmp_path: Path) -> None:
    app = create_app(conftest.test_config(migrated, tmp_path / "data", PROXY_HOPS=1))
    guard = app.extensions["socketio_guard"]
    client = app.test_client()
    # An anonymous handshake is refused, after it was counted against its address.
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}  # a visitor's own entry first
    response = client.get("/socket.io/?EIO=4&transport=polling", headers=forwarded)
    assert response.status_code == 401
    assert set(guard.handshakes) == {"203.0.113.9"}  # not the proxy's 127.0.0.1, nor the forged


def test_without_proxy_hops_forwarded_headers_are_ignored(migrated: str, tmp_path: Path) -> None:
    app = create_app(conftest.test_config(migrated, tmp_path / "data"))
    guard = app.extensions["socketio_guard"]
    headers = {"X-Forwarded-For": "203.0.113.9"}
    app.test_client().get("/socket.io/?EIO=4&transport=polling", headers=headers)
    assert set(guard.handshakes) == {"127.0.0.1"}
