"""Media workers on other hosts: every worker and peer here runs in a network namespace of its own.

Hosts "a" and "b" are network namespaces behind a router namespace (``tests/netns.py``); this
test process, in the root namespace, plays the web app: it reaches each worker's channel at its
host's address, signs the grants and hands them to the peers. Worker A and the publisher run on
host a, worker B and the viewers on host b (``tests/netns_peer.py``), so every media packet to a
viewer crosses the routed link: from A straight, or over worker B's relay leg from A.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from media.channel import MediaChannel
from media.supervisor import wait_for_port
from tests.live import ROOT
from tests.netns import Namespace, NetnsError, Network, stop, unavailable
from tests.netns_peer import PeerProcess

from .conftest import HEIGHT, START_TIMEOUT_S, WIDTH, grant, worker_env

pytestmark = [pytest.mark.server, pytest.mark.slow]

PORT = 7000  # each worker has a host (namespace) of its own
FRAMES = 15  # decoded video frames a viewer must report (half a second of 30 fps)
WAIT_S = 15.0
QUIET_TRIES = 5


@dataclass
class Host:
    """A namespace with a media worker listening on its address."""

    namespace: Namespace
    worker: Any
    log: Path

    @property
    def addr(self) -> str:
        return f"{self.namespace.address}:{PORT}"

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """A channel request from this (root) namespace, as the web app makes it."""
        return MediaChannel([self.addr]).call(self.addr, op, **fields)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(namespace: Namespace, log: Path) -> Host:
    """``python -m media.worker`` in ``namespace``, on its address, offering it to ICE."""
    env = {**worker_env(), "MEDIA_HOST_ADDRESSES": namespace.address}
    with log.open("wb") as out:
        proc = namespace.popen(
            [
                sys.executable,
                "-m",
                "media.worker",
                "--host",
                namespace.address,
                "--port",
                str(PORT),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    host = Host(namespace, proc, log)
    if not wait_for_port(namespace.address, PORT, timeout=START_TIMEOUT_S):
        stop(proc)
        pytest.fail(f"the worker in {namespace.name} did not start:\n{host.output()}")
    return host


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Host]]:
    """Hosts a and b, each running a worker; everything is removed afterwards."""
    reason = unavailable()
    if reason:
        pytest.fail(f"this test runs its hosts in network namespaces: {reason}")
    logs = tmp_path_factory.mktemp("cross-host")
    with Network() as net:
        try:
            namespaces = net.routed("a", "b")
        except NetnsError as exc:
            pytest.fail(f"could not make the test's network: {exc}")
        yield {
            name: start_worker(ns, logs / f"worker-{name}.log") for name, ns in namespaces.items()
        }


def until(check: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def decoding(viewer: PeerProcess, frames: int = FRAMES) -> dict[str, Any]:
    """The viewer's stats once it has decoded ``frames`` video frames (or after ``WAIT_S``)."""
    latest: dict[str, Any] = {}

    def enough() -> bool:
        latest.update(viewer.ask("stats"))
        return bool(latest["frames"]["video"] >= frames)

    until(enough)
    return latest


def publisher_on(host: Host, room: str) -> tuple[PeerProcess, str]:
    """A publisher on host ``host``'s namespace, publishing to its worker; its stream id."""
    peer = PeerProcess(host.namespace, "publish", host.addr, grant("publish", room, user=1))
    return peer, str(peer.expect("published")["stream"])


def test_a_viewer_on_host_b_decodes_a_stream_published_on_host_a(hosts: dict[str, Host]) -> None:
    a, b = hosts["a"], hosts["b"]
    publisher, stream = publisher_on(a, "cross:1")
    viewer = None
    try:
        token = grant("view", "cross:1", user=2, stream=stream)
        viewer = PeerProcess(b.namespace, "view", a.addr, token)
        viewer.expect("viewing")
        stats = decoding(viewer)
        assert stats["frames"]["video"] >= FRAMES, (stats, a.output())
        assert stats["sizes"] == [[WIDTH, HEIGHT]]
        assert a.call("stats")["viewers"] == 1
    finally:
        for peer in (viewer, publisher):
            if peer is not None:
                peer.close()
        a.call("close_stream", stream=stream)


