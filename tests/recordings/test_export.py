"""MP4 export: a background job runs ffmpeg (H.264 + AAC) on the main track, its progress read
from ``-progress`` into the export's row; the page polls the status, then downloads the file.

The end-to-end test needs Debian's ffmpeg; CI installs it (.ci/run), so there it must run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from lectern.extensions import db
from lectern.timeutil import utcnow
from recordings import export
from recordings.models import RecordingExport

from .conftest import Seg

READY_TIMEOUT_S = 90
ENTRIES = "stream=codec_name,codec_type:format=duration"


def in_ci(config: pytest.Config) -> bool:
    """The root conftest's ``in_ci()`` (its module name depends on how tests/ is laid out)."""
    root = Path(__file__).resolve().parents[1] / "conftest.py"
    return bool(config.pluginmanager.get_plugin(str(root)).in_ci())


@pytest.fixture
def ffmpeg(pytestconfig: pytest.Config) -> None:
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        return
    if in_ci(pytestconfig):
        pytest.fail("ffmpeg and ffprobe are required in CI")
    pytest.skip("ffmpeg is not installed")


def wait_ready(client, rid: int) -> dict:
    """Poll the status as the page does until the export is no longer running."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        state = client.get(f"/recordings/{rid}/mp4/status").get_json()["export"]
        seen.append(state["progress"])
        if state["status"] != "running":
            state["seen"] = seen
            return state
        time.sleep(0.2)
    pytest.fail("the export did not finish")


def brightness(path: Path, at: float) -> float:
    """Mean luma of the frame shown at ``at`` seconds."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at:
                return float(frame.to_ndarray(format="gray").mean())
    raise AssertionError(f"no frame at {at} s")


@pytest.mark.server
@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_export_makes_an_h264_aac_mp4_on_the_recordings_clock(studio, ffmpeg, tmp_path, codec):
    """Several segments (WebM, or H.264 MP4s) are cut and joined on the player's clock."""
    first, second = Seg("camera", 0.0, 2.0, codec=codec), Seg("camera", 3.0, 6.0, 2, codec=codec)
    rid = studio.recording(length=6.0, segments=[first, second])  # no camera 2-3 s
    client = studio.client(studio.student)  # any member may ask for the MP4
    assert client.get(f"/recordings/{rid}/mp4/status").get_json()["export"]["status"] == "none"
    started = client.post(f"/recordings/{rid}/mp4")
    assert started.status_code == 202
    assert started.get_json()["export"]["status"] in ("running", "ready")

    state = wait_ready(client, rid)
    assert state["status"] == "ready", state
    assert state["progress"] == 1.0 and state["url"] == f"/recordings/{rid}/mp4"

    download = client.get(state["url"])
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "video/mp4"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    mp4 = tmp_path / "out.mp4"
    mp4.write_bytes(download.data)
    probe = subprocess.run(
        [*("ffprobe", "-v", "error", "-of", "json"), "-show_entries", ENTRIES, str(mp4)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(probe.stdout)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert float(info["format"]["duration"]) == pytest.approx(6.0, abs=0.15)
    assert brightness(mp4, 1.0) > 40  # the first camera
    assert brightness(mp4, 2.5) < 8  # no camera: black
    assert brightness(mp4, 4.5) > 40  # the second camera
    assert not (studio.folder(rid) / export.PARTIAL).exists()

    again = client.post(f"/recordings/{rid}/mp4")  # already made: nothing new starts
    assert again.status_code == 202 and again.get_json()["export"]["status"] == "ready"


@pytest.mark.server
def test_export_of_a_recording_without_media_fails_with_a_reason(studio, ffmpeg):
    rid = studio.recording(segments=[])
    client = studio.client(studio.instructor)
    assert client.post(f"/recordings/{rid}/mp4").status_code == 202
    state = wait_ready(client, rid)
    assert state["status"] == "failed"
    assert "no video or sound" in state["error"]
    assert client.get(f"/recordings/{rid}/mp4").status_code == 404


def test_no_export_while_still_recording(studio):
    rid = studio.recording(status="recording", length=None)
    response = studio.client(studio.instructor).post(f"/recordings/{rid}/mp4")
    assert response.status_code == 409


def test_a_dead_export_is_offered_again(studio):
    rid = studio.recording()
    db.session.add(
        RecordingExport(
            recording_id=rid,
            status="running",
            progress=0.4,
            updated_at=utcnow() - export.STALE_AFTER * 2,
        )
    )
    db.session.commit()
    state = studio.client(studio.student).get(f"/recordings/{rid}/mp4/status").get_json()
    assert state["export"]["status"] == "failed"
    assert "try again" in state["export"]["error"]


# -- reading ffmpeg's progress (a stand-in process speaks its protocol) ---------------------------


def fake_ffmpeg(script: str) -> list[str]:
    return [sys.executable, "-c", script]


@pytest.fixture
def running_export(studio) -> int:
    rid = studio.recording(segments=[])
    row = RecordingExport(recording_id=rid, status="running")
    db.session.add(row)
    db.session.commit()
    return row.id


def progress_of(export_id: int) -> float:
    db.session.expire_all()
    return db.session.get(RecordingExport, export_id).progress


def test_progress_lines_move_the_bar(running_export):
    script = (
        "import time\n"
        "print('frame=1\\nout_time_us=1000000\\nprogress=continue', flush=True)\n"
        "time.sleep(0.7)\n"
        "print('out_time_us=2000000\\nout_time_us=N/A\\nprogress=end', flush=True)\n"
    )
    assert export.follow(running_export, fake_ffmpeg(script), duration=4.0) is None
    assert progress_of(running_export) == 0.5


def test_an_error_line_is_what_the_user_is_told(running_export):
    script = (
        "import sys\n"
        "print('out_time_us=0', flush=True)\n"
        "print('Invalid data found', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    assert export.follow(running_export, fake_ffmpeg(script), duration=4.0) == "Invalid data found"


def test_a_deleted_export_stops_its_process(running_export):
    db.session.delete(db.session.get(RecordingExport, running_export))
    db.session.commit()
    script = "import time\nprint('out_time_us=1', flush=True)\ntime.sleep(30)"
    started = time.monotonic()
    with pytest.raises(export.Cancelled):
        export.follow(running_export, fake_ffmpeg(script), duration=4.0)
    assert time.monotonic() - started < 10
    assert running_export not in export.running
