"""Validation of Socket.IO payloads: small field specs, clear reasons, no surprises."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it here (it is translated where
    it is shown, in the reader's language)."""
    return message


class Reason(Exception):
    """An exception whose message is a msgid with named placeholders, translated when sent:
    ``Reason("%(field)s must be text", field=name)``. ``str()`` is the English text. A reason a
    client acts on (not only shows) has a ``code`` too, a word that no translation changes."""

    code: str | None = None

    def __init__(self, message: str, **params: Any) -> None:
        self.message, self.params = message, params
        super().__init__(message % params if params else message)

    def translated(self) -> str:
        """The message in the current request's language (English outside of one)."""
        return gettext(self.message, **self.params)


class Invalid(Reason):
    """A payload that does not match its event's fields; the message says why."""


# Control characters but tab and line breaks, and lone surrogates: no text field takes them
# (PostgreSQL refuses NUL in text; the others only hide what was written).
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# Ids are the database's integers (32-bit on PostgreSQL): larger ones name nothing.
ID_MAX = 2**31 - 1


@dataclass(frozen=True)
class Text:
    max: int
    min: int = 1
    required: bool = True
    strip: bool = True

    def clean(self, name: str, value: Any) -> Any:
        if value is None and not self.required:
            return None
        if not isinstance(value, str):
            raise Invalid("%(field)s must be text", field=name)
        if FORBIDDEN.search(value):
            raise Invalid("%(field)s contains a character that is not allowed", field=name)
        if self.strip:
            value = value.strip()
        if len(value) < self.min:
            raise Invalid("%(field)s must not be empty", field=name)
        if len(value) > self.max:
            raise Invalid("%(field)s is longer than %(max)s characters", field=name, max=self.max)
        return value


@dataclass(frozen=True)
class Int:
    min: int = 1
    max: int = ID_MAX
    required: bool = True

    def clean(self, name: str, value: Any) -> Any:
        if value is None and not self.required:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("%(field)s must be a whole number", field=name)
        if not self.min <= value <= self.max:
            raise Invalid(
                "%(field)s must be between %(min)s and %(max)s",
                field=name,
                min=self.min,
                max=self.max,
            )
        return value


@dataclass(frozen=True)
class Bool:
    default: bool = False

    def clean(self, name: str, value: Any) -> Any:
        if value is None:
            return self.default
        if not isinstance(value, bool):
            raise Invalid("%(field)s must be true or false", field=name)
        return value


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def clean(self, name: str, value: Any) -> Any:
        if value not in self.options:
            raise Invalid(
                "%(field)s must be one of: %(options)s", field=name, options=", ".join(self.options)
            )
        return value


@dataclass(frozen=True)
class TextList:
    item: Text
    min: int = 1
    max: int = 20

    def clean(self, name: str, value: Any) -> Any:
        if not isinstance(value, list) or not self.min <= len(value) <= self.max:
            raise Invalid(
                "%(field)s must be a list of %(min)s to %(max)s items",
                field=name,
                min=self.min,
                max=self.max,
            )
        return [self.item.clean(f"{name}[{i}]", v) for i, v in enumerate(value)]


@dataclass(frozen=True)
class IntList:
    min: int = 1
    max: int = 20

    def clean(self, name: str, value: Any) -> Any:
        if not isinstance(value, list) or not self.min <= len(value) <= self.max:
            raise Invalid(
                "%(field)s must be a list of %(min)s to %(max)s numbers",
                field=name,
                min=self.min,
                max=self.max,
            )
        items = [Int(min=0, max=1000).clean(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if len(set(items)) != len(items):
            raise Invalid("%(field)s has the same choice twice", field=name)
        return items


Field = Text | Int | Bool | Choice | TextList | IntList


def clean(fields: Mapping[str, Field], data: Any) -> dict[str, Any]:
    """Check ``data`` against ``fields``; unknown keys are refused, missing optional ones filled."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Invalid("payload must be an object")
    unknown = set(data) - set(fields)
    if unknown:
        raise Invalid("unexpected field: %(field)s", field=sorted(map(str, unknown))[0][:40])
    return {name: spec.clean(name, data.get(name)) for name, spec in fields.items()}
