"""The async pump against the synthetic test source and generated files."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import camerapump as cp
from conftest import _open_fds, _pump_threads, eventually, make_video
from netfaults import SilentResponder

pytestmark = pytest.mark.timeout(30)

SMALL = cp.StreamConfig(width=320, height=240, fps=30)


@pytest.mark.parametrize(
    ("pixel_format", "shape"),
    [
        ("bgr24", (240, 320, 3)),
        ("rgb24", (240, 320, 3)),
        ("gray", (240, 320)),
        ("bgra", (240, 320, 4)),
        ("rgba", (240, 320, 4)),
    ],
)
async def test_test_source_delivers_requested_shape_and_pixel_format(
    pixel_format: cp.PixelFormat, shape: tuple[int, ...]
) -> None:
    """Frames come as uint8 arrays of the requested size and layout."""
    config = cp.StreamConfig(320, 240, 30, pixel_format=pixel_format)
    async with cp.open_pump(cp.Source.test(), config) as pump:
        frame = await anext(aiter(pump))
    assert frame.data.shape == shape
    assert frame.data.dtype == np.uint8
    assert (frame.width, frame.height, frame.pixel_format) == (320, 240, pixel_format)
    assert pump.format == cp.StreamFormat(320, 240, 30.0, pixel_format, "wrapped_avframe")


async def test_bgr_and_rgb_are_channel_swaps_of_each_other() -> None:
    """bgr24 is rgb24 with the channels reversed (the same pattern frame)."""
    frames = {}
    for fmt in ("bgr24", "rgb24"):
        async with cp.open_pump(
            cp.Source.test("smptebars"), cp.StreamConfig(320, 240, 30, fmt)
        ) as pump:
            frames[fmt] = (await anext(aiter(pump))).data
    assert np.array_equal(frames["bgr24"][..., ::-1], frames["rgb24"])


async def test_test_source_honours_size_and_fps() -> None:
    """The test source delivers exactly the asked size at about the asked rate."""
    config = cp.StreamConfig(160, 120, fps=20)
    async with cp.open_pump(cp.Source.test(), config) as pump:
        frames = []
        async for frame in pump:
            frames.append(frame)
            if len(frames) == 21:
                break
    span = frames[-1].captured_at - frames[0].captured_at
    assert frames[0].data.shape == (120, 160, 3)
    assert 0.8 < span < 1.5, f"20 intervals at 20 fps took {span:.2f} s"
    assert [f.pts for f in frames[:3]] == pytest.approx([frames[0].pts + i / 20 for i in range(3)])


async def test_sequence_numbers_increase_without_gaps_for_a_fast_consumer() -> None:
    """A consumer that keeps up sees consecutive sequence numbers from 0."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        seqs = []
        async for frame in pump:
            seqs.append(frame.sequence)
            if len(seqs) == 15:
                break
    assert seqs == list(range(15))


async def test_slow_consumer_gets_fresh_frames_not_a_backlog() -> None:
    """A consumer slower than the source gets fresh frames; sequence gaps show what it missed.

    The pictures it skipped were decoded but never converted, so none was dropped.
    """
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        ages, seqs = [], []
        async for frame in pump:
            ages.append(time.monotonic() - frame.captured_at)
            seqs.append(frame.sequence)
            if len(seqs) == 6:
                break
            await asyncio.sleep(0.2)  # six frame intervals
        stats = pump.statistics()
    # Each frame taken is at most about one interval old (buffer=1), never 0.2 s.
    assert max(ages[1:]) < 0.1, ages
    assert all(b - a >= 4 for a, b in itertools.pairwise(seqs[1:])), seqs
    assert stats.frames_decoded > 25
    assert stats.frames_converted == stats.frames_delivered == 6
    assert stats.frames_dropped == 0


async def test_larger_buffer_keeps_the_newest_n() -> None:
    """With buffer=3 the consumer gets the three newest frames after a pause in reading."""
    async with cp.open_pump(cp.Source.test(), SMALL, buffer=3) as pump:
        it = aiter(pump)
        await anext(it)
        await asyncio.sleep(0.5)
        got = [await anext(it) for _ in range(3)]
        decoded = pump.statistics().frames_decoded
    seqs = [f.sequence for f in got]
    assert seqs == sorted(seqs) and seqs[2] - seqs[0] == 2
    assert decoded - seqs[2] <= 3


