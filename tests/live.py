r"""A live Lectern for tests and benchmarks: ``python app.py`` on a free loopback port, and
headless Chromium (Debian's, never a Playwright download) to drive it; around it, what a
deployment has: ``RedisServer`` (a ``redis-server`` of its own), ``Nginx`` (Debian's nginx with
the site of ``deploy/``) and ``Forwarder`` (a bare TCP stand-in for a load balancer).

Tests import it as ``tests.live``; the scripts in ``bench/`` put the repository root on
``sys.path`` (they already do, to reach the app's packages) and import the same module. It
lives here rather than in ``lectern/`` so that the installed app carries no test code and
needs none of the test extra's packages. Only the standard library is imported at the top;
Playwright is imported when a browser is launched.

    with LiveServer(tmp_path / "data", {"DEMO_DATA": "false", "MEDIA_WORKERS": "0"}) as server:
        urllib.request.urlopen(f"{server.url}/login")
        server.wait_for_output(r"setup link: (\S+)")
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    # Three fake cameras: the second sends Y16 (depth) frames, which no video encoder takes;
    # the browser tests switch between the first and the third.
    "--use-fake-device-for-media-stream=device-count=3",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
# Settings of the caller's shell that would point the server somewhere else; a server gets
# only those its starter passes.
FOREIGN_SETTINGS = (
    "HOST",
    "PORT",
    "DATA_DIR",
    "DATABASE_URL",
    "DEMO_DATA",
    "SECRET_KEY",
    "REDIS_URL",
    "SOCKETIO_CHANNEL",
    "MEDIA_WORKERS",
    "MEDIA_WORKER_ADDRS",
    "MEDIA_SECRET",
    "MEDIA_HOST_ADDRESSES",
    "MEDIA_PREFER_H264",
    "MEDIA_CAPACITY",
    "HLS_ENABLED",
    "HLS_URL_LIFETIME_S",
    "ICE_SERVERS",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
    "PUBLIC_URL",
    "PROXY_HOPS",
)


def in_ci() -> bool:
    """CI must run the PostgreSQL, Redis and browser tests rather than skip them."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


STOP_TIMEOUT_S = 5.0


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate ``proc``; kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its output."""


class LiveServer:
    """``python app.py`` on a free loopback port, in a process group of its own (the media
    workers it starts are in it too), its output in ``log``.

    :param data_dir: the ``--data-dir`` folder (created by the app).
    :param env: settings on top of the caller's environment, from which ``FOREIGN_SETTINGS``
        are removed first (a ``None`` value removes one more); unset ``MEDIA_WORKERS`` means
        the app's default (one per core).
    :param log: where stdout and stderr go; beside ``data_dir`` by default (``data.log``).
    :param die_with_parent: SIGTERM the server when the thread that started it dies, however
        it dies (Linux; for scripts that may be killed, such as benchmarks).
    """

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str | None] | None = None,
        log: Path | None = None,
        timeout: float = 60.0,  # generous: a loaded 2-core machine starts Python slowly
        die_with_parent: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log = log or self.data_dir.with_name(f"{self.data_dir.name}.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timeout = timeout
        self.env = {k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS}
        # app.py flushes only its first line; without this the rest waits in a buffer.
        self.env["PYTHONUNBUFFERED"] = "1"
        for name, value in (env or {}).items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LiveServer:
        """Launch the process and wait until it serves; stopped again if it does not."""
        self.launch()
        try:
            self.wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start the process without waiting (to start several at once)."""
        command = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=parent_death_signal() if self.die_with_parent else None,
            )

    def wait_until_serving(self) -> None:
        """Wait until ``/login`` answers 200; raise ``ServerError`` if the process exits or
        does not answer within ``timeout``."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self.check_running()
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # not listening yet
        raise ServerError(f"app.py did not answer within {self.timeout} s:\n{self.tail()}")

    def check_running(self) -> None:
        assert self.proc is not None, "not started"
        if self.proc.poll() is not None:
            raise ServerError(f"app.py exited with {self.proc.returncode}:\n{self.tail()}")

    def output(self) -> str:
        """Everything the server has printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, chars: int = 5000) -> str:
        return self.output()[-chars:]

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first match of ``pattern`` (multiline) in the output, waiting for it to appear."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while not (found := regex.search(self.output())):
            self.check_running()
            if time.monotonic() > deadline:
                missing = f"{pattern!r} not in the output after {timeout} s"
                raise ServerError(f"{missing}:\n{self.tail()}")
            time.sleep(0.1)
        return found

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole group (the server and its media workers), SIGKILL to whatever
        is left after ``timeout``. The server is reaped last, so its group id cannot be reused
        by another process before then."""
        if self.proc is None:
            return
        if self.proc.returncode is not None and not self.group_alive():
            return  # stopped before: its group id may belong to someone else by now
        pgid = self.proc.pid
        signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.group_alive():
            signal_group(pgid, signal.SIGKILL)
        self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL the web process alone, as a crash would, and reap it; its media workers
        notice their parent is gone by themselves. ``stop`` still cleans up after this."""
        assert self.proc is not None, "not started"
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(timeout=10)

    def group_alive(self) -> bool:
        """Whether any process of the server's group still runs (zombies do not count)."""
        assert self.proc is not None
        if not Path("/proc/self/stat").exists():  # not Linux: the server alone is known
            return self.proc.poll() is None
        return bool(group_members(self.proc.pid))


