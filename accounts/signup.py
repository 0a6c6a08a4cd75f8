"""Optional self sign-up (``SIGNUP_ENABLED``, off by default): an address in one of
``SIGNUP_DOMAINS`` gets a confirmation link; opening it and choosing a password creates a
``SIGNUP_ROLE`` account (student or attendee). The answer never says whether the address
already has an account."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user
from werkzeug.wrappers import Response

from accounts import bp, limits, notify, tokens
from accounts.forms import SetPasswordForm, SignupForm
from accounts.models import Purpose
from accounts.routes import link_refused
from accounts.users import AccountError, create, find
from lectern.extensions import db

Page = str | Response | tuple[str, int]
SIGNUP_ROLES = frozenset({"student", "attendee"})


def enabled() -> None:
    """404 unless sign-up is on (and its role is one that grants nothing)."""
    config = current_app.config
    if not config.get("SIGNUP_ENABLED") or config.get("SIGNUP_ROLE") not in SIGNUP_ROLES:
        abort(404)


def domain_allowed(email: str) -> bool:
    domains = current_app.config.get("SIGNUP_DOMAINS") or []
    return not domains or email.rsplit("@", 1)[1] in domains


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Page:
    """Name and e-mail; a confirmation link is sent unless the address has an account."""
    enabled()
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = SignupForm()
    if not form.validate_on_submit():
        return render_template("auth/signup.html", form=form), 400 if form.errors else 200
    email = form.email.data.strip().lower()
    if not domain_allowed(email):
        form.email.errors = [
            _(
                "Sign-up is open to these domains only: %(d)s.",
                d=", ".join(current_app.config["SIGNUP_DOMAINS"]),
            )
        ]
        return render_template("auth/signup.html", form=form), 400
    if not limits.allow_mail(email):
        flash(_("Too many requests. Wait a while and try again."), "error")
        return render_template("auth/signup.html", form=form), 429
    if find(email) is None:
        name = " ".join(form.name.data.split())
        tokens.retire(Purpose.SIGNUP, email=email)
        _row, token = tokens.issue(Purpose.SIGNUP, email, name=name)
        db.session.commit()
        notify.send_later(notify.signup_mail(email, name, token))
    return render_template("auth/signup_sent.html", email=email)


@bp.route("/signup/<token>", methods=["GET", "POST"])
def signup_confirm(token: str) -> Page:
    """The confirmation link: choose a password; the account is created and signed in."""
    enabled()
    limits.check_token_rate()
    row, problem = tokens.lookup(token, Purpose.SIGNUP)
    if problem or row is None:
        return link_refused(problem or tokens.INVALID)
    form = SetPasswordForm()
    if not form.validate_on_submit():
        page = render_template("auth/signup_confirm.html", form=form, email=row.email)
        return page, 400 if form.errors else 200
    if not tokens.consume(row):
        db.session.rollback()
        return link_refused(tokens.USED)
    try:
        user = create(
            row.email,
            row.name or row.email.split("@")[0],
            current_app.config["SIGNUP_ROLE"],
            form.password.data,
        )
    except AccountError:  # the address got an account meanwhile
        db.session.rollback()
        return link_refused(tokens.USED)
    login_user(user)
    flash(_("Welcome, %(name)s: your account is ready.", name=user.name), "info")
    return redirect(url_for("dashboard.index"))