async def test_pause_stops_delivery_and_resume_restarts_it() -> None:
    """set_active(False) stops delivery and conversion; set_active(True) brings fresh frames."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        it = aiter(pump)
        await anext(it)
        pump.set_active(False)
        assert pump.active is False
        delivered = pump.statistics().frames_delivered
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(it), 0.3)
        assert pump.statistics().frames_delivered == delivered
        pump.set_active(True)
        resumed_at = time.monotonic()
        frame = await asyncio.wait_for(anext(it), 1.0)
        assert frame.captured_at >= resumed_at


async def test_capture_frame_while_streaming_returns_a_frame_decoded_after_the_call() -> None:
    """capture_frame() returns a new frame even while the pump streams."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        await anext(aiter(pump))
        called = time.monotonic()
        frame = await pump.capture_frame()
    assert frame is not None
    assert frame.captured_at >= called


async def test_capture_frame_while_paused_is_fast_and_fresh() -> None:
    """While paused, capture_frame() returns within a frame interval plus a few ms."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        pump.set_active(False)
        await asyncio.sleep(0.2)
        timings = []
        for _ in range(5):
            called = time.monotonic()
            frame = await pump.capture_frame()
            timings.append(time.monotonic() - called)
            assert frame is not None and frame.captured_at >= called
        assert pump.statistics().frames_dropped == 0
    assert sorted(timings)[2] < 1 / 30 + 0.02, timings


async def test_status_events_start_with_connecting_then_connected() -> None:
    """pump.status yields Connecting, then Connected with the negotiated format."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        first = await asyncio.wait_for(pump.status.get(), 1)
        second = await asyncio.wait_for(pump.status.get(), 1)
    assert first == cp.Connecting()
    assert second == cp.Connected(pump.format)  # type: ignore[arg-type]


async def test_file_realtime_false_delivers_every_frame_then_ends(video_file: Path) -> None:
    """A file read with realtime=False is processed: all 60 frames, in order, then the end."""
    async with cp.open_pump(cp.Source.file(video_file, realtime=False)) as pump:
        seqs = []
        async for frame in pump:
            seqs.append(frame.sequence)
            if len(seqs) % 10 == 0:
                await asyncio.sleep(0.05)  # a slow consumer must not lose frames here
    assert seqs == list(range(60))
    assert pump.state == "ended"


async def test_file_realtime_plays_at_the_stream_rate(video_file: Path) -> None:
    """A file with realtime=True is paced like a camera: 60 frames at 30 fps take about 2 s."""
    started = time.monotonic()
    async with cp.open_pump(cp.Source.file(video_file)) as pump:
        count = sum([1 async for _ in pump])
    elapsed = time.monotonic() - started
    assert count == 60
    assert 1.6 < elapsed < 3.5


async def test_looping_file_keeps_going_with_increasing_pts(tmp_path: Path) -> None:
    """loop=True starts again at the end; sequence and pts keep increasing."""
    clip = make_video(tmp_path / "short.mp4", frames=10)
    async with cp.open_pump(cp.Source.file(clip, loop=True, realtime=False), buffer=4) as pump:
        frames = []
        async for frame in pump:
            frames.append(frame)
            if len(frames) == 25:
                break
    pts = [f.pts for f in frames if f.pts is not None]
    assert [f.sequence for f in frames] == list(range(25))
    assert all(b > a for a, b in itertools.pairwise(pts))


