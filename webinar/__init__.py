"""Webinar: all-hands meetings, shareholder meetings and public webinars run by a host."""

from flask import Blueprint

bp = Blueprint("webinar", __name__)

from webinar import joining, reports, routes  # noqa: E402,F401  (registers the routes on bp)
