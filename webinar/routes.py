"""Broadcast pages: list, create, register, approve, invite."""

from __future__ import annotations

from flask import (
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from accounts.roles import Perm
from lectern.access import load_or_404, require
from lectern.extensions import db
from lectern.forms import ScheduleForm, show_start, start_utc
from lectern.timeutil import utcnow
from webinar import bp
from webinar.ahead import asked_ahead
from webinar.calendar import ics
from webinar.forms import AskAheadForm, BroadcastForm, CsvInviteForm, InviteForm
from webinar.invites import import_csv
from webinar.links import issue
from webinar.models import Broadcast, Kind, Mode, Registration, Status, WhipKey
from webinar.notify import send_join_links, send_reminders
from webinar.policy import Action, broadcast_allows, broadcast_role
from webinar.registration import decide, invite, register
from webinar.reminders import remindable
from webinar.room import kick, link_replaced
from webinar.whip import end_key_streams, keys_of, new_key

CSV_MAX_BYTES = 2 * 1024 * 1024

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
                (Broadcast.registration_mode != Mode.INVITE.value)
                & or_(
                    Broadcast.allowed_domain.is_(None),
                    Broadcast.allowed_domain == current_user.email.rpartition("@")[2].lower(),
                ),
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
        broadcast.starts_at = start_utc(form.starts_at)
        broadcast.title = broadcast.title.strip()
        broadcast.description = (broadcast.description or "").strip()
        db.session.add(broadcast)
        db.session.commit()
        flash(_("Broadcast created."), "info")
        return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))
    return render_template("webinar/broadcast_form.html", form=form), 400 if form.errors else 200


@bp.route("/<int:broadcast_id>/schedule", methods=["GET", "POST"])
@login_required
def reschedule(broadcast_id: int) -> Page:
    """Move a broadcast: the form shows its time on the host's wall clock. Registrants are
    not told by e-mail; the next reminder and the calendar file carry the new time."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    form = ScheduleForm(obj=broadcast)
    if form.validate_on_submit():
        broadcast.starts_at = start_utc(form.starts_at)
        broadcast.duration_minutes = form.duration_minutes.data
        db.session.commit()
        flash(_("Broadcast rescheduled."), "info")
        return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))
    if not form.is_submitted():
        show_start(form.starts_at, broadcast.starts_at)
    back = url_for("webinar.detail", broadcast_id=broadcast.id)
    page = render_template("schedule_form.html", form=form, title=broadcast.title, back=back)
    return page, 400 if form.errors else 200


def render_detail(broadcast: Broadcast, status: int = 200, **extra: object) -> Page:
    """The broadcast page, with the host's tools when the user manages it."""
    context: dict[str, object] = {
        "invite_form": InviteForm(formdata=None),
        "csv_form": CsvInviteForm(formdata=None),
        "ask_form": AskAheadForm(formdata=None),
        "asked": asked_ahead(current_user, broadcast),
        "stream_keys": keys_of(broadcast.id),
        "whip_url": url_for("whip.ingest", broadcast_id=broadcast.id, _external=True),
    }
    context.update(extra)
    role = broadcast_role(current_user, broadcast)
    page = render_template(
        "webinar/detail.html",
        broadcast=broadcast,
        role=role,
        manage=broadcast_allows(current_user, broadcast, Action.MANAGE),
        can_register=broadcast_allows(current_user, broadcast, Action.REGISTER),
        can_join=broadcast_allows(current_user, broadcast, Action.JOIN),
        holders=broadcast.kind == Kind.SHAREHOLDER,
        public_url=url_for("webinar.signup", broadcast_id=broadcast.id, _external=True)
        if is_public(broadcast)
        else None,
        now=utcnow(),
        **context,
    )
    return page, status


@bp.post("/<int:broadcast_id>/stream-keys")
@login_required
def create_stream_key(broadcast_id: int) -> Page:
    """Make a stream key for an encoder (hosts only); the page shows it this once."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    token = new_key(broadcast.id, current_user.id)
    db.session.commit()
    response = make_response(render_detail(broadcast, new_stream_key=token))
    response.headers["Cache-Control"] = "no-store"  # the key is shown once: no cache keeps it
    return response


@bp.post("/<int:broadcast_id>/stream-keys/<int:key_id>/revoke")
@login_required
def revoke_stream_key(broadcast_id: int, key_id: int) -> Page:
    """Revoke a stream key (hosts only): its encoder's stream ends for everyone."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    key = db.session.get(WhipKey, key_id)
    if key is None or key.broadcast_id != broadcast.id:
        abort(404)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    end_key_streams(broadcast.id, key.id)
    flash(_("Stream key revoked."), "info")
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))


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
        _("You are registered.")
        if reg.status == "approved"
        else _("Registration received: the host will review it."),
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
    if verb == "decline" and reg.user_id is not None:
        kick(broadcast.id, reg.user_id, current_user.id)  # out of the live room now, for good
    done = _("%(email)s: approved.") if reg.status == Status.APPROVED else _("%(email)s: declined.")
    flash(done % {"email": reg.email}, "info")
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))


