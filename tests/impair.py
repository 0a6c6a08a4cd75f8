"""Impaired links between network namespaces (``tests/netns.py``): rate caps, loss, delay, jitter.

This kernel has no ``netem`` qdisc and no iptables, so the two halves come from what it has:

- **Rate caps**: :func:`cap` puts a token bucket (``tc qdisc replace ... tbf``) on one end of a
  veth link, shaping what leaves through it (cap a host's download on its router's end);
  :func:`lift` removes it again during a test. :func:`tx_bytes` reads what a device sent.
- **Loss, delay and jitter**: a :class:`Relay` is a namespace of its own that sits on a host's
  uplink like a cable with a fault in it. Its two veth ends carry no address; this module, run
  as ``python -m tests.impair relay`` inside it, bridges Ethernet frames between them through
  AF_PACKET sockets. UDP frames are dropped with probability ``loss`` and held back for
  ``delay`` plus a uniform ``[0, jitter)`` each (so jitter reorders, as netem's does); every
  other frame (ARP, TCP) passes at once. Both ends keep their real addresses, so ICE sees them
  as they are and no TURN is needed.

    with Network() as net:
        hosts = net.routed("worker", "fast")
        lossy = Relay.host(net, "lossy", loss=0.05, jitter=0.05)   # a host behind a relay
        cap(net.uplinks["fast"].left, 300)                          # 300 kb/s to "fast"
        ...
        lift(net.uplinks["fast"].left)
        lossy.set(loss=0.0)                                         # change the fault live

The relay reads commands on stdin, one per line: ``set loss=0.05 delay=0.02 jitter=0.05`` (any
of them; seconds) and ``stats``; it answers each with one JSON line (``{"udp": n, "dropped": n,
"other": n, "delayed_s": total}``: UDP frames seen, dropped, other frames, summed added delay).

Why frames need care on the way through: a veth device hands packets over with their checksum
left for the "hardware" to fill in (``TP_STATUS_CSUMNOTREADY``) and may pass TCP segments of
up to 64 kB (GSO). The relay fills in such checksums itself, and :meth:`Relay.host` limits the
links' GSO to one segment, so every frame it sends is a complete, valid one.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from dataclasses import dataclass
from typing import IO, Any

from tests.live import ROOT, stop_process
from tests.netns import IP, End, Link, Namespace, NetnsError, Network, ip

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of a frame this socket's side sent
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 1 << 3
ETH_HEADER = 14
IPPROTO_UDP, IPPROTO_TCP = 17, 6
FRAME_MAX = 65536
BURST = "8kb"  # a few frames: a capped link passes no long bursts above its rate
QUEUE_LATENCY = "200ms"  # how long a frame may wait in the bucket's queue before it is dropped


# -- rate caps --------------------------------------------------------------------------------
def tc(end: End, *args: str, check: bool = True) -> None:
    """``tc ARGS`` in ``end``'s namespace."""
    command = ["tc", *args]
    if end.namespace is not None:
        command = [IP, "netns", "exec", end.namespace.name, *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(command)}: {done.stderr.strip()}")


def cap(end: End, kbps: float, burst: str = BURST, latency: str = QUEUE_LATENCY) -> None:
    """Let at most ``kbps`` kilobits a second leave through ``end`` (a token bucket); replaces
    any cap it had. Frames that would wait longer than ``latency`` are dropped, as a slow
    mobile link's buffer would."""
    rate = f"{int(kbps * 1000)}bit"
    tbf = ["tbf", "rate", rate, "burst", burst, "latency", latency]
    tc(end, "qdisc", "replace", "dev", end.device, "root", *tbf)


def lift(end: End) -> None:
    """Remove ``end``'s cap (the device's default queue again); nothing if it had none."""
    tc(end, "qdisc", "del", "dev", end.device, "root", check=False)


def tx_bytes(end: End) -> int:
    """Bytes ``end``'s device has sent so far (Ethernet frames, as the kernel counts them)."""
    path = f"/sys/class/net/{end.device}/statistics/tx_bytes"
    if end.namespace is None:
        with open(path) as counter:
            return int(counter.read())
    # /sys shows the namespace it was mounted in: read it from inside.
    return int(end.namespace.run(["cat", path], check=True).stdout)


