"""Regressions found in review: cancellation, blocked loops, credits, crashes, fan-out."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import pytest

import camerapump as cp
from camerapump import _worker
from conftest import _pump_threads, eventually, make_video
from netfaults import RtspServer, TcpProxy

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(60)]

SMALL = cp.StreamConfig(320, 240, 30)


async def test_a_cancelled_aclose_still_closes_everything_and_ends_consumers(
    own_rtsp_server: RtspServer,
) -> None:
    """aclose() cancelled half-way: the caller sees CancelledError, the pump still closes fully."""
    with TcpProxy(("127.0.0.1", own_rtsp_server.port)) as proxy:
        pump = await cp.open_pump(cp.Source.rtsp(f"rtsp://127.0.0.1:{proxy.port}/h264"))
        await anext(aiter(pump))
        pump.set_active(False)
        consumer = asyncio.create_task(anext(aiter(pump), None))
        proxy.freeze()  # the decode thread now sits in a read for up to half a second
        await asyncio.sleep(0.2)
        closer = asyncio.create_task(pump.aclose())
        await eventually(lambda: pump._closing)  # the closer is inside aclose()
        closer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closer
        await pump.aclose()  # a second call waits for the same, complete close
        assert pump.state == "closed"
        await asyncio.wait_for(consumer, 1)  # ended (None), or got the last frame: not hung
        assert not [t for t in _pump_threads() if t.is_alive()]


async def test_a_blocked_event_loop_finds_the_newest_frames_not_a_backlog() -> None:
    """After the loop was blocked for 1 s, only `buffer` frames wait, and they are the newest."""
    async with cp.open_pump(cp.Source.test(), SMALL, buffer=2) as pump:
        await anext(aiter(pump))
        time.sleep(1.0)  # noqa: ASYNC251 - blocking the loop is the point
        first = await anext(aiter(pump))
        second = await anext(aiter(pump))
        decoded = pump.statistics().frames_decoded
        assert second.sequence == first.sequence + 1
        assert decoded - second.sequence <= 3
        assert pump.statistics().frames_dropped >= 20


async def test_pausing_a_processed_file_never_deadlocks_or_loses_a_frame(tmp_path: Path) -> None:
    """realtime=False: pause, take a buffered frame, resume: every frame still arrives."""
    clip = make_video(tmp_path / "c.mp4", frames=40)
    async with cp.open_pump(cp.Source.file(clip, realtime=False)) as pump:
        it = aiter(pump)
        seqs = [(await anext(it)).sequence]
        await asyncio.sleep(0.2)
        pump.set_active(False)
        seqs.append((await asyncio.wait_for(anext(it), 2)).sequence)
        pump.set_active(True)
        async with asyncio.timeout(10):
            seqs += [f.sequence async for f in pump]
    assert seqs == list(range(40))


async def test_capture_on_a_processed_file_nobody_iterates_returns(tmp_path: Path) -> None:
    """realtime=False with no consumer: capture_frame() still gets a frame at once."""
    clip = make_video(tmp_path / "c.mp4", frames=40)
    async with cp.open_pump(cp.Source.file(clip, realtime=False)) as pump:
        await asyncio.sleep(0.3)  # the thread now waits for a credit
        frame = await asyncio.wait_for(pump.capture_frame(), 2)
    assert frame is not None


async def test_processed_files_cannot_be_fanned_out(tmp_path: Path) -> None:
    """subscribe() on a realtime=False file says why it cannot work."""
    clip = make_video(tmp_path / "c.mp4", frames=5)
    async with cp.open_pump(cp.Source.file(clip, realtime=False)) as pump:
        with pytest.raises(ValueError, match="realtime=True"):
            pump.subscribe()


async def test_a_dead_decode_thread_fails_the_pump_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash inside the decode thread ends the pump with GaveUp and a typed error."""
    real = _worker.Worker._deliver
    calls = {"n": 0}

    def crash_once(self: _worker.Worker, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise MemoryError("simulated")
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_worker.Worker, "_deliver", crash_once)
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        with pytest.raises(cp.CameraError, match="decode thread"):
            async with asyncio.timeout(5):
                async for _ in pump:
                    pass
        events = [pump.status.get_nowait() for _ in range(pump.status.qsize())]
    assert isinstance(events[-1], cp.GaveUp)


