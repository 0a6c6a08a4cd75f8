"""The first administrator: while no active admin exists, each start prints a new single-use
link (older ones stop working) whose page creates one."""

from __future__ import annotations

from flask import Flask, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import login_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from accounts import bp, limits, tokens
from accounts.forms import FirstAdminForm
from accounts.models import Purpose, User
from accounts.roles import ADMIN
from accounts.routes import link_refused
from accounts.users import AccountError, create
from lectern.extensions import db
from lectern.mail import external_url

SETUP_EMAIL = "setup@localhost"  # where the link "was sent": the console


def admin_exists() -> bool:
    return db.session.scalar(select(User.id).where(User.role == ADMIN, User.active)) is not None


def first_admin_link(app: Flask) -> str | None:
    """A new setup link when the site has no active administrator, else None."""
    with app.app_context():
        if admin_exists():
            return None
        tokens.retire(Purpose.SETUP)
        _row, token = tokens.issue(Purpose.SETUP, SETUP_EMAIL)
        db.session.commit()
        url = external_url("accounts.setup", token=token)
        db.session.remove()
        return url


@bp.route("/setup/<token>", methods=["GET", "POST"])
def setup(token: str) -> str | Response | tuple[str, int]:
    """Create the first administrator (name, e-mail, password) and sign them in."""
    limits.check_token_rate()
    row, problem = tokens.lookup(token, Purpose.SETUP)
    if problem is None and admin_exists():
        problem = tokens.USED
    if problem or row is None:
        return link_refused(problem or tokens.INVALID)
    form = FirstAdminForm()
    if not form.validate_on_submit():
        return render_template("auth/setup.html", form=form), 400 if form.errors else 200
    if not tokens.consume(row):
        db.session.rollback()
        return link_refused(tokens.USED)
    try:
        user = create(form.email.data, form.name.data, ADMIN, form.password.data)
    except AccountError as error:
        db.session.rollback()  # the link stays usable
        form.email.errors = [str(error)]
        return render_template("auth/setup.html", form=form), 400
    login_user(user)
    flash(_("Welcome, %(name)s: you are the administrator.", name=user.name), "info")
    return redirect(url_for("accounts.admin_users"))
