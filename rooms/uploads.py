"""Slide uploads: check and store a presenter's PDF, then render its pages in the background.

Rendering runs in a separate process (``python -m rooms.render``) so that PDFium's CPU-bound
work never stalls the web process; a background task of the Socket.IO server reads its
progress lines, keeps the deck's row up to date and tells the room's moderators.

Files: ``DATA_DIR/slides/<deck_id>/source.pdf`` and ``1.png``, ``2.png``, ...
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from flask import Flask, current_app
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from lectern.extensions import db
from rooms import log
from rooms.context import Actor, Outbox
from rooms.models import FILENAME_MAX, SlideDeck
from rooms.namespace import deliver
from rooms.slides import deck_view
from rooms.validate import Reason

PDF_MAGIC = b"%PDF-"
DEFAULT_MAX_MB = 50
RENDER_WIDTH = 1280
ERROR_MAX = 300  # SlideDeck.error's length
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where ``-m rooms.render`` is found
TIMED_OUT = {signal.SIGXCPU, signal.SIGKILL}  # how the renderer's CPU limit ends it

logger = logging.getLogger(__name__)


class UploadError(Reason):
    """An upload that is refused; ``status`` is the HTTP status that says why. The message is a
    msgid with named placeholders (translated in the answer)."""

    def __init__(self, message: str, status: int = 400, **params: Any) -> None:
        super().__init__(message, **params)
        self.status = status


def deck_dir(deck_id: int) -> Path:
    return Path(current_app.config["DATA_DIR"]) / "slides" / str(deck_id)


def page_path(deck_id: int, page: int) -> Path:
    return deck_dir(deck_id) / f"{page}.png"


def max_bytes() -> int:
    """The upload limit, from the ``SLIDES_MAX_MB`` setting (in MiB)."""
    return int(float(current_app.config.get("SLIDES_MAX_MB", DEFAULT_MAX_MB)) * 1024 * 1024)


def display_name(filename: str | None) -> str:
    """The upload's name made safe (no folders, no odd characters) and short enough to keep."""
    base = (filename or "").replace("\\", "/").rpartition("/")[2]  # Windows browsers send paths
    name = secure_filename(base)
    if name.lower() in ("", "pdf"):  # nothing usable was left, e.g. a name in another script
        return "slides.pdf"
    stem, ext = os.path.splitext(name)
    if len(ext) > 10:
        return name[:FILENAME_MAX]
    return stem[: FILENAME_MAX - len(ext)] + ext


def check_pdf(stream: IO[bytes], limit: int) -> int:
    """Check the upload's size and that it starts like a PDF; return its size in bytes.

    :raises UploadError: 413 when larger than ``limit``, 400 when not a PDF.
    """
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    if size > limit:
        raise UploadError("the file is larger than %(size)s MB", 413, size=f"{limit / 2**20:g}")
    if stream.read(len(PDF_MAGIC)) != PDF_MAGIC:
        raise UploadError("the file is not a PDF")
    stream.seek(0)
    return size


def store(actor: Actor, upload: FileStorage) -> SlideDeck:
    """Check ``upload`` and save it as a new deck of the actor's room, waiting to be rendered.

    :raises UploadError: for a file that is too large or not a PDF.
    """
    size = check_pdf(upload.stream, max_bytes())
    deck = SlideDeck(
        room_id=actor.room_id,
        filename=display_name(upload.filename),
        pages=0,
        rendered=0,
        status="rendering",
        uploaded_by=actor.user_id,
    )
    db.session.add(deck)
    db.session.flush()  # assigns deck.id, which names the folder
    folder = deck_dir(deck.id)
    try:
        shutil.rmtree(folder, ignore_errors=True)  # SQLite may reuse the id of a deleted deck
        folder.mkdir(parents=True)
        upload.save(folder / "source.pdf")
        log.record(
            actor.room_id,
            actor.user_id,
            "slides.upload",
            deck_id=deck.id,
            filename=deck.filename,
            size=size,
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return deck


def start_render(app: Flask, deck_id: int) -> Any:
    """Render the deck in a background task of the Socket.IO server; returns the task."""
    return app.extensions["socketio"].start_background_task(render_task, app, deck_id)


def render_task(app: Flask, deck_id: int) -> None:
    """The background task: its own app context and database session, errors logged."""
    with app.app_context():
        try:
            render(deck_id)
        except Exception:
            logger.exception("rendering slide deck %s failed", deck_id)
            db.session.rollback()
            deck = db.session.get(SlideDeck, deck_id)
            if deck is not None:
                finish(deck, "rendering failed because of a server error")
        finally:
            db.session.remove()


def render(deck_id: int) -> None:
    """Run the renderer on the deck's PDF, recording and announcing its progress."""
    deck = db.session.get(SlideDeck, deck_id)
    if deck is None:
        return
    folder = deck_dir(deck_id)
    command = [sys.executable, "-m", "rooms.render", str(folder / "source.pdf"), str(folder)]
    command += ["--width", str(RENDER_WIDTH)]
    last_error = ""
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: the error line comes last
        env=child_env(),
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not advance(deck, line) and line:
                last_error = line
    error = failure(proc.returncode, deck, last_error)
    if error:
        logger.warning("slide deck %s failed to render: %s", deck_id, error)
    finish(deck, error)


def child_env() -> dict[str, str]:
    """The environment for the renderer, with this code importable wherever the app runs."""
    env = dict(os.environ)
    paths = [str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def advance(deck: SlideDeck, line: str) -> bool:
    """Apply one progress line (``pages N`` or ``page I``); False for any other line."""
    word, _, number = line.partition(" ")
    if word not in ("pages", "page") or not number.isdigit():
        return False
    if word == "pages":
        deck.pages = int(number)
    else:
        deck.rendered = int(number)
    db.session.commit()
    announce(deck)
    return True


def failure(returncode: int, deck: SlideDeck, last_error: str) -> str | None:
    """Why the render failed, in words for the presenter; None when it succeeded."""
    if returncode == 0 and deck.pages and deck.rendered == deck.pages:
        return None
    if returncode < 0 and -returncode in TIMED_OUT:
        return "rendering took too long and was stopped"
    if returncode > 0 and last_error:
        return last_error
    return f"the renderer stopped unexpectedly (exit status {returncode})"


def finish(deck: SlideDeck, error: str | None) -> None:
    """Mark the deck ready, or failed with ``error``; log it, commit, then announce it."""
    deck.status = "failed" if error else "ready"
    deck.error = error[:ERROR_MAX] if error else None
    log.record(
        deck.room_id,
        None,
        f"slides.{deck.status}",
        deck_id=deck.id,
        pages=deck.pages,
        error=deck.error,
    )
    db.session.commit()
    announce(deck)


def announce(deck: SlideDeck) -> None:
    """Send the deck's state to the room's moderators (the presenter's progress bar)."""
    out = Outbox()
    out.to_mods(deck.room_id, "slides.deck", deck_view(deck))
    deliver(out)
