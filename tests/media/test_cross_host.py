"""Media workers on other hosts: every worker and peer here runs in a network namespace of its own.

Hosts "a", "b" and "c" are network namespaces behind a router namespace (``tests/netns.py``);
this test process, in the root namespace, reaches each worker's channel at its host's address.
Worker A runs on host a, worker B on host b, and the peers (``tests/netns_peer.py``) on hosts a
and b, or c, so every media packet to a viewer crosses the routed links: from a worker straight,
or over a relay leg between the workers.

The first tests play the web app: they sign the grants and hand them to the peers, which call
the workers' channels. The last two run the web app itself (``python app.py`` here, its workers
named in ``MEDIA_WORKER_ADDRS`` by their hosts' addresses, reached by the peers through a
gateway on this namespace's address): the peers sign in and send their offers over Socket.IO;
the app's placement puts the second viewer on the other host's worker, which relays; and when
that host loses its link, the app moves its viewer to the origin.
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
from rooms.placement import worker_id
from tests.live import ROOT, LiveServer, stop_process
from tests.netns import Gateway, Namespace, NetnsError, Network, unavailable
from tests.netns_peer import PeerProcess

from .conftest import HEIGHT, SECRET, START_TIMEOUT_S, WIDTH, grant, worker_env
from .test_app_media import (  # noqa: F401  # the fixture signing the web app's session cookies
    INSTRUCTOR,
    SECRET_KEY,
    STUDENT1,
    STUDENT2,
    cookies,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]

PORT = 7000  # each worker has a host (namespace) of its own
STUDENT3 = 4  # the demo's third student
FRAMES = 15  # decoded video frames a viewer must report (half a second of 30 fps)
WAIT_S = 15.0
QUIET_TRIES = 5
LOST_WITHIN_S = 10.0  # the web app pings each worker every 1 s; lost after 2 unanswered
MOVED_WITHIN_S = 3.0  # the bound: media.moved -> the viewer decodes again


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
        stop_process(proc)
        pytest.fail(f"the worker in {namespace.name} did not start:\n{host.output()}")
    return host


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[Network, dict[str, Namespace]]]:
    """Hosts a, b (the workers') and c (the web app's peers) behind a router; everything is
    removed afterwards."""
    reason = unavailable()
    if reason:
        pytest.fail(f"this test runs its hosts in network namespaces: {reason}")
    with Network() as net:
        try:
            namespaces = net.routed("a", "b", "c")
        except NetnsError as exc:
            pytest.fail(f"could not make the test's network: {exc}")
        yield net, namespaces


@pytest.fixture(scope="module")
def hosts(
    network: tuple[Network, dict[str, Namespace]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Host]:
    """A worker on each host (ended with the network)."""
    logs = tmp_path_factory.mktemp("cross-host")
    return {name: start_worker(network[1][name], logs / f"{name}.log") for name in ("a", "b")}


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
    token = grant("publish", room, user=1)
    peer = PeerProcess(host.namespace, "publish", channel=host.addr, token=token)
    return peer, str(peer.expect("published")["stream"])


def test_a_viewer_on_host_b_decodes_a_stream_published_on_host_a(hosts: dict[str, Host]) -> None:
    a, b = hosts["a"], hosts["b"]
    publisher, stream = publisher_on(a, "cross:1")
    viewer = None
    try:
        token = grant("view", "cross:1", user=2, stream=stream)
        viewer = PeerProcess(b.namespace, "view", channel=a.addr, token=token)
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
        assert (reply["ok"], reply["stream"], reply["created"]) == (True, stream, True), (
            reply,
            b.output(),
        )
        again = b.call("relay", token=relay_grant(room, stream, a))
        assert (again["ok"], again["stream"], again["created"]) == (True, stream, False), again
        # Once the leg has brought B video, B asks A for nothing until a viewer joins.
        assert until(lambda: leg_frames(b, stream) >= FRAMES), (b.call("stats"), b.output())
        asked = quiet_keyframe_requests(publisher)

        token = grant("view", room, user=2, stream=stream)
        viewers = [PeerProcess(b.namespace, "view", channel=b.addr, token=token) for _ in "12"]
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


@dataclass
class Web:
    """The web app, run here on loopback, and the URL the hosts reach it at."""

    server: LiveServer
    url: str


@pytest.fixture(scope="module")
def web(
    network: tuple[Network, dict[str, Namespace]],
    hosts: dict[str, Host],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Web]:
    """``python app.py`` with the workers of hosts a and b in ``MEDIA_WORKER_ADDRS``, reached
    by the hosts through a gateway on this namespace's address in their network."""
    env = {
        "SECRET_KEY": SECRET_KEY,
        "DEMO_DATA": "true",
        "MEDIA_WORKER_ADDRS": ",".join(h.addr for h in hosts.values()),
        "MEDIA_SECRET": SECRET,
    }
    data = tmp_path_factory.mktemp("cross-host-web") / "data"
    with LiveServer(data, env) as server, Gateway(network[0], server.port) as gateway:
        yield Web(server, gateway.url)