class Forwarder:
    """A loopback TCP port that forwards each connection to the first of ``backends`` that
    accepts it: a stand-in for a load balancer in front of several web workers, so that a
    client whose worker died reconnects to the same address and lands on a live one.

        with Forwarder([worker1.port, worker2.port]) as front:
            sio.connect(front.url, ...)
    """

    def __init__(self, backends: list[int], host: str = "127.0.0.1") -> None:
        self.backends = list(backends)
        self.host = host
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.2)  # the accept loop checks ``closed`` this often
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self.closed = threading.Event()
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, name=f"forwarder-{self.port}", daemon=True).start()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            backend = self.connect_backend()
            if backend is None:
                client.close()  # nobody alive: the client retries, as with a real balancer
                continue
            for one, other in ((client, backend), (backend, client)):
                threading.Thread(target=self.pump, args=(one, other), daemon=True).start()

    def connect_backend(self) -> socket.socket | None:
        for port in self.backends:
            try:
                return socket.create_connection((self.host, port), timeout=1)
            except OSError:
                continue  # refused: that worker is down
        return None

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes one way until either side closes; then close both."""
        with self.lock:
            self.open.update((source, sink))
        source.settimeout(None)
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self.lock:
                self.open.difference_update((source, sink))

    def close(self) -> None:
        """Stop accepting and close every forwarded connection."""
        self.closed.set()
        self.listener.close()
        with self.lock:
            for sock in list(self.open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class RedisServer:
    """``redis-server`` on a free loopback port, with no persistence: killed and restarted on
    the same port, it comes back empty, as a crashed Redis without a snapshot would. Never
    the shared one on 6379."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise ServerError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def self_signed_certificate(folder: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway TLS certificate for ``name`` (an IP address or a host name), valid for a
    day: (certificate, key) PEM files in ``folder``. Browsers trust it only when told to."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class Nginx:
    """Debian's nginx in front of web workers, as deploy/ configures it: the site file filled
    in by ``deploy/render_nginx.py`` (TLS with a self-signed certificate on a free loopback
    port, sticky routing by its route cookie), run by itself with everything under ``prefix``.

        with Nginx(tmp_path / "nginx", [w.port for w in workers]) as front:
            front.url  # https://127.0.0.1:PORT
            front.upstream_of(route)  # which worker a route cookie leads to
    """

    def __init__(
        self,
        prefix: Path,
        backends: list[int],
        connections: int = 4096,
        data_dir: Path | None = None,  # the app's DATA_DIR, where HLS files are served from
    ) -> None:
        self.prefix = Path(prefix).resolve()
        self.data_dir = data_dir
        self.backends = list(backends)
        self.connections = connections
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.certificate: Path | None = None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def start(self) -> Nginx:
        """Write the configuration, start nginx in the foreground and wait for its port."""
        cert, key = self_signed_certificate(self.prefix)
        self.certificate = cert  # clients that verify it: trust this file
        render = [sys.executable, str(ROOT / "deploy" / "render_nginx.py")]
        for port in self.backends:
            render += ["--web", f"127.0.0.1:{port}"]
        render += ["--listen", f"127.0.0.1:{self.port}", "--http-port", "0"]
        render += ["--certificate", str(cert), "--certificate-key", str(key)]
        render += ["--prefix", str(self.prefix), "--nginx-workers", "1"]
        render += ["--connections", str(self.connections)]
        if self.data_dir is not None:
            render += ["--data-dir", str(Path(self.data_dir).resolve())]
        subprocess.run(render, check=True, stdout=subprocess.DEVNULL)
        # In the foreground, so this object owns the master; as root, its workers stay root so
        # they can reach the temporary folders under a private test directory.
        directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        command = ["nginx", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")]
        command += ["-e", str(self.error_log), "-g", directives]
        with (self.prefix / "nginx.out").open("wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"nginx exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"nginx did not listen on {self.port}:\n{self.output()}")

    def output(self) -> str:
        """nginx's own output and error log."""
        parts = [self.prefix / "nginx.out", self.error_log]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def upstream_of(self, route: str) -> int:
        """The web worker's port a request carrying the route cookie ``route`` reaches (one
        request through nginx, read back from its access log)."""
        request = urllib.request.Request(
            f"{self.url}/login?route-probe={route}", headers={"Cookie": f"lectern_route={route}"}
        )
        with urllib.request.urlopen(request, timeout=10, context=insecure_tls()) as response:
            response.read()
        pattern = re.compile(rf"route-probe={re.escape(route)} .* upstream=127\.0\.0\.1:(\d+)")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # nginx writes the line once the response is sent
            text = self.access_log.read_text() if self.access_log.exists() else ""
            if found := pattern.search(text):
                return int(found.group(1))
            time.sleep(0.05)
        raise ServerError(f"no access log line for route {route}")

    def route_to(self, port: int, tries: int = 64) -> str:
        """A route cookie value that nginx sends to the web worker on ``port``."""
        for _ in range(tries):
            route = secrets.token_hex(8)
            if self.upstream_of(route) == port:
                return route
        raise ServerError(f"no route to port {port} in {tries} tries")

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def insecure_tls() -> ssl.SSLContext:
    """A client TLS context that accepts the self-signed certificate of ``Nginx``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in it
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it exited meanwhile
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


@contextlib.contextmanager
def launch_chromium(args: list[str] | None = None, **options: Any) -> Iterator[Any]:
    """Headless Debian Chromium through Playwright's sync API (``CHROMIUM_ARGS`` by default);
    the caller checks ``CHROMIUM.exists()`` first to skip or fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS if args is None else args, **options
        )
        try:
            yield browser
        finally:
            browser.close()
