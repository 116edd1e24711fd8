"""The pump against a real RTSP server (gst-rtsp-server on loopback): streaming and errors."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from pathlib import Path

import pytest

import camerapump as cp
from camerapump import _backend
from conftest import _pump_threads, _task_ids
from netfaults import GarbageResponder, RtspServer, SilentResponder, TcpProxy, free_port

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(60)]

NO_RETRY = None


@pytest.mark.parametrize(("path", "codec"), [("/h264", "h264"), ("/mjpeg", "mjpeg")])
async def test_rtsp_streams_frames_of_the_served_size(
    rtsp_server: RtspServer, path: str, codec: str
) -> None:
    """H.264 and MJPEG streams deliver 640x480 frames with the stream's codec and rate."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url(path))) as pump:
        frames = []
        async for frame in pump:
            frames.append(frame)
            if len(frames) == 10:
                break
    assert pump.format == cp.StreamFormat(640, 480, 30.0, "bgr24", codec)
    assert frames[-1].data.shape == (480, 640, 3)
    assert [f.sequence for f in frames] == sorted(f.sequence for f in frames)


async def test_rtsp_over_udp_works(rtsp_server: RtspServer) -> None:
    """transport='udp' streams too."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url(), transport="udp")) as pump:
        frame = await asyncio.wait_for(anext(aiter(pump)), 10)
    assert frame.data.shape == (480, 640, 3)


async def test_rtsp_first_frame_comes_fast(rtsp_server: RtspServer) -> None:
    """The first frame arrives well within the open timeout (low-latency open options)."""
    started = time.monotonic()
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
        await anext(aiter(pump))
    assert time.monotonic() - started < 5


async def test_rtsp_basic_auth_with_right_credentials_streams(rtsp_server: RtspServer) -> None:
    """Credentials in the URL open a protected stream; repr and str hide them."""
    url = rtsp_server.url("/secure", auth=True)
    async with cp.open_pump(cp.Source.rtsp(url)) as pump:
        frame = await pump.capture_frame()
        assert frame is not None
        assert rtsp_server.password not in repr(pump)
        assert rtsp_server.password not in str(pump.source) + repr(pump.source)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


async def test_wrong_password_is_authentication_failed_and_never_leaks(
    rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password fails fast with AuthenticationFailed; it is in no text, log or repr."""
    secret = "hunter2-Very-Secret"
    url = rtsp_server.url("/secure").replace("rtsp://", f"rtsp://alice:{secret}@")
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(cp.AuthenticationFailed) as info:
        async with cp.open_pump(cp.Source.rtsp(url)):
            pass
    assert time.monotonic() - started < 5
    error = info.value
    assert isinstance(error, cp.ConnectionFailed) and isinstance(error, ConnectionError)
    texts = [str(e) for e in _chain(error)] + [repr(e) for e in _chain(error)]
    texts += [str(getattr(e, "detail", "")) for e in _chain(error)]
    texts += [r.getMessage() for r in caplog.records]
    assert all(secret not in t for t in texts), texts
    assert "401" in (error.detail or "")
    assert "rtsp://***@127.0.0.1" in str(error)


async def test_no_credentials_on_a_protected_stream_is_authentication_failed(
    rtsp_server: RtspServer,
) -> None:
    """A protected stream without credentials raises AuthenticationFailed."""
    with pytest.raises(cp.AuthenticationFailed):
        async with cp.open_pump(cp.Source.rtsp(rtsp_server.url("/secure"))):
            pass


async def test_unknown_path_is_connection_failed(rtsp_server: RtspServer) -> None:
    """A path the server does not have (404) raises ConnectionFailed."""
    with pytest.raises(cp.ConnectionFailed, match="404"):
        async with cp.open_pump(cp.Source.rtsp(rtsp_server.url("/nothing-here"))):
            pass


async def test_nothing_listening_is_connection_failed() -> None:
    """Connection refused raises ConnectionFailed at once."""
    started = time.monotonic()
    with pytest.raises(cp.ConnectionFailed):
        async with cp.open_pump(cp.Source.rtsp(f"rtsp://u:p@127.0.0.1:{free_port()}/x")):
            pass
    assert time.monotonic() - started < 2


