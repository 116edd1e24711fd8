"""Reconnection, the stall watchdog and give-up, with faults injected for real on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

import camerapump as cp
from conftest import _pump_threads, eventually
from netfaults import RtspServer, SilentResponder, TcpProxy, free_port

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(90)]

FAST = cp.ReconnectPolicy(initial_backoff=0.2, max_backoff=1.0, jitter=0.0, stall_timeout=2.0)


async def wait_for_event(
    pump: cp.Pump, kind: type[cp.PumpStatus], timeout: float
) -> list[cp.PumpStatus]:
    """Collect status events until one of ``kind`` arrives; return them all."""
    seen: list[cp.PumpStatus] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await pump.status.get()
            seen.append(event)
            if isinstance(event, kind):
                return seen


def drain(pump: cp.Pump) -> list[cp.PumpStatus]:
    events = []
    while not pump.status.empty():
        events.append(pump.status.get_nowait())
    return events


async def test_server_killed_and_restarted_reconnects_and_frames_resume(
    own_rtsp_server: RtspServer,
) -> None:
    """Server killed mid-stream and restarted on its port: Reconnecting, Connected, frames again."""
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=FAST) as pump:
        frames = aiter(pump)
        before = await anext(frames)
        drain(pump)
        own_rtsp_server.kill()
        events = await wait_for_event(pump, cp.Reconnecting, 10)
        assert isinstance(events[-1], cp.Reconnecting)
        assert events[-1].reason in (
            "end_of_stream",
            "read_error:ConnectionFailed",
            "stall_timeout_exceeded",
        )
        assert await pump.capture_frame() is None  # nothing to capture while reconnecting
        own_rtsp_server.restart()
        events = await wait_for_event(pump, cp.Connected, 15)
        assert isinstance(events[-1], cp.Connected)
        after = await asyncio.wait_for(anext(frames), 5)
        assert after.sequence > before.sequence
        assert pump.statistics().reconnects >= 1


async def test_frozen_stream_trips_the_watchdog_and_recovers(own_rtsp_server: RtspServer) -> None:
    """A TCP path goes silent without closing: stall caught within stall_timeout, then recovery."""
    with TcpProxy(("127.0.0.1", own_rtsp_server.port)) as proxy:
        source = cp.Source.rtsp(f"rtsp://127.0.0.1:{proxy.port}/h264", open_timeout=2)
        async with cp.open_pump(source, policy=FAST) as pump:
            frames = aiter(pump)
            await anext(frames)
            drain(pump)
            proxy.freeze()
            frozen_at = time.monotonic()
            events = await wait_for_event(pump, cp.Reconnecting, 10)
            detected = time.monotonic() - frozen_at
            assert events[-1] == cp.Reconnecting(0, 0.2, "stall_timeout_exceeded")
            assert FAST.stall_timeout - 0.1 < detected < FAST.stall_timeout + 1.5
            proxy.unfreeze()
            await wait_for_event(pump, cp.Connected, 15)
            frame = await asyncio.wait_for(anext(frames), 5)
            assert frame.captured_at > frozen_at


async def test_server_that_never_returns_gives_up_after_max_attempts(
    own_rtsp_server: RtspServer,
) -> None:
    """max_attempts=2 against a dead server: Reconnecting #0 and #1, GaveUp, iteration raises."""
    policy = cp.ReconnectPolicy(initial_backoff=0.1, max_backoff=0.2, max_attempts=2, jitter=0)
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=policy) as pump:
        await anext(aiter(pump))
        drain(pump)
        own_rtsp_server.kill()
        events = await wait_for_event(pump, cp.GaveUp, 20)
        reconnecting = [e for e in events if isinstance(e, cp.Reconnecting)]
        assert [e.attempt for e in reconnecting] == [0, 1]
        assert reconnecting[1].reason == "open_failed:ConnectionFailed"
        gave_up = events[-1]
        assert isinstance(gave_up, cp.GaveUp)
        assert gave_up.reason == "max_attempts_reached:open_failed:ConnectionFailed"
        with pytest.raises(cp.ConnectionFailed):
            async for _ in pump:
                pass
        assert await pump.capture_frame() is None
        assert pump.state == "failed"


