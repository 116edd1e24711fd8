"""Defects found by the review of the rewrite: mailbox, viewer, chains, recorder, stalls."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import anyio
import av
import numpy as np
import pytest

import camerapump as cp

pytestmark = pytest.mark.timeout(40)


# -- the mailbox: a frame that serves a ticket must never be lost -----------------------


async def test_waiting_consumer_is_served_after_the_loop_was_blocked() -> None:
    """A consumer waiting while the loop is blocked gets a frame once the loop runs again."""
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(160, 120, 60)) as pump:
        # Subscribers that keep their newest 2 frames take every frame (eager):
        # together they fill the mailbox while the loop does not run.
        eager = [pump.subscribe(output=cp.Output(width=w), buffer=2) for w in (16, 24, 32, 40)]
        waiting = pump.subscribe()  # buffer=1: asks for one frame when it waits
        result: list[cp.Frame] = []

        async def take() -> None:
            result.append(await waiting.__anext__())

        async with anyio.create_task_group() as tg:
            while True:
                tg.start_soon(take)
                while waiting._consumer.ticket is None and not result:
                    await anyio.sleep(0.001)
                if not result:
                    break  # the ticket is granted and its frame not here yet
                # Served between two looks: the ticket came and went.  Wait again.
                result.clear()
            time.sleep(3.0)  # noqa: ASYNC251 - blocking the loop is the point
            with anyio.move_on_after(3.0) as scope:
                while not result:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        ticket = waiting._consumer.ticket
        for sub in (*eager, waiting):
            sub.close()
        assert not scope.cancelled_caught, (
            "the waiting consumer got nothing for 3 s after the loop ran again at 60 fps; "
            f"mailbox dropped {pump._mailbox.dropped if pump._mailbox else '?'} frames, "
            f"its ticket (epoch {ticket}) is never served and never granted again"
        )


# -- serve: a viewer whose client is gone before the first byte -------------------------


async def _call(app: Any, path: str, send: Any, receive: Any) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8080")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    await app(scope, receive, send)


async def _never_disconnects() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError


async def test_mjpeg_client_gone_before_the_headers_leaves_no_viewer() -> None:
    """An MJPEG client that is gone when the headers go out (ASGI 2.4: send raises OSError)
    gives its place among the feed's viewers back: the feed, its subscription and encoder close."""
    from camerapump.serve import app as make_app

    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(160, 120, 30)) as pump:
        viewer = make_app([pump])
        hub = viewer.state.camerapump

        async def send(message: dict[str, Any]) -> None:
            raise OSError("client disconnected")  # what an ASGI 2.4 server does

        with anyio.fail_after(5):
            await _call(viewer, "/cameras/0/mjpeg", send, _never_disconnects)
        left = [(f, f.viewers) for f in hub.feeds()]
        assert not left, f"feeds still open with viewers after the client left: {left}"


async def test_mjpeg_client_that_disconnects_at_once_leaves_no_viewer() -> None:
    """A client that hangs up while the response starts (the server's send is a checkpoint)
    leaves no viewer behind."""
    from camerapump.serve import app as make_app

    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(160, 120, 30)) as pump:
        viewer = make_app([pump])
        hub = viewer.state.camerapump

        async def send(message: dict[str, Any]) -> None:
            await anyio.sleep(0.05)  # a real server writes to its transport

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        with anyio.fail_after(5):
            await _call(viewer, "/cameras/0/mjpeg", send, receive)
        left = [(f, f.viewers) for f in hub.feeds()]
        assert not left, f"feeds still open with viewers after the client left: {left}"


# -- the blocking Camera keeps PyAV's error, URL and password included, on __context__ ---


