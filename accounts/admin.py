"""Admin pages (site role with MANAGE_USERS): list and search users, create one (they get a
'set your password' e-mail), change a role, deactivate, reactivate, send a password reset."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response

from accounts import bp, limits, notify, tokens, users
from accounts.forms import NewUserForm, RoleForm
from accounts.models import Purpose, User
from accounts.roles import ROLES, Perm
from lectern.extensions import db

Page = str | Response | tuple[str, int]
PER_PAGE = 50
QUERY_MAX = 100
ID_MAX = 2**31 - 1  # the database's integer: larger ids exist nowhere


def admin_only(view: Callable[..., Page]) -> Callable[..., Page]:
    """Signed in, with MANAGE_USERS (else 403), and within the per-user rate."""

    @wraps(view)
    @login_required
    def guarded(*args: Any, **kwargs: Any) -> Page:
        if not current_user.can(Perm.MANAGE_USERS):
            abort(403)
        limits.check_user_rate(current_user.id)
        return view(*args, **kwargs)

    return guarded


def target(user_id: int) -> User:
    """The user acted on, or 404."""
    user = db.session.get(User, user_id) if 0 < user_id <= ID_MAX else None
    if user is None:
        abort(404)
    return user


def search(q: str, page: int) -> tuple[list[User], int]:
    """One page of users whose e-mail or name contains ``q``, and the number of pages."""
    query = select(User)
    if q:
        pattern = (
            "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(
            or_(
                User.email.like(pattern, escape="\\"),
                func.lower(User.name).like(pattern, escape="\\"),
            )
        )
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    found = db.session.scalars(
        query.order_by(User.email).limit(PER_PAGE).offset((min(page, pages) - 1) * PER_PAGE)
    )
    return list(found), pages


@bp.get("/admin/users")
@admin_only
def admin_users() -> Page:
    q = request.args.get("q", "").strip()[:QUERY_MAX]
    page = request.args.get("page", 1, type=int)
    if not 1 <= page <= 100_000:
        abort(400)
    found, pages = search(q, page)
    return render_list(found, q, min(page, pages), pages)


def render_list(found: list[User], q: str, page: int, pages: int) -> str:
    return render_template(
        "admin/users.html", users=found, q=q, page=page, pages=pages, roles=ROLES
    )


@bp.route("/admin/users/new", methods=["GET", "POST"])
@admin_only
def admin_new_user() -> Page:
    form = NewUserForm()
    if not form.validate_on_submit():
        return render_template("admin/new_user.html", form=form), 400 if form.errors else 200
    try:
        user = users.create(form.email.data, form.name.data, form.role.data)
    except users.AccountError as error:
        form.email.errors = [str(error)]
        return render_template("admin/new_user.html", form=form), 400
    _row, token = tokens.issue(
        Purpose.WELCOME, user.email, user_id=user.id, created_by=current_user.id
    )
    db.session.commit()
    sent = notify.send_now(notify.welcome_mail(user, token))
    if sent:
        flash(
            _("%(email)s was created and e-mailed a link to set a password.", email=user.email),
            "info",
        )
    else:
        flash(
            _("%(email)s was created, but the e-mail could not be sent.", email=user.email), "error"
        )
    return redirect(url_for("accounts.admin_users", q=user.email))


def back(user: User) -> Response:
    return redirect(url_for("accounts.admin_users", q=user.email))


def refused(user: User, message: str) -> tuple[str, int]:
    """The list, found to ``user``, with why the change was refused (nothing was written)."""
    flash(message, "error")
    found, pages = search(user.email, 1)
    page = render_list(found, user.email, 1, pages)
    return page, 409


@bp.post("/admin/users/<int:user_id>/role")
@admin_only
def admin_set_role(user_id: int) -> Page:
    user = target(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        users.set_role(user, form.role.data)
    except users.AccountError as error:
        return refused(user, str(error))
    flash(_("%(email)s is now %(role)s.", email=user.email, role=user.role), "info")
    return back(user)


@bp.post("/admin/users/<int:user_id>/deactivate")
@admin_only
def admin_deactivate(user_id: int) -> Page:
    user = target(user_id)
    try:
        users.deactivate(user)
    except users.AccountError as error:
        return refused(user, str(error))
    flash(_("%(email)s is deactivated and was disconnected.", email=user.email), "info")
    return back(user)


@bp.post("/admin/users/<int:user_id>/reactivate")
@admin_only
def admin_reactivate(user_id: int) -> Page:
    user = target(user_id)
    users.reactivate(user)
    flash(_("%(email)s can sign in again.", email=user.email), "info")
    return back(user)


@bp.post("/admin/users/<int:user_id>/reset")
@admin_only
def admin_send_reset(user_id: int) -> Page:
    """E-mail a password link: a welcome link while the account has no password, else a reset."""
    user = target(user_id)
    if not user.active:
        return refused(user, _("%(email)s is deactivated.", email=user.email))
    if user.password_hash is None:
        tokens.retire(Purpose.WELCOME, user_id=user.id)
        _row, token = tokens.issue(
            Purpose.WELCOME, user.email, user_id=user.id, created_by=current_user.id
        )
        mail = notify.welcome_mail(user, token)
    else:
        tokens.retire(Purpose.RESET, user_id=user.id)
        _row, token = tokens.issue(
            Purpose.RESET,
            user.email,
            user_id=user.id,
            created_by=current_user.id,
            stamp=tokens.password_stamp(user),
        )
        mail = notify.reset_mail(user, token)
    db.session.commit()
    if notify.send_now(mail):
        flash(_("A password link was e-mailed to %(email)s.", email=user.email), "info")
    else:
        flash(_("The e-mail to %(email)s could not be sent.", email=user.email), "error")
    return back(user)
