"""Who may watch: members of the recording's room, or holders of its share link. Everyone else
gets 404 on the page, its timeline, every file and every range of a file; and files are served
with range requests (seeking) as video/webm or video/mp4."""

from __future__ import annotations

import re

import av
import pytest
from sqlalchemy import select

from lectern.extensions import db
from rooms.models import Recording, RecordingSegment
from rooms.recording import apply_manifest

from .conftest import add_deck, add_event


def segment_file(rid: int) -> str:
    return db.session.scalar(
        select(RecordingSegment.file).where(RecordingSegment.recording_id == rid)
    )


def resources(rid: int, name: str, deck: int | None = None) -> list[str]:
    """Everything a viewer fetches, by id."""
    found = [
        f"/recordings/{rid}",
        f"/recordings/{rid}/timeline.json",
        f"/recordings/{rid}/files/{name}",
        f"/recordings/{rid}/files/{name}?download=1",
    ]
    return found + ([f"/recordings/{rid}/slides/{deck}/1.png"] if deck else [])


@pytest.fixture
def lesson_recording(studio):
    """A lesson recording whose first slide deck was on screen."""
    deck = add_deck(studio.data_dir, studio.lesson_room)
    add_event(studio.lesson_room, 1.0, "slides.page", studio.instructor.id, deck_id=deck, page=1)
    rid = studio.recording()
    return rid, segment_file(rid), deck


@pytest.mark.parametrize("role", ["instructor", "student"])
def test_members_get_everything(studio, lesson_recording, role):
    rid, name, deck = lesson_recording
    client = studio.client(studio.by_role(role))
    for url in resources(rid, name, deck):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", ["outsider", "other_student", "host", "attendee", "pending"])
