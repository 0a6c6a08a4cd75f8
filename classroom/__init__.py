"""Classroom: courses, enrolment and lessons taught by an instructor to students."""

from flask import Blueprint

bp = Blueprint("classroom", __name__)

from classroom import routes  # noqa: E402,F401  (registers the routes on bp)