def test_the_web_app_places_a_viewer_on_the_other_host_which_relays_the_stream(
    hosts: dict[str, Host],
    web: Web,
    cookies: Callable[[int], str],  # noqa: F811  # test_app_media's fixture
) -> None:
    """The instructor publishes from host a, two students view from host b through the web app:
    the first is placed on the stream's origin worker, the second on the other worker (more
    spare capacity), which opens its leg to the origin across the link; both decode."""
    a, b = hosts["a"], hosts["b"]
    publisher = PeerProcess(a.namespace, "publish", url=web.url, cookie=cookies(INSTRUCTOR))
    viewers: list[PeerProcess] = []
    try:
        stream = str(publisher.expect("published")["stream"])
        [origin] = [h for h in hosts.values() if stream in h.call("stats")["frames"]]
        [other] = [h for h in hosts.values() if h is not origin]
        placed = []
        for user in (STUDENT1, STUDENT2):
            viewer = PeerProcess(
                b.namespace, "view", url=web.url, cookie=cookies(user), stream=stream
            )
            viewers.append(viewer)
            placed.append(viewer.expect("viewing")["worker"])
        assert placed == [worker_id(origin.addr), worker_id(other.addr)], web.server.tail()
        for viewer in viewers:
            stats = decoding(viewer)
            assert stats["frames"]["video"] >= FRAMES, (stats, other.output(), origin.output())
            assert stats["sizes"] == [[WIDTH, HEIGHT]]
        assert other.call("stats")["relays"] == [stream]
        assert origin.call("stats")["viewers"] == 2  # the first viewer and the leg

        # The publisher leaves: the web app ends the stream, its leg and every viewer of it.
        publisher.close()
        assert until(lambda: all(h.call("stats")["viewers"] == 0 for h in hosts.values()), 10.0), {
            name: h.call("stats") for name, h in hosts.items()
        }
        assert other.call("stats")["relays"] == []
    finally:
        for peer in (*viewers, publisher):
            peer.close()


def test_a_host_cut_off_the_network_moves_its_viewers_to_the_other(
    network: tuple[Network, dict[str, Namespace]],
    hosts: dict[str, Host],
    web: Web,
    cookies: Callable[[int], str],  # noqa: F811  # test_app_media's fixture
) -> None:
    """The host of the worker relaying to a viewer loses its link (not its process: its pings
    time out instead of being refused). The web app counts it lost, tells the room
    ``media.moved``; the viewer views again (as the page does), is placed on the origin and
    decodes within 3 s of the message; the viewer already on the origin keeps its video."""
    net, spaces = network
    c = spaces["c"]  # the peers' host: it keeps its link
    publisher = PeerProcess(c, "publish", url=web.url, cookie=cookies(INSTRUCTOR))
    viewers: list[PeerProcess] = []
    cut = None
    try:
        stream = str(publisher.expect("published")["stream"])
        [origin] = [h for h in hosts.values() if stream in h.call("stats")["frames"]]
        [other] = [h for h in hosts.values() if h is not origin]
        for user in (STUDENT1, STUDENT2):
            viewer = PeerProcess(c, "view", url=web.url, cookie=cookies(user), stream=stream)
            viewers.append(viewer)
            viewer.expect("viewing")
        kept, moving = viewers
        for viewer in viewers:
            assert decoding(viewer)["frames"]["video"] >= FRAMES

        cut = net.uplinks[other.namespace.role]
        cut.set_up(False)
        cut_at = time.monotonic()
        moved = moving.expect("moved", timeout=LOST_WITHIN_S)
        moved_after = time.monotonic() - cut_at
        assert moved["worker"] == worker_id(other.addr)
        assert moving.expect("viewing")["worker"] == worker_id(origin.addr)
        before = kept.ask("stats")["frames"]["video"]
        back = decoding(moving, frames=1)
        print(
            f"link cut: media.moved after {moved_after:.1f} s, video back {back['back_s']} s later"
        )
        assert back["back_s"] is not None and back["back_s"] <= MOVED_WITHIN_S, back
        assert until(lambda: kept.ask("stats")["frames"]["video"] > before + FRAMES, 5.0)
        assert origin.call("stats")["relays"] == []

        # The link comes back: the web app's pings find the worker, which still holds the leg
        # it was cut off with (its ICE has not given up yet); that leg is ended before anything
        # is placed on it again, so the next viewer there gets a fresh leg and decodes.
        cut.set_up(True)
        assert other.call("stats")["relays"] == [stream]  # the forgotten leg, still there
        assert until(lambda: other.call("stats")["relays"] == [], LOST_WITHIN_S), other.call(
            "stats"
        )
        third = PeerProcess(c, "view", url=web.url, cookie=cookies(STUDENT3), stream=stream)
        viewers.append(third)
        assert third.expect("viewing")["worker"] == worker_id(other.addr)  # the most spare
        assert decoding(third)["frames"]["video"] >= FRAMES, other.output()
        assert other.call("stats")["relays"] == [stream]
    finally:
        if cut is not None:
            cut.set_up(True)
        for peer in (*viewers, publisher):
            peer.close()
