"""Fixtures for the third-party servers in ``tests/servers.py`` (a plugin, loaded by conftest).

Session-scoped servers are for tests that do not hurt them; a test that kills
or restarts a server makes its own (``with MjpegHttpServer() as server:``).
All of them bind 127.0.0.1 only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import servers
from netfaults import RtspServer


@pytest.fixture
def no_leftover_processes() -> Iterator[None]:
    """After the test, every child process of the test run belongs to a live helper."""
    yield
    deadline = time.monotonic() + 2.0
    while True:
        stray = servers.child_pids() - servers.tracked_pids()
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not stray, f"child processes left behind: {sorted(stray)}"


@pytest.fixture(scope="session")
def mjpeg_server() -> Iterator[servers.MjpegHttpServer]:
    """FFmpeg's HTTP server: 640x480 MJPEG at 10 fps, anonymous, one client at a time."""
    with servers.MjpegHttpServer() as server:
        yield server


@pytest.fixture(scope="session")
def mjpeg_auth_server() -> Iterator[servers.MjpegHttpServer]:
    """The same MJPEG camera behind basic auth (alice/secret), one client at a time."""
    with servers.MjpegHttpServer(user="alice", password="secret") as server:
        yield server


@pytest.fixture(scope="session")
def rtmp_server() -> Iterator[servers.RtmpListenServer]:
    """FFmpeg's RTMP server: 640x480 H.264 at 25 fps, no audio, one client at a time."""
    with servers.RtmpListenServer() as server:
        yield server


@pytest.fixture(scope="session")
def rtmp_audio_server() -> Iterator[servers.RtmpListenServer]:
    """FFmpeg's RTMP server: 640x480 H.264 at 25 fps with AAC audio, one client at a time."""
    with servers.RtmpListenServer(audio=True) as server:
        yield server


@pytest.fixture(scope="session")
def nginx_rtmp() -> Iterator[servers.NginxRtmpServer]:
    """nginx-rtmp, published to by FFmpeg: 640x480 H.264 at 25 fps + AAC, many players."""
    with servers.NginxRtmpServer() as server:
        yield server


@pytest.fixture(scope="session")
def udp_ts_server() -> Iterator[servers.FfmpegTsServer]:
    """FFmpeg sending 640x480 H.264 at 25 fps in MPEG-TS to udp://127.0.0.1:PORT."""
    with servers.FfmpegTsServer("udp") as server:
        yield server


@pytest.fixture(scope="session")
def tcp_ts_server() -> Iterator[servers.FfmpegTsServer]:
    """FFmpeg serving 640x480 H.264 + AAC in MPEG-TS on tcp://127.0.0.1:PORT, one client a time."""
    with servers.FfmpegTsServer("tcp", audio=True) as server:
        yield server


@pytest.fixture(scope="session")
def hls_server() -> Iterator[servers.HlsServer]:
    """A live HLS stream (640x480 H.264 at 25 fps, 1 s segments) on http://127.0.0.1:PORT."""
    with servers.HlsServer() as server:
        yield server


@pytest.fixture(scope="session")
def rtsp_udp_only() -> Iterator[RtspServer]:
    """gst-rtsp-server whose mounts refuse RTP over TCP (``--udp-only``), 320x240."""
    with RtspServer(width=320, height=240, gop=10, udp_only=True) as server:
        yield server


@pytest.fixture(scope="session")
def ts_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session temp dir for MPEG-TS files made by the fixtures below."""
    return tmp_path_factory.mktemp("ts")


@pytest.fixture(scope="session")
def size_change_ts(ts_media: Path) -> Path:
    """MPEG-TS, H.264 at 25 fps: 1 s at 320x240, then 1 s at 640x480."""
    return servers.make_size_change_ts(ts_media / "size-change.ts", seconds_each=1.0)


@pytest.fixture(scope="session")
def broken_ts(ts_media: Path) -> dict[str, Path]:
    """One 4 s MPEG-TS file (100 frames, 320x240, 25 fps) per kind in ``servers.BROKEN_KINDS``."""
    return {
        kind: servers.make_broken_ts(ts_media / f"{kind}.ts", kind) for kind in servers.BROKEN_KINDS
    }
