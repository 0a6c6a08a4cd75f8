"""Coming in from outside: personal join links, public sign-up for webinars, and questions sent
ahead of the start."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from accounts.emails import normalize_email
from accounts.models import NAME_MAX, User
from lectern.extensions import db
from lectern.timeutil import utcnow
from rooms.ratelimit import RATES, Limiter, Rate
from webinar import bp
from webinar.ahead import submit_ahead
from webinar.forms import AskAheadForm, ContinueForm, SignupForm, VerifyForm
from webinar.links import (
    GRACE,
    Checked,
    bind_device,
    check,
    cookie_name,
    device_matches,
    needs_verification,
    parse,
    remember,
    verify_holder,
)
from webinar.models import Broadcast, Kind, Mode, Registration
from webinar.policy import Action, broadcast_allows
from webinar.registration import confirm

Page = str | Response | tuple[str, int]

# Per web worker. Tokens that are not ours ("guess") and sign-ups count per client address
# (behind a proxy, set PROXY_HOPS so that is the visitor's, not the proxy's); a real link counts
# per registration, so a whole audience behind one address is not throttled as one.
visitors = Limiter(
    {
        "guess": Rate(burst=20, per_second=0.5),
        "link": Rate(burst=20, per_second=0.5),
        "signup": Rate(burst=5, per_second=0.05),
    }
)
# Questions sent ahead, per user: the same rate as questions in the live room.
askers = Limiter({"question": RATES["question"]})


IN_USE = _l(
    "This join link is already in use on another device. Use that device, "
    "or ask the host to send you a new link."
)


def client_key() -> int:
    return hash(request.remote_addr or "?")


def refuse(message: object, status: int) -> tuple[str, int]:
    return render_template("webinar/link_problem.html", message=str(message)), status


def account_problem(reg: Registration) -> str | None:
    """Why this link cannot sign in here, or None: it signs in the registrant's own account
    (created on first use when they have none), never anyone else's."""
    user = reg.user or db.session.scalar(select(User).where(User.email == reg.email))
    if current_user.is_authenticated:
        if user is None or user.id != current_user.id:
            return _(
                "This join link was sent to someone else. If you share this computer, "
                "sign out first and open the link again."
            )
    elif user is not None and user.role != "attendee":
        # A link signs in only audience accounts; staff accounts sign in with their password.
        return _("Sign in as %(email)s first, then open this link again.", email=reg.email)
    return None


def account_for(reg: Registration) -> User:
    """The registrant's account, created (as an attendee without a password) if they have none."""
    user = reg.user or db.session.scalar(select(User).where(User.email == reg.email))
    if user is None:
        name = reg.name or reg.email.partition("@")[0]
        user = User(email=reg.email, name=name[:NAME_MAX], role="attendee")
        db.session.add(user)
        db.session.flush()
    return user


def enter_room(reg: Registration, device_secret: str | None = None) -> Response:
    """Sign the registrant in and send them to the live room (setting the device cookie if new)."""
    user = account_for(reg)
    reg.user_id = user.id
    db.session.commit()
    remember(reg)
    if not current_user.is_authenticated:
        login_user(user)
    response = redirect(url_for("rooms.room_page", kind="broadcast", ref_id=reg.broadcast_id))
    if device_secret is not None:
        expires = reg.broadcast.ends_at + GRACE
        response.set_cookie(
            cookie_name(reg),
            device_secret,
            max_age=max(60, int((expires - utcnow()).total_seconds())),
            path=url_for("webinar.join_link", token="x").rsplit("/", 1)[0],
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )
    return response


@bp.route("/join/<token>", methods=["GET", "POST"])
def join_link(token: str) -> Page:
    """A personal join link: confirm (and verify a holder) on first use, then into the room."""
    parsed = parse(token)
    allowed = visitors.allow(parsed[0], "link") if parsed else visitors.allow(client_key(), "guess")
    if not allowed:
        return refuse(_("Too many attempts: wait a minute and retry."), 429)
    checked: Checked = check(token)
    reg = checked.registration
    if reg is None:
        return refuse(checked.problem or "", checked.status)
    if reg.device_hash is not None:
        if not device_matches(reg, request.cookies.get(cookie_name(reg))):
            return refuse(IN_USE, 409)
        problem = account_problem(reg)
        return refuse(problem, 403) if problem else enter_room(reg)
    return first_use(token, reg)


