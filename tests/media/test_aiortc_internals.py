"""The one door to aiortc's internals: the worker refuses an aiortc release it was not made for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from media.aiortc_internals import SUPPORTED, UnsupportedAiortc, check_version

from .conftest import ROOT, worker_env


def test_version_check_accepts_the_supported_release_and_refuses_others() -> None:
    check_version(f"{SUPPORTED}.0")
    check_version(f"{SUPPORTED}.7")
    for other in ("1.17.0", "1.15.2", "2.16.0", "1.1"):
        with pytest.raises(UnsupportedAiortc) as refused:
            check_version(other)
        assert f"aiortc {other} is not supported" in str(refused.value)
        assert f"supports aiortc {SUPPORTED}.x only" in str(refused.value)


def test_worker_refuses_to_start_with_an_unsupported_aiortc() -> None:
    """The real worker entry point, in its own process, with aiortc claiming another release."""
    code = (
        "import sys, aiortc; aiortc.__version__ = '1.17.0'; "
        "sys.argv = ['media.worker', '--port', '0']; "
        "from media.worker import run; run()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    assert "aiortc 1.17.0 is not supported" in done.stderr
    assert f"supports aiortc {SUPPORTED}.x only" in done.stderr
    assert "listening on" not in done.stdout
