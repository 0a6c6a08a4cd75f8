"""Recording pages: the library, the player, its data and files, the owner's actions, MP4 export.

Every resource of a recording answers at two addresses: ``/recordings/<id>/...`` for members
of its room and ``/recordings/shared/<token>/...`` for holders of its share link. Anyone else
gets 404, as for a recording that does not exist.
"""

from __future__ import annotations

from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from lectern.extensions import db
from recordings import access, bp, export, media, player
from recordings.access import Viewer
from recordings.forms import ActionForm, RenameForm
from recordings.player import Links
from rooms.uploads import page_path

Page = str | Response | tuple[str, int]

FILE_MAX_AGE = 3600  # segment files and slide images never change once the recording ends


@bp.app_template_filter("hms")
def hms(seconds: float | None) -> str:
    """A duration as ``m:ss`` or ``h:mm:ss``."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@bp.after_request
def private(response: Response) -> Response:
    """Recordings are private: no search engine keeps a shared one."""
    response.headers.setdefault("X-Robots-Tag", "noindex, nofollow")
    return response


def link_key(viewer: Viewer) -> dict[str, Any]:
    """How ``viewer``'s URLs name the recording: by share token if they came through the
    link, else by id."""
    return {"token": viewer.token} if viewer.token else {"recording_id": viewer.recording.id}


def links(viewer: Viewer) -> Links:
    """URLs of the recording's files and slides for ``viewer``."""
    key = link_key(viewer)
    return Links(
        file=lambda name: url_for("recordings.file", name=name, **key),
        slide=lambda deck, page: url_for("recordings.slide", deck_id=deck, page=page, **key),
    )


def privately(response: Response, max_age: int) -> Response:
    """Let only the viewer's own browser keep ``response``, for ``max_age`` seconds."""
    response.cache_control.public = False
    response.cache_control.private = True
    response.cache_control.max_age = max_age
    return response


@bp.get("/")
@login_required
def library() -> Page:
    """The recordings the user may watch, newest first."""
    return render_template(
        "recordings/library.html",
        entries=player.entries(current_user),
        action=ActionForm(formdata=None),
    )


@bp.get("/<int:recording_id>")
@bp.get("/shared/<token>")
def watch(recording_id: int | None = None, token: str | None = None) -> Page:
    """The player page."""
    if recording_id is not None and not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    viewer = access.find(recording_id, token)
    recording = viewer.recording
    found = media.segments(recording)
    return render_template(
        "recordings/player.html",
        viewer=viewer,
        recording=recording,
        context=viewer.actor.title if viewer.actor else "",
        started=player.started_at(recording),
        length=player.length(recording),
        downloads=[(s, links(viewer).file(s.file)) for s in found],
        timeline_url=url_for("recordings.timeline_json", **link_key(viewer)),
        share_url=share_url(recording.share_token) if viewer.owns else None,
        action=ActionForm(formdata=None),
        csrf=generate_csrf() if viewer.member else "",  # share-link viewers post nothing
    )


def share_url(token: str | None) -> str | None:
    return url_for("recordings.watch", token=token, _external=True) if token else None


@bp.get("/<int:recording_id>/timeline.json")
@bp.get("/shared/<token>/timeline.json")
def timeline_json(recording_id: int | None = None, token: str | None = None) -> Response:
    """Segments, tracks and the replayed events, ``t`` seconds from the recording's start."""
    viewer = access.find(recording_id, token)
    response = jsonify(player.document(viewer, links(viewer)))
    response.cache_control.no_store = True
    return response


@bp.get("/<int:recording_id>/files/<name>")
@bp.get("/shared/<token>/files/<name>")
def file(name: str, recording_id: int | None = None, token: str | None = None) -> Response:
    """A segment's WebM or MP4 (or older Matroska), with range requests (seeking);
    ``?download=1`` saves it."""
    viewer = access.find(recording_id, token)
    path = media.segment_file(viewer.recording, name)
    if path is None:
        abort(404)
    title = secure_filename(viewer.recording.title) or "recording"
    response = send_file(
        path,
        mimetype=media.MIMETYPES[path.suffix],
        conditional=True,
        as_attachment=request.args.get("download") == "1",
        download_name=f"{title}-{path.stem[:8]}{path.suffix}",
    )
    # A file still being recorded grows: revalidate it every time.
    return privately(response, FILE_MAX_AGE if viewer.recording.status != "recording" else 0)