async def test_silent_server_fails_the_open_within_the_open_timeout() -> None:
    """A server that accepts and never answers fails with StreamTimeout within open_timeout."""
    with SilentResponder() as silent:
        started = time.monotonic()
        with pytest.raises(cp.StreamTimeout):
            async with cp.open_pump(
                cp.Source.rtsp(f"rtsp://127.0.0.1:{silent.port}/x", open_timeout=1.5)
            ):
                pass
        elapsed = time.monotonic() - started
    assert 1.3 < elapsed < 3.5


async def test_garbage_answers_fail_fast_with_a_typed_error() -> None:
    """A responder that answers garbage fails with a CameraError, quickly."""
    with GarbageResponder() as junk:
        started = time.monotonic()
        with pytest.raises(cp.CameraError):
            async with cp.open_pump(
                cp.Source.rtsp(f"rtsp://127.0.0.1:{junk.port}/x", open_timeout=3)
            ):
                pass
        assert time.monotonic() - started < 3.5


async def test_explicit_size_the_stream_does_not_have_names_the_real_format(
    rtsp_server: RtspServer,
) -> None:
    """Asking an RTSP stream for 1280x720 raises FormatNotSupported naming 640x480."""
    with pytest.raises(cp.FormatNotSupported, match="640x480"):
        async with cp.open_pump(cp.Source.rtsp(rtsp_server.url()), cp.StreamConfig(1280, 720)):
            pass


async def test_slow_consumer_stays_live_on_rtsp(rtsp_server: RtspServer) -> None:
    """A consumer needing 100 ms a frame stays within a frame or two of live."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        async for frame in pump:
            if frame.pts is not None:
                samples.append((time.monotonic(), frame.pts))
            if time.monotonic() - started > 3:
                break
            await asyncio.sleep(0.1)  # "processing"
    (w0, p0), (w1, p1) = samples[0], samples[-1]
    behind = (w1 - w0) - (p1 - p0)
    assert behind < 0.15, f"{behind:.3f} s behind live"


async def test_capture_while_paused_on_rtsp_is_quick(rtsp_server: RtspServer) -> None:
    """Paused on a live stream, capture_frame returns a new frame within an interval plus a bit."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
        await anext(aiter(pump))
        pump.set_active(False)
        await asyncio.sleep(0.3)
        timings = []
        for _ in range(5):
            called = time.monotonic()
            frame = await pump.capture_frame()
            timings.append(time.monotonic() - called)
            assert frame is not None and frame.captured_at >= called
    assert sorted(timings)[2] < 1 / 30 + 0.03, timings


async def test_aclose_is_prompt_while_the_network_is_stalled(own_rtsp_server: RtspServer) -> None:
    """With the stream frozen mid-read, aclose() returns within 1 s and the thread is gone."""
    with TcpProxy(("127.0.0.1", own_rtsp_server.port)) as proxy:
        url = f"rtsp://127.0.0.1:{proxy.port}/h264"
        pump = await cp.open_pump(cp.Source.rtsp(url))
        await anext(aiter(pump))
        proxy.freeze()
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await pump.aclose()
        assert time.monotonic() - started < 1.0
        assert not [t for t in _pump_threads() if t.is_alive()]


async def test_rtsp_open_close_cycles_leave_nothing(rtsp_server: RtspServer) -> None:
    """Repeated RTSP sessions leave no thread or task behind."""
    tasks = asyncio.all_tasks()
    for _ in range(5):
        async with cp.open_pump(cp.Source.rtsp(rtsp_server.url("/mjpeg"))) as pump:
            await anext(aiter(pump))
    assert not [t for t in _pump_threads() if t.is_alive()]
    assert asyncio.all_tasks() == tasks


async def test_more_rtsp_pumps_than_executor_workers_all_deliver(rtsp_server: RtspServer) -> None:
    """Seven RTSP pumps at once (the default executor has six workers here) all deliver."""
    pumps = [await cp.open_pump(cp.Source.rtsp(rtsp_server.url("/mjpeg"))) for _ in range(7)]
    try:
        frames = await asyncio.wait_for(asyncio.gather(*(anext(aiter(p)) for p in pumps)), 20)
    finally:
        await asyncio.gather(*(p.aclose() for p in pumps))
    assert len(frames) == 7
    assert asyncio.get_running_loop()._default_executor is None  # type: ignore[attr-defined]


