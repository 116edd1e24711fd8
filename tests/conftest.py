"""Shared fixtures: media files made with PyAV, the real RTSP server, leak checks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import anyio
import av
import numpy as np
import pluggy
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


async def eventually(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (a state the test must reach); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {condition}")
        await anyio.sleep(0.005)


def _pump_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camerapump-")]


def _task_ids() -> set[int]:
    """Every thread of this process, Python's and native ones, by id (Linux's /proc)."""
    return {int(task.name) for task in Path("/proc/self/task").iterdir()}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses an RTSP server fixture carries the ``rtsp`` marker (no drift)."""
    for item in items:
        if {"rtsp_server", "own_rtsp_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.rtsp)


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


# -- two async plugins, each test run once by one of them --------------------------------
#
# pytest-asyncio (asyncio_mode = "auto") runs the asyncio suite.  Tests marked
# ``@pytest.mark.anyio`` take an ``anyio_backend`` parameter and belong to anyio's
# plugin, which runs them under asyncio and under trio.  In auto mode
# pytest-asyncio would claim those too (and run the trio case under asyncio), so
# this hook hands them back as plain test functions before anyone runs them.


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The backends that tests marked ``anyio`` run under."""
    return str(request.param)


@pytest.hookimpl(specname="pytest_pycollect_makeitem", hookwrapper=True)
def pytest_pycollect_makeitem_for_anyio(
    collector: pytest.Collector, name: str, obj: object
) -> Generator[None, pluggy.Result[object], None]:
    result = yield
    items = result.get_result()
    if not items:
        return
    listed = list(items) if isinstance(items, Sequence) else [items]
    handed: list[object] = []
    for item in listed:
        if (
            isinstance(item, pytest.Function)
            and type(item) is not pytest.Function  # pytest-asyncio's own item class
            and item.get_closest_marker("anyio") is not None
        ):
            handed.append(
                pytest.Function.from_parent(
                    item.parent,
                    name=item.name,
                    callspec=getattr(item, "callspec", None),
                    callobj=item.obj,
                    fixtureinfo=item._fixtureinfo,
                    keywords=item.keywords,
                    originalname=item.originalname,
                )
            )
        else:
            handed.append(item)
    result.force_result(handed)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran under each backend (CI shows that trio really ran)."""
    counts: dict[str, int] = {}
    for key in ("passed", "failed"):
        for report in terminalreporter.stats.get(key, []):
            if getattr(report, "when", "call") != "call":
                continue
            params = report.nodeid.rpartition("[")[2].rstrip("]").split("-")
            backend = "trio" if "trio" in params else "asyncio"
            counts[backend] = counts.get(backend, 0) + 1
    if counts:
        terminalreporter.write_line(
            "camerapump backends: "
            + ", ".join(f"{n} tests under {name}" for name, n in sorted(counts.items()))
        )


__all__ = ["TEST_GOP", "_open_fds", "_pump_threads", "eventually", "make_video"]
