"""timeline.json: the segments and the tracks they make, and the room's event log inside the
recording's window as the audience saw it (``t`` = seconds from the start, the state at t = 0
folded from earlier events, anonymous askers unnamed, unapproved questions left out)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from recordings.media import pieces

from .conftest import T0, Seg, add_deck, add_event


@pytest.fixture
def timeline(studio):
    """GET a recording's timeline.json as ``who`` (the student by default)."""

    def get(rid: int, who=None) -> dict:
        response = studio.client(who or studio.student).get(f"/recordings/{rid}/timeline.json")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        return response.get_json()

    return get


def types_at(doc: dict) -> list[tuple[float, str]]:
    return [(e["t"], e["type"]) for e in doc["events"]]


def test_only_events_inside_the_window_with_t_from_the_start(studio, timeline):
    room, me = studio.lesson_room, studio.student.id
    add_event(room, -5.0, "chat.message", me, id=1, text="before")
    add_event(room, 0.0, "chat.message", me, id=2, text="at the start")
    add_event(room, 2.5, "chat.message", me, id=3, text="during")
    add_event(room, 10.0, "chat.message", me, id=4, text="at the end")
    add_event(room, 10.5, "chat.message", me, id=5, text="after")
    add_event(room, 3.0, "presence.join", me, role="student")  # not replayed
    add_event(studio.broadcast_room, 4.0, "chat.message", studio.host.id, id=6, text="elsewhere")
    doc = timeline(studio.recording(length=10.0))
    assert [(e["t"], e["text"]) for e in doc["events"]] == [
        (0.0, "at the start"),
        (2.5, "during"),
        (10.0, "at the end"),
    ]
    assert doc["events"][1]["author"] == "Sam Student"
    assert doc["recording"]["duration"] == 10.0


def test_no_user_ids_leave_the_server(studio, timeline):
    room = studio.lesson_room
    add_event(room, 1.0, "chat.message", studio.student.id, id=1, text="hi")
    add_event(room, 2.0, "hand.raise", studio.student.id, hand_id=7)
    add_event(room, 3.0, "hand.called", studio.instructor.id, hand_id=7, user_id=studio.student.id)
    doc = timeline(studio.recording())
    for event in doc["events"]:
        assert "actor_id" not in event and "user_id" not in event


def test_anonymous_questions_do_not_name_the_author(studio, timeline):
    room, me = studio.lesson_room, studio.student.id
    add_event(room, 1.0, "question.ask", me, id=1, text="Why?", anonymous=True, status="open")
    add_event(room, 2.0, "question.ask", me, id=2, text="How?", anonymous=False, status="open")
    add_event(room, 3.0, "question.answer", studio.instructor.id, id=1, answer="Because.")
    doc = timeline(studio.recording())
    asked = {e["id"]: e for e in doc["events"] if e["type"] == "question.ask"}
    assert asked[1]["author"] is None
    assert asked[2]["author"] == "Sam Student"
    raw = str(doc)
    assert raw.count("Sam Student") == 1  # only with the question they asked openly
    assert {"t": 3.0, "type": "question.answer", "id": 1, "answer": "Because."} in doc["events"]


def test_questions_appear_when_approved_and_never_if_not(studio, timeline):
    room, me, mod = studio.broadcast_room, studio.attendee.id, studio.host.id
    add_event(
        room,
        1.0,
        "question.ask",
        me,
        id=1,
        text="Approved later",
        anonymous=False,
        status="pending",
    )
    add_event(
        room,
        2.0,
        "question.ask",
        me,
        id=2,
        text="Never approved",
        anonymous=False,
        status="pending",
    )
    add_event(room, 4.0, "question.approve", mod, id=1, answer=None, pinned=False)
    add_event(room, 5.0, "question.dismiss", mod, id=2, answer=None, pinned=False)
    add_event(room, 6.0, "question.pin", mod, id=1, answer=None, pinned=True)
    doc = timeline(studio.recording("broadcast"), studio.attendee)
    assert "Never approved" not in str(doc)
    assert types_at(doc) == [(4.0, "question.ask"), (6.0, "question.pin")]
    assert doc["events"][0]["text"] == "Approved later"
    assert [m["t"] for m in doc["markers"]] == [4.0]


def test_state_at_the_start_is_folded_from_earlier_events(studio, timeline):
    room, me, teacher = studio.lesson_room, studio.student.id, studio.instructor.id
    deck = add_deck(studio.data_dir, room)
    add_event(room, -60.0, "slides.page", teacher, deck_id=deck, page=1)
    add_event(room, -30.0, "slides.page", teacher, deck_id=deck, page=2)
    add_event(room, -20.0, "question.ask", me, id=1, text="Open", anonymous=True, status="open")
    add_event(room, -19.0, "question.ask", me, id=2, text="Gone", anonymous=True, status="open")
    add_event(room, -18.0, "question.dismiss", teacher, id=2, answer=None, pinned=False)
    add_event(room, -10.0, "hand.raise", me, hand_id=3)
    add_event(room, -9.0, "hand.raise", studio.other_student.id, hand_id=4)
    add_event(room, -8.0, "hand.lowered", teacher, hand_id=4, user_id=studio.other_student.id)
    add_event(room, -7.0, "chat.message", me, id=9, text="old chat")
    rid = studio.recording()
    doc = timeline(rid)
    assert doc["initial"]["slide"] == {
        "deck_id": deck,
        "page": 2,
        "url": f"/recordings/{rid}/slides/{deck}/2.png",
    }
    assert [q["text"] for q in doc["initial"]["questions"]] == ["Open"]
    assert doc["initial"]["questions"][0]["author"] is None
    assert doc["initial"]["hands"] == [{"hand_id": 3, "name": "Sam Student", "state": "raised"}]
    assert doc["events"] == []
    assert doc["chapters"] == [{"t": 0.0, "title": "Slide 2"}]


