"""The command line, run as a subprocess the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netfaults import RtspServer

pytestmark = pytest.mark.timeout(60)


def run(*args: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camerapump", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_watch_json_prints_parseable_lines_and_stops_after_n_frames() -> None:
    """`watch --json --frames 45` prints JSON lines with live figures and exits 0."""
    result = run("watch", "test:", "--json", "--frames", "45")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["frames"] == 45
    assert records[0]["format"] == "640x480@30 wrapped_avframe->bgr24"
    assert {
        "fps",
        "frame_age_ms",
        "handoff_p99_ms",
        "dropped",
        "state",
        "events",
        "reconnects",
    } <= set(records[0])
    assert any("Connected" in e for r in records for e in r["events"])


def test_watch_without_a_source_uses_the_test_pattern_when_no_camera() -> None:
    """With no camera attached, plain `watch` streams the test pattern."""
    result = run("watch", "--frames", "5")
    assert result.returncode == 0, result.stderr
    assert "test:testsrc2" in result.stderr
    assert "frames" in result.stdout


def test_watch_seconds_bounds_the_run(video_file: Path) -> None:
    """`--seconds` stops the watch; a file source works too."""
    result = run("watch", str(video_file), "--seconds", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["t"] < 2


def test_bad_source_exits_2_with_one_line() -> None:
    """An unknown SOURCE is a usage error: exit 2, one line, no traceback."""
    result = run("watch", "no-such-thing")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_bad_option_exits_2() -> None:
    """A malformed option is a usage error."""
    result = run("watch", "test:", "--size", "big")
    assert result.returncode == 2
    assert "WIDTHxHEIGHT" in result.stderr


@pytest.mark.rtsp
def test_wrong_password_exits_1_and_never_prints_it(rtsp_server: RtspServer) -> None:
    """Wrong credentials: exit 1, a one-line typed error, and the password nowhere."""
    url = rtsp_server.url("/secure").replace("rtsp://", "rtsp://alice:NotTheP4ss@")
    result = run("watch", url, "--frames", "1")
    assert result.returncode == 1
    assert "AuthenticationFailed" in result.stderr
    assert "NotTheP4ss" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_help_shows_examples() -> None:
    """--help on the program and on watch shows usage with examples."""
    for args in (["--help"], ["watch", "--help"]):
        result = run(*args)
        assert result.returncode == 0
        assert "examples:" in result.stdout


def test_devices_lists_no_cameras_here() -> None:
    """`devices` and `devices --json` work on a machine without cameras."""
    result = run("devices", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    result = run("devices")
    assert result.returncode == 0
    assert "no cameras found" in result.stdout