def test_non_members_get_404_everywhere(studio, lesson_recording, role):
    rid, name, deck = lesson_recording
    client = studio.client(studio.by_role(role))
    for url in resources(rid, name, deck):
        assert client.get(url).status_code == 404, url
        ranged = client.get(url, headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 404, url
    assert client.post(f"/recordings/{rid}/mp4").status_code == 404
    assert client.get(f"/recordings/{rid}/mp4/status").status_code == 404
    assert client.get(f"/recordings/{rid}/mp4").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in_or_get_404(studio, lesson_recording):
    rid, name, deck = lesson_recording
    client = studio.client(None)
    page = client.get(f"/recordings/{rid}")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    for url in resources(rid, name, deck)[1:]:
        assert client.get(url).status_code == 404, url


def test_broadcast_members_and_only_they(studio):
    rid = studio.recording("broadcast")
    name = segment_file(rid)
    for role in ("host", "panelist", "attendee"):
        client = studio.client(studio.by_role(role))
        assert client.get(f"/recordings/{rid}/files/{name}").status_code == 200, role
    for role in ("pending", "instructor", "student"):
        client = studio.client(studio.by_role(role))
        assert client.get(f"/recordings/{rid}/timeline.json").status_code == 404, role


def test_unknown_recording_is_404(studio):
    assert studio.client(studio.instructor).get("/recordings/999999").status_code == 404


# -- files ----------------------------------------------------------------------------------------


def test_range_request_gets_206_and_exactly_those_bytes(studio, lesson_recording):
    rid, name, _ = lesson_recording
    client = studio.client(studio.student)
    whole = client.get(f"/recordings/{rid}/files/{name}")
    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "video/webm"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
    part = client.get(f"/recordings/{rid}/files/{name}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.headers["Content-Type"] == "video/webm"
    assert len(part.data) == 100 and part.data == whole.data[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(whole.data)}"
    tail = client.get(f"/recordings/{rid}/files/{name}", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == whole.data[-10:]
    assert "private" in whole.headers["Cache-Control"]


def test_download_is_an_attachment(studio, lesson_recording):
    rid, name, _ = lesson_recording
    response = studio.client(studio.student).get(f"/recordings/{rid}/files/{name}?download=1")
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert ".webm" in response.headers["Content-Disposition"]


@pytest.mark.parametrize(
    "name",
    [
        "manifest.json",
        "..%2F..%2Fsecret_key",
        "../../secret_key",
        "%2e%2e%2flectern.db",
        "missing.webm",
        "export.mp4",
        "%00.webm",
        "a%00b.webm",
    ],
)
def test_only_segment_files_are_served(studio, lesson_recording, name):
    rid, _, _ = lesson_recording
    (studio.folder(rid) / "export.mp4").write_bytes(b"not through this route")
    response = studio.client(studio.instructor).get(f"/recordings/{rid}/files/{name}")
    assert response.status_code == 404


def test_another_recordings_file_is_404(studio, lesson_recording):
    rid, _, _ = lesson_recording
    other = studio.recording("broadcast")
    response = studio.client(studio.student).get(f"/recordings/{rid}/files/{segment_file(other)}")
    assert response.status_code == 404


def test_slides_only_of_decks_shown_during_the_recording(studio, lesson_recording):
    rid, _, deck = lesson_recording
    unshown = add_deck(studio.data_dir, studio.lesson_room)
    client = studio.client(studio.student)
    shown = client.get(f"/recordings/{rid}/slides/{deck}/2.png")
    assert shown.status_code == 200 and shown.headers["Content-Type"] == "image/png"
    assert shown.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/recordings/{rid}/slides/{unshown}/1.png").status_code == 404
    assert client.get(f"/recordings/{rid}/slides/{deck}/9.png").status_code == 404


# -- share links ----------------------------------------------------------------------------------


def share(studio, rid: int) -> str:
    response = studio.client(studio.instructor).post(
        f"/recordings/{rid}/share", data={"next": f"/recordings/{rid}"}
    )
    assert response.status_code == 302 and response.headers["Location"] == f"/recordings/{rid}"
    db.session.expire_all()
    token = db.session.get(Recording, rid).share_token
    assert token is not None and len(token) == 32  # secrets.token_urlsafe(24)
    return token


def test_share_link_lets_anyone_watch_until_revoked(studio, lesson_recording):
    rid, name, deck = lesson_recording
    token = share(studio, rid)
    base = f"/recordings/shared/{token}"
    for who in (None, studio.outsider):
        client = studio.client(who)
        page = client.get(base)
        assert page.status_code == 200
        assert f'data-timeline="{base}/timeline.json"' in page.data.decode()
        assert "noindex" in page.headers["X-Robots-Tag"]
        timeline = client.get(f"{base}/timeline.json").get_json()
        assert timeline["segments"][0]["url"] == f"{base}/files/{name}"
        ranged = client.get(f"{base}/files/{name}", headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.data) == 100
        assert client.get(f"{base}/slides/{deck}/1.png").status_code == 200
        # The link opens this recording only: the member addresses stay closed.
        assert client.get(f"/recordings/{rid}/timeline.json").status_code == 404

    again = share(studio, rid)
    assert again == token  # sharing twice keeps the same link

    studio.client(studio.instructor).post(f"/recordings/{rid}/unshare")
    db.session.expire_all()
    assert db.session.get(Recording, rid).share_token is None
    anyone = studio.client(None)
    for url in (base, f"{base}/timeline.json", f"{base}/files/{name}"):
        assert anyone.get(url).status_code == 404, url
        assert anyone.get(url, headers={"Range": "bytes=0-99"}).status_code == 404, url


def test_a_new_share_link_differs_from_a_revoked_one(studio, lesson_recording):
    rid, _, _ = lesson_recording
    first = share(studio, rid)
    studio.client(studio.instructor).post(f"/recordings/{rid}/unshare")
    assert share(studio, rid) != first
    assert studio.client(None).get(f"/recordings/shared/{first}").status_code == 404


@pytest.mark.parametrize("token", ["nope", "x" * 65, "%00", "a" * 32])
def test_made_up_tokens_are_404(studio, lesson_recording, token):
    share(studio, lesson_recording[0])
    assert studio.client(None).get(f"/recordings/shared/{token}").status_code == 404


def test_shared_page_offers_no_owner_tools_or_mp4(studio, lesson_recording):
    rid, _, _ = lesson_recording
    token = share(studio, rid)
    html = studio.client(None).get(f"/recordings/shared/{token}").data.decode()
    assert "Manage" not in html and "data-export" not in html
    assert re.search(r'href="/recordings/shared/[^"]+/files/[^"]+\?download=1"', html)


def test_owner_sees_the_share_link_on_the_player(studio, lesson_recording):
    rid, _, _ = lesson_recording
    token = share(studio, rid)
    html = studio.client(studio.instructor).get(f"/recordings/{rid}").data.decode()
    assert f"http://localhost/recordings/shared/{token}" in html
    student = studio.client(studio.student).get(f"/recordings/{rid}").data.decode()
    assert token not in student and "Manage" not in student


def write_h264_mp4(path):
    """A short MP4 of H.264 (what the worker records an H.264 stream into)."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for n in range(10):
            frame = av.VideoFrame(64, 48, "yuv420p")
            frame.pts = n
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def record_as_h264(studio, rid: int, name: str):
    """Make the recording's segment ``name`` an H.264 one through the worker's manifest, as an
    H.264 stream's recording does; returns its MP4. A name in the manifest that is not the
    stream's own is ignored on the way."""
    with studio.app.app_context():
        recording = db.session.get(Recording, rid)
        segment = db.session.scalars(
            select(RecordingSegment).where(RecordingSegment.file == name)
        ).one()
        mp4 = studio.data_dir / recording.directory / f"{segment.stream_id}.mp4"
        write_h264_mp4(mp4)
        entry = {"stream": segment.stream_id, "start_s": segment.start_s, "end_s": segment.end_s}
        apply_manifest(recording, {"segments": [{**entry, "file": "../elsewhere.mp4"}]})
        assert segment.file == name
        apply_manifest(recording, {"segments": [{**entry, "file": mp4.name}]})
        db.session.commit()
    return mp4


def test_h264_segment_is_taken_from_the_manifest_and_served_as_mp4(studio, lesson_recording):
    rid, name, _ = lesson_recording
    mp4 = record_as_h264(studio, rid, name)
    client = studio.client(studio.student)
    got = client.get(f"/recordings/{rid}/files/{mp4.name}?download=1")
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "video/mp4"
    assert got.data == mp4.read_bytes()
    assert ".mp4" in got.headers["Content-Disposition"]
    assert client.get(f"/recordings/{rid}/files/{name}").status_code == 404  # no longer listed


def test_a_one_h264_segment_recording_downloads_as_its_own_mp4(studio, lesson_recording):
    """No export job: "Download MP4" of a recording that is one H.264 segment serves the
    recorded file itself, ready at once."""
    rid, name, _ = lesson_recording
    mp4 = record_as_h264(studio, rid, name)
    client = studio.client(studio.student)
    state = client.get(f"/recordings/{rid}/mp4/status").get_json()["export"]
    assert state["status"] == "ready" and state["url"] == f"/recordings/{rid}/mp4"
    started = client.post(f"/recordings/{rid}/mp4")
    assert started.status_code == 202 and started.get_json()["export"]["status"] == "ready"
    assert not (studio.folder(rid) / "export.mp4").exists()
    assert not (studio.folder(rid) / "export.partial.mp4").exists()
    got = client.get(f"/recordings/{rid}/mp4")
    assert got.status_code == 200 and got.headers["Content-Type"] == "video/mp4"
    assert got.data == mp4.read_bytes()
    assert got.headers["Content-Disposition"] == "attachment; filename=Waves.mp4"
    outsider = studio.client(studio.outsider)
    assert outsider.get(f"/recordings/{rid}/mp4").status_code == 404
