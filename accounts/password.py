"""Passwords: forgot (an e-mailed link), reset through that link, change (needs the current one),
and the profile (name, time zone, language)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from accounts import bp, limits, notify, tokens
from accounts.forms import ChangePasswordForm, ForgotForm, ProfileForm, SetPasswordForm
from accounts.models import Purpose, User
from accounts.routes import link_refused
from lectern.extensions import db

Page = str | Response | tuple[str, int]


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> Page:
    """Ask for a reset link. The answer is the same page, at the same speed, whether or not an
    account has the address (the e-mail goes out in the background)."""
    form = ForgotForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot.html", form=form), 400 if form.errors else 200
    email = form.email.data.strip().lower()
    if not limits.allow_mail(email):
        flash(_("Too many requests. Wait a while and try again."), "error")
        return render_template("auth/forgot.html", form=form), 429
    user = db.session.scalar(select(User).where(User.email == email))
    if user is not None and user.active:
        tokens.retire(Purpose.RESET, user_id=user.id)
        _row, token = tokens.issue(
            Purpose.RESET, user.email, user_id=user.id, stamp=tokens.password_stamp(user)
        )
        db.session.commit()
        notify.send_later(notify.reset_mail(user, token))
    return render_template("auth/forgot_sent.html", email=email)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Page:
    """Choose a new password through a reset or welcome link; signs in on success. Opening
    the link (GET) changes nothing: mail scanners open links too."""
    limits.check_token_rate()
    row, problem = tokens.lookup(token, Purpose.RESET)
    if problem == tokens.INVALID:
        row, problem = tokens.lookup(token, Purpose.WELCOME)
    if problem or row is None or row.user is None or not row.user.active:
        return link_refused(problem or tokens.INVALID)
    form = SetPasswordForm()
    if not form.validate_on_submit():
        page = render_template("auth/reset.html", form=form, user=row.user)
        return page, 400 if form.errors else 200
    if not tokens.consume(row):
        db.session.rollback()
        return link_refused(tokens.USED)
    user = row.user
    user.set_password(form.password.data)
    tokens.retire(Purpose.RESET, user_id=user.id)
    db.session.commit()
    login_user(user)
    flash(_("Your password is set."), "info")
    return redirect(url_for("dashboard.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Page:
    """Change the password; the current one is asked again. Open reset links stop working."""
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return render_template("accounts/password.html", form=form), 400 if form.errors else 200
    limits.check_user_rate(current_user.id)
    if not current_user.check_password(form.current.data):
        form.current.errors = [_("That is not your current password.")]
        return render_template("accounts/password.html", form=form), 400
    current_user.set_password(form.password.data)
    tokens.retire(Purpose.RESET, user_id=current_user.id)
    db.session.commit()
    flash(_("Your password was changed."), "info")
    return redirect(url_for("accounts.profile"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def profile() -> Page:
    """Display name, time zone and language."""
    user = current_user
    form = ProfileForm(
        data={"name": user.name, "timezone": user.timezone or "", "locale": user.locale or ""}
    )
    if not form.validate_on_submit():
        return render_template("accounts/profile.html", form=form), 400 if form.errors else 200
    limits.check_user_rate(current_user.id)
    current_user.name = " ".join(form.name.data.split())
    current_user.timezone = form.timezone.data or None
    current_user.locale = form.locale.data or None
    db.session.commit()
    flash(_("Your profile was saved."), "info")
    return redirect(url_for("accounts.profile"))