async def test_iteration_ends_when_the_pump_is_closed() -> None:
    """Closing the pump from another task ends a waiting `async for` normally."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        pump.set_active(False)

        async def consume() -> int:
            return len([f async for f in pump])

        task = asyncio.create_task(consume())
        await eventually(lambda: pump._consumer.waiters)  # the consumer waits for a frame
        await pump.aclose()
        assert await asyncio.wait_for(task, 1) <= 1  # at most the frame from before the pause
    assert await pump.capture_frame() is None


async def test_aclose_is_prompt_idempotent_and_leaves_nothing_behind() -> None:
    """aclose() returns fast, twice, and leaves no thread, task or fd."""
    fds = _open_fds()
    tasks = asyncio.all_tasks()
    pump = await cp.open_pump(cp.Source.test(), SMALL)
    await anext(aiter(pump))
    started = time.monotonic()
    await pump.aclose()
    await pump.aclose()
    assert time.monotonic() - started < 1.0
    assert pump.state == "closed"
    assert not [t for t in _pump_threads() if t.is_alive()]
    assert asyncio.all_tasks() == tasks
    assert _open_fds() <= fds


async def test_one_named_decode_thread_per_pump_not_the_default_executor() -> None:
    """Each pump decodes on its own named thread; the loop's executor stays unused."""
    loop = asyncio.get_running_loop()
    async with (
        cp.open_pump(cp.Source.test(), SMALL) as a,
        cp.open_pump(cp.Source.test(), SMALL) as b,
    ):
        await anext(aiter(a))
        await anext(aiter(b))
        names = [t.name for t in _pump_threads()]
    assert len(names) == 2 and all(n.startswith("camerapump-decode-") for n in names)
    assert loop._default_executor is None  # type: ignore[attr-defined]
    assert threading.active_count() >= 1


