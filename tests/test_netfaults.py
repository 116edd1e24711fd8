"""Tests of the test infrastructure itself: tests/rtsp_server.py and tests/netfaults.py."""

from __future__ import annotations

import os
import subprocess
import time

import av
import pytest

from netfaults import (
    SERVER_SCRIPT,
    SYSTEM_PYTHON,
    GarbageResponder,
    RtspServer,
    SilentResponder,
    TcpProxy,
    free_port,
)

pytestmark = pytest.mark.rtsp

WIDTH, HEIGHT = 320, 240  # not the defaults, so the size options are exercised


def open_rtsp(url: str, read_timeout: float = 2.0):
    return av.open(url, options={"rtsp_transport": "tcp"}, timeout=(5, read_timeout))


def decode_frames(container, n: int) -> list:
    frames = []
    for frame in container.decode(video=0):
        frames.append(frame)
        if len(frames) == n:
            break
    return frames


@pytest.fixture(scope="module")
def server():
    with RtspServer(width=WIDTH, height=HEIGHT) as srv:
        yield srv


@pytest.mark.timeout(60)
def test_script_prints_ready_and_exits_0_on_sigterm():
    """The script prints exactly 'READY <port>' and exits 0 on SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline() == f"READY {port}\n".encode()
        proc.terminate()
        assert proc.wait(10) == 0
        assert proc.stdout.read() == b""
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.timeout(60)
def test_script_exits_nonzero_when_port_is_taken(server):
    """A second server on a taken port exits non-zero and says why on stderr."""
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(server.port)],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stdout == b""
    assert b"Address already in use" in proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("path", "codec"), [("/h264", "h264"), ("/mjpeg", "mjpeg")])
def test_open_mount_decodes_frames_of_configured_size(server, path, codec):
    """/h264 and /mjpeg serve anonymous clients frames of the configured size."""
    c = open_rtsp(server.url(path))
    try:
        assert c.streams.video[0].codec_context.name == codec
        frames = decode_frames(c, 5)
        assert [(f.width, f.height) for f in frames] == [(WIDTH, HEIGHT)] * 5
        assert frames[-1].to_ndarray(format="bgr24").shape == (HEIGHT, WIDTH, 3)
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_secure_mount_serves_with_right_credentials(server):
    """/secure decodes frames when the URL carries the right user and password."""
    c = open_rtsp(server.url("/secure", auth=True))
    try:
        assert decode_frames(c, 1)[0].width == WIDTH
    finally:
        c.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("creds", ["", "alice:wrong@", "mallory:secret@"])
def test_secure_mount_refuses_missing_or_wrong_credentials(server, creds):
    """/secure answers 401 (HTTPUnauthorizedError) without or with wrong credentials."""
    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_rtsp(f"rtsp://{creds}127.0.0.1:{server.port}/secure").close()


@pytest.mark.timeout(60)
def test_proxy_forwards_rtsp_over_tcp(server):
    """RTSP over TCP through the proxy's port decodes frames and counts the connection."""
    with TcpProxy(("127.0.0.1", server.port)) as proxy:
        c = open_rtsp(f"rtsp://127.0.0.1:{proxy.port}/h264")
        try:
            assert len(decode_frames(c, 10)) == 10
            assert proxy.connections == 1
        finally:
            c.close()


@pytest.mark.timeout(60)
def test_proxy_freeze_stalls_reads_and_unfreeze_resumes(server):
    """A frozen proxy makes reads raise ExitError after the read timeout; unfrozen, frames flow."""
    # MJPEG: every frame stands alone. (On H.264 the decoder sometimes gets the
    # cut-off frame first and raises InvalidDataError instead of ExitError.)
    with TcpProxy(("127.0.0.1", server.port)) as proxy:
        c = open_rtsp(f"rtsp://127.0.0.1:{proxy.port}/mjpeg", read_timeout=0.25)
        try:
            decode_frames(c, 5)
            proxy.freeze()
            started = time.monotonic()
            with pytest.raises(av.error.ExitError):
                for _ in c.decode(video=0):
                    pass
            assert 0.2 < time.monotonic() - started < 3.0
            proxy.unfreeze()
            frames = decode_frames(c, 10)  # a new iterator on the same container
            assert [(f.width, f.height) for f in frames] == [(WIDTH, HEIGHT)] * 10
        finally:
            c.close()


@pytest.mark.timeout(60)
def test_proxy_drop_ends_the_stream(server):
    """proxy.drop() closes the connection and the client's decode loop ends promptly."""
    with TcpProxy(("127.0.0.1", server.port)) as proxy:
        c = open_rtsp(f"rtsp://127.0.0.1:{proxy.port}/mjpeg")
        try:
            decode_frames(c, 3)
            proxy.drop()
            started = time.monotonic()
            for _ in c.decode(video=0):
                assert time.monotonic() - started < 2.0
            assert time.monotonic() - started < 2.0
        finally:
            c.close()


@pytest.mark.timeout(60)
def test_kill_then_restart_serves_again_on_the_same_port():
    """After kill() the client's stream ends; restart() serves again on the same port."""
    with RtspServer(width=WIDTH, height=HEIGHT) as srv:
        port, first_pid = srv.port, srv.pid
        c = open_rtsp(srv.url())
        try:
            decode_frames(c, 3)
            srv.kill()
            assert not srv.alive
            started = time.monotonic()
            # The iterator usually just ends; now and then the decoder gets a cut-off frame.
            with pytest.raises((StopIteration, av.error.InvalidDataError)):
                it = c.decode(video=0)
                while True:
                    next(it)
            assert time.monotonic() - started < 2.0
        finally:
            c.close()

        srv.restart()
        assert srv.alive and srv.port == port and srv.pid != first_pid
        c = open_rtsp(srv.url())
        try:
            assert decode_frames(c, 1)[0].width == WIDTH
        finally:
            c.close()
        last_pid = srv.pid
    assert not srv.alive
    with pytest.raises(ProcessLookupError):
        os.kill(last_pid, 0)  # stopped and reaped: no child left behind


@pytest.mark.timeout(60)
def test_silent_responder_fails_open_after_open_timeout():
    """A server that accepts and never answers makes av.open fail after its open timeout."""
    with SilentResponder() as silent:
        started = time.monotonic()
        with pytest.raises(av.error.InvalidDataError):
            av.open(
                f"rtsp://127.0.0.1:{silent.port}/h264",
                options={"rtsp_transport": "tcp"},
                timeout=(2, 0.25),
            ).close()
        assert 1.5 < time.monotonic() - started < 4.0
        assert silent.connections == 1


@pytest.mark.timeout(60)
def test_garbage_responder_fails_open_fast():
    """A server that answers junk makes av.open raise InvalidDataError well before its timeout."""
    with GarbageResponder() as garbage:
        started = time.monotonic()
        with pytest.raises(av.error.InvalidDataError):
            av.open(
                f"rtsp://127.0.0.1:{garbage.port}/h264",
                options={"rtsp_transport": "tcp"},
                timeout=(5, 2),
            ).close()
        assert time.monotonic() - started < 1.5
        assert garbage.connections == 1


@pytest.mark.timeout(30)
def test_helpers_close_their_threads_quickly():
    """close() on the proxy and responders joins their threads within about 1 s."""
    for helper in (TcpProxy(("127.0.0.1", free_port())), SilentResponder(), GarbageResponder()):
        helper.start()
        started = time.monotonic()
        helper.close()
        assert time.monotonic() - started < 1.2
        assert not helper.running
