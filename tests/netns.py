"""Other hosts on one machine, for tests and benchmarks: Linux network namespaces and veth links.

A :class:`Network` creates namespaces and veth pairs under names unique to it (parallel runs do
not collide), gives the links addresses from a private /24 that nothing on this machine routes
yet, runs processes inside a namespace (``ip netns exec``) and, when it closes, ends those
processes and removes every namespace and link it made, also after a failure. It needs root
and iproute2 (``ip``); :func:`unavailable` says why not when they are missing.

    with Network() as net:
        hosts = net.routed("a", "b")          # two hosts behind a router, reachable from here
        worker = hosts["a"].popen([sys.executable, "-m", "media.worker",
                                   "--host", hosts["a"].address, "--port", "7000"])

:meth:`Network.routed` builds the usual topology: a router namespace that forwards between one
veth link per host namespace and one to this (the root) namespace, whose routing table gets a
single route for the network's /24 through it. Nothing in it reaches beyond the machine: the
router knows only its own links, and the root namespace does not forward (its ``ip_forward``
is left alone). Processes in a host namespace see their link's address and loopback only, so
aioice offers that address as their one host candidate. A :class:`Gateway` lets the hosts reach
a server this namespace runs on loopback (a web app), at this namespace's address there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.live import Forwarder, parent_death_signal, stop_process

IP = "ip"
PREFIX = "lectern"
SUBNET_TRIES = 50


class NetnsError(RuntimeError):
    """A namespace or link could not be made; the message carries ``ip``'s own error."""


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which(IP) is None:
        return "network namespaces need iproute2's ip command"
    return None


def ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (in ``namespace`` when given) and return its output.

    :raises NetnsError: when ``check`` and it fails.
    """
    command = [IP, *(("-n", namespace) if namespace else ()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this (root) namespace has an address in or a route to."""
    found = []
    for line in (ip("-4", "-o", "addr") + ip("-4", "route")).splitlines():
        for word in line.split():
            with contextlib.suppress(ValueError):
                if "/" in word or word[:1].isdigit():
                    found.append(ipaddress.IPv4Network(word, strict=False))
    return found


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps nothing this machine's root namespace uses."""
    used = used_networks()
    for _ in range(SUBNET_TRIES):
        net = ipaddress.IPv4Network(
            f"10.{secrets.randbelow(190) + 64}.{secrets.randbelow(256)}.0/24"
        )
        if not any(net.overlaps(other) for other in used if other.prefixlen > 0):
            return net
    raise NetnsError("no free 10.x.y.0/24 for a test network")


