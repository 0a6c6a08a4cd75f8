"""Starting and restarting the media worker processes of an embedded deployment.

No aiortc here: the web process only spawns ``python -m media.worker`` children and watches them.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)
START_TIMEOUT_S = 20.0
# The folder holding the ``media`` package: ``python -m media.worker`` starts there, whatever
# folder the web app was started from.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = START_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Supervisor:
    """``count`` media workers on fixed loopback ports; a dead one is restarted on its port."""

    def __init__(self, count: int, env: Mapping[str, str], host: str = "127.0.0.1") -> None:
        self.host = host
        self.env = {**os.environ, **env}
        self.ports = [free_port(host) for _ in range(max(1, count))]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(self.ports)
        self.restarts = 0
        self.stopping = False  # set by stop(): a worker it ends must not be restarted

    @property
    def addrs(self) -> list[str]:
        return [f"{self.host}:{port}" for port in self.ports]

    def spawn(self, index: int) -> None:
        port = self.ports[index]
        self.procs[index] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "media.worker",
                "--host",
                self.host,
                "--port",
                str(port),
                "--parent",
                str(os.getpid()),
            ],
            env=self.env,
            cwd=PACKAGE_ROOT,
        )
        if not wait_for_port(self.host, port):
            log.error("media worker on port %d did not start", port)

    def start(self) -> list[str]:
        for index in range(len(self.ports)):
            self.spawn(index)
        return self.addrs

    def check(self) -> list[str]:
        """Restart workers that exited; returns the addresses that were restarted."""
        restarted: list[str] = []
        if self.stopping:
            return restarted
        for index, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is not None:
                log.warning(
                    "media worker %s exited (%s); restarting", self.addrs[index], proc.returncode
                )
                self.restarts += 1
                self.spawn(index)
                restarted.append(self.addrs[index])
        return restarted

    def terminate(self) -> None:
        """Ask every worker to stop, without waiting (safe in a signal handler)."""
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()

    def stop(self) -> None:
        self.stopping = True
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
