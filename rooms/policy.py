"""Room permissions as data: each feature (classroom, webinar) maps its roles to these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Perm(StrEnum):
    """What a participant may do in a live room."""

    RAISE_HAND = "hand.raise"
    MANAGE_HANDS = "hand.manage"  # lower others, lower all, call on
    ASK = "question.ask"
    UPVOTE = "question.upvote"
    MODERATE = "question.moderate"  # approve, answer, pin, dismiss
    CHAT = "chat.send"
    MANAGE_CHAT = "chat.manage"  # turn chat off or to hosts only
    VOTE = "poll.vote"
    MANAGE_POLLS = "poll.manage"
    PRESENT = "slides.present"  # upload slides, change page
    SEE_PRESENCE = "presence.list"  # see who is in the room, not just how many
    PUBLISH = "media.publish"
    RECORD = "recording.manage"  # start and stop recording
    END = "room.end"  # end the session for everyone
    MANAGE_STAGE = "stage.manage"  # promote attendees to panelist and demote them again


# Everything a presenter (instructor, host) may do but take part as the audience does: they
# answer questions rather than ask them, and run polls rather than vote in them.
PRESENTER: frozenset[Perm] = frozenset(Perm) - {Perm.ASK, Perm.VOTE}


@dataclass(frozen=True)
class RoomPolicy:
    """How one kind of room behaves: its roles' permissions and its defaults."""

    roles: Mapping[str, frozenset[Perm]]
    moderated: bool  # questions are hidden from others until approved
    anonymous_questions: bool
    hand_queue_public: bool  # everyone sees the hand queue (a class), or only moderators

    def allows(self, role: str, perm: Perm) -> bool:
        return perm in self.roles.get(role, frozenset())

    def perms(self, role: str) -> frozenset[Perm]:
        return self.roles.get(role, frozenset())
