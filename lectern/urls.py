"""URL converters: every ``<int:...>`` in a route is a database id or a page number, so the app
replaces Flask's ``int`` with one that accepts 1 to 2^31 - 1 only (a 404 otherwise). No route can
then hand SQLite an id it cannot bind (it raises OverflowError at 2^63) or PostgreSQL one out of
its ``integer`` range, and none has to remember to check."""

from __future__ import annotations

import builtins

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

ID_MAX = 2**31 - 1  # PostgreSQL's integer; SQLite's ids fit too


class IdConverter(IntegerConverter):
    """``<int:name>``: ASCII digits, 1 to :data:`ID_MAX` (ranges can be narrowed per route)."""

    regex = r"[0-9]{1,10}"  # ASCII only (``\d`` takes any script's digits), at most 10 of them

    def __init__(self, map: Map, fixed_digits: int = 0, min: int = 1, max: int = ID_MAX) -> None:
        # A route may narrow the range (``<int(max=99):n>``), never widen it.
        super().__init__(map, fixed_digits, min=builtins.max(min, 1), max=builtins.min(max, ID_MAX))


def register(app: Flask) -> None:
    """Install the converter; call before any blueprint adds its rules."""
    app.url_map.converters["int"] = IdConverter
