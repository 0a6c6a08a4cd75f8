"""Loading an object for a request and refusing callers who may not act on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from lectern.extensions import db

T = TypeVar("T")
A = TypeVar("A")


def load_or_404(model: type[T], ident: int) -> T:
    """The row with primary key ``ident``, or a 404."""
    obj = db.session.get(model, ident)
    if obj is None:
        abort(404)
    return obj


def require(obj: T, allows: Callable[[Any, T, A], bool], action: A, view: A) -> T:
    """``obj`` if the current user may ``action`` it: 404 if they may not even see it, else 403."""
    if not allows(current_user, obj, view):
        abort(404)
    if not allows(current_user, obj, action):
        abort(403)
    return obj
