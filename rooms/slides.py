"""Slide sync: the presenter shows a page of a deck; everyone, late joiners too, sees it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lectern.extensions import db
from rooms import log
from rooms.context import Actor, Outbox, Refused
from rooms.events import Event
from rooms.models import Room, SlideDeck
from rooms.policy import Perm
from rooms.validate import Int


def deck_view(deck: SlideDeck) -> dict[str, Any]:
    return {
        "id": deck.id,
        "filename": deck.filename,
        "pages": deck.pages,
        "rendered": deck.rendered,
        "status": deck.status,
        "error": deck.error,
    }


def current(room: Room) -> dict[str, Any] | None:
    """The deck and page being shown, or None before the presenter shows any."""
    deck = db.session.get(SlideDeck, room.deck_id) if room.deck_id else None
    if deck is None:
        return None
    return {"deck": deck_view(deck), "page": room.page}


def decks(room_id: int) -> list[dict[str, Any]]:
    """Every deck uploaded to the room (for the presenter's picker)."""
    found = db.session.scalars(
        select(SlideDeck).where(SlideDeck.room_id == room_id).order_by(SlideDeck.id)
    )
    return [deck_view(d) for d in found]


def goto(actor: Actor, data: dict[str, Any], out: Outbox) -> dict[str, Any]:
    """Show page ``page`` of deck ``deck_id`` to everyone."""
    actor.require(Perm.PRESENT)
    deck = db.session.get(SlideDeck, data["deck_id"])
    if deck is None or deck.room_id != actor.room_id:
        raise Refused("no such slide deck in this room")
    if data["page"] > deck.rendered:
        raise Refused(
            "page %(page)s is not available (deck has %(ready)s ready)",
            page=data["page"],
            ready=deck.rendered,
        )
    room = db.session.get(Room, actor.room_id)
    assert room is not None
    room.deck_id, room.page = deck.id, data["page"]
    log.record(actor.room_id, actor.user_id, "slides.page", deck_id=deck.id, page=room.page)
    db.session.commit()
    shown = current(room)
    out.to_all(actor.room_id, "slides.page", shown)
    return {"slides": shown}


EVENTS = [
    Event("slides.goto", {"deck_id": Int(), "page": Int(max=10_000)}, goto),
]
