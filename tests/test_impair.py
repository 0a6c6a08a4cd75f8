"""The impaired links of tests/impair.py do what they say: a cap holds a link to its rate and
lifts again; the relay drops the configured share of UDP, adds its delay and jitter, and lets
TCP through intact. Hosts a and b are namespaces behind a router (tests/netns.py)."""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.impair import Relay, cap, lift, tx_bytes
from tests.netns import Namespace, Network, unavailable

pytestmark = pytest.mark.server
PORT = 9000  # the programs below listen on it

# Receives UDP on PORT for argv[1] seconds; prints the count, bytes and one-way delays (the
# sender's CLOCK_MONOTONIC is in each datagram: namespaces share the clock).
RECEIVER = """
import json, socket, struct, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 9000)); sock.settimeout(0.2)
end, got, size, delays, times = time.monotonic() + float(sys.argv[1]), 0, 0, [], []
print("ready", flush=True)
while time.monotonic() < end:
    try:
        data = sock.recv(2048)
    except TimeoutError:
        continue
    got, size = got + 1, size + len(data)
    times.append(time.monotonic())
    delays.append(times[-1] - struct.unpack_from("d", data)[0])
span = times[-1] - times[0] if times else 0
print(json.dumps({"got": got, "bytes": size, "delays": delays, "span": span}), flush=True)
"""

# (span: seconds from the first datagram's arrival to the last's)
# Sends argv[2] datagrams of argv[3] bytes to argv[1], one every argv[4] seconds.
SENDER = """
import socket, struct, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
count, size, gap = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for n in range(count):
    sock.sendto(struct.pack("d", time.monotonic()).ljust(size, b"x"), (sys.argv[1], 9000))
    time.sleep(gap)
"""

# Serves argv[1] bytes on TCP PORT to one client; the client prints what it got.
TCP_SERVER = """
import socket, sys
server = socket.create_server(("0.0.0.0", 9000)); print("ready", flush=True)
conn, _ = server.accept(); conn.sendall(bytes(range(256)) * (int(sys.argv[1]) // 256)); conn.close()
"""
TCP_CLIENT = """
import hashlib, socket, sys
sock = socket.create_connection((sys.argv[1], 9000), timeout=10); data = b""
while chunk := sock.recv(65536): data += chunk
print(len(data), hashlib.sha256(data).hexdigest())
"""


@pytest.fixture
def net() -> Iterator[Network]:
    reason = unavailable()
    if reason:
        pytest.fail(f"impaired links are made in network namespaces: {reason}")
    with Network() as made:
        yield made


def transfer(
    sender: Namespace, receiver: Namespace, count: int, size: int, gap: float
) -> dict[str, Any]:
    """Send ``count`` datagrams from ``sender`` to ``receiver``; what arrived."""
    listen = receiver.popen(
        [sys.executable, "-c", RECEIVER, str(count * gap + 1.5)], stdout=-1, text=True
    )
    assert listen.stdout is not None and listen.stdout.readline().strip() == "ready"
    sender.run([sys.executable, "-c", SENDER, receiver.address, str(count), str(size), str(gap)])
    result: dict[str, Any] = json.loads(listen.stdout.readline())
    return result


def test_a_relay_drops_delays_and_jitters_udp(net: Network) -> None:
    a = net.routed("a")["a"]
    b, relay = Relay.host(net, "b", loss=0.2, delay=0.03, jitter=0.04)
    got = transfer(a, b, count=600, size=200, gap=0.004)
    stats = relay.stats()
    lost = 1 - got["got"] / 600
    delays = sorted(got["delays"])
    print(f"lost {lost:.1%}; delay min {delays[0] * 1000:.0f} max {delays[-1] * 1000:.0f} ms")
    assert 0.14 <= lost <= 0.26, (lost, stats)
    assert stats["dropped"] / stats["udp"] == pytest.approx(0.2, abs=0.06), stats
    assert 0.029 <= delays[0] < 0.045  # the fixed delay, and little more on the best frame
    assert 0.065 <= delays[-1] < 0.15  # delay + nearly all the jitter
    assert statistics.median(delays) == pytest.approx(0.05, abs=0.012)

    relay.set(loss=0, delay=0, jitter=0)  # changed live: nothing lost any more
    assert transfer(a, b, count=200, size=200, gap=0.004)["got"] == 200


def test_tcp_crosses_a_relay_intact(net: Network) -> None:
    """Segments the kernel left for the device to checksum, and large ones, arrive whole."""
    a = net.routed("a")["a"]
    b, _relay = Relay.host(net, "b", loss=0.0)
    size = 256 * 8000  # 2 MB
    server = a.popen([sys.executable, "-c", TCP_SERVER, str(size)], stdout=-1, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    done = b.run([sys.executable, "-c", TCP_CLIENT, a.address])
    expected = hashlib.sha256(bytes(range(256)) * (size // 256)).hexdigest()
    assert done.stdout.split() == [str(size), expected], done.stderr


def test_a_cap_holds_a_link_to_its_rate_until_lifted(net: Network) -> None:
    hosts = net.routed("a", "b")
    a, b = hosts["a"], hosts["b"]
    into_b = net.uplinks["b"].left  # the router's end: what b downloads
    cap(into_b, 300)
    before = tx_bytes(into_b)
    # about 1.2 Mb/s offered for 3 s: 375 datagrams of 1,200 bytes every 8 ms
    capped = transfer(a, b, count=375, size=1200, gap=0.008)
    sent = tx_bytes(into_b) - before  # frames: the datagrams and their 42 bytes of headers
    got_kbps = capped["bytes"] * 8 / 1000 / capped["span"]
    sent_kbps = sent * 8 / 1000 / capped["span"]
    print(f"capped at 300 kb/s: received {got_kbps:.0f} kb/s, the link sent {sent_kbps:.0f} kb/s")
    assert 240 <= got_kbps <= 320
    assert sent_kbps <= 330

    lift(into_b)
    free = transfer(a, b, count=375, size=1200, gap=0.008)
    assert free["got"] >= 370
