"""Validation of Socket.IO payloads: small field specs, clear reasons, no surprises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Invalid(Exception):
    """A payload that does not match its event's fields; the message says why."""


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
            raise Invalid(f"{name} must be text")
        if self.strip:
            value = value.strip()
        if len(value) < self.min:
            raise Invalid(f"{name} must not be empty")
        if len(value) > self.max:
            raise Invalid(f"{name} is longer than {self.max} characters")
        return value


@dataclass(frozen=True)
class Int:
    min: int = 1
    max: int = 2**53
    required: bool = True

    def clean(self, name: str, value: Any) -> Any:
        if value is None and not self.required:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{name} must be a whole number")
        if not self.min <= value <= self.max:
            raise Invalid(f"{name} must be between {self.min} and {self.max}")
        return value


@dataclass(frozen=True)
class Bool:
    default: bool = False

    def clean(self, name: str, value: Any) -> Any:
        if value is None:
            return self.default
        if not isinstance(value, bool):
            raise Invalid(f"{name} must be true or false")
        return value


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def clean(self, name: str, value: Any) -> Any:
        if value not in self.options:
            raise Invalid(f"{name} must be one of: {', '.join(self.options)}")
        return value


@dataclass(frozen=True)
class TextList:
    item: Text
    min: int = 1
    max: int = 20

    def clean(self, name: str, value: Any) -> Any:
        if not isinstance(value, list) or not self.min <= len(value) <= self.max:
            raise Invalid(f"{name} must be a list of {self.min} to {self.max} items")
        return [self.item.clean(f"{name}[{i}]", v) for i, v in enumerate(value)]


@dataclass(frozen=True)
class IntList:
    min: int = 1
    max: int = 20

    def clean(self, name: str, value: Any) -> Any:
        if not isinstance(value, list) or not self.min <= len(value) <= self.max:
            raise Invalid(f"{name} must be a list of {self.min} to {self.max} numbers")
        items = [Int(min=0, max=1000).clean(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if len(set(items)) != len(items):
            raise Invalid(f"{name} has the same choice twice")
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
        raise Invalid(f"unexpected field: {sorted(map(str, unknown))[0][:40]}")
    return {name: spec.clean(name, data.get(name)) for name, spec in fields.items()}
