"""The pump under asyncio and under trio: the same behaviours, the same guarantees.

Every test here is marked ``anyio`` and runs once per backend (anyio's pytest
plugin; see the hook in conftest.py), including the cancellation matrix that
``aclose()`` must survive.  The asyncio-only kinds of cancellation have tests
of their own below.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import camerapump as cp
from camerapump._image import JpegEncoder
from conftest import _pump_threads
from netfaults import RtspServer, TcpProxy, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SMALL = cp.StreamConfig(320, 240, 30)
FAST = cp.ReconnectPolicy(initial_backoff=0.2, max_backoff=1.0, jitter=0.0, stall_timeout=2.0)


async def no_pump_threads_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _pump_threads():
            return True
        await anyio.sleep(0.02)
    return not _pump_threads()


async def next_event(pump: cp.Pump, kind: type[cp.PumpStatus], timeout: float) -> cp.PumpStatus:
    with anyio.fail_after(timeout):
        while True:
            event = await pump.status.get()
            if isinstance(event, kind):
                return event


async def test_frames_flow_and_the_status_sequence_starts_right(anyio_backend: str) -> None:
    """async for gives frames; the status queue starts with Connecting, Connected."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        frames = []
        async for frame in pump:
            frames.append(frame)
            if len(frames) == 5:
                break
        assert [f.data.shape for f in frames] == [(240, 320, 3)] * 5
        assert isinstance(pump.status.get_nowait(), cp.Connecting)
        assert isinstance(await pump.status.get(), cp.Connected)
        assert pump.status.empty() and pump.status.qsize() == 0
    assert await no_pump_threads_within(1.0)


async def test_status_is_an_asyncio_queue_under_asyncio(anyio_backend: str) -> None:
    """Under asyncio pump.status is an asyncio.Queue; under trio the same reading surface."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        if anyio_backend == "asyncio":
            assert isinstance(pump.status, asyncio.Queue)
        else:
            assert not isinstance(pump.status, asyncio.Queue)
        for name in ("get", "get_nowait", "qsize", "empty"):
            assert callable(getattr(pump.status, name))


async def test_capture_while_streaming_and_while_paused(anyio_backend: str) -> None:
    """capture_frame() gives a fresh frame active and paused, with its own output."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        before = time.monotonic()
        frame = await pump.capture_frame(timeout=5)
        assert frame is not None and frame.captured_at >= before
        pump.set_active(False)
        shot = await pump.capture_frame(output=cp.Output(64, 64, fit="cover"), timeout=5)
        assert shot is not None and shot.data.shape == (64, 64, 3)


async def test_subscriptions_fan_out(anyio_backend: str) -> None:
    """Two subscriptions each get frames of their own shape."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        a = pump.subscribe(output=cp.Output(32, 24))
        b = pump.subscribe(output=cp.Output(16, 12, pixel_format="gray"))
        got: dict[str, tuple[int, ...]] = {}

        async def take(name: str, sub: cp.Subscription) -> None:
            async for frame in sub:
                got[name] = frame.data.shape
                return

        async with anyio.create_task_group() as tg:
            tg.start_soon(take, "a", a)
            tg.start_soon(take, "b", b)
    assert got == {"a": (24, 32, 3), "b": (12, 16)}


@pytest.mark.rtsp
async def test_reconnect_after_a_server_restart(anyio_backend: str) -> None:
    """RTSP server killed and restarted: Reconnecting #0, Connected, frames again."""
    with RtspServer(gop=10) as server:
        async with cp.open_pump(cp.Source.rtsp(server.url()), policy=FAST) as pump:
            first = await anext(aiter(pump))
            server.kill()
            event = await next_event(pump, cp.Reconnecting, 10)
            assert event.attempt == 0  # type: ignore[attr-defined]
            server.restart()
            await next_event(pump, cp.Connected, 15)
            with anyio.fail_after(5):
                after = await anext(aiter(pump))
            assert after.sequence > first.sequence
            assert pump.statistics().reconnects == 1
    assert await no_pump_threads_within(1.5)


