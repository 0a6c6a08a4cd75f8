"""Accounts: sign-in, first administrator, admin pages, invitations' accounts, password reset,
profile, optional sign-up, and the ``flask users`` command."""

from flask import Blueprint

bp = Blueprint("accounts", __name__, cli_group="users")

from accounts import admin, cli, password, routes, setup, signup  # noqa: E402,F401  (registers the routes and commands on bp)