def _jpegs(count: int) -> list[bytes]:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 160, 120, "yuvj420p"
    codec.time_base = Fraction(1, 10)
    out = []
    for i in range(count):
        img = np.full((120, 160, 3), (i * 20) % 256, np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p")
        frame.pts = i
        out += [bytes(p) for p in codec.encode(frame)]
    return out


class _FreezingMjpegServer:
    """HTTP MJPEG: a second of frames at 10 fps, then silence on an open connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        jpegs = _jpegs(10)
        self.sock.settimeout(0.2)
        conns = []
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frame\r\n\r\n"
            )
            for jpeg in jpegs:
                conn.sendall(
                    b"--frame\r\nContent-Type: image/jpeg\r\n"
                    + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                time.sleep(0.1)
            # ...and then nothing, with the connection left open (a frozen camera).
        for conn in conns:
            conn.close()
        self.sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def freezing_mjpeg() -> Iterator[_FreezingMjpegServer]:
    server = _FreezingMjpegServer()
    yield server
    server.close()


def _chain(error: BaseException | None) -> list[str]:
    texts = []
    while error is not None:
        texts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return texts


def test_camera_stall_error_chains_no_password(freezing_mjpeg: _FreezingMjpegServer) -> None:
    """The StreamTimeout of a stalled stream URL in the blocking Camera chains nothing with
    the password in it (the pump strips its errors' __context__; the Camera does not)."""
    url = f"http://alice:s3cretpw@127.0.0.1:{freezing_mjpeg.port}/video.mjpg"
    policy = cp.ReconnectPolicy(stall_timeout=1.0, max_attempts=0)
    with cp.open_camera(cp.Source.url(url), policy=policy) as camera:
        deadline = time.monotonic() + 15
        error: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                camera.next_frame(timeout=1.0)
            except cp.StreamTimeout as exc:
                if camera._sink.ended:
                    error = exc
                    break
            except cp.CameraError as exc:
                error = exc
                break
    assert error is not None, "the frozen stream never ended the camera"
    chain = _chain(error)
    assert not any("s3cretpw" in text for text in chain), chain


# -- recording a processed file: stop() while the consumer is behind --------------------


async def test_recorder_stop_on_a_processed_file_finishes_promptly(
    video_file: Any, tmp_path: Any
) -> None:
    """Stopping a recording of a file read with realtime=False, from the task that iterates
    it, finishes the file at once (the decode thread waits for the consumer meanwhile)."""
    target = tmp_path / "out.mp4"
    async with cp.open_pump(cp.Source.file(video_file, realtime=False)) as pump:
        recorder = pump.record(target)
        taken = 0
        async for _frame in pump:
            taken += 1
            if taken == 5:
                break
        await anyio.sleep(0.2)  # the thread decodes its 8 frames ahead, then waits
        started = time.monotonic()
        files = await recorder.stop()
        took = time.monotonic() - started
    assert took < 1.0 and files == [target], (
        f"stop() took {took:.1f} s and returned {files} (the file was not finished)"
    )


# -- aclose() and a stream URL that went quiet --------------------------------------------


@pytest.mark.allow_lingering_thread  # the test joins it itself, after measuring
async def test_aclose_of_a_quiet_stream_url_is_prompt_and_its_thread_ends_by_itself(
    freezing_mjpeg: _FreezingMjpegServer,
) -> None:
    """aclose() of a pump whose HTTP stream went quiet returns within 1 s; the thread, stuck
    in a read FFmpeg cannot be made to leave, ends by itself within the stall timeout.

    The documented limit (docs/async.md): FFmpeg gives up on a stream URL whose read
    was interrupted, so such a read waits up to the stall timeout.
    """
    url = f"http://127.0.0.1:{freezing_mjpeg.port}/video.mjpg"
    policy = cp.ReconnectPolicy(stall_timeout=4.0)
    pump = await cp.open_pump(cp.Source.url(url), policy=policy)
    thread = pump._worker.thread
    await anyio.sleep(1.5)  # the server has sent its frames and is quiet now
    started = time.monotonic()
    await pump.aclose()
    assert time.monotonic() - started < 1.0
    await anyio.to_thread.run_sync(thread.join, 10.0)
    assert not thread.is_alive()
    assert time.monotonic() - started <= policy.stall_timeout + 1.0


# -- keyframes_only and the stall watchdog ------------------------------------------------


@pytest.mark.rtsp
async def test_keyframes_only_on_a_long_gop_is_not_a_stall() -> None:
    """A healthy stream whose GOP is longer than the stall timeout is not restarted as
    stalled when every consumer asks for keyframes only (the decoder skips the rest)."""
    from netfaults import RtspServer

    with RtspServer(width=320, height=240, fps=30, gop=90) as server:  # a keyframe every 3 s
        policy = cp.ReconnectPolicy(stall_timeout=2.0, initial_backoff=0.2, jitter=0.0)
        source = cp.Source.rtsp(server.url())
        async with cp.open_pump(
            source, output=cp.Output(keyframes_only=True), policy=policy
        ) as pump:
            with anyio.move_on_after(7.0):
                async for _frame in pump:
                    pass
            statistics = pump.statistics()
            events = []
            while not pump.status.empty():
                events.append(str(pump.status.get_nowait()))
    assert statistics.reconnect_attempts == 0, (
        f"{statistics.reconnect_attempts} reconnects of a healthy stream in 7 s: {events}"
    )


def test_a_mistyped_url_is_refused_without_its_password() -> None:
    """Source.parse quotes refused text masked: a typo'd URL still holds its password."""
    for text in ("rtsp:/admin:hunter22@cam/x", "admin:hunter22@host/x"):
        with pytest.raises(ValueError, match="is not a source") as info:
            cp.Source.parse(text)
        assert "hunter22" not in str(info.value)


async def test_the_status_queue_taken_before_the_start_gets_the_events() -> None:
    """pump.status read before entering the pump is the queue the events go to."""
    pump = cp.open_pump(cp.Source.test())
    status = pump.status
    async with pump:
        assert status is pump.status
        assert isinstance(status.get_nowait(), cp.Connecting)
