"""Shared fixtures: media files made with PyAV, the real RTSP server, leak checks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from netfaults import RtspServer

# The third-party servers' fixtures (tests/servers.py): FFmpeg, nginx-rtmp, HLS, MPEG-TS.
pytest_plugins = ["conftest_servers"]

# Short GOPs keep the time to first frame (the keyframe wait) small in tests.
TEST_GOP = 10


def make_video(
    path: Path,
    *,
    frames: int = 60,
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    codec: str = "libx264",
    container: str | None = None,
) -> Path:
    """Write a small video with a moving gradient and a frame counter in the first pixel row."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if codec != "mjpeg" else "yuvj420p"
        stream.time_base = Fraction(1, fps)
        if codec == "libx264":
            stream.options = {"g": "15", "preset": "ultrafast", "tune": "zerolatency"}
        x = np.arange(width, dtype=np.uint16)
        for i in range(frames):
            img = np.empty((height, width, 3), np.uint8)
            img[:] = ((x + i * 4) % 256).astype(np.uint8)[None, :, None]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 320x240, 30 fps H.264 MP4 (60 frames)."""
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspServer]:
    """The shared gst-rtsp-server (640x480 at 30 fps) for tests that do not hurt it."""
    with RtspServer(gop=TEST_GOP) as server:
        yield server


@pytest.fixture
def own_rtsp_server() -> Iterator[RtspServer]:
    """A gst-rtsp-server of this test's own, to kill, restart or freeze."""
    with RtspServer(gop=TEST_GOP) as server:
        yield server


def _pump_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camerapump-")]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test ends with no decode thread of a pump left running."""
    before = set(_pump_threads())
    yield
    if request.node.get_closest_marker("allow_lingering_thread"):
        return
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        left = [t for t in _pump_threads() if t not in before and t.is_alive()]
        if not left:
            break
        time.sleep(0.02)
    assert not left, f"decode threads left running: {left}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_lingering_thread: the test itself checks a thread that outlives aclose"
    )


__all__ = ["TEST_GOP", "_open_fds", "_pump_threads", "make_video"]
