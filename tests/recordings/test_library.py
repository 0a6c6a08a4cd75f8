"""The library: who sees which recordings, how they are listed, and the owner's actions (rename,
delete with the files, share links)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from lectern.extensions import db
from recordings.models import RecordingExport
from rooms.models import Recording, RecordingSegment

# role -> (sees the lesson's recording, sees the broadcast's recording, owns which)
VISIBILITY = [
    ("instructor", True, False, "lesson"),
    ("student", True, False, None),
    ("other_student", False, False, None),  # enrolled in another course of the same instructor
    ("host", False, True, "broadcast"),
    ("panelist", False, True, None),
    ("attendee", False, True, None),
    ("pending", False, False, None),  # registered, not approved
    ("outsider", False, False, None),
]


def titles(html: str) -> list[str]:
    return re.findall(r'class="rec-title" href="[^"]+">([^<]+)</a>', html)


@pytest.mark.parametrize(("role", "lesson", "broadcast", "owns"), VISIBILITY)
def test_library_lists_what_each_role_may_watch(studio, role, lesson, broadcast, owns):
    studio.recording("lesson", title="Lesson recording")
    studio.recording("broadcast", title="Broadcast recording")
    page = studio.client(studio.by_role(role)).get("/recordings/")
    assert page.status_code == 200
    html = page.data.decode()
    assert ("Lesson recording" in titles(html)) is lesson
    assert ("Broadcast recording" in titles(html)) is broadcast
    assert ("Manage" in html) is (owns is not None)


def test_library_needs_signing_in(studio):
    studio.recording()
    response = studio.client(None).get("/recordings/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_newest_first_with_status_duration_and_date(studio):
    studio.recording(title="Old", start=1_700_000_000.0, length=125.0)
    studio.recording(
        title="Cut off", start=1_750_000_000.0, length=None, status="interrupted", segments=[]
    )
    studio.recording(
        title="Running", start=1_760_000_000.0, length=None, status="recording", segments=[]
    )
    html = studio.client(studio.student).get("/recordings/").data.decode()
    assert titles(html) == ["Running", "Cut off", "Old"]
    assert "Recording now" in html
    assert "Interrupted" in html and "stopped unexpectedly" in html
    assert "2:05" in html  # 125 s
    assert "Tue, Nov 14, 2023, 10:13\u202fPM (UTC)" in html  # 1_700_000_000, no zone set


def test_dashboard_shows_the_five_newest(studio):
    for n in range(7):
        studio.recording(title=f"Take {n}", start=1_780_000_000.0 + n * 3600, segments=[])
    html = studio.client(studio.student).get("/").data.decode()
    section = html[html.index("<h2>Recordings</h2>") :]
    assert titles(section) == [f"Take {n}" for n in (6, 5, 4, 3, 2)]
    assert 'href="/recordings/"' in section


def test_dashboard_without_recordings_says_so(studio):
    html = studio.client(studio.student).get("/").data.decode()
    assert "Recordings of your lessons and broadcasts will appear here." in html


# -- the owner's actions --------------------------------------------------------------------------


def test_owner_renames(studio):
    rid = studio.recording(title="Waves")
    client = studio.client(studio.instructor)
    response = client.post(f"/recordings/{rid}/rename", data={"title": "  Waves, part 1  "})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Recording, rid).title == "Waves, part 1"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, "nul\x00byte", "two\nlines"])
def test_rename_refuses_empty_or_long_titles(studio, title):
    rid = studio.recording(title="Waves")
    studio.client(studio.instructor).post(f"/recordings/{rid}/rename", data={"title": title})
    db.session.expire_all()
    assert db.session.get(Recording, rid).title == "Waves"


@pytest.mark.parametrize(
    ("role", "status"),
    [("student", 403), ("panelist", 404), ("outsider", 404), (None, 302)],
)
@pytest.mark.parametrize("action", ["rename", "delete", "share", "unshare"])
def test_only_the_owner_manages(studio, role, status, action):
    rid = studio.recording(title="Waves")
    who = studio.by_role(role) if role else None
    response = studio.client(who).post(f"/recordings/{rid}/{action}", data={"title": "Mine"})
    assert response.status_code == status
    db.session.expire_all()
    recording = db.session.get(Recording, rid)
    assert recording is not None and recording.title == "Waves"
    assert recording.share_token is None
    assert studio.folder(rid).is_dir()


def test_delete_removes_rows_and_files(studio, rows):
    rid = studio.recording()
    other = studio.recording(title="Kept")
    db.session.add(RecordingExport(recording_id=rid, status="ready", progress=1.0))
    db.session.commit()
    (studio.folder(rid) / "export.mp4").write_bytes(b"mp4")
    response = studio.client(studio.instructor).post(f"/recordings/{rid}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/recordings/"
    assert not studio.folder(rid).exists()
    assert studio.folder(other).is_dir()
    assert rows(Recording, Recording.id == rid) == 0
    assert rows(RecordingSegment, RecordingSegment.recording_id == rid) == 0
    assert rows(RecordingExport) == 0
    assert studio.client(studio.instructor).get(f"/recordings/{rid}").status_code == 404


def test_a_running_recording_is_not_deleted(studio):
    rid = studio.recording(status="recording", length=None)
    studio.client(studio.instructor).post(f"/recordings/{rid}/delete")
    db.session.expire_all()
    assert db.session.get(Recording, rid) is not None
    assert studio.folder(rid).is_dir()


def test_delete_needs_the_csrf_token(studio, app):
    rid = studio.recording()
    client = studio.client(studio.instructor)  # signed in before the form needs a token
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post(f"/recordings/{rid}/delete")
    assert response.status_code == 400
    assert studio.folder(rid).is_dir()
    assert db.session.scalar(select(func.count()).select_from(Recording)) == 1