@bp.get("/<int:recording_id>/slides/<int:deck_id>/<int:page>.png")
@bp.get("/shared/<token>/slides/<int:deck_id>/<int:page>.png")
def slide(
    deck_id: int, page: int, recording_id: int | None = None, token: str | None = None
) -> Response:
    """A page of a slide deck that was on screen during the recording."""
    viewer = access.find(recording_id, token)
    path = page_path(deck_id, page)
    if page < 1 or not player.deck_shown(viewer.recording, deck_id) or not path.is_file():
        abort(404)
    response = send_file(path, mimetype="image/png", conditional=True, max_age=FILE_MAX_AGE)
    return privately(response, FILE_MAX_AGE)


# -- the owner's actions -------------------------------------------------------------------------


def back(recording_id: int) -> Response:
    """Return to the page the form was on: the library or this recording's player."""
    wanted = request.form.get("next")
    allowed = {
        url_for("recordings.library"),
        url_for("recordings.watch", recording_id=recording_id),
    }
    return redirect(wanted if wanted in allowed else url_for("recordings.library"))


@bp.post("/<int:recording_id>/rename")
@login_required
def rename(recording_id: int) -> Page:
    """Give the recording a new title (one line, at most 200 characters)."""
    viewer = access.owner(recording_id)
    form = RenameForm()
    if not form.validate_on_submit():
        problems = [*form.title.errors, _("The form expired: reload the page and try again.")]
        flash(_("Not renamed: %(why)s", why=problems[0]), "error")
        return back(recording_id)
    viewer.recording.title = (form.title.data or "").strip()
    db.session.commit()
    flash(_("Recording renamed."), "info")
    return back(recording_id)


@bp.post("/<int:recording_id>/delete")
@login_required
def delete(recording_id: int) -> Page:
    """Delete the recording and its files; a recording still running cannot be deleted."""
    viewer = access.owner(recording_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    recording = viewer.recording
    if recording.status == "recording":
        flash(_("Stop the recording in the room before deleting it."), "error")
        return back(recording_id)
    export.cancel(recording)
    media.discard(recording)
    flash(_("Deleted “%(title)s”.", title=recording.title), "info")
    return redirect(url_for("recordings.library"))


@bp.post("/<int:recording_id>/share")
@login_required
def share(recording_id: int) -> Page:
    """Create the share link (anyone holding it may watch)."""
    viewer = access.owner(recording_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    access.share(viewer.recording)
    flash(_("Share link created: anyone who has it can watch this recording."), "info")
    return back(recording_id)


@bp.post("/<int:recording_id>/unshare")
@login_required
def unshare(recording_id: int) -> Page:
    """Revoke the share link."""
    viewer = access.owner(recording_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    access.unshare(viewer.recording)
    flash(_("Share link turned off: it no longer works."), "info")
    return back(recording_id)


# -- MP4 export ----------------------------------------------------------------------------------


def export_view(viewer: Viewer) -> dict[str, Any]:
    found = export.state(viewer.recording)
    if found["status"] == "ready":
        found["url"] = url_for("recordings.mp4", recording_id=viewer.recording.id)
    return found


@bp.post("/<int:recording_id>/mp4")
def start_export(recording_id: int) -> tuple[Response, int]:
    """Start making the MP4 (members); the page then polls its status."""
    viewer = access.as_member(recording_id)
    if viewer.recording.status == "recording":
        return jsonify(ok=False, error=_("the recording is still running")), 409
    try:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        export.start(app, viewer.recording, current_user.id)
    except export.ExportError as error:
        return jsonify(ok=False, error=export.shown(str(error))), 429
    return jsonify(ok=True, export=export_view(viewer)), 202


@bp.get("/<int:recording_id>/mp4/status")
def export_status(recording_id: int) -> Response:
    viewer = access.as_member(recording_id)
    response = jsonify(ok=True, export=export_view(viewer))
    response.cache_control.no_store = True
    return response


@bp.get("/<int:recording_id>/mp4")
def mp4(recording_id: int) -> Response:
    """The MP4, as a download: the recorded file itself for one H.264 segment, else the
    export's once made."""
    viewer = access.as_member(recording_id)
    path = export.download(viewer.recording)
    if path is None:
        abort(404)
    title = secure_filename(viewer.recording.title) or "recording"
    response = send_file(
        path,
        mimetype="video/mp4",
        conditional=True,
        as_attachment=True,
        download_name=f"{title}.mp4",
    )
    return privately(response, 0)