# -- the relay, inside its namespace ------------------------------------------------------------
@dataclass
class Policy:
    """What happens to a UDP frame: dropped with probability ``loss``, else sent after
    ``delay`` + uniform [0, ``jitter``) seconds."""

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0

    def hold(self, rng: random.Random) -> float | None:
        """Seconds to hold one UDP frame back, or None to drop it."""
        if self.loss and rng.random() < self.loss:
            return None
        return self.delay + (rng.random() * self.jitter if self.jitter else 0.0)


def checksum(data: bytes) -> int:
    """The Internet checksum's one's complement sum of ``data`` (folded to 16 bits)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))  # native order throughout, so the result is too
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def complete(frame: bytearray) -> None:
    """Fill in the TCP or UDP checksum the sender left for the device (IPv4 frames; the
    field holds the pseudo-header's sum already, so the sum over the segment finishes it)."""
    if frame[12:14] != b"\x08\x00":
        return
    start = ETH_HEADER + (frame[ETH_HEADER] & 0x0F) * 4
    offset = {IPPROTO_UDP: 6, IPPROTO_TCP: 16}.get(frame[ETH_HEADER + 9])
    if offset is None:
        return
    value = ~checksum(bytes(frame[start:])) & 0xFFFF
    frame[start + offset : start + offset + 2] = struct.pack("=H", value or 0xFFFF)


def is_udp(frame: bytes | bytearray) -> bool:
    return frame[12:14] == b"\x08\x00" and len(frame) > ETH_HEADER + 9 and frame[23] == 17


def open_side(device: str) -> socket.socket:
    """A raw socket on ``device`` that sees every frame (promiscuous) with its checksum state."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((device, 0))
    index = socket.if_nametoindex(device)
    membership = struct.pack("iHH8s", index, 1, 0, b"")  # PACKET_MR_PROMISC
    sock.setsockopt(SOL_PACKET, 1, membership)  # PACKET_ADD_MEMBERSHIP
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.setblocking(False)
    return sock


def receive(sock: socket.socket) -> bytearray | None:
    """The next frame another host sent onto this side (not one this relay sent), checksums
    completed; None when it was this relay's own."""
    data, ancillary, _flags, address = sock.recvmsg(FRAME_MAX, 64)
    if address[2] == PACKET_OUTGOING:
        return None
    frame = bytearray(data)
    for level, kind, aux in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            (status,) = struct.unpack_from("I", aux)
            if status & TP_STATUS_CSUMNOTREADY:
                complete(frame)
    return frame


class Bridge:
    """Frames across two devices, UDP ones through the :class:`Policy`; runs until stdin ends."""

    def __init__(self, left: str, right: str, policy: Policy, seed: int | None) -> None:
        self.sides = [open_side(left), open_side(right)]
        self.policy = policy
        self.rng = random.Random(seed)
        self.held: list[tuple[float, int, socket.socket, bytes]] = []  # (due, n, out, frame)
        self.count = 0
        self.stats = {"udp": 0, "dropped": 0, "other": 0, "delayed_s": 0.0}
        self.lock = threading.Lock()

    def pass_on(self, frame: bytearray, out: socket.socket) -> None:
        """Send ``frame`` out now, drop it, or hold it back, as the policy says."""
        if not is_udp(frame):
            self.stats["other"] += 1
            out.send(frame)
            return
        self.stats["udp"] += 1
        with self.lock:
            hold = self.policy.hold(self.rng)
        if hold is None:
            self.stats["dropped"] += 1
        elif hold <= 0:
            out.send(frame)
        else:
            self.stats["delayed_s"] += hold
            self.count += 1
            heapq.heappush(self.held, (time.monotonic() + hold, self.count, out, bytes(frame)))

    def release(self) -> float:
        """Send every held frame that is due; seconds until the next one (1 when none)."""
        now = time.monotonic()
        while self.held and self.held[0][0] <= now:
            _, _, out, frame = heapq.heappop(self.held)
            with contextlib.suppress(OSError):  # a full device queue: lost, as on a real link
                out.send(frame)
        return self.held[0][0] - now if self.held else 1.0

    def run(self) -> None:
        """Pump frames until told to stop (stdin's end)."""
        threading.Thread(target=self.commands, args=(sys.stdin,), daemon=True).start()
        left, right = self.sides
        while True:
            ready, _, _ = select.select(self.sides, [], [], max(self.release(), 0.0))
            for sock in ready:
                out = right if sock is left else left
                try:
                    frame = receive(sock)
                    if frame is not None:
                        self.pass_on(frame, out)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    print(json.dumps({"error": str(exc)}), file=sys.stderr, flush=True)

    def commands(self, stream: IO[str]) -> None:
        """``set name=value ...`` and ``stats`` from ``stream``; exit the process at its end."""
        for line in stream:
            words = line.split()
            if words[:1] == ["set"]:
                with self.lock:
                    for word in words[1:]:
                        name, _, value = word.partition("=")
                        setattr(self.policy, name, float(value))
            print(json.dumps({**self.stats, **vars(self.policy)}), flush=True)
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description="Bridge two devices, impairing UDP frames.")
    parser.add_argument("command", choices=["relay"])
    parser.add_argument("left")
    parser.add_argument("right")
    parser.add_argument("--loss", type=float, default=0.0, help="fraction of UDP frames dropped")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to each")
    parser.add_argument("--jitter", type=float, default=0.0, help="up to this many more")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    policy = Policy(args.loss, args.delay, args.jitter)
    Bridge(args.left, args.right, policy, args.seed).run()


