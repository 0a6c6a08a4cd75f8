"""Sign-in and sign-out, and the page shown for a link that cannot be used."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from accounts import bp, throttle, tokens
from accounts.forms import LoginForm
from accounts.models import User
from lectern.extensions import db, login
from lectern.i18n import valid_timezone

DUMMY_HASH = generate_password_hash("no account has this password")
NEXT_MAX = 2000  # characters of a ``next`` target
# A cookie with a mark of each account this browser signed in to: see known_browser.
KNOWN_COOKIE = "lectern_known"
KNOWN_MAX = 5
KNOWN_MAX_AGE = 365 * 24 * 3600


@login.user_loader
def load_user(user_id: str) -> User | None:
    """Flask-Login's loader: the signed-in user from the session's id; a deactivated account's
    sessions end with its next request."""
    user = db.session.get(User, int(user_id)) if user_id.isdigit() and len(user_id) < 10 else None
    return user if user is not None and user.active else None


login.login_view = "accounts.login"
login.login_message = _l("Please sign in to continue.")


def safe_next(target: str | None) -> str:
    """Only follow local ``next`` targets, never another site, and none with a control
    character (a line break would end the Location header)."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()
        and len(target) <= NEXT_MAX
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("dashboard.index")


def known_browser(email: str) -> bool:
    """Whether this browser signed in to ``email``'s account before (its cookie holds the
    account's mark): such a browser is spared the per-account wait of accounts.throttle."""
    return browser_mark(email) in request.cookies.get(KNOWN_COOKIE, "").split(".")


def remember_browser(response: Response, email: str) -> Response:
    """Add ``email``'s mark to this browser's list of accounts it signed in to."""
    mark = browser_mark(email)
    marks = [m for m in request.cookies.get(KNOWN_COOKIE, "").split(".") if m and m != mark]
    response.set_cookie(
        KNOWN_COOKIE,
        ".".join([mark, *marks][:KNOWN_MAX]),
        max_age=KNOWN_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response


def browser_mark(email: str) -> str:
    """An HMAC of the address keyed from ``SECRET_KEY``: it cannot be made without the key,
    and the cookie does not show which accounts it names."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"known-browser:" + email.encode(), "sha256").hexdigest()[:24]


@bp.route("/login", methods=["GET", "POST"], endpoint="login")
def login_page() -> str | Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Show the sign-in form and sign in; repeated failures are refused for a while."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("auth/login.html", form=form), status
    email = form.email.data.strip().lower()
    addr = request.remote_addr or "unknown"
    wait = throttle.seconds_locked(email, addr, known=known_browser(email))
    if wait:
        flash(_("Too many failed sign-ins. Try again in %(n)d seconds.", n=wait), "error")
        page = render_template("auth/login.html", form=form)
        return page, 429, {"Retry-After": str(wait)}
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        # Spend the same time as a wrong password, so timing does not reveal who has an account.
        check_password_hash(DUMMY_HASH, form.password.data)
    if user is None or not user.check_password(form.password.data):
        throttle.record_failure(email, addr)
        flash(_("Wrong e-mail or password."), "error")
        return render_template("auth/login.html", form=form), 401
    throttle.clear_failures(email, addr)
    if not user.active:
        flash(_("This account is deactivated. Ask an administrator."), "error")
        return render_template("auth/login.html", form=form), 403
    remember_zone(user, form.tz.data)
    login_user(user)
    return remember_browser(redirect(safe_next(request.args.get("next"))), email)


def remember_zone(user: User, zone: str | None) -> None:
    """Keep the browser's time zone at first sign-in, if the user has none and it is valid."""
    if user.timezone is None and valid_timezone(zone):
        user.timezone = zone
        db.session.commit()


@bp.post("/account/timezone")
@login_required
def browser_zone() -> tuple[str, int]:
    """The browser's time zone, sent once by the pages of a user who has none yet (signed in
    through an invitation, setup or reset link rather than the sign-in form)."""
    zone = request.form.get("tz", "")[:64]
    if not valid_timezone(zone):
        return "", 422
    if current_user.timezone is not None:  # set meanwhile (another tab): nothing to reload
        return "", 200
    remember_zone(current_user, zone)
    return "", 204  # the page reloads to show its times in the zone


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out (a POST with a CSRF token, so another site cannot sign you out)."""
    logout_user()
    flash(_("You are signed out."), "info")
    return redirect(url_for("accounts.login"))


LINK_PROBLEMS = {
    tokens.INVALID: (_l("This link is not valid. Check that it was copied whole."), 404),
    tokens.USED: (_l("This link was already used, or replaced by a newer one."), 410),
    tokens.EXPIRED: (_l("This link has expired. Ask for a new one."), 410),
}


def link_refused(reason: str) -> tuple[str, int]:
    """The page for a link that cannot be used (nothing was written)."""
    message, status = LINK_PROBLEMS[reason]
    return render_template("accounts/link_problem.html", message=message), status