async def test_capture_while_paused_on_a_dead_link_gives_up_at_the_stall_timeout(
    own_rtsp_server: RtspServer,
) -> None:
    """Paused, link frozen, capture_frame(): the watchdog still ends the wait (None), no hang."""
    with TcpProxy(("127.0.0.1", own_rtsp_server.port)) as proxy:
        source = cp.Source.rtsp(f"rtsp://127.0.0.1:{proxy.port}/h264", open_timeout=2)
        policy = cp.ReconnectPolicy(stall_timeout=1.5, initial_backoff=5)
        async with cp.open_pump(source, policy=policy) as pump:
            await anext(aiter(pump))
            pump.set_active(False)
            proxy.freeze()
            await asyncio.sleep(1.0)
            started = time.monotonic()
            assert await asyncio.wait_for(pump.capture_frame(), 6) is None
            assert time.monotonic() - started < 4


async def test_two_tasks_on_one_subscription_both_end_when_it_closes() -> None:
    """Every task waiting on a subscription is woken by close()."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        pump.set_active(False)
        sub = pump.subscribe()
        waiting = [asyncio.create_task(anext(aiter(sub), None)) for _ in range(2)]
        await eventually(lambda: len(sub._consumer.waiters) == 2)  # both tasks wait
        sub.close()
        assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [None, None]


async def test_retry_initial_open_does_not_hide_a_missing_file(tmp_path: Path) -> None:
    """Files are not retried, so their open error is raised even with retry_initial_open."""
    policy = cp.ReconnectPolicy(retry_initial_open=True)
    with pytest.raises(cp.DeviceNotFound):
        async with cp.open_pump(cp.Source.file(tmp_path / "none.mp4"), policy=policy):
            pass


async def test_pausing_during_a_backoff_does_not_hold_the_next_attempt(
    own_rtsp_server: RtspServer,
) -> None:
    """set_active(False) during a backoff: the attempts go on (pause is not "let it die")."""
    policy = cp.ReconnectPolicy(initial_backoff=0.3, max_backoff=0.3, jitter=0)
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=policy) as pump:
        await anext(aiter(pump))
        own_rtsp_server.kill()
        async with asyncio.timeout(10):
            while pump.state != "reconnecting":
                await asyncio.sleep(0.02)
        pump.set_active(False)  # during the backoff
        while not pump.status.empty():
            pump.status.get_nowait()
        event = await asyncio.wait_for(pump.status.get(), 5)
        assert isinstance(event, cp.Reconnecting)
        assert event.attempt >= 1


async def test_every_capture_on_an_unread_processed_file_is_served(tmp_path: Path) -> None:
    """realtime=False, nobody iterating: each of several captures in a row gets a frame."""
    clip = make_video(tmp_path / "c.mp4", frames=40)
    async with cp.open_pump(cp.Source.file(clip, realtime=False)) as pump:
        await asyncio.sleep(0.3)
        for _ in range(3):
            assert await asyncio.wait_for(pump.capture_frame(), 2) is not None


async def test_recording_a_looping_file_keeps_real_time(tmp_path: Path) -> None:
    """A looped file starts its timestamps again; the recording stays as long as recorded."""
    clip = make_video(tmp_path / "one-second.mp4", frames=30)
    async with cp.open_pump(cp.Source.file(clip, loop=True)) as pump:
        async with pump.record(tmp_path / "out.mkv") as recorder:
            await asyncio.sleep(3.0)
    with av.open(str(recorder.files[0])) as container:
        duration = (container.duration or 0) / 1e6
        frames = sum(1 for _ in container.decode(video=0))
    assert 2.2 <= duration <= 3.5
    assert 60 <= frames <= 100


async def test_a_crash_during_the_first_open_raises_from_open_pump(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the decode thread dies in its first open, entering the pump raises."""

    def explode(*args: object) -> None:
        raise MemoryError("simulated")

    monkeypatch.setattr(_worker, "open_input", explode)
    with pytest.raises(cp.CameraError, match="decode thread"):
        async with cp.open_pump(cp.Source.test(), SMALL):
            pass


def test_closing_on_another_event_loop_is_refused() -> None:
    """aclose() must run on the loop that started the pump; elsewhere it says so at once."""

    async def start() -> cp.Pump:
        return await cp.open_pump(cp.Source.test(), SMALL)

    loop = asyncio.new_event_loop()
    try:
        pump = loop.run_until_complete(start())
        with pytest.raises(RuntimeError, match="event loop that started it"):
            asyncio.run(pump.aclose())
        loop.run_until_complete(pump.aclose())
    finally:
        loop.close()
