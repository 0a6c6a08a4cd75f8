"""Broadcast pages: list, create, register, approve, invite."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from accounts.roles import Perm
from lectern.access import load_or_404, require
from lectern.extensions import db
from webinar import bp
from webinar.forms import BroadcastForm, InviteForm
from webinar.models import Broadcast, Mode, Registration
from webinar.policy import Action, broadcast_allows, broadcast_role
from webinar.registration import decide, invite, register

Page = str | Response | tuple[str, int]


def broadcast_for(broadcast_id: int, action: Action) -> Broadcast:
    """The broadcast, if the current user may ``action`` it (404 if invisible, else 403)."""
    return require(load_or_404(Broadcast, broadcast_id), broadcast_allows, action, Action.VIEW)


def visible_broadcasts() -> list[Broadcast]:
    """Broadcasts the user hosts, is registered or invited for, or may register for."""
    query = select(Broadcast).order_by(Broadcast.starts_at)
    if current_user.role != "admin":
        mine = select(Registration.broadcast_id).where(
            or_(Registration.user_id == current_user.id, Registration.email == current_user.email)
        )
        query = query.where(
            or_(
                Broadcast.host_id == current_user.id,
                Broadcast.id.in_(mine),
                Broadcast.registration_mode != Mode.INVITE.value,
            )
        )
    return list(db.session.scalars(query))


@bp.get("/")
@login_required
def index() -> Page:
    """Broadcasts the user hosts or may attend."""
    return render_template(
        "webinar/index.html",
        broadcasts=visible_broadcasts(),
        can_create=current_user.can(Perm.CREATE_BROADCAST),
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required
def create() -> Page:
    """Create a broadcast (hosts only)."""
    if not current_user.can(Perm.CREATE_BROADCAST):
        abort(403)
    form = BroadcastForm()
    if form.validate_on_submit():
        broadcast = Broadcast(host_id=current_user.id)
        form.populate_obj(broadcast)
        broadcast.title = broadcast.title.strip()
        broadcast.description = (broadcast.description or "").strip()
        db.session.add(broadcast)
        db.session.commit()
        flash("Broadcast created.", "info")
        return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))
    return render_template("webinar/broadcast_form.html", form=form), 400 if form.errors else 200


def render_detail(broadcast: Broadcast, status: int = 200, **extra: object) -> Page:
    """The broadcast page, with the host's tools when the user manages it."""
    context: dict[str, object] = {"invite_form": InviteForm(formdata=None)}
    context.update(extra)
    role = broadcast_role(current_user, broadcast)
    page = render_template(
        "webinar/detail.html",
        broadcast=broadcast,
        role=role,
        manage=broadcast_allows(current_user, broadcast, Action.MANAGE),
        can_register=broadcast_allows(current_user, broadcast, Action.REGISTER),
        can_join=broadcast_allows(current_user, broadcast, Action.JOIN),
        **context,
    )
    return page, status


@bp.get("/<int:broadcast_id>")
@login_required
def detail(broadcast_id: int) -> Page:
    """A broadcast's page."""
    return render_detail(broadcast_for(broadcast_id, Action.VIEW))


@bp.post("/<int:broadcast_id>/register")
@login_required
def register_self(broadcast_id: int) -> Page:
    """Register the current user (or accept their invitation)."""
    broadcast = broadcast_for(broadcast_id, Action.REGISTER)
    reg = register(current_user, broadcast)
    flash(
        "You are registered."
        if reg.status == "approved"
        else "Registration received: the host will review it.",
        "info",
    )
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))


@bp.post("/<int:broadcast_id>/registrations/<int:registration_id>/<any(approve, decline):verb>")
@login_required
def decide_registration(broadcast_id: int, registration_id: int, verb: str) -> Page:
    """Approve or decline a registration (host only)."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    reg = decide(broadcast, registration_id, approve=verb == "approve")
    if reg is None:
        abort(404)
    flash(f"{reg.email}: {reg.status}.", "info")
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))


@bp.post("/<int:broadcast_id>/invites")
@login_required
def add_invites(broadcast_id: int) -> Page:
    """Add pasted addresses to the invite list; all or nothing."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    form = InviteForm()
    if not form.validate_on_submit():
        return render_detail(broadcast, 400, invite_form=form)
    result = invite(broadcast, form.emails.data)
    if not result.ok:
        return render_detail(broadcast, 400, invite_form=form, invite_result=result)
    flash(f"Invited {len(result.added)}; {len(result.already)} already on the list.", "info")
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))