@bp.post("/<int:broadcast_id>/invites")
@login_required
def add_invites(broadcast_id: int) -> Page:
    """Add pasted addresses to the invite list; all or nothing."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    form = InviteForm()
    if broadcast.kind == Kind.SHAREHOLDER:  # holders need their holder id and shares: CSV only
        problem = _("Import the share register as CSV: holders need their ids and shares.")
        return render_detail(broadcast, 400, csv_problem=problem)
    if not form.validate_on_submit():
        return render_detail(broadcast, 400, invite_form=form)
    result = invite(broadcast, form.emails.data)
    if not result.ok:
        return render_detail(broadcast, 400, invite_form=form, invite_result=result)
    added, already = len(result.added), len(result.already)
    flash(
        _("Invited %(added)s; %(already)s already on the list.", added=added, already=already),
        "info",
    )
    if not result.delivered:
        flash(_("The mail server refused the invitations: send the links again later."), "error")
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))


@bp.post("/<int:broadcast_id>/invites/csv")
@login_required
def import_invites(broadcast_id: int) -> Page:
    """Import an invite list from CSV: bad rows reported by line, good rows invited."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    form = CsvInviteForm()
    upload = request.files.get("file")
    data = upload.read(CSV_MAX_BYTES + 1) if upload and upload.filename else b""
    if not data:
        data = (form.text.data or "").encode() if form.validate_on_submit() else b""
    elif not form.validate_on_submit():
        data = b""
    if not data or len(data) > CSV_MAX_BYTES:
        message = _("Choose a CSV file (at most 2 MB) or paste its text.")
        return render_detail(broadcast, 400, csv_form=form, csv_problem=message)
    result = import_csv(broadcast, data)
    delivered = send_join_links((reg, code) for _, reg, code in result.added)
    status = 400 if result.errors and not result.added else 200
    return render_detail(broadcast, status, csv_form=form, csv_result=result, delivered=delivered)


@bp.post("/<int:broadcast_id>/registrations/<int:registration_id>/link/<any(reissue, revoke):verb>")
@login_required
def link_action(broadcast_id: int, registration_id: int, verb: str) -> Page:
    """Send a registrant a new join link (the old one stops working), or revoke theirs."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    reg = db.session.get(Registration, registration_id)
    if reg is None or reg.broadcast_id != broadcast.id:
        abort(404)
    if reg.status == Status.DECLINED:
        flash(_("%(email)s was declined: approve them first.", email=reg.email), "error")
    elif verb == "revoke":
        reg.link_revoked = True
        db.session.commit()
        flash(_("%(email)s: join link revoked.", email=reg.email), "info")
    else:
        code = issue(reg)
        db.session.commit()
        sent = send_join_links([(reg, code)])
        done = (
            _("%(email)s: new join link sent.")
            if sent
            else _("%(email)s: new join link made, but not sent.")
        )
        flash(done % {"email": reg.email}, "info")
    if reg.user_id is not None and reg.status != Status.DECLINED:
        # A session that came in through the old link (an account without a password) is out.
        link_replaced(broadcast.id, reg.user_id, current_user.id)
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id) + "#registrations")


@bp.post("/<int:broadcast_id>/remind")
@login_required
def remind(broadcast_id: int) -> Page:
    """E-mail every approved or invited registrant a reminder with their join link."""
    broadcast = broadcast_for(broadcast_id, Action.MANAGE)
    delivery = send_reminders(remindable(broadcast))[1]
    if delivery.sent:  # only a reminder that went out counts (the automatic one still can)
        broadcast.reminded_at = utcnow()
    db.session.commit()  # links issued for the reminder
    sent = delivery.sent
    flash(
        ngettext(
            "Reminder sent to %(num)s registrant.", "Reminder sent to %(num)s registrants.", sent
        ),
        "info",
    )
    if delivery.failed:
        flash(
            _("The mail server refused: %(emails)s.", emails=", ".join(delivery.failed[:20])),
            "error",
        )
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id))


def is_public(broadcast: Broadcast) -> bool:
    """A public webinar: its page for signing up and its calendar file need no account."""
    return broadcast.kind == Kind.WEBINAR and broadcast.registration_mode != Mode.INVITE


@bp.get("/<int:broadcast_id>/calendar.ics")
def calendar(broadcast_id: int) -> Response:
    """The broadcast as a calendar file (anyone may fetch a public webinar's)."""
    broadcast = load_or_404(Broadcast, broadcast_id)
    if not is_public(broadcast):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        require(broadcast, broadcast_allows, Action.VIEW, Action.VIEW)
    url = url_for("webinar.detail", broadcast_id=broadcast.id, _external=True)
    response = Response(ics(broadcast, url, broadcast.host.name), mimetype="text/calendar")
    response.headers["Content-Disposition"] = f'attachment; filename="broadcast-{broadcast.id}.ics"'
    return response