@pytest.mark.rtsp
async def test_recording_works_under_both_backends(
    anyio_backend: str, rtsp_server: RtspServer, tmp_path: Any
) -> None:
    """record() writes a playable file under either loop."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
        async with pump.record(tmp_path / "rec.mkv") as recorder:
            await anyio.sleep(1.5)
    assert recorder.files and recorder.files[0].stat().st_size > 1000


# -- aclose() under every kind of cancellation ---------------------------------------------


async def _open() -> cp.Pump:
    pump = await cp.open_pump(cp.Source.test(), SMALL)
    await anext(aiter(pump))
    return pump


async def test_aclose_in_a_cancelled_scope_still_closes(anyio_backend: str) -> None:
    """aclose() inside an already-cancelled anyio scope: the pump still closes, within 1 s."""
    pump = await _open()
    started = time.monotonic()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await pump.aclose()
    assert time.monotonic() - started < 1.0
    assert pump.state == "closed"
    assert await no_pump_threads_within(1.0)


async def test_aclose_cut_short_by_a_deadline_still_closes(anyio_backend: str) -> None:
    """aclose() under a 1 ms deadline (move_on_after): closed anyway, nothing left behind."""
    pump = await _open()
    with anyio.move_on_after(0.001):
        await pump.aclose()
    assert pump.state == "closed"
    assert await no_pump_threads_within(1.0)


async def test_leaving_async_with_in_a_cancelled_task_closes(anyio_backend: str) -> None:
    """A task cancelled inside `async with open_pump(...)`: the block's exit closes the pump."""
    seen: list[cp.Pump] = []

    async def consume() -> None:
        async with cp.open_pump(cp.Source.test(), SMALL) as pump:
            seen.append(pump)
            async for _ in pump:
                pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert seen and seen[0].state == "closed"
    assert await no_pump_threads_within(1.0)


async def test_open_in_one_task_close_in_another(anyio_backend: str) -> None:
    """A pump opened in one task and closed in another (an ASGI lifespan does this) closes."""
    pumps: list[cp.Pump] = []

    async def opener() -> None:
        pumps.append(await _open())

    async with anyio.create_task_group() as tg:
        tg.start_soon(opener)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pumps[0].aclose)
    assert pumps[0].state == "closed"
    assert await no_pump_threads_within(1.0)


async def test_a_failing_sibling_task_does_not_stop_the_close(anyio_backend: str) -> None:
    """A task group whose other task fails while aclose() runs: the pump still closes."""
    pump = await _open()

    async def fail() -> None:
        await anyio.sleep(0.01)
        raise ValueError("sibling")

    with pytest.raises(ExceptionGroup):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump.aclose)
            tg.start_soon(fail)
    assert pump.state == "closed"
    assert await no_pump_threads_within(1.0)


async def test_trio_move_on_after_around_the_whole_block(anyio_backend: str) -> None:
    """trio.move_on_after (or anyio's under asyncio) around a pump's block: it closes."""
    mover = trio.move_on_after if anyio_backend == "trio" else anyio.move_on_after
    pumps: list[cp.Pump] = []
    with mover(0.5):
        async with cp.open_pump(cp.Source.test(), SMALL) as pump:
            pumps.append(pump)
            async for _ in pump:
                pass
    assert pumps[0].state == "closed"
    assert await no_pump_threads_within(1.0)


# -- a Starlette app streaming MJPEG from a pump, served by uvicorn and by hypercorn -----


def mjpeg_app(source: cp.Source) -> Starlette:
    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            encoder = JpegEncoder(70)
            output = cp.Output(width=160, max_fps=15)
            async with cp.open_pump(source, output=output) as pump:
                async for frame in pump:
                    jpeg = encoder.encode(frame)
                    yield b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"

        return StreamingResponse(body(), media_type="multipart/x-mixed-replace; boundary=frame")

    return Starlette(routes=[Route("/mjpeg", stream)])


