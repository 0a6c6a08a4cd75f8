"""Error pages: every client error gets a clear page, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from lectern.extensions import db

log = logging.getLogger(__name__)

MESSAGES = {
    400: _l("The request was not understood. Check what you entered and try again."),
    403: _l("You do not have permission to do that."),
    404: _l("There is nothing here, or you do not have access to it."),
    405: _l("That action is not allowed here."),
    413: _l("That upload is too large."),
    429: _l("Too many requests. Wait a moment and try again."),
}


def register(app: Flask) -> None:
    """Install the error handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> tuple[str, int]:
        message = _("Your form expired or came from another site. Reload the page and try again.")
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        code = error.code or 500
        message = str(MESSAGES.get(code) or error.description or _("Something went wrong."))
        return render_template("errors/error.html", code=code, message=message), code

    @app.errorhandler(DataError)
    def data_error(error: DataError) -> tuple[str, int]:
        # The database refused a value (too long for its column, out of range): the input was
        # wrong, not the server. Forms and the URL converter should catch these first.
        db.session.rollback()
        log.warning("the database refused a value: %s", str(error.orig).splitlines()[0])
        message = str(MESSAGES[400])
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[str, int]:
        db.session.rollback()
        message = _("Something went wrong on our side; nothing you entered was half-saved.")
        return render_template("errors/error.html", code=500, message=message), 500