def first_use(token: str, reg: Registration) -> Page:
    """The link's first use: a confirmation (POST only: mail scanners fetch links with GET)."""
    verify = needs_verification(reg.broadcast)
    form = VerifyForm() if verify else ContinueForm()
    context = {"reg": reg, "broadcast": reg.broadcast, "form": form, "token": token}
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("webinar/join.html", **context), status
    problem = account_problem(reg)
    if problem:
        return refuse(problem, 403)
    if isinstance(form, VerifyForm):
        problem = verify_holder(reg, form.holder_id.data or "", form.code.data or "")
        if problem is not None:
            db.session.commit()  # the failed attempt counts towards locking the link
            status = 410 if reg.link_revoked else 400
            return render_template("webinar/join.html", problem=problem, **context), status
    secret = bind_device(reg)
    if secret is None:
        db.session.rollback()
        return refuse(IN_USE, 409)
    return enter_room(reg, secret)


@bp.route("/<int:broadcast_id>/signup", methods=["GET", "POST"])
def signup(broadcast_id: int) -> Page:
    """A public webinar's registration form, for people without an account."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    if (
        broadcast is None
        or broadcast.kind != Kind.WEBINAR
        or broadcast.registration_mode == Mode.INVITE
    ):
        abort(404)
    form = SignupForm()
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("webinar/signup.html", broadcast=broadcast, form=form), status
    if not visitors.allow(client_key(), "signup"):
        return refuse(_("Too many sign-ups from your network: wait a few minutes."), 429)
    email = normalize_email(form.email.data or "")
    if email is None:
        form.email.errors = [_("Enter a valid e-mail address.")]
        return render_template("webinar/signup.html", broadcast=broadcast, form=form), 400
    signup_registration(broadcast, email, (form.name.data or "").strip())
    # The same answer whether or not the address was known: nobody learns who registered.
    return render_template("webinar/signup.html", broadcast=broadcast, sent_to=email)


def signup_registration(broadcast: Broadcast, email: str, name: str) -> None:
    """Register ``email`` (once) and mail the link, or a receipt while approval is pending."""
    reg = db.session.scalar(
        select(Registration).where(
            Registration.broadcast_id == broadcast.id, Registration.email == email
        )
    )
    if reg is not None:
        if reg.status != "declined":
            confirm(reg)  # sent again: the person may have lost the e-mail
        return
    reg = Registration(broadcast_id=broadcast.id, email=email, name=name)
    reg.broadcast = broadcast
    reg.status = "pending" if broadcast.registration_mode == Mode.APPROVAL else "approved"
    db.session.add(reg)
    db.session.flush()
    confirm(reg)


@bp.post("/<int:broadcast_id>/questions")
@login_required
def ask_ahead(broadcast_id: int) -> Page:
    """Send a question before (or during) the broadcast; it waits in the moderation queue."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None or not broadcast_allows(current_user, broadcast, Action.VIEW):
        abort(404)
    if not broadcast_allows(current_user, broadcast, Action.JOIN):
        abort(403)
    form = AskAheadForm()
    if broadcast.ends_at <= utcnow():
        flash(_("This broadcast is over: questions are closed."), "error")
    elif not askers.allow(current_user.id, "question"):
        flash(_("You are sending questions too fast: wait a little and send it again."), "error")
    elif not form.validate_on_submit():
        flash("; ".join(e for errors in form.errors.values() for e in errors), "error")
    else:
        problem = submit_ahead(current_user, broadcast, form.text.data or "", form.anonymous.data)
        flash(problem or _("Question sent: the host will see it in the moderation queue."), "info")
    return redirect(url_for("webinar.detail", broadcast_id=broadcast.id) + "#ask-ahead")