def relay_grant(room: str, stream: str, origin: Host) -> str:
    """What the web app signs for a relaying worker: the stream, its origin, a view grant there."""
    origin_token = grant("view", room, user=0, stream=stream)
    return grant(
        "relay", room, user=0, stream=stream, origin=origin.addr, origin_token=origin_token
    )


def leg_frames(host: Host, stream: str) -> int:
    """Video frames the worker at ``host`` has received of ``stream``."""
    return int(host.call("stats")["frames"].get(stream, {}).get("video", 0))


def quiet_keyframe_requests(publisher: PeerProcess) -> int:
    """The publisher's count of keyframe requests once a second has passed with none new."""
    count = publisher.ask("stats")["keyframe_requests"]
    for _ in range(QUIET_TRIES):
        time.sleep(1.0)
        latest = publisher.ask("stats")["keyframe_requests"]
        if latest == count:
            return int(count)
        count = latest
    raise AssertionError(f"keyframe requests kept coming for {QUIET_TRIES} s: {count}")


def test_worker_b_serves_host_b_a_stream_of_host_a_over_one_leg(hosts: dict[str, Host]) -> None:
    """Worker B opens its leg to A across the link; its viewers decode the publisher's video,
    and their keyframe requests cross the leg back to the publisher."""
    a, b = hosts["a"], hosts["b"]
    room = "cross:2"
    publisher, stream = publisher_on(a, room)
    viewers: list[PeerProcess] = []
    try:
        reply = b.call("relay", token=relay_grant(room, stream, a))
        assert reply == {"ok": True, "stream": stream, "created": True}, (reply, b.output())
        again = b.call("relay", token=relay_grant(room, stream, a))
        assert again == {"ok": True, "stream": stream, "created": False}
        # Once the leg has brought B video, B asks A for nothing until a viewer joins.
        assert until(lambda: leg_frames(b, stream) >= FRAMES), (b.call("stats"), b.output())
        asked = quiet_keyframe_requests(publisher)

        token = grant("view", room, user=2, stream=stream)
        viewers = [PeerProcess(b.namespace, "view", b.addr, token) for _ in range(2)]
        for viewer in viewers:
            viewer.expect("viewing")
        for viewer in viewers:
            stats = decoding(viewer)
            assert stats["frames"]["video"] >= FRAMES, (stats, b.output(), a.output())
            assert stats["sizes"] == [[WIDTH, HEIGHT]]
        # aiortc's encoder makes a keyframe every 3,000 frames on its own: these viewers saw
        # video within seconds because their requests reached the publisher through the leg.
        joined = quiet_keyframe_requests(publisher)
        assert joined > asked, (asked, joined)
        viewers[0].ask("pli")
        assert until(lambda: publisher.ask("stats")["keyframe_requests"] > joined, 5.0), (
            "a keyframe request of a viewer on host b did not reach the publisher on host a"
        )

        stats_a, stats_b = a.call("stats"), b.call("stats")
        assert stats_a["viewers"] == 1, stats_a  # the leg: A sends the stream across once
        assert stats_a["relays"] == []
        assert stats_b["viewers"] == 2, stats_b
        assert stats_b["relays"] == [stream]

        # Ending the relayed stream on B closes the leg on A, and B's viewers with it.
        assert b.call("close_stream", stream=stream) == {"ok": True, "closed": 1}
        assert until(lambda: a.call("stats")["viewers"] == 0, 5.0), a.call("stats")
        assert b.call("stats")["viewers"] == 0
    finally:
        for peer in (*viewers, publisher):
            peer.close()
        a.call("close_stream", stream=stream)
        b.call("close_stream", stream=stream)
