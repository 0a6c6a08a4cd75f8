"""Who may enter which room, and which role may send which event: tables, not branches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from accounts.models import User
from lectern.extensions import db
from rooms import chat, hands, namespace, polls, questions, session, slides, stage
from rooms.context import Refused
from rooms.log import timeline
from rooms.models import Hand, Poll, Question, SlideDeck
from rooms.state import enter
from webinar.models import Registration

ROLES = ("instructor", "student", "host", "panelist", "attendee")
Y, N = True, False
# The role may, but the room may not: a lesson has no stage.
NO_STAGE = "this room has no stage"
# A ballot the role may not cast is refused as any other ballot without a vote (and audited).
NO_VOTE = "not entitled to vote in this poll"

# action -> (event sent, type it is logged as, for each of ROLES in order: allowed (Y), refused
# for the role (N), or refused with another reason). Presenters run the Q&A and the polls: they
# do not ask or vote. A panelist is someone the host invited on to the stage to speak: heard and
# seen, but no moderator.
MATRIX: dict[str, tuple[str, str, tuple[bool | str, ...]]] = {
    "raise hand": ("hand.raise", "hand.raise", (Y, Y, Y, Y, Y)),
    "lower another's hand": ("hand.lower", "hand.lowered", (Y, N, Y, N, N)),
    "lower all hands": ("hand.lower_all", "hand.lowered", (Y, N, Y, N, N)),
    "call on a hand": ("hand.call", "hand.called", (Y, N, Y, N, N)),
    "ask": ("question.ask", "question.ask", (N, Y, N, Y, Y)),
    "upvote": ("question.upvote", "question.upvote", (Y, Y, Y, Y, Y)),
    "approve a question": ("question.approve", "question.approve", (Y, N, Y, N, N)),
    "answer a question": ("question.answer", "question.answer", (Y, N, Y, N, N)),
    "pin a question": ("question.pin", "question.pin", (Y, N, Y, N, N)),
    "dismiss a question": ("question.dismiss", "question.dismiss", (Y, N, Y, N, N)),
    "merge a question": ("question.merge", "question.merge", (Y, N, Y, N, N)),
    "chat": ("chat.send", "chat.message", (Y, Y, Y, Y, Y)),
    "set the chat mode": ("chat.mode", "chat.mode", (Y, N, Y, N, N)),
    "open a poll": ("poll.open", "poll.open", (Y, N, Y, N, N)),
    "vote": ("poll.vote", "poll.vote", (NO_VOTE, Y, NO_VOTE, Y, Y)),
    "close a poll": ("poll.close", "poll.close", (Y, N, Y, N, N)),
    "reveal results": ("poll.reveal", "poll.reveal", (Y, N, Y, N, N)),
    "change the slide": ("slides.goto", "slides.page", (Y, N, Y, N, N)),
    "promote to the stage": ("stage.promote", "stage.promote", (NO_STAGE, N, Y, N, N)),
    "demote from the stage": ("stage.demote", "stage.demote", (NO_STAGE, N, Y, N, N)),
    "end the session": ("room.end", "room.end", (Y, N, Y, N, N)),
}


def add(row: Any) -> int:
    db.session.add(row)
    db.session.commit()
    return row.id


def question(room_id: int, author: int, status: str = "open") -> int:
    return add(Question(room_id=room_id, author_id=author, text="Q?", status=status))


def poll(room_id: int) -> int:
    return add(Poll(room_id=room_id, question="Which?", options=["a", "b"]))


def raised(room_id: int, user_id: int) -> int:
    add(Hand(room_id=room_id, user_id=user_id))
    return user_id


def on_stage(user_id: int) -> int:
    """Make ``user_id`` a panelist wherever they are registered (in a lesson: nowhere)."""
    for registration in db.session.scalars(
        select(Registration).where(Registration.user_id == user_id)
    ):
        registration.role = "panelist"
    db.session.commit()
    return user_id


def deck(room_id: int) -> int:
    return add(SlideDeck(room_id=room_id, filename="d.pdf", pages=3, rendered=3, status="ready"))


# action -> payload, given (room id, another participant's user id); rows it needs are added
PAYLOADS: dict[str, Callable[[int, int], Any]] = {
    "raise hand": lambda r, o: {},
    "lower another's hand": lambda r, o: {"user_id": raised(r, o)},
    "lower all hands": lambda r, o: raised(r, o) and {},
    "call on a hand": lambda r, o: {"user_id": raised(r, o)},
    "ask": lambda r, o: {"text": "Why?"},
    "upvote": lambda r, o: {"id": question(r, o)},
    "approve a question": lambda r, o: {"id": question(r, o, "pending")},
    "answer a question": lambda r, o: {"id": question(r, o), "text": "Because."},
    "pin a question": lambda r, o: {"id": question(r, o)},
    "dismiss a question": lambda r, o: {"id": question(r, o)},
    "merge a question": lambda r, o: {"id": question(r, o), "into": question(r, o)},
    "chat": lambda r, o: {"text": "hi"},
    "set the chat mode": lambda r, o: {"mode": "hosts"},
    "open a poll": lambda r, o: {"question": "Tea?", "options": ["yes", "no"]},
    "vote": lambda r, o: {"id": poll(r), "choices": [0]},
    "close a poll": lambda r, o: {"id": poll(r)},
    "reveal results": lambda r, o: {"id": poll(r)},
    "change the slide": lambda r, o: {"deck_id": deck(r), "page": 2},
    "promote to the stage": lambda r, o: {"user_id": o},
    "demote from the stage": lambda r, o: {"user_id": on_stage(o)},
    "end the session": lambda r, o: {},
}

CASES = [
    pytest.param(action, role, allowed[i], id=f"{role}-{action.replace(' ', '_')}")
    for action, (_, _, allowed) in MATRIX.items()
    for i, role in enumerate(ROLES)
]


def test_the_table_covers_every_event_of_the_room_features():
    """Media and recording events need a media worker: they are tested with it."""
    modules = (hands, questions, chat, polls, slides, stage, session)
    features = {e.name for module in modules for e in module.EVENTS}
    assert {event for event, _, _ in MATRIX.values()} == features
    assert features <= set(namespace.EVENTS)
    assert set(PAYLOADS) == set(MATRIX)


def unaudited(dump: dict[str, Any]) -> dict[str, Any]:
    """The runtime's tables but the poll audit: every attempt to vote is written there, those
    refused too (see test_weighted_polls)."""
    return {table: rows for table, rows in dump.items() if table != "poll_audit"}


@pytest.mark.parametrize(("action", "role", "allowed"), CASES)
def test_role_may_or_may_not(room, action, role, allowed):
    person, key = room.role(role)
    other = room.students[1] if key == room.lesson else room.attendees[1]
    actor, observer = room.join(person, key), room.join(other, key)
    room_id = room.room_id(key)
    payload = PAYLOADS[action](room_id, other.id)
    event, logged, _ = MATRIX[action]
    actor.drain()
    observer.drain()
    before, logged_before = room.dump(), len(timeline(room_id))

    reply = actor.emit(event, payload)

    if allowed is True:
        assert reply["ok"] is True, reply
        assert room.dump() != before
        first = timeline(room_id)[logged_before]  # a stage change is followed by a leave
        assert (first["type"], first["actor_id"]) == (logged, person.id)
    else:
        error = f"your role ({role}) may not do this" if allowed is False else allowed
        assert reply == {"ok": False, "error": error}
        assert unaudited(room.dump()) == unaudited(before)
        assert news(actor) == [] and news(observer) == []


def news(client) -> list:  # type: ignore[no-untyped-def]
    """What ``client`` received, less the periodic attendee count: the joins above change it,
    and it is sent on a timer (every 2 s), so it may arrive after the drain."""
    return [m for m in client.drain() if m[0] != "presence.count"]


@pytest.mark.parametrize("role", ROLES)
def test_everyone_may_read_the_room_state(room, role):
    person, key = room.role(role)
    state = room.join(person, key).state()
    assert state["me"]["role"] == role
    assert state["room"]["key"] == key
    presenter = role in ("instructor", "host")
    assert (state["decks"] is not None) == presenter
    assert state["me"]["can_publish"] == (role in ("instructor", "host", "panelist"))


# The permissions the room page draws controls for (the Ask form, ballots, moderation tools,
# the People tab, the hand queue's tools), and which of them each role's snapshot grants.
DRAWN = {"question.ask", "poll.vote", "question.moderate", "presence.list", "hand.manage"}
MODERATOR = {"question.moderate", "presence.list", "hand.manage"}
AUDIENCE = {"question.ask", "poll.vote"}
SNAPSHOT_PERMS = {
    "instructor": MODERATOR,
    "student": AUDIENCE,
    "host": MODERATOR,
    "panelist": AUDIENCE,
    "attendee": AUDIENCE,
}


@pytest.mark.parametrize("role", ROLES)
def test_the_snapshot_says_which_controls_the_role_gets(room, role):
    """The page draws controls from ``me.permissions``: a panelist (on stage) gets no moderation
    tools or list of people, presenters no Ask form and no ballot."""
    person, key = room.role(role)
    state = room.join(person, key).state()
    assert set(state["me"]["permissions"]) & DRAWN == SNAPSHOT_PERMS[role]
    assert (state["presence"]["people"] is not None) == ("presence.list" in SNAPSHOT_PERMS[role])


# -- entering a room ---------------------------------------------------------------------------


def arabic_digits(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))


# (test id, auth payload built from the world): none of these names a room
MALFORMED: list[tuple[str, Callable[[Any], Any]]] = [
    ("not-a-number", lambda w: {"room": "lesson:abc"}),
    ("empty", lambda w: {"room": ""}),
    ("null", lambda w: {"room": None}),
    ("int", lambda w: {"room": 123}),
    ("huge", lambda w: {"room": "x" * 1000}),
    ("list", lambda w: {"room": ["lesson", w.lesson_id]}),
    ("object", lambda w: {"room": {"kind": "lesson"}}),
    ("extra-part", lambda w: {"room": f"lesson:{w.lesson_id}:1"}),
    ("space", lambda w: {"room": f"lesson: {w.lesson_id}"}),
    ("negative", lambda w: {"room": f"lesson:-{w.lesson_id}"}),
    ("upper-case-kind", lambda w: {"room": f"LESSON:{w.lesson_id}"}),
    ("superscript", lambda w: {"room": "lesson:²"}),
    ("arabic-indic-digits", lambda w: {"room": f"lesson:{arabic_digits(w.lesson_id)}"}),
    ("13-digits", lambda w: {"room": f"lesson:{w.lesson_id:013d}"}),
    ("unknown-kind", lambda w: {"room": f"course:{w.course_id}"}),
    ("no-room", lambda w: {}),
    ("bare-string", lambda w: w.lesson),
    ("no-auth", lambda w: None),
]


def assert_refused(room, client) -> None:
    """The connection was refused and left nothing behind."""
    assert not client.connected
    assert namespace.actors == {}
    assert room.dump()["room_connections"] == []


@pytest.mark.parametrize("build", [b for _, b in MALFORMED], ids=[i for i, _ in MALFORMED])
def test_malformed_room_keys_are_refused(room, build):
    payload = build(room)
    client = room.connect(room.students[0], payload)
    assert_refused(room, client)
    assert room.dump()["rooms"] == []
    key = payload.get("room") if isinstance(payload, dict) else None
    with pytest.raises(Refused, match="no such room"):
        enter(db.session.get(User, room.students[0].id), key)


def test_signed_out_visitors_are_refused(room, app):
    assert_refused(room, room.connect(None, {"room": room.lesson}))
    with (
        app.app_context(),
        app.test_request_context(),
        pytest.raises(ConnectionRefusedError, match="sign in first"),
    ):
        namespace.on_connect({"room": room.lesson})


def refused_membership(room, person, key) -> None:
    assert_refused(room, room.connect(person, {"room": key}))
    with pytest.raises(Refused, match="you are not a member of this room"):
        enter(db.session.get(User, person.id), key)


@pytest.mark.parametrize("key", ["lesson:999999", "broadcast:999999", "lesson:0"])
def test_unknown_rooms_are_refused(room, key):
    refused_membership(room, room.students[0], key)


def test_a_lesson_of_a_course_one_is_not_enrolled_in(room, courses):
    other = courses.make(db.session.get(User, room.instructor.id), title="Elsewhere")
    key = f"lesson:{courses.lesson(other).id}"
    refused_membership(room, room.students[0], key)
    refused_membership(room, room.outsider, room.lesson)
    refused_membership(room, room.host, room.lesson)
    room.join(room.instructor, key)  # its owner may


def test_lesson_students_are_not_broadcast_attendees(room):
    refused_membership(room, room.students[0], room.broadcast)  # not registered: a visitor


@pytest.mark.parametrize("status", ["pending", "declined"])
def test_registrants_not_yet_approved_are_refused(room, broadcasts, status):
    cast = broadcasts.make(db.session.get(User, room.host.id), mode="approval")
    broadcasts.register(cast, db.session.get(User, room.outsider.id), status=status)
    refused_membership(room, room.outsider, f"broadcast:{cast.id}")


def test_invite_only_broadcasts_refuse_outsiders_and_unclaimed_invitations(room, broadcasts):
    cast = broadcasts.make(db.session.get(User, room.host.id), mode="invite")
    broadcasts.register(cast, email=room.students[0].email, status="pending")
    broadcasts.register(cast, db.session.get(User, room.students[1].id))
    key = f"broadcast:{cast.id}"
    refused_membership(room, room.outsider, key)
    refused_membership(room, room.students[0], key)  # invited, not yet registered
    assert room.join(room.students[1], key).state()["me"]["role"] == "attendee"
