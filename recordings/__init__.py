"""Recordings: the library, access by membership or share link, the synchronized player and
MP4 exports of a recorded room."""

from flask import Blueprint

bp = Blueprint("recordings", __name__)

from recordings import routes  # noqa: E402,F401  (registers the routes on bp)
