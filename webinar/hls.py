"""Serving a broadcast's HLS tier: the playlist and segments behind a signed, expiring URL.

``/broadcasts/<id>/hls/<token>/<file>``: ``token`` is a watch grant for that broadcast
(``rooms.hls``); anything else gets 403, a file the tier does not have 404. No cookie is read,
so the files may be cached by a CDN or nginx, whatever the token: the playlist for a second, a
blocking reload's answer (which lists the part it asked for: the same for everyone who asks for
it) for ``BLOCKED_CACHE`` (not at all when it is answered without the part, at its deadline),
segments and the init segment for good (their names are never reused within a tier). Behind
nginx (``deploy/nginx``), segments are served from the folder directly after asking
``/broadcasts/hls-auth``, and nginx caches both that answer (per token and broadcast) and the
playlist (per broadcast and query, for everyone), so that one request reaches the app where
many viewers ask the same.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from flask import Blueprint, Response, abort, request, send_file

from lectern.extensions import csrf, socketio
from media.hls import Position, position, reached
from rooms import hls

bp = Blueprint("hls", __name__)
csrf.exempt(bp)  # signed URLs, never cookies

TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4", ".m4s": "video/iso.segment"}
PLAYLIST_CACHE = "public, max-age=1"
BLOCKED_CACHE = "public, max-age=3"  # a blocking reload answered with what it asked for
UNBLOCKED_CACHE = "no-cache"  # one answered at its deadline without it: asked again
SEGMENT_CACHE = "public, max-age=31536000, immutable"
ORIGINAL_URI = re.compile(r"^/broadcasts/(\d+)/hls/([^/?]+)/([^/?]+)$")
DIRECTIVE = re.compile(r"^\d{1,9}$")
POLL_S = 0.05


@bp.route("/<int:broadcast_id>/hls/<token>/<name>")
def tier_file(broadcast_id: int, token: str, name: str) -> Response:
    """One file of the tier, to a holder of a watch grant for the broadcast."""
    if not hls.may_watch(token, broadcast_id):
        abort(403)
    if not hls.FILE_NAME.match(name):
        abort(404)
    path = hls.folder(broadcast_id) / name
    if not path.is_file():
        abort(404)
    suffix = path.suffix
    if suffix == ".m3u8":
        text, cache = playlist(path)
        response = Response(text, mimetype=TYPES[suffix])
    else:
        response = send_file(path, mimetype=TYPES[suffix], conditional=True)
        cache = SEGMENT_CACHE
    response.headers["Cache-Control"] = cache
    response.headers["Access-Control-Allow-Origin"] = "*"  # players on a CDN's host
    return response


def directive(name: str) -> int | None:
    """A blocking reload's ``_HLS_msn`` or ``_HLS_part``: absent, or a number (else 400)."""
    value = request.args.get(name)
    if value is None:
        return None
    if not DIRECTIVE.match(value):
        abort(400)
    return int(value)


# The last playlist read of each tier, by (inode, size, mtime): the packager replaces the file
# for every part, and every held blocking reload looks at it every POLL_S.
read_playlists: dict[Path, tuple[tuple[int, int, int], str, Position]] = {}


def current(path: Path) -> tuple[str, Position]:
    """A tier's playlist and where it stands, read again only once it was replaced."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        abort(404)  # not written yet, or a new tier cleared the folder
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    known = read_playlists.get(path)
    if known is not None and known[0] == key:
        return known[1], known[2]
    text = path.read_text()
    read_playlists[path] = (key, text, position(text))
    return text, read_playlists[path][2]


def playlist(path: Path) -> tuple[str, str]:
    """The playlist's text, once it lists what ``_HLS_msn``/``_HLS_part`` ask for (at once
    without them, for a segment or part already listed, or for a tier that ended), and its
    Cache-Control."""
    msn, part = directive("_HLS_msn"), directive("_HLS_part")
    if part is not None and msn is None:
        abort(400)
    text, where = current(path)
    if msn is None:
        return text, PLAYLIST_CACHE
    if msn > where.part[0] + 2:
        abort(400)
    deadline = time.monotonic() + 3 * max(where.target, 1)
    while not (where.ended or reached(where, msn, part)) and time.monotonic() < deadline:
        socketio.sleep(POLL_S)
        text, where = current(path)
    if where.ended:
        return text, PLAYLIST_CACHE
    return text, BLOCKED_CACHE if reached(where, msn, part) else UNBLOCKED_CACHE


@bp.route("/hls-auth")
def auth() -> Response:
    """nginx's ``auth_request``: 204 when ``X-Original-URI`` is a tier file with a valid grant
    for its broadcast (a query string, as a blocking reload's, aside), 403 otherwise."""
    original = request.headers.get("X-Original-URI", "").split("?", 1)[0]
    found = ORIGINAL_URI.match(original)
    if found is None or not hls.FILE_NAME.match(found[3]):
        abort(403)
    if not hls.may_watch(found[2], int(found[1])):
        abort(403)
    return Response(status=204)
