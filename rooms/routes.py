"""HTTP side of a live room: the room page, slide uploads, their progress and page images.

Access follows the room: the caller must be a member (else 404, as for any room they cannot
see); uploading needs ``Perm.PRESENT``. A deck that is not being shown is visible only to
presenters, so an upload stays private until it is put on screen. CSRF protection stays on:
the page's script sends the token in the ``X-CSRFToken`` header.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as WerkzeugResponse

from lectern.extensions import db
from lectern.i18n import ROLE_LABELS
from rooms import namespace, session, uploads
from rooms.context import Actor, Refused
from rooms.grants import may_publish
from rooms.models import Room, SlideDeck
from rooms.policy import Perm
from rooms.session import ENDED
from rooms.slides import deck_view
from rooms.state import enter, member_of
from rooms.validate import Reason

bp = Blueprint("rooms", __name__)

PAGE_MAX_AGE = 24 * 3600  # a rendered page never changes: a new upload is a new deck


class ApiError(Reason):
    """A refusal, answered as ``{"ok": false, "error": message}`` with ``status``; the message
    is a msgid with named placeholders, translated when answered."""

    def __init__(self, status: int, message: str, **params: Any) -> None:
        super().__init__(message, **params)
        self.status = status


def refusal(status: int, message: str) -> tuple[Response, int]:
    return jsonify(ok=False, error=message), status


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[Response, int]:
    return refusal(error.status, error.translated())


@bp.errorhandler(CSRFError)
def csrf_error(error: CSRFError) -> tuple[Response, int]:
    return refusal(400, _("the security token is missing or expired: reload the page"))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
    return refusal(413, _("the file is too large"))


def member(kind: str, ref_id: int) -> tuple[Actor, Room]:
    """The signed-in caller's place in room ``kind:ref_id``; 404 unless they are a member."""
    if not current_user.is_authenticated:
        raise ApiError(401, "sign in first")
    try:
        return enter(current_user, f"{kind}:{ref_id}")
    except Refused:
        raise ApiError(404, "no such room") from None


def visible_deck(actor: Actor, room: Room, deck_id: int) -> SlideDeck:
    """A deck of this room that the caller may see: presenters see all, others the one shown."""
    deck = db.session.get(SlideDeck, deck_id)
    if deck is None or deck.room_id != room.id:
        raise ApiError(404, "no such slide deck")
    if not (actor.may(Perm.PRESENT) or room.deck_id == deck.id):
        raise ApiError(404, "no such slide deck")
    return deck


bp.add_app_template_global(session.session_of, "session_of")
bp.add_app_template_global(session.states_of, "session_states")


def ended_page(kind: str, ref_id: int, problem: str = "", status: int = 410) -> tuple[str, int]:
    """The page a member sees instead of a room whose session was ended for everyone."""
    room = session.room_of(kind, ref_id)
    actor = member_of(current_user, room) if room is not None else None
    if actor is None:
        abort(404)
    page = render_template(
        "room_ended.html",
        kind=kind,
        ref_id=ref_id,
        title=actor.title,
        sess=session.session_of(kind, ref_id),
        presenter=actor.may(Perm.END),
        problem=problem,
    )
    return page, status


@bp.get("/<kind>/<int:ref_id>")
@login_required
def room_page(kind: str, ref_id: int) -> str | tuple[str, int]:
    """The live room page; its script connects to ``/room`` and fetches the state itself."""
    try:
        actor, room = enter(current_user, f"{kind}:{ref_id}")
    except Refused as refusal:
        if str(refusal) == ENDED:
            return ended_page(kind, ref_id)
        abort(404)
    return render_template(
        "room.html",
        actor=actor,
        room=room,
        permissions=" ".join(sorted(actor.perms)),
        can_publish=may_publish(actor),
        csrf=generate_csrf(),
        start_url=url_for("rooms.start", kind=kind, ref_id=ref_id),
    )


@bp.post("/<kind>/<int:ref_id>/start")
@login_required
def start(kind: str, ref_id: int) -> WerkzeugResponse | tuple[str, int]:
    """A presenter starts a session ended for everyone again (a form on the ended pages)."""
    room = session.room_of(kind, ref_id)
    actor = member_of(current_user, room) if room is not None else None
    window = session.window(kind, ref_id)
    if room is None or actor is None or window is None:
        abort(404)
    if not actor.may(Perm.END):
        abort(403)
    if not namespace.limiter.allow(actor.user_id, "default"):
        return ended_page(kind, ref_id, _("Too many requests: wait a moment and try again."), 429)
    try:
        session.start_again(room, actor, window[1])
    except Refused:
        db.session.rollback()
        over = _("Its scheduled time is over: schedule a new session.")
        return ended_page(kind, ref_id, over, 409)
    return redirect(url_for("rooms.room_page", kind=kind, ref_id=ref_id))


@bp.post("/<kind>/<int:ref_id>/slides")
def upload(kind: str, ref_id: int) -> tuple[Response, int]:
    """Upload a PDF (multipart field ``file``); its pages are rendered in the background."""
    actor, _ = member(kind, ref_id)
    if not actor.may(Perm.PRESENT):
        role = ROLE_LABELS.get(actor.role, actor.role)
        raise ApiError(403, "your role (%(role)s) may not upload slides", role=role)
    file = request.files.get("file")
    if file is None or not file.filename:
        raise ApiError(400, "choose a PDF file to upload")
    try:
        deck = uploads.store(actor, file)
    except uploads.UploadError as error:
        raise ApiError(error.status, error.message, **error.params) from None
    view = deck_view(deck)  # as stored, before the renderer can change it
    uploads.start_render(current_app._get_current_object(), deck.id)  # type: ignore[attr-defined]
    return jsonify(ok=True, deck=view), 201


@bp.get("/<kind>/<int:ref_id>/slides/<int:deck_id>")
def status(kind: str, ref_id: int, deck_id: int) -> Response:
    """The deck's rendering progress (the progress bar's fallback when the socket is down)."""
    actor, room = member(kind, ref_id)
    return jsonify(ok=True, deck=deck_view(visible_deck(actor, room, deck_id)))


@bp.get("/<kind>/<int:ref_id>/slides/<int:deck_id>/<int:page>.png")
def page_image(kind: str, ref_id: int, deck_id: int, page: int) -> Response:
    """One rendered page; browsers may keep it, but only for this user (private)."""
    actor, room = member(kind, ref_id)
    deck = visible_deck(actor, room, deck_id)
    path = uploads.page_path(deck.id, page)
    if not 1 <= page <= deck.rendered or not path.is_file():
        raise ApiError(404, "that page is not available")
    response = send_file(path, mimetype="image/png", max_age=PAGE_MAX_AGE, conditional=True)
    response.cache_control.public = False
    response.cache_control.private = True
    response.cache_control.immutable = True
    return response
