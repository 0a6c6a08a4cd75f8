"""What a handler works with: the acting participant, refusals, and the messages to send."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lectern.i18n import ROLE_LABELS
from rooms.policy import Perm, RoomPolicy
from rooms.validate import Reason


class Refused(Reason):
    """The caller may not do this (or it makes no sense now); the message says why, as a msgid
    with named placeholders: ``Refused("page %(page)s is not available", page=n)``."""


@dataclass(frozen=True)
class Actor:
    """One participant's connection: who they are, in which room, with which role."""

    user_id: int
    name: str
    role: str
    room_id: int
    policy: RoomPolicy
    title: str = ""
    sid: str = ""  # the Socket.IO connection this actor speaks through
    kind: str = ""  # the room's kind ("lesson", "broadcast"): where its hooks are found
    ref_id: int = 0  # the lesson or broadcast the room belongs to
    share_register: bool = False  # the room's votes may be weighted (a shareholder meeting)

    @property
    def perms(self) -> frozenset[Perm]:
        return self.policy.perms(self.role)

    def may(self, perm: Perm) -> bool:
        return perm in self.perms

    def require(self, perm: Perm) -> None:
        """Refuse unless this participant's role grants ``perm``."""
        if not self.may(perm):
            raise Refused(
                "your role (%(role)s) may not do this",
                role=ROLE_LABELS.get(self.role, self.role),
            )


def room_target(room_id: int) -> str:
    """Socket.IO room of everyone in a live room."""
    return f"room:{room_id}"


def mods_target(room_id: int) -> str:
    """Socket.IO room of the participants who moderate (see presence, pending questions)."""
    return f"room:{room_id}:mods"


def user_target(room_id: int, user_id: int) -> str:
    """Socket.IO room of one user's connections to a live room (all their tabs)."""
    return f"room:{room_id}:user:{user_id}"


@dataclass
class Outbox:
    """Messages a handler wants sent, delivered only after its changes are committed."""

    messages: list[tuple[str, str, Any]] = field(default_factory=list)  # (target, event, data)
    disconnects: list[str] = field(default_factory=list)  # sids to close after the messages

    def to_all(self, room_id: int, event: str, data: Any) -> None:
        self.messages.append((room_target(room_id), event, data))

    def to_mods(self, room_id: int, event: str, data: Any) -> None:
        self.messages.append((mods_target(room_id), event, data))

    def to_user(self, room_id: int, user_id: int, event: str, data: Any) -> None:
        self.messages.append((user_target(room_id, user_id), event, data))

    def disconnect(self, sid: str) -> None:
        """Close the connection ``sid`` (on whichever web worker holds it) once the messages
        are out: its client reconnects and is resolved afresh."""
        self.disconnects.append(sid)