@dataclass
class Namespace:
    """One network namespace of a :class:`Network`: a host, or its router."""

    name: str
    network: Network
    role: str = ""  # the name it was made under, e.g. "a" (``name`` is unique to the run)
    address: str = ""  # its link's address, once linked (the host's own address)

    def run(self, args: Sequence[str], **options: Any) -> subprocess.CompletedProcess[str]:
        """Run a command inside, wait for it and return its result (text output)."""
        options.setdefault("capture_output", True)
        return subprocess.run(
            [IP, "netns", "exec", self.name, *args], text=True, timeout=60, **options
        )

    def popen(self, args: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        """Start a command inside; it is ended when the network closes (or this process dies)."""
        proc = subprocess.Popen(
            [IP, "netns", "exec", self.name, *args],
            preexec_fn=parent_death_signal(),
            **options,
        )
        self.network.procs.append(proc)
        return proc

    def sysctl(self, key: str, value: str) -> None:
        """Set a (per-namespace) kernel setting, e.g. ``net.ipv4.ip_forward``, through /proc
        (as seen from inside: no ``sysctl`` program needed)."""
        path = "/proc/sys/" + key.replace(".", "/")
        done = self.run(["sh", "-c", 'echo "$1" > "$2"', "sh", value, path])
        if done.returncode != 0:
            raise NetnsError(f"setting {key} in {self.name}: {done.stderr.strip()}")

    def ip(self, *args: str) -> str:
        return ip(*args, namespace=self.name)


@dataclass
class End:
    """One end of a veth link: its namespace (None: the root one), device and address."""

    namespace: Namespace | None
    device: str
    address: str

    @property
    def ns_name(self) -> str | None:
        return self.namespace.name if self.namespace else None


@dataclass
class Link:
    """A veth pair with a /30 of the network's /24: ``left`` has .1, ``right`` .2."""

    left: End
    right: End

    def set_up(self, up: bool) -> None:
        """Bring the link up, or down (``False``): a cable pulled, both ends lose carrier."""
        end = self.left
        ip("link", "set", end.device, "up" if up else "down", namespace=end.ns_name)

    def shape(self, rate: str, burst: str = "32kb", latency: str = "50ms") -> None:
        """Limit both directions to ``rate`` (``tc qdisc tbf``, e.g. ``"100mbit"``)."""
        for end in (self.left, self.right):
            ip_tc = ["tc", "qdisc", "replace", "dev", end.device, "root", "tbf"]
            ip_tc += ["rate", rate, "burst", burst, "latency", latency]
            command = [IP, "netns", "exec", end.namespace.name, *ip_tc] if end.namespace else ip_tc
            done = subprocess.run(command, capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                raise NetnsError(f"{' '.join(ip_tc)}: {done.stderr.strip()}")


@dataclass
class Network:
    """Namespaces and links made under one unique tag; a context manager that removes them."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: ipaddress.IPv4Network | None = None
    namespaces: list[Namespace] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    root_address: str = ""  # this (root) namespace's address in the network, once routed
    uplinks: dict[str, Link] = field(default_factory=dict)  # host role -> its link to the router

    def __post_init__(self) -> None:
        self._subnets: Iterator[ipaddress.IPv4Network] | None = None

    def __enter__(self) -> Network:
        reason = unavailable()
        if reason:
            raise NetnsError(reason)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespace(self, role: str) -> Namespace:
        """A new namespace named after this network and ``role``, its loopback up."""
        name = f"{PREFIX}-{self.tag}-{role}"
        ip("netns", "add", name)
        made = Namespace(name, self, role)
        self.namespaces.append(made)
        made.ip("link", "set", "lo", "up")
        return made

    def next_subnet(self) -> ipaddress.IPv4Network:
        if self._subnets is None:
            self.subnet = self.subnet or free_subnet()
            self._subnets = self.subnet.subnets(new_prefix=30)
        return next(self._subnets)

    def link(self, left: Namespace | None, right: Namespace | None) -> Link:
        """A veth pair between two namespaces (None: the root one), addressed and up."""
        index = len(self.links)
        # Interface names have 15 characters at most: "lx" + 6 hex + index + side.
        names = (f"lx{self.tag}{index}l", f"lx{self.tag}{index}r")
        hosts = list(self.next_subnet().hosts())
        command = ["link", "add", names[0]]
        command += ["netns", left.name] if left else []
        command += ["type", "veth", "peer", "name", names[1]]
        command += ["netns", right.name] if right else []
        ip(*command)
        made = Link(End(left, names[0], str(hosts[0])), End(right, names[1], str(hosts[1])))
        self.links.append(made)
        for end in (made.left, made.right):
            ip("addr", "add", f"{end.address}/30", "dev", end.device, namespace=end.ns_name)
            ip("link", "set", end.device, "up", namespace=end.ns_name)
        return made

    def routed(self, *roles: str) -> dict[str, Namespace]:
        """Host namespaces ``roles`` behind one router, each reachable from the others and
        from the root namespace; a host's ``address`` is its link's."""
        router = self.namespace("router")
        router.sysctl("net.ipv4.ip_forward", "1")
        uplink = self.link(None, router)
        self.root_address = uplink.left.address
        hosts = {}
        for role in roles:
            host = self.namespace(role)
            link = self.uplinks[role] = self.link(router, host)
            host.address = link.right.address
            host.ip("route", "add", "default", "via", link.left.address)
            hosts[role] = host
        assert self.subnet is not None
        ip("route", "add", str(self.subnet), "via", uplink.right.address)
        return hosts

    def close(self) -> None:
        """End every process started inside, then remove the namespaces and links."""
        for proc in self.procs:
            stop_process(proc)
        for namespace in reversed(self.namespaces):
            for pid in ip("netns", "pids", namespace.name, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)  # whatever a process of ours left there
            ip("netns", "del", namespace.name, check=False)
        for made in self.links:  # a root-side end goes with its peer; this is a safety net
            if made.left.namespace is None:
                ip("link", "del", made.left.device, check=False)
        self.namespaces, self.links, self.procs = [], [], []


class Gateway(Forwarder):
    """A port on this namespace's address in a :class:`Network` that forwards each connection
    to a loopback port: how the hosts reach a server started here on 127.0.0.1 (such as
    ``tests.live.LiveServer``), as if it ran on the router's other side. ``url`` is theirs."""

    def __init__(self, network: Network, port: int) -> None:
        if not network.root_address:
            raise NetnsError("the network has no link to this namespace (see Network.routed)")
        super().__init__([port], host=network.root_address)

    def connect_backend(self) -> socket.socket | None:
        with contextlib.suppress(OSError):
            return socket.create_connection(("127.0.0.1", self.backends[0]), timeout=1)
        return None


@contextlib.contextmanager
def routed_hosts(*roles: str) -> Iterator[tuple[Network, dict[str, Namespace]]]:
    """A :class:`Network` with :meth:`Network.routed` hosts ``roles``, removed afterwards."""
    with Network() as net:
        yield net, net.routed(*roles)