def test_slide_changes_make_chapters_but_flipping_through_does_not(studio, timeline):
    room, teacher = studio.lesson_room, studio.instructor.id
    deck = add_deck(studio.data_dir, room, pages=4)
    for t, page in [(2.0, 1), (20.0, 2), (21.0, 3), (22.0, 4), (40.0, 4), (60.0, 2)]:
        add_event(room, t, "slides.page", teacher, deck_id=deck, page=page)
    doc = timeline(studio.recording(length=90.0))
    assert doc["chapters"] == [
        {"t": 2.0, "title": "Slide 1"},
        {"t": 22.0, "title": "Slide 4"},
        {"t": 60.0, "title": "Slide 2"},
    ]
    assert [e["page"] for e in doc["events"]] == [1, 2, 3, 4, 4, 2]


def test_hands_replay_where_the_queue_is_public_or_to_hand_managers(studio, timeline):
    add_event(studio.lesson_room, 1.0, "hand.raise", studio.student.id, hand_id=1)
    add_event(studio.broadcast_room, 1.0, "hand.raise", studio.attendee.id, hand_id=2)
    lesson = timeline(studio.recording("lesson"))
    assert types_at(lesson) == [(1.0, "hand.raise")]
    broadcast = studio.recording("broadcast")
    assert timeline(broadcast, studio.attendee)["initial"]["hands"] is None
    assert timeline(broadcast, studio.attendee)["events"] == []
    assert timeline(broadcast, studio.panelist)["events"] == []  # on stage, not a moderator
    assert types_at(timeline(broadcast, studio.host)) == [(1.0, "hand.raise")]


def test_segments_tracks_and_media_times(studio, timeline):
    rid = studio.recording(
        length=12.0,
        segments=[
            Seg("camera", 0.0, 12.0),
            Seg("camera", 4.0, 6.0, shade=1),  # a student called on
            Seg("screen", 8.0, 11.0, audio=False),
        ],
    )
    doc = timeline(rid)
    first, called, screen = doc["segments"]
    assert [s["source"] for s in doc["segments"]] == ["camera", "camera", "screen"]
    assert called["media_start"] == pytest.approx(4.05)  # from the manifest's first_media_ms
    assert doc["tracks"]["main"] == [
        {"start": 0.0, "end": 4.0, "segment": first["id"]},
        {"start": 4.0, "end": 6.0, "segment": called["id"]},
        {"start": 6.0, "end": 12.0, "segment": first["id"]},
    ]
    assert doc["tracks"]["screen"] == [{"start": 8.0, "end": 11.0, "segment": screen["id"]}]


def test_a_cut_off_recording_ends_where_its_files_and_events_do(studio, timeline, app):
    add_event(studio.lesson_room, 3.0, "chat.message", studio.student.id, id=1, text="hi")
    rid = studio.recording(
        status="interrupted",
        length=3600.0,  # the server noticed an hour later
        segments=[Seg("camera", 1.0, None)],  # written until 10 s, never closed
    )
    doc = timeline(rid)
    assert doc["recording"]["status"] == "interrupted"
    assert doc["recording"]["duration"] == pytest.approx(10.0, abs=0.2)
    assert doc["segments"][0]["end_s"] == pytest.approx(10.0, abs=0.2)
    html = studio.client(studio.student).get(f"/recordings/{rid}").data.decode()
    assert "stopped unexpectedly" in html and "0:10" in html


def test_a_recording_still_running_is_announced_not_played(studio, timeline):
    rid = studio.recording(status="recording", length=None, start=T0)
    html = studio.client(studio.student).get(f"/recordings/{rid}").data.decode()
    assert "being recorded right now" in html
    assert "js/recordings/main.js" not in html


def test_player_page_has_no_inline_script_or_style(studio):
    rid = studio.recording()
    response = studio.client(studio.student).get(f"/recordings/{rid}")
    html = response.data.decode()
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    assert '<script type="module" src="/static/js/recordings/main.js"></script>' in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


# -- which segment is on screen when --------------------------------------------------------------


def seg(ident: int) -> SimpleNamespace:
    return SimpleNamespace(id=ident)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], []),
        ([(0, 10, 1)], [(0, 10, 1)]),
        ([(2, 5, 1), (7, 9, 2)], [(2, 5, 1), (7, 9, 2)]),  # gaps stay gaps
        ([(0, 10, 1), (3, 5, 2)], [(0, 3, 1), (3, 5, 2), (5, 10, 1)]),  # the newest shows
        ([(0, 6, 1), (4, 10, 2)], [(0, 4, 1), (4, 10, 2)]),
        ([(-1, 3, 1), (8, 15, 2)], [(0, 3, 1), (8, 10, 2)]),  # clipped to the recording
        ([(0, 10, 1), (5, 5.01, 2)], [(0, 10, 1)]),  # a blip is not worth switching to
    ],
)
def test_pieces(spans, expected):
    segments = {n: seg(n) for n in (1, 2)}
    found = pieces([(s, e, segments[n]) for s, e, n in spans], 10.0)
    assert [(p.start, p.end, p.segment.id) for p in found] == expected
