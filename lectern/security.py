"""Security headers (nothing loads from outside the server, no framing, no sniffing) and the one
check of every request's input that no route can forget: characters that no field needs are
refused with a 400 before any view runs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

from flask import Flask, abort, request
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'; object-src 'none'"
)

# Text fields and JSON strings: no control characters but tab and line breaks (NUL cannot be
# stored in PostgreSQL), and no lone surrogates (they cannot be encoded as UTF-8, so saving or
# showing them fails).
BAD_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# The path and the query string: no control character at all, line breaks included (a query
# value may become a header, such as the sign-in page's ``next`` in Location).
BAD_IN_URL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
ARG_MAX = 2048  # characters in one query value; nothing a page links to comes near it
JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"


def register(app: Flask) -> None:
    """Check every request's input and add the headers to every response."""
    app.before_request(check_input)

    @app.after_request
    def add_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def check_input() -> None:
    """404 for a path with a control character; 400 when a query argument, a form field or
    file name or a JSON string holds a character no field needs, or a query value is over
    :data:`ARG_MAX` characters."""
    if BAD_IN_URL.search(request.path):  # no page has such a name
        log.warning("refused a path with a control character from %s", request.remote_addr)
        abort(404)
    problem = query_problem() or body_problem()
    if problem:
        log.warning(
            "refused %s %s from %s: %s",
            request.method,
            request.url_rule or "(no route)",
            request.remote_addr,
            problem,
        )
        abort(400)


def query_problem() -> str | None:
    """What is wrong with the query string, if anything."""
    for key, value in request.args.items(multi=True):
        if BAD_IN_URL.search(key) or BAD_IN_URL.search(value):
            return f"a control character in the query argument {arg_name(key)}"
        if len(value) > ARG_MAX:
            return f"the query argument {arg_name(key)} is {len(value)} characters long"
    return None


def arg_name(key: str) -> str:
    """A query argument's name for the log, when it looks like one (never a visitor's text)."""
    return key if key.isidentifier() and len(key) <= 40 else "(an odd name)"


def body_problem() -> str | None:
    """What is wrong with the form fields, file names or JSON body, if anything."""
    if request.mimetype == FORM_TYPE and not is_utf8(request.get_data(cache=True)):
        return "a form body that is not UTF-8"  # Werkzeug would drop every field silently
    if request.mimetype in JSON_TYPES:
        return json_problem(request.get_data(cache=True))
    texts = [*request.form.keys(), *request.form.values(), *request.files.keys()]
    texts += [f.filename or "" for f in request.files.values()]
    # (A multipart part whose header a line break split has no name: None.)
    if any(not isinstance(text, str) or BAD_IN_TEXT.search(text) for text in texts):
        return "a control character or a lone surrogate in a form field"
    return None


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def json_problem(data: bytes) -> str | None:
    """What is wrong with a JSON body: not JSON, or a string in it that a text field refuses."""
    if not data:
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return "a body that is not JSON"
    if any(BAD_IN_TEXT.search(text) for text in json_strings(document)):
        return "a control character or a lone surrogate in the JSON body"
    return None


def json_strings(document: object) -> Iterator[str]:
    """Every string of a parsed JSON document, keys included (iteratively: no depth limit)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
