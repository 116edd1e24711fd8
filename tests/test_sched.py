"""Decode threads take a long scheduler slice (Linux 6.12+) and leave the loop's thread alone."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import camerapump as cp
from camerapump import _sched
from conftest import _pump_threads, make_video

pytestmark = pytest.mark.timeout(30)


def _can_set_slices() -> bool:
    result: list[bool] = []
    probe = threading.Thread(target=lambda: result.append(_sched.yield_to_latency_work(5.0)))
    probe.start()
    probe.join()
    return result[0]


needs_slices = pytest.mark.skipif(
    not _can_set_slices(), reason="this kernel has no custom EEVDF slices (Linux < 6.12)"
)


def _slice_of(tid: int) -> int:
    """se.slice of a thread of this process, from /proc (what the kernel itself reports)."""
    for line in Path(f"/proc/self/task/{tid}/sched").read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    raise AssertionError(f"no se.slice for thread {tid}")


def _all_slices() -> dict[int, int]:
    slices = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            slices[int(task.name)] = _slice_of(int(task.name))
        except (OSError, AssertionError):  # a thread that ended meanwhile
            continue
    return slices


def test_slice_ms_reads_the_environment_and_ignores_nonsense(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """10 ms by default, the variable's value when it is a number >= 0, else a warning."""
    assert _sched.slice_ms({}) == _sched.DEFAULT_SLICE_MS == 10.0
    assert _sched.slice_ms({"CAMERAPUMP_DECODE_SLICE_MS": "0"}) == 0.0
    assert _sched.slice_ms({"CAMERAPUMP_DECODE_SLICE_MS": " 2.5 "}) == 2.5
    with caplog.at_level(logging.WARNING, logger="camerapump"):
        for bad in ("fast", "-1", "nan", "inf"):
            assert _sched.slice_ms({"CAMERAPUMP_DECODE_SLICE_MS": bad}) == 10.0
    assert len([r for r in caplog.records if "CAMERAPUMP_DECODE_SLICE_MS" in r.message]) == 4


def test_zero_or_a_negative_slice_changes_nothing() -> None:
    """Off means off: the calling thread keeps the slice it had."""
    before = _sched.thread_slice_ns()
    assert _sched.yield_to_latency_work(0.0) is False
    assert _sched.yield_to_latency_work(-3.0) is False
    assert _sched.thread_slice_ns() == before


@needs_slices
def test_the_slice_is_the_calling_threads_own_and_clamped() -> None:
    """A thread's slice is its own; the kernel's range (0.1 to 100 ms) bounds what is asked."""
    seen: dict[str, int | None] = {}

    def worker() -> None:
        assert _sched.yield_to_latency_work(500.0)
        seen["long"] = _sched.thread_slice_ns()
        assert _sched.yield_to_latency_work(0.01)
        seen["short"] = _sched.thread_slice_ns()

    main_before = _sched.thread_slice_ns()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"long": 100_000_000, "short": 100_000}
    assert _sched.thread_slice_ns() == main_before


@needs_slices
async def test_decode_thread_and_ffmpegs_threads_take_the_slice_the_loop_does_not(
    tmp_path: Path,
) -> None:
    """The decode thread and the decoder threads FFmpeg starts under it get 10 ms; the loop not.

    A file read as fast as it decodes keeps FFmpeg's decoder threads (a paced
    source up to 1080p decodes on its decode thread alone: _backend.decoder_threads).
    """
    clip = make_video(tmp_path / "wide.mp4", frames=300, width=1280, height=720)
    loop_tid = threading.get_native_id()
    loop_slice = _slice_of(loop_tid)
    before = set(_all_slices())
    source = cp.Source.file(clip, loop=True, realtime=False)
    async with cp.open_pump(source) as pump:
        async for _ in pump:
            if pump.statistics().frames_decoded >= 10:
                break
        (decode,) = _pump_threads()
        assert decode.native_id is not None
        assert _slice_of(decode.native_id) == 10_000_000
        new = {tid: s for tid, s in _all_slices().items() if tid not in before}
        # FFmpeg's decoder threads (H.264 at 720p gets several) inherit the slice.
        assert len(new) > 1
        assert set(new.values()) == {10_000_000}
    assert _slice_of(loop_tid) == loop_slice


@needs_slices
async def test_the_environment_variable_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """CAMERAPUMP_DECODE_SLICE_MS=0: the decode thread keeps the default slice."""
    monkeypatch.setenv("CAMERAPUMP_DECODE_SLICE_MS", "0")
    default = _slice_of(threading.get_native_id())
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(160, 120, 30)) as pump:
        await anext(aiter(pump))
        (decode,) = _pump_threads()
        assert decode.native_id is not None
        assert _slice_of(decode.native_id) == default


@needs_slices
async def test_a_custom_slice_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """CAMERAPUMP_DECODE_SLICE_MS=4 gives the decode thread a 4 ms slice."""
    monkeypatch.setenv("CAMERAPUMP_DECODE_SLICE_MS", "4")
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(160, 120, 30)) as pump:
        await anext(aiter(pump))
        (decode,) = _pump_threads()
        assert decode.native_id is not None
        assert _slice_of(decode.native_id) == 4_000_000


@needs_slices
def test_the_blocking_camera_decodes_with_the_slice_too() -> None:
    """open_camera's decode thread takes the same slice."""
    with cp.open_camera(cp.Source.test(), cp.StreamConfig(160, 120, 30)) as camera:
        camera.next_frame(timeout=5.0)
        (decode,) = _pump_threads()
        assert decode.native_id is not None
        assert _slice_of(decode.native_id) == 10_000_000
