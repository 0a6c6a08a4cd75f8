"""Serving a broadcast's HLS tier: the playlist and segments behind a signed, expiring URL.

``/broadcasts/<id>/hls/<token>/<file>``: ``token`` is a watch grant for that broadcast
(``rooms.hls``); anything else gets 403, a file the tier does not have 404. No cookie is read,
so the files may be cached by a CDN: the playlist for at most a second, segments and the init
segment for good (their names are never reused within a tier). Behind nginx, segments may be
served from the folder directly after asking ``/broadcasts/hls-auth`` (``deploy/nginx``).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, request, send_file

from lectern.extensions import csrf
from rooms import hls

bp = Blueprint("hls", __name__)
csrf.exempt(bp)  # signed URLs, never cookies

TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4", ".m4s": "video/iso.segment"}
PLAYLIST_CACHE = "public, max-age=1"
SEGMENT_CACHE = "public, max-age=31536000, immutable"
ORIGINAL_URI = re.compile(r"^/broadcasts/(\d+)/hls/([^/?]+)/([^/?]+)$")


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
    response = send_file(path, mimetype=TYPES[suffix], conditional=suffix != ".m3u8")
    response.headers["Cache-Control"] = PLAYLIST_CACHE if suffix == ".m3u8" else SEGMENT_CACHE
    response.headers["Access-Control-Allow-Origin"] = "*"  # players on a CDN's host
    return response


@bp.route("/hls-auth")
def auth() -> Response:
    """nginx's ``auth_request``: 204 when ``X-Original-URI`` is a tier file with a valid grant
    for its broadcast, 403 otherwise."""
    found = ORIGINAL_URI.match(request.headers.get("X-Original-URI", ""))
    if found is None or not hls.FILE_NAME.match(found[3]):
        abort(403)
    if not hls.may_watch(found[2], int(found[1])):
        abort(403)
    return Response(status=204)