async def test_aclose_during_a_long_backoff_is_prompt(own_rtsp_server: RtspServer) -> None:
    """aclose() in the middle of a 10 s backoff returns in under a second."""
    policy = cp.ReconnectPolicy(initial_backoff=10, max_backoff=10, jitter=0)
    pump = await cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=policy)
    await anext(aiter(pump))
    own_rtsp_server.kill()
    events = await wait_for_event(pump, cp.Reconnecting, 10)
    assert events[-1].next_delay == 10  # type: ignore[attr-defined]
    started = time.monotonic()
    await pump.aclose()
    assert time.monotonic() - started < 1.0
    assert not [t for t in _pump_threads() if t.is_alive()]


@pytest.mark.allow_lingering_thread
async def test_aclose_during_a_blocking_open_is_prompt() -> None:
    """aclose() during an open on a silent server returns within 1 s; the thread ends by itself."""
    with SilentResponder() as silent:
        policy = cp.ReconnectPolicy(retry_initial_open=True, initial_backoff=0.1)
        pump = cp.open_pump(
            cp.Source.rtsp(f"rtsp://127.0.0.1:{silent.port}/x", open_timeout=2), policy=policy
        )
        task = asyncio.create_task(pump.__aenter__())
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await pump.aclose()
        assert time.monotonic() - started < 1.0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        deadline = time.monotonic() + 3
        while [t for t in _pump_threads() if t.is_alive()] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not [t for t in _pump_threads() if t.is_alive()], "thread outlived the open timeout"


async def test_policy_none_ends_the_pump_with_the_typed_error(own_rtsp_server: RtspServer) -> None:
    """policy=None: the first loss ends the pump and iteration raises ConnectionFailed."""
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=None) as pump:
        await anext(aiter(pump))
        own_rtsp_server.kill()
        with pytest.raises(cp.ConnectionFailed):
            async with asyncio.timeout(10):
                async for _ in pump:
                    pass
        events = drain(pump)
    assert isinstance(events[-1], cp.GaveUp)


async def test_retry_initial_open_waits_for_a_server_that_starts_later() -> None:
    """retry_initial_open=True: the pump opens, keeps trying, and connects once the server is up."""
    port = free_port()
    policy = cp.ReconnectPolicy(
        initial_backoff=0.2, max_backoff=0.5, jitter=0, retry_initial_open=True
    )
    async with cp.open_pump(cp.Source.rtsp(f"rtsp://127.0.0.1:{port}/h264"), policy=policy) as pump:
        events = await wait_for_event(pump, cp.Reconnecting, 5)
        assert events[-1].reason == "open_failed:ConnectionFailed"  # type: ignore[attr-defined]
        assert pump.format is None
        with RtspServer(port=port, gop=10):
            await wait_for_event(pump, cp.Connected, 20)
            frame = await asyncio.wait_for(anext(aiter(pump)), 5)
            assert frame.data.shape == (480, 640, 3)


async def test_first_open_failure_raises_without_retry_initial_open() -> None:
    """By default a failing first open raises from open_pump (no silent retrying)."""
    with pytest.raises(cp.ConnectionFailed):
        async with cp.open_pump(cp.Source.rtsp(f"rtsp://127.0.0.1:{free_port()}/x"), policy=FAST):
            pass


async def test_a_paused_pump_reconnects_by_itself(own_rtsp_server: RtspServer) -> None:
    """Paused, server killed and restarted: the pump reconnects without set_active(True)."""
    policy = cp.ReconnectPolicy(initial_backoff=0.2, max_backoff=0.5, jitter=0)
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=policy) as pump:
        await anext(aiter(pump))
        pump.set_active(False)
        drain(pump)
        own_rtsp_server.kill()
        await wait_for_event(pump, cp.Reconnecting, 10)
        own_rtsp_server.restart()
        events = await wait_for_event(pump, cp.Connected, 15)
        assert isinstance(events[-1], cp.Connected)
        assert not pump.active
        frame = await pump.capture_frame(timeout=5)
        assert frame is not None
        assert pump.statistics().reconnects == 1


