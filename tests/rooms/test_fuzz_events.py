"""Property-based fuzzing of every Socket.IO event's payload (hypothesis): whatever a student or
the instructor sends, every event is answered (``ok`` true or a reason), nothing is logged as an
error or with a traceback, and an honest participant still gets the room afterwards.

The rate limits are lifted here so that payloads reach validation and the handlers (the limits
have their own tests in test_hostile.py and test_floods.py). The instructor fuzzes every event
but ``room.end``, which would end the session for the honest participant too.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooms import namespace, validate

# Events anyone may send, whatever their role (the handlers refuse what the role may not do).
EVENTS = sorted([*namespace.EVENTS, "state.get"])

# JSON-like values: what a Socket.IO client can put in a payload. Text without surrogates (the
# JSON encoder of the test client refuses them; the HTTP layer has its own surrogate tests).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=25,
)


def field_values(spec: Any) -> st.SearchStrategy[Any]:
    """Values for one field of an event's spec: mostly near what it accepts (lengths and
    numbers around its bounds, small ids that exist in the test database), sometimes anything."""
    near: st.SearchStrategy[Any]
    if isinstance(spec, validate.Text):
        near = st.text(st.characters(blacklist_categories=("Cs",)), max_size=spec.max + 2)
    elif isinstance(spec, validate.Int):
        near = st.integers(1, 30) | st.sampled_from(
            [spec.min - 1, spec.min, spec.max, spec.max + 1]
        )
    elif isinstance(spec, validate.Bool):
        near = st.booleans()
    elif isinstance(spec, validate.Choice):
        near = st.sampled_from(spec.options)
    elif isinstance(spec, validate.TextList):
        near = st.lists(
            field_values(spec.item), min_size=max(0, spec.min - 1), max_size=spec.max + 1
        )
    elif isinstance(spec, validate.IntList):
        near = st.lists(st.integers(-1, 12), min_size=max(0, spec.min - 1), max_size=spec.max + 1)
    else:
        near = VALUES
    return near | VALUES


def payloads(event: str) -> st.SearchStrategy[Any]:
    """Payloads for ``event``: objects with its fields (each may be missing, one may be extra)
    most of the time, anything at all otherwise."""
    found = namespace.EVENTS.get(event)
    if found is None or not found.fields:
        return st.just({}) | VALUES
    fields = {name: field_values(spec) for name, spec in found.fields.items()}
    shaped = st.fixed_dictionaries({}, optional=fields)
    extra = st.dictionaries(st.text(max_size=8), VALUES, max_size=1)
    return st.one_of(
        shaped, shaped, shaped, st.tuples(shaped, extra).map(lambda p: p[0] | p[1]), VALUES
    )


FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(namespace.limiter, "allow", lambda *args, **kwargs: True)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]


def answered(reply: Any) -> bool:
    """An acknowledgement of the protocol's shape: ``{"ok": true, ...}`` or a reason."""
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return False
    return reply["ok"] or isinstance(reply.get("error"), str)


CASES = [
    (who, event)
    for who in ("student", "instructor")
    for event in EVENTS
    if (who, event) != ("instructor", "room.end")  # ending is meant to stop everyone
]


@pytest.mark.parametrize(("who", "event"), CASES)
def test_any_payload_is_answered_and_harms_nobody(room, unlimited, caplog, who, event):
    sender = room.join(room.instructor if who == "instructor" else room.students[0])
    honest = room.join(room.students[1])
    caplog.set_level(logging.WARNING)

    @FUZZ
    @given(payload=payloads(event))
    def send(payload: Any) -> None:
        reply = sender.emit(event, payload)
        assert answered(reply), (event, payload, reply)

    send()
    sender.drain()
    assert errors_logged(caplog) == []
    assert sender.connected and honest.connected
    state = honest.state()
    assert state["me"]["user_id"] == room.students[1].id
    assert room.join(room.students[2]).state()["room"]["key"] == state["room"]["key"]