async def _serve(app: Starlette, port: int, backend: str, stop: anyio.Event) -> None:
    if backend == "asyncio":
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            await stop.wait()
            server.should_exit = True
    else:
        from hypercorn.config import Config
        from hypercorn.trio import serve

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


async def _wait_listening(port: int) -> None:
    with anyio.fail_after(10):
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                await anyio.sleep(0.05)


async def test_mjpeg_client_that_disconnects_leaves_no_pump_behind(anyio_backend: str) -> None:
    """uvicorn (asyncio) / hypercorn (trio): a client reads some JPEGs and hangs up.

    The endpoint's pump closes with the response, and its decode thread is gone.
    """
    port = free_port()
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve, mjpeg_app(cp.Source.test()), port, anyio_backend, stop)
        await _wait_listening(port)
        # A raw HTTP/1.1 client: it reads three JPEGs, then hangs up mid-stream.
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", port) as conn:
                await conn.send(b"GET /mjpeg HTTP/1.1\r\nHost: camerapump\r\n\r\n")
                data = b""
                while data.count(b"\xff\xd8") < 3:
                    data += await conn.receive()
        assert b"multipart/x-mixed-replace" in data.split(b"\r\n\r\n", 1)[0]
        assert data.count(b"\xff\xd8") >= 3  # three JPEG images at least
        assert await no_pump_threads_within(5.0), "the endpoint's pump outlived its client"
        stop.set()


# -- the native asyncio kinds of cancellation (pytest-asyncio) -----------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_task_cancel_during_aclose_still_closes(anyio_backend: str) -> None:
    """task.cancel() on a task inside aclose(): the caller is cancelled, the pump closes."""
    pump = await _open()
    closer = asyncio.create_task(pump.aclose())
    await asyncio.sleep(0)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert pump.state == "closed"
    assert await no_pump_threads_within(1.0)


@pytest.mark.rtsp
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_timeout_around_aclose_still_closes(
    anyio_backend: str, own_rtsp_server: RtspServer
) -> None:
    """asyncio.timeout around aclose() of a pump stuck in a read: TimeoutError, yet it closes."""
    with TcpProxy(("127.0.0.1", own_rtsp_server.port)) as proxy:
        pump = await cp.open_pump(cp.Source.rtsp(f"rtsp://127.0.0.1:{proxy.port}/h264"))
        await anext(aiter(pump))
        proxy.freeze()  # the decode thread now sits in a read for up to half a second
        await asyncio.sleep(0.1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await pump.aclose()
        assert pump.state == "closed"
        assert await no_pump_threads_within(1.5)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_taskgroup_sibling_failure_during_aclose(anyio_backend: str) -> None:
    """A failing asyncio.TaskGroup sibling cancels aclose() half-way: the pump still closes."""
    pump = await _open()

    async def fail() -> None:
        await asyncio.sleep(0.005)
        raise ValueError("sibling")

    with pytest.raises(ExceptionGroup):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(pump.aclose())
            tg.create_task(fail())
    assert pump.state == "closed"
    assert await no_pump_threads_within(1.0)


# -- a run that ends without aclose(): the decode thread hears that nobody listens -------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_run_that_ends_without_aclose_stops_the_thread(backend: str) -> None:
    """The loop ends with the pump open: the thread stops by itself, nothing crashes the run.

    Under trio a callback raising into a finished run would be a TrioInternalError;
    the hand-off treats "Event loop is closed" and RunFinishedError as "nobody listens".
    """
    kept: list[cp.Pump] = []

    async def main() -> None:
        pump = await cp.open_pump(cp.Source.test(), SMALL)
        await anext(aiter(pump))
        kept.append(pump)  # never closed

    anyio.run(main, backend=backend)
    deadline = time.monotonic() + 3
    while _pump_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _pump_threads(), "the decode thread outlived its event loop"
    kept.clear()
    with pytest.warns(ResourceWarning, match="unclosed"):
        gc.collect()
