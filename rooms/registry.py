"""Kinds of room (``lesson``, ``broadcast``): features register how to resolve a participant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from accounts.models import User
from rooms.policy import RoomPolicy


@dataclass(frozen=True)
class Membership:
    """A user's place in one room: their role there and what the room is called."""

    role: str
    title: str
    anonymous_questions: bool | None = None  # None: the policy's default
    share_register: bool = False  # votes may be weighted by the members' holdings


# (ref_id, user_id, "panelist" | "attendee") -> None when the role was changed in the session
# (the caller commits), else the sentence saying why not
StageHook = Callable[[int, int, str], str | None]
# (ref_id, user_id) -> (weight, holder id in the share register or None); None: not entitled
WeightHook = Callable[[int, int], tuple[int, str | None] | None]
# ref_id -> (scheduled start, scheduled end) in naive UTC; None if there is no such session
ScheduleHook = Callable[[int], tuple[datetime, datetime] | None]


@dataclass(frozen=True)
class RoomKind:
    """A kind of room and the feature's rules: who may enter it with which role, and the
    optional hooks that rooms of this kind support (a stage, a register of vote weights)."""

    name: str
    policy: RoomPolicy
    resolve: Callable[[User, int], Membership | None]  # (user, ref_id) -> membership or None
    set_stage_role: StageHook | None = None
    vote_weight: WeightHook | None = None
    schedule: ScheduleHook | None = None  # when its session is on (rooms.session.state_of)


KINDS: dict[str, RoomKind] = {}


def register_kind(kind: RoomKind) -> None:
    """Make rooms of ``kind.name`` joinable; registering twice replaces the first."""
    KINDS[kind.name] = kind


def kind_named(name: str) -> RoomKind | None:
    """The registered kind called ``name`` (an actor's ``kind``), None if there is none."""
    return KINDS.get(name)


def parse_key(key: object) -> tuple[RoomKind, int] | None:
    """``"lesson:12"`` -> (the lesson kind, 12); None for anything malformed or unknown."""
    if not isinstance(key, str) or len(key) > 40 or ":" not in key:
        return None
    name, _, ref = key.partition(":")
    kind = KINDS.get(name)
    # str.isdigit() alone accepts "²" (int() fails on it) and "٣" (int() reads 3): a room is
    # named by ASCII digits only.
    if kind is None or not (ref.isascii() and ref.isdigit()) or len(ref) > 12:
        return None
    return kind, int(ref)