async def test_consumer_that_raises_or_is_cancelled_leaves_nothing(video_file: Path) -> None:
    """A consumer raising inside `async with`, or cancelled, still releases everything."""
    with pytest.raises(ZeroDivisionError):
        async with cp.open_pump(cp.Source.test(), SMALL) as pump:
            async for _ in pump:
                raise ZeroDivisionError

    streaming = asyncio.Event()

    async def consume() -> None:
        async with cp.open_pump(cp.Source.file(video_file, loop=True)) as pump:
            async for _ in pump:
                streaming.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(streaming.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not [t for t in _pump_threads() if t.is_alive()]


async def test_many_open_close_cycles_leak_nothing() -> None:
    """100 open/close cycles leave no thread, fd or task behind."""
    fds = _open_fds()
    tasks = asyncio.all_tasks()
    for _ in range(100):
        async with cp.open_pump(cp.Source.test(), cp.StreamConfig(64, 48, 30)) as pump:
            await anext(aiter(pump))
    assert not [t for t in _pump_threads() if t.is_alive()]
    assert asyncio.all_tasks() == tasks
    assert _open_fds() <= fds + 2


async def test_more_pumps_than_default_executor_workers_all_deliver() -> None:
    """Ten pumps at once (more than min(32, cpu+4) on this machine) all deliver frames."""
    count = max(10, min(32, (os.cpu_count() or 1) + 4) + 1)
    config = cp.StreamConfig(64, 48, 10)
    pumps = [await cp.open_pump(cp.Source.test(), config) for _ in range(count)]
    try:
        frames = await asyncio.wait_for(asyncio.gather(*(anext(aiter(p)) for p in pumps)), 10)
    finally:
        await asyncio.gather(*(p.aclose() for p in pumps))
    assert len(frames) == count


async def test_missing_file_raises_device_not_found(tmp_path: Path) -> None:
    """Opening a file that does not exist raises DeviceNotFound (a LookupError)."""
    with pytest.raises(cp.DeviceNotFound) as info:
        async with cp.open_pump(cp.Source.file(tmp_path / "nope.mp4")):
            pass
    assert isinstance(info.value, LookupError)


async def test_garbage_file_raises_format_not_supported(tmp_path: Path) -> None:
    """A file that is not media raises FormatNotSupported with a clear message."""
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(cp.FormatNotSupported, match=r"junk\.mp4"):
        async with cp.open_pump(cp.Source.file(junk)):
            pass


async def test_file_with_a_mismatching_size_request_names_the_real_format(video_file: Path) -> None:
    """Asking a 320x240 file for 640x480 raises FormatNotSupported naming 320x240."""
    with pytest.raises(cp.FormatNotSupported, match="320x240 at 30 fps"):
        async with cp.open_pump(cp.Source.file(video_file), cp.StreamConfig(640, 480)):
            pass
    with pytest.raises(cp.FormatNotSupported, match="asked for 25 fps"):
        async with cp.open_pump(cp.Source.file(video_file), cp.StreamConfig(fps=25)):
            pass
    async with cp.open_pump(cp.Source.file(video_file), cp.StreamConfig(320, 240, 30)) as pump:
        assert pump.format is not None and pump.format.fps == 30


async def test_missing_usb_device_raises_device_not_found() -> None:
    """A USB index with no device behind it raises DeviceNotFound, fast."""
    started = time.monotonic()
    with pytest.raises(cp.DeviceNotFound, match="video57"):
        async with cp.open_pump(cp.Source.usb(57)):
            pass
    assert time.monotonic() - started < 2


async def test_usb_through_the_v4l2_layer_on_a_non_device_is_a_typed_error(tmp_path: Path) -> None:
    """A path that exists but is no camera fails with a CameraError, never a raw PyAV error."""
    fake = tmp_path / "video0"
    fake.write_bytes(b"")
    with pytest.raises(cp.CameraError) as info:
        async with cp.open_pump(cp.Source.usb(str(fake))):
            pass
    assert "av.error" not in type(info.value).__module__


async def test_pump_repr_is_informative() -> None:
    """repr(pump) names the source, the state and the frame count."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        await anext(aiter(pump))
        text = repr(pump)
    assert text.startswith("<Pump test:testsrc2 state=connected frames=")


async def test_cancelled_open_leaves_nothing() -> None:
    """Cancelling a caller while the first open is in progress still closes the pump."""
    with SilentResponder() as silent:  # accepts, never answers: the open takes its timeout
        source = cp.Source.rtsp(f"rtsp://127.0.0.1:{silent.port}/x", open_timeout=1.0)
        task = asyncio.create_task(cp.open_pump(source).__aenter__())
        await eventually(_pump_threads)  # the decode thread is inside av.open now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await eventually(lambda: not _pump_threads(), timeout=3.0)  # open timeout, then it ends


async def test_subscriptions_fan_out_every_frame_to_every_subscriber() -> None:
    """Two subscribers each get every frame; a slow one drops only its own frames."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        with pump.subscribe() as fast, pump.subscribe(buffer=2) as slow:
            fast_seqs: list[int] = []
            slow_seqs: list[int] = []

            async def read(sub: cp.Subscription, into: list[int], delay: float) -> None:
                async for frame in sub:
                    into.append(frame.sequence)
                    if len(into) == 10:
                        return
                    await asyncio.sleep(delay)

            await asyncio.gather(read(fast, fast_seqs, 0), read(slow, slow_seqs, 0.15))
        assert slow.dropped > 0
    assert fast_seqs == list(range(fast_seqs[0], fast_seqs[0] + 10))
    assert slow_seqs == sorted(slow_seqs)


async def test_a_subscription_ends_with_the_pump_and_on_close() -> None:
    """Closing the subscription, or the pump, ends its iteration."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        sub = pump.subscribe()
        await anext(aiter(sub))
        sub.close()
        assert [f async for f in sub] == []
        other = pump.subscribe()
    assert [f async for f in other] == []
    with pytest.raises(ValueError, match="buffer"):
        pump.subscribe(buffer=0)


async def test_status_queue_keeps_the_newest_events_when_nobody_reads() -> None:
    """A full status queue drops its oldest events; the pump never waits for a reader."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        for n in range(200):
            pump._emit(cp.Reconnecting(n, 0.0, "test"))
        events = [pump.status.get_nowait() for _ in range(pump.status.qsize())]
    assert len(events) == 64
    assert events[-1] == cp.Reconnecting(199, 0.0, "test")


async def test_status_feeds_give_every_reader_every_event() -> None:
    """Each status feed sees every event published after it was made, beside pump.status.

    A feed gets every event published after it was made, whoever else reads
    pump.status; its async for ends when the pump has ended.
    """
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        a, b = pump.status_feed(), pump.status_feed()
        assert isinstance(pump.last_status, cp.Connected)
        while not pump.status.empty():
            pump.status.get_nowait()  # another reader empties the shared queue
        pump._emit(cp.Reconnecting(0, 1.0, "end_of_stream"))  # as the supervisor would
        assert a.get_nowait() == b.get_nowait() == cp.Reconnecting(0, 1.0, "end_of_stream")
        b.close()
        pump._emit(cp.GaveUp("x"))
        assert b.empty()
    assert [e async for e in a] == [cp.GaveUp("x")]  # then it ends with the pump