async def test_the_watchdog_catches_a_stall_while_paused(own_rtsp_server: RtspServer) -> None:
    """A paused pump on a frozen stream is lost like an active one: the stall is caught.

    A paused live source keeps decoding, so a healthy paused stream never
    looks stalled; here the link is frozen, which is a real loss.
    """
    with TcpProxy(("127.0.0.1", own_rtsp_server.port)) as proxy:
        policy = cp.ReconnectPolicy(initial_backoff=0.2, jitter=0, stall_timeout=1.0)
        source = cp.Source.rtsp(f"rtsp://127.0.0.1:{proxy.port}/h264", open_timeout=2)
        async with cp.open_pump(source, policy=policy) as pump:
            await anext(aiter(pump))
            pump.set_active(False)
            drain(pump)
            await asyncio.sleep(2.0)  # healthy and paused: no false stall
            assert drain(pump) == []
            assert pump.state == "connected"
            proxy.freeze()
            events = await wait_for_event(pump, cp.Reconnecting, 5)
            assert events[-1].reason == "stall_timeout_exceeded"  # type: ignore[attr-defined]
            proxy.unfreeze()
            await wait_for_event(pump, cp.Connected, 15)


async def test_reconnect_reasons_and_logs_never_carry_the_password(
    own_rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a loss and a reconnect with credentials, no reason, log or repr shows them."""
    caplog.set_level(logging.DEBUG)
    url = own_rtsp_server.url("/secure", auth=True)
    async with cp.open_pump(cp.Source.rtsp(url), policy=FAST) as pump:
        await anext(aiter(pump))
        own_rtsp_server.kill()
        events = await wait_for_event(pump, cp.Reconnecting, 10)
        own_rtsp_server.restart()
        events += await wait_for_event(pump, cp.Connected, 15)
        texts = [repr(e) for e in events] + [repr(pump)] + [r.getMessage() for r in caplog.records]
    assert all(own_rtsp_server.password not in t for t in texts)


async def test_usb_sources_are_retried_under_the_policy_too(tmp_path: Path) -> None:
    """A missing USB camera with retry_initial_open is retried (open_failed:DeviceNotFound)."""
    policy = cp.ReconnectPolicy(
        initial_backoff=0.05, max_backoff=0.1, max_attempts=3, jitter=0, retry_initial_open=True
    )
    async with cp.open_pump(cp.Source.usb(str(tmp_path / "video7")), policy=policy) as pump:
        events = await wait_for_event(pump, cp.GaveUp, 10)
        with pytest.raises(cp.DeviceNotFound):
            await anext(aiter(pump))
    reasons = [e.reason for e in events if isinstance(e, cp.Reconnecting)]
    assert reasons == ["open_failed:DeviceNotFound"] * 3
    assert events[-1] == cp.GaveUp("max_attempts_reached:open_failed:DeviceNotFound")


async def test_a_paused_capture_with_a_timeout_waits_out_an_outage(
    own_rtsp_server: RtspServer,
) -> None:
    """A snapshot service: paused, server down; capture_frame(timeout=T) returns once it is back."""
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=FAST) as pump:
        await anext(aiter(pump))
        pump.set_active(False)
        own_rtsp_server.kill()
        await wait_for_event(pump, cp.Reconnecting, 10)
        assert await pump.capture_frame() is None  # no timeout: nothing to wait for
        capture = asyncio.create_task(pump.capture_frame(timeout=20))
        await asyncio.sleep(1.0)  # an outage of a second more, with the capture waiting
        assert not capture.done()
        restarted = time.monotonic()
        own_rtsp_server.restart()
        frame = await asyncio.wait_for(capture, 20)
        assert frame is not None and frame.captured_at > restarted
        assert not pump.active


async def test_a_paused_recording_carries_on_across_an_outage(
    own_rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """Recording a paused pump through a server restart: a second file, outages == 1."""
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=FAST) as pump:
        pump.set_active(False)
        async with pump.record(tmp_path / "rec.mkv") as recorder:
            await eventually(lambda: recorder.footage_seconds >= 1.0)
            own_rtsp_server.kill()
            await wait_for_event(pump, cp.Reconnecting, 10)
            own_rtsp_server.restart()
            await wait_for_event(pump, cp.Connected, 15)
            await eventually(lambda: len(recorder.files) == 1 and recorder.packets_written > 0)
            before = recorder.footage_seconds
            await eventually(lambda: recorder.footage_seconds >= before + 1.0, timeout=10)
    assert len(recorder.files) == 2
    assert recorder.outages == 1
    assert 2.0 <= recorder.footage_seconds <= 10.0
