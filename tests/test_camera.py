"""The blocking layer: open_camera / Camera.next_frame."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import camerapump as cp
from conftest import _pump_threads
from netfaults import RtspServer

pytestmark = pytest.mark.timeout(30)


def test_open_camera_on_the_test_source_gives_fresh_frames() -> None:
    """next_frame returns frames of the negotiated format, each newer than the last."""
    with cp.open_camera(cp.Source.test(), cp.StreamConfig(320, 240, 30)) as cam:
        assert cam.format == cp.StreamFormat(320, 240, 30.0, "bgr24", "wrapped_avframe")
        first = cam.next_frame()
        time.sleep(0.2)
        second = cam.next_frame()
    assert first.data.shape == (240, 320, 3)
    assert second.sequence > first.sequence + 3  # the backlog was dropped, not queued
    assert not [t for t in _pump_threads() if t.is_alive()]


def test_next_frame_times_out_with_stream_timeout() -> None:
    """With nothing arriving in time, next_frame raises StreamTimeout (a TimeoutError)."""
    with cp.open_camera(cp.Source.test(), cp.StreamConfig(64, 48, fps=1)) as cam:
        cam.next_frame(timeout=2)
        with pytest.raises(TimeoutError):
            cam.next_frame(timeout=0.1)


def test_iterating_a_file_yields_every_frame_then_stops(video_file: Path) -> None:
    """A file read with realtime=False yields all its frames, then iteration ends."""
    with cp.open_camera(cp.Source.file(video_file, realtime=False)) as cam:
        sequences = [frame.sequence for frame in cam]
        with pytest.raises(cp.StreamEnded):
            cam.next_frame()
    assert sequences == list(range(60))


def test_open_camera_raises_the_typed_error(tmp_path: Path) -> None:
    """A missing file raises DeviceNotFound from open_camera, leaving no thread."""
    with pytest.raises(cp.DeviceNotFound):
        cp.open_camera(cp.Source.file(tmp_path / "missing.mp4"))
    assert not [t for t in _pump_threads() if t.is_alive()]


@pytest.mark.rtsp
def test_open_camera_reads_rtsp(rtsp_server: RtspServer) -> None:
    """The blocking layer reads the real RTSP server too."""
    with cp.open_camera(cp.Source.rtsp(rtsp_server.url("/mjpeg"))) as cam:
        frame = cam.next_frame(timeout=5)
        assert "mjpeg" in repr(cam.format)
    assert frame.data.shape == (480, 640, 3)
