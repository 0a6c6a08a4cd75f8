"""The stage: the host promotes an attendee to panelist and demotes them again; the change holds
at once and, after the forced reconnect, in the role they are given."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from accounts.models import User
from lectern.extensions import db
from rooms import namespace
from rooms.grants import may_publish
from rooms.log import timeline
from rooms.models import Grant, MediaStream
from webinar.models import Broadcast, Registration


def registered_role(broadcast_id: int, user_id: int) -> str:
    db.session.rollback()  # read what is committed
    return db.session.scalar(
        select(Registration.role).where(
            Registration.broadcast_id == broadcast_id, Registration.user_id == user_id
        )
    )


def grants(user_id: int) -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(Grant.reason).where(Grant.user_id == user_id)))


def actor_of(client):
    """The frozen actor of a connected client (this test process is its web worker)."""
    return next(a for a in namespace.actors.values() if a.user_id == client.person.id)


def stream(room, client, sid: str = "") -> str:
    """A live stream row of ``client``'s user, as media.publish would leave it."""
    row = MediaStream(
        id=f"s-{client.person.id}",
        room_id=room.room_id(room.broadcast),
        user_id=client.person.id,
        sid=sid or actor_of(client).sid,
        source="camera",
        worker="worker-a",
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def test_promoting_lets_an_attendee_publish_at_once_and_reconnects_them(room):
    host, panelist = room.join(room.host), room.join(room.panelist)
    abe, abe_tab = room.join(room.attendees[0]), room.join(room.attendees[0])
    bea = room.join(room.attendees[1])
    frozen = actor_of(abe)
    assert abe.state()["me"]["can_publish"] is False
    for client in (host, panelist, abe, abe_tab, bea):
        client.drain()
    abe_id = room.attendees[0].id

    reply = host.emit("stage.promote", {"user_id": abe_id})

    assert reply == {"ok": True, "user_id": abe_id, "role": "panelist"}
    assert may_publish(frozen)  # even for a connection that still holds the attendee role
    assert grants(abe_id) == ["promoted"]
    assert registered_role(room.broadcast_id, abe_id) == "panelist"
    for tab in (abe, abe_tab):
        assert tab.got("stage.role") == [{"role": "panelist", "can_publish": True}]
        assert not tab.connected
    assert abe_id not in {a.user_id for a in namespace.actors.values()}  # the server let go
    assert abe_id not in {row[2] for row in room.dump()["room_connections"]}
    assert host.got("presence.role") == [{"user_id": abe_id, "role": "panelist"}]
    for other in (panelist, bea):
        assert other.got("presence.role") == []
    assert bea.connected

    me = room.join(room.attendees[0]).state()["me"]
    assert (me["role"], me["can_publish"]) == ("panelist", True)
    assert "question.moderate" not in me["permissions"]  # on stage to speak, not to moderate
    events = [(e["type"], e["actor_id"], e["payload"]) for e in timeline(frozen.room_id)]
    assert ("stage.promote", room.host.id, {"user_id": abe_id}) in events


def test_demoting_ends_streams_and_grants_and_reconnects_as_attendee(room):
    host, bea = room.join(room.host), room.join(room.attendees[1])
    pia = room.join(room.panelist)
    pia_id = room.panelist.id
    # a stream from a tab on another web worker: only the demotion itself can end it
    stream(room, pia, sid="elsewhere")
    assert [s["user_id"] for s in bea.state()["streams"]] == [pia_id]
    db.session.add(Grant(room_id=room.room_id(room.broadcast), user_id=pia_id, reason="called"))
    db.session.commit()
    bea.drain()

    reply = host.emit("stage.demote", {"user_id": pia_id})

    assert reply == {"ok": True, "user_id": pia_id, "role": "attendee"}
    assert pia.got("stage.role") == [{"role": "attendee", "can_publish": False}]
    assert not pia.connected
    assert bea.got("media.streams") == [{"streams": []}]
    assert db.session.scalar(select(func.count()).select_from(MediaStream)) == 0
    assert grants(pia_id) == []
    assert registered_role(room.broadcast_id, pia_id) == "attendee"

    me = room.join(room.panelist).state()["me"]
    assert (me["role"], me["can_publish"]) == ("attendee", False)
    assert "question.moderate" not in me["permissions"]


def test_promote_then_demote_takes_the_grant_back(room):
    host, abe = room.join(room.host), room.join(room.attendees[0])
    abe_id = room.attendees[0].id
    assert host.emit("stage.promote", {"user_id": abe_id})["ok"]
    again = room.join(room.attendees[0])
    stream(room, again)
    assert host.emit("stage.demote", {"user_id": abe_id})["ok"]
    assert not abe.connected and not again.connected
    assert grants(abe_id) == []
    assert db.session.scalar(select(func.count()).select_from(MediaStream)) == 0
    assert room.join(room.attendees[0]).state()["me"]["can_publish"] is False


def test_promoting_someone_called_on_keeps_their_grant_after_the_hand(room):
    host, abe = room.join(room.host), room.join(room.attendees[0])
    abe_id = room.attendees[0].id
    abe.emit("hand.raise")
    host.emit("hand.call", {"user_id": abe_id})
    host.emit("stage.promote", {"user_id": abe_id})
    assert grants(abe_id) == ["promoted"]
    assert host.emit("hand.lower", {"user_id": abe_id})["ok"]
    assert grants(abe_id) == ["promoted"]  # lowering takes back only what calling on gave


def test_someone_not_connected_is_promoted_for_their_next_visit(room):
    host = room.join(room.host)
    bea_id = room.attendees[1].id
    assert host.emit("stage.promote", {"user_id": bea_id})["ok"]
    assert room.join(room.attendees[1]).state()["me"]["role"] == "panelist"


@pytest.mark.parametrize(
    ("event", "target", "error"),
    [
        ("stage.promote", "host", "the host is always on stage"),
        ("stage.demote", "host", "the host is always on stage"),
        ("stage.promote", "panelist", "they are already a panelist"),
        ("stage.demote", "attendee", "they are already an attendee"),
        ("stage.promote", "outsider", "they have no approved registration for this broadcast"),
        ("stage.promote", "pending", "they have no approved registration for this broadcast"),
        ("stage.promote", "nobody", "they have no approved registration for this broadcast"),
    ],
)
def test_stage_changes_that_make_no_sense_are_refused(room, broadcasts, event, target, error):
    host, abe = room.join(room.host), room.join(room.attendees[0])
    pending = room.students[2]
    cast = db.session.get(Broadcast, room.broadcast_id)
    broadcasts.register(cast, db.session.get(User, pending.id), status="pending")
    user_id = {
        "host": room.host.id,
        "panelist": room.panelist.id,
        "attendee": room.attendees[0].id,
        "outsider": room.outsider.id,
        "pending": pending.id,
        "nobody": 999_999,
    }[target]
    host.drain()
    abe.drain()
    before = room.dump()

    assert host.emit(event, {"user_id": user_id}) == {"ok": False, "error": error}
    assert room.dump() == before
    assert host.drain() == [] and abe.drain() == []
    assert abe.connected


@pytest.mark.parametrize("event", ["stage.promote", "stage.demote"])
def test_a_lesson_has_no_stage(room, event):
    teacher, student = room.join(room.instructor), room.join(room.students[0])
    before = room.dump()
    reply = teacher.emit(event, {"user_id": room.students[0].id})
    assert reply == {"ok": False, "error": "this room has no stage"}
    reply = student.emit(event, {"user_id": room.students[1].id})
    assert reply == {"ok": False, "error": "your role (student) may not do this"}
    assert room.dump() == before
    assert student.connected


@pytest.mark.parametrize("who", ["panelist", "attendee"])
def test_only_the_host_manages_the_stage(room, who):
    person, _ = room.role(who)
    client = room.join(person)
    reply = client.emit("stage.promote", {"user_id": room.attendees[1].id})
    assert reply == {"ok": False, "error": f"your role ({who}) may not do this"}
    assert "stage.manage" not in client.state()["me"]["permissions"]
    assert "stage.manage" in room.join(room.host).state()["me"]["permissions"]
