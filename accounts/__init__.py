"""Accounts: sign-in, sign-out, users and account roles."""

from flask import Blueprint

bp = Blueprint("accounts", __name__)

from accounts import routes  # noqa: E402,F401  (registers the routes on bp)
