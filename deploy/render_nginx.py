"""Fill in deploy/nginx/lectern.conf for your web workers.

    python deploy/render_nginx.py --web 127.0.0.1:8001 --web 127.0.0.1:8002 \\
        --server-name lectern.example.org \\
        --certificate /etc/letsencrypt/live/lectern.example.org/fullchain.pem \\
        --certificate-key /etc/letsencrypt/live/lectern.example.org/privkey.pem \\
        > /etc/nginx/sites-available/lectern

prints the site file (it goes inside nginx's ``http { }``). With ``--prefix DIR`` it writes a
whole nginx configuration instead, ``DIR/nginx.conf``, with its pid file, logs and temporary
files under ``DIR``, so that nginx runs without root and without touching the system's nginx:
``nginx -p DIR -c DIR/nginx.conf`` (the deployment test and ``bench/signaling.py --nginx`` run
it that way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "lectern.conf"

# The whole configuration around the site, for --prefix: nginx by itself, as any user.
MAIN = """\
# Written by deploy/render_nginx.py: nginx -p {prefix} -c {prefix}/nginx.conf
worker_processes {workers};
worker_rlimit_nofile {files};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections {connections};
}}
http {{
    include {mime_types};
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
{site}
}}
"""


def upstream_servers(web: list[str]) -> str:
    """One ``server`` line per web worker: a worker that fails is left out for 5 s."""
    return "\n".join(f"    server {addr} max_fails=1 fail_timeout=5s;" for addr in web)


def https_listen(addresses: list[str]) -> str:
    """One ``listen`` line per address (``443``, ``[::]:443``, ``127.0.0.1:8443``)."""
    return "\n".join(f"    listen {address} ssl http2;" for address in addresses)


def http_redirect(port: int, server_name: str) -> str:
    """A plain-HTTP server that sends everyone to HTTPS (none when ``port`` is 0)."""
    if not port:
        return ""
    return (
        "server {\n"
        f"    listen {port};\n"
        f"    server_name {server_name};\n"
        "    return 301 https://$host$request_uri;\n"
        "}\n"
    )


def render_site(args: argparse.Namespace) -> str:
    """The site file with every ``@NAME@`` filled in."""
    values = {
        "UPSTREAM_SERVERS": upstream_servers(args.web),
        "HTTP_REDIRECT": http_redirect(args.http_port, args.server_name),
        "HTTPS_LISTEN": https_listen(args.listen or ["443"]),
        "SERVER_NAME": args.server_name,
        "TLS_CERTIFICATE": args.certificate,
        "TLS_CERTIFICATE_KEY": args.certificate_key,
        "DATA_DIR": args.data_dir.rstrip("/") or "/",
        "CACHE_DIR": args.cache_dir or (f"{args.prefix}/cache" if args.prefix else ""),
        "ACCESS_LOG": args.access_log or (f"{args.prefix}/access.log" if args.prefix else ""),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        if not value and name != "HTTP_REDIRECT":
            raise SystemExit(f"render_nginx: no value for @{name}@")
        text = text.replace(f"@{name}@", value)
    return text


def render_main(args: argparse.Namespace, site: str) -> str:
    """A whole nginx configuration with the site inside, everything under ``--prefix``."""
    indented = "\n".join(f"    {line}" if line else "" for line in site.splitlines())
    return MAIN.format(
        prefix=args.prefix,
        workers=args.nginx_workers,
        connections=args.connections,
        files=args.connections * 2 + 64,
        mime_types=args.mime_types,
        site=indented,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write Lectern's nginx site for your workers.")
    parser.add_argument(
        "--web", action="append", required=True, help="a web worker's HOST:PORT (repeat)"
    )
    parser.add_argument("--server-name", default="_", help="the public host name")
    parser.add_argument(
        "--listen", action="append", help="HTTPS listen address (443; repeat: [::]:443)"
    )
    parser.add_argument(
        "--http-port", type=int, default=80, help="plain HTTP port that redirects (0: none)"
    )
    parser.add_argument(
        "--data-dir", default="/var/lib/lectern", help="the app's DATA_DIR (HLS files come from it)"
    )
    parser.add_argument(
        "--cache-dir",
        default="",
        help="nginx's cache of HLS playlists and grants (default: /var/cache/nginx/lectern)",
    )
    parser.add_argument("--certificate", required=True, help="TLS certificate chain (PEM)")
    parser.add_argument("--certificate-key", required=True, help="its private key (PEM)")
    parser.add_argument(
        "--access-log", default="", help="default: /var/log/nginx/lectern.access.log"
    )
    parser.add_argument("--prefix", default="", help="write a whole nginx.conf here (see above)")
    parser.add_argument("--nginx-workers", default="auto", help="with --prefix (auto)")
    parser.add_argument(
        "--connections", type=int, default=4096, help="with --prefix: per nginx worker"
    )
    parser.add_argument("--mime-types", default="/etc/nginx/mime.types", help="with --prefix")
    args = parser.parse_args(argv)
    if not args.prefix and not args.access_log:
        args.access_log = "/var/log/nginx/lectern.access.log"
    if not args.prefix and not args.cache_dir:
        args.cache_dir = "/var/cache/nginx/lectern"
    if args.prefix:
        args.prefix = str(Path(args.prefix).resolve())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    site = render_site(args)
    if not args.prefix:
        sys.stdout.write(site)
        return 0
    prefix = Path(args.prefix)
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(render_main(args, site))
    print(prefix / "nginx.conf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