# -- the test's side --------------------------------------------------------------------------
class Relay:
    """``python -m tests.impair relay`` in a namespace of its own on one host's uplink."""

    def __init__(self, namespace: Namespace, left: str, right: str, policy: Policy) -> None:
        self.namespace = namespace
        self.proc = namespace.popen(
            [sys.executable, "-m", "tests.impair", "relay", left, right,
             "--loss", str(policy.loss), "--delay", str(policy.delay),
             "--jitter", str(policy.jitter)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        self.stats()  # answers once its sockets are open

    @classmethod
    def host(cls, net: Network, role: str, **policy: float) -> tuple[Namespace, Relay]:
        """A new host namespace ``role`` of ``net`` (after :meth:`Network.routed`) whose
        uplink to the router passes through a relay; ``net.uplinks[role]`` is its link (its
        ``left`` end is the router's, where a cap shapes the host's download)."""
        router = next(n for n in net.namespaces if n.role == "router")
        relay_ns = net.namespace(f"{role}-fx")
        host = net.namespace(role)
        wire = net.link(router, relay_ns)  # the router's end keeps .1; .2 moves to the host
        ip("addr", "flush", "dev", wire.right.device, namespace=relay_ns.name)
        inner = (f"{wire.right.device[:-1]}i", f"{wire.right.device[:-1]}h")
        ip("link", "add", inner[0], "netns", relay_ns.name, "type", "veth", "peer", "name",
           inner[1], "netns", host.name)  # fmt: skip
        host.ip("addr", "add", f"{wire.right.address}/30", "dev", inner[1])
        for namespace, device in ((relay_ns, inner[0]), (host, inner[1])):
            ip("link", "set", device, "up", namespace=namespace.name)
        host.ip("route", "add", "default", "via", wire.left.address)
        host.address = wire.right.address
        # One segment per frame: the relay forwards frames as they are (see the module's doc).
        for namespace, device in ((router, wire.left.device), (host, inner[1])):
            ip("link", "set", device, "gso_max_segs", "1", namespace=namespace.name)
        net.uplinks[role] = Link(wire.left, End(host, inner[1], wire.right.address))
        return host, cls(relay_ns, wire.right.device, inner[0], Policy(**policy))

    def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise NetnsError(f"the relay in {self.namespace.name} exited ({self.proc.poll()})")
        answer: dict[str, Any] = json.loads(reply)
        return answer

    def set(self, **policy: float) -> dict[str, Any]:
        """Change the fault now (``loss``, ``delay``, ``jitter``; seconds)."""
        return self.ask("set " + " ".join(f"{k}={v}" for k, v in policy.items()))

    def stats(self) -> dict[str, Any]:
        return self.ask("stats")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        stop_process(self.proc)


if __name__ == "__main__":
    main()