async def test_a_slow_stream_is_read_without_spurious_reconnects() -> None:
    """A 2 fps stream (gaps longer than the read timeout) streams steadily: no reconnect."""
    with RtspServer(fps=2, gop=2) as server:
        async with cp.open_pump(cp.Source.rtsp(server.url())) as pump:
            frames = []
            started = time.monotonic()
            async for frame in pump:
                frames.append(frame)
                if time.monotonic() - started > 4:
                    break
            stats = pump.statistics()
    assert stats.reconnects == 0
    assert 7 <= len(frames) <= 11
    assert [f.sequence for f in frames] == list(
        range(frames[0].sequence, frames[0].sequence + len(frames))
    )


async def test_rtsp_frames_shaped_for_a_detector(rtsp_server: RtspServer) -> None:
    """640x480@30 RTSP -> Output(320, 320, contain, max_fps=5): 320x320 letterboxed, ~5 fps."""
    output = cp.Output(320, 320, fit="contain", max_fps=5, pixel_format="rgb24")
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url()), output=output) as pump:
        frames = []
        async for frame in pump:
            frames.append(frame)
            if len(frames) == 11:
                break
        stats = pump.statistics()
    assert {f.data.shape for f in frames} == {(320, 320, 3)}
    assert frames[0].geometry.offset_y == 40  # 4:3 into a square: bars of 40 rows
    timed = [f.pts for f in frames if f.pts is not None]  # an RTSP session's first may lack one
    gaps = [b - a for a, b in itertools.pairwise(timed)]
    assert min(gaps) >= 0.2 - 1e-3, gaps
    span = frames[-1].captured_at - frames[0].captured_at
    assert 1.7 <= span <= 2.8, span  # ten intervals of about 0.2 s
    assert stats.frames_converted == stats.frames_delivered == 11
    assert stats.frames_decoded > 50


async def test_rtsp_keyframes_only_skips_decoding_the_rest(rtsp_server: RtspServer) -> None:
    """keyframes_only on a GOP-10 RTSP stream: only keyframes, and few pictures decoded."""
    output = cp.Output(keyframes_only=True)
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url()), output=output) as pump:
        frames = []
        async for frame in pump:
            frames.append(frame)
            if len(frames) == 6:
                break
        decoded = pump.statistics().frames_decoded
    assert all(f.keyframe for f in frames)
    gaps = [b.sequence - a.sequence for a, b in itertools.pairwise(frames)]
    assert all(g >= 1 for g in gaps)
    assert decoded <= len(frames) + 12  # the decoder skipped the non-keyframes


def _native_threads() -> set[int]:
    """Threads of this process that Python did not start (FFmpeg's workers), by id."""
    return _task_ids() - {t.native_id for t in threading.enumerate()}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc (Linux)")
async def test_a_paced_stream_decodes_on_its_decode_thread_alone(
    rtsp_server: RtspServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 640x480 camera stream starts no FFmpeg decoder threads (camerapump._backend).

    FFmpeg's slice threads cost CPU to wake for every picture and a paced decode
    thread has the time; the control run, with FFmpeg's choice restored, shows
    that the count does see them.
    """

    async def foreign_threads_while_streaming() -> set[int]:
        before = _native_threads()
        async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
            await pump.capture_frame(timeout=10)
            return _native_threads() - before

    assert await foreign_threads_while_streaming() == set()
    if len(os.sched_getaffinity(0)) > 1:  # on one CPU FFmpeg's own choice is one thread too
        monkeypatch.setattr(_backend, "decoder_threads", lambda *args: None)
        assert len(await foreign_threads_while_streaming()) >= 1


def test_which_sources_decode_single_threaded() -> None:
    """Paced sources up to 1080p decode on one thread; big, unknown or processed keep FFmpeg's."""
    stream = cp.Source.rtsp("rtsp://192.0.2.1/s")
    assert _backend.decoder_threads(stream, 1280, 720) == 1
    assert _backend.decoder_threads(stream, 1920, 1080) == 1
    assert _backend.decoder_threads(stream, 2688, 1520) is None  # the detector camera of issue 9
    assert _backend.decoder_threads(stream, 0, 0) is None  # size not known at open
    assert _backend.decoder_threads(cp.Source.file("a.mp4"), 1280, 720) == 1  # played at its rate
    assert _backend.decoder_threads(cp.Source.file("a.mp4", realtime=False), 1280, 720) is None
    assert _backend.decoder_threads(cp.Source.usb(0), 1920, 1080) == 1
