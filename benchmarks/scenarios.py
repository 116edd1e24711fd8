"""The scenarios that run inside this process: hand-off latency and stall detection.

Both time events on one clock (``time.monotonic()``) rather than CPU, so they need
no process of their own; ``compare.py`` has the comparisons that do.  Every wait is
bounded; every server, proxy, thread and pump is closed before returning.  Also the
``keeper`` client that every scenario on a shared server uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import av.codec.context
import av.error
from _common import percentile

import camerapump as cp
import camerapump._backend as cp_backend
import camerapump._worker as cp_worker
from netfaults import HOST, RtspServer, TcpProxy

Result = dict[str, Any]

RTSP_OPEN_TIMEOUT = (10.0, 1.0)  # (open, read) for the raw PyAV clients: every read bounded
#: The probe options camerapump opens RTSP with (read from the package, so the raw
#: comparison follows it when it changes).
FAST_PROBE: dict[str, str] = dict(
    getattr(cp_backend, "FAST_PROBE", None) or {"analyzeduration": "100000"}
)
DEFAULT_TEST_SIZE: tuple[int, int] = getattr(cp_backend, "DEFAULT_TEST_SIZE", (640, 480))


def _ms(seconds: float) -> float:
    return seconds * 1000.0


@contextlib.contextmanager
def keeper(url: str) -> Iterator[None]:
    """Keep one demux-only client on ``url`` so that the server's shared media stays up.

    Every measured client then joins a running stream, as with a real camera.  It
    also sidesteps a crash of the test server: gst-rtsp-server 1.22 (Debian 12)
    aborts (``gst_rtsp_media_get_rates: assertion failed``) when several clients
    connect at once while a shared media is being prepared again, after failing
    some of them (PyAV raises PermissionError, EPERM, for those).
    """
    stop = threading.Event()
    started = threading.Event()

    def run() -> None:
        # A loaded machine can hold the server up for seconds: come back, as a
        # camera's other viewers would, until told to stop.
        while not stop.is_set():
            try:
                with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10.0, 5.0)) as c:
                    for _ in c.demux(video=0):
                        started.set()
                        if stop.is_set():
                            break
            except (av.error.FFmpegError, OSError):
                stop.wait(0.5)
        started.set()

    thread = threading.Thread(target=run, name="bench-keeper", daemon=True)
    thread.start()
    try:
        started.wait(15.0)
        yield
    finally:
        stop.set()
        thread.join(5.0)


# =========================================================================== hand-off latency

WARMUP = 0.5  # seconds after the first frame whose frames are not counted (open bursts)


@contextlib.contextmanager
def _stamp_frames(stamps: dict[int, float]) -> Iterator[None]:
    """Diagnostic only: note when the decode thread builds each Frame, i.e. right after
    its bgr24 conversion (``captured_at`` is taken before it).  Wraps the name ``Frame``
    in camerapump._worker for the duration; does nothing if that name is gone."""
    original = getattr(cp_worker, "Frame", None)
    if original is None:
        yield
        return

    def frame(*args: Any, **kwargs: Any) -> Any:
        made = original(*args, **kwargs)
        stamps[made.sequence] = time.monotonic()
        return made

    cp_worker.Frame = frame
    try:
        yield
    finally:
        cp_worker.Frame = original


async def _cp_handoff(source: cp.Source, seconds: float) -> tuple[list[float], list[float]]:
    lat: list[float] = []
    after_convert: list[float] = []
    stamps: dict[int, float] = {}
    with _stamp_frames(stamps):
        async with asyncio.timeout(seconds + 15.0), cp.open_pump(source) as pump:
            start = None
            async for frame in pump:
                now = time.monotonic()
                if start is None:
                    start = now
                if now - start >= WARMUP:
                    lat.append(now - frame.captured_at)
                    if (made := stamps.pop(frame.sequence, None)) is not None:
                        after_convert.append(now - made)
                if now - start >= WARMUP + seconds:
                    break
    return lat, after_convert


async def _raw_handoff(
    open_fn: Callable[[], Any], seconds: float, *, paced: bool
) -> tuple[list[float], list[float]]:
    """The floor: one raw PyAV decode thread, ``call_soon_threadsafe`` into an asyncio.Queue.

    Stamps like camerapump (before the bgr24 conversion) and after it.
    Returns (decode end -> consumer, conversion end -> consumer).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, float] | None] = asyncio.Queue()
    stop = threading.Event()

    def run() -> None:
        try:
            with open_fn() as container:
                stream = container.streams.video[0]
                stream.codec_context.flags |= av.codec.context.Flags.low_delay
                anchor = None
                for frame in container.decode(stream):
                    if stop.is_set():
                        break
                    if paced and frame.time is not None:  # like a camera: one frame per 1/fps
                        if anchor is None:
                            anchor = time.monotonic() - frame.time
                        delay = anchor + frame.time - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    t0 = time.monotonic()
                    frame.to_ndarray(format="bgr24")
                    t1 = time.monotonic()
                    loop.call_soon_threadsafe(queue.put_nowait, (t0, t1))
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, None)

    thread = threading.Thread(target=run, name="bench-raw-handoff", daemon=True)
    thread.start()
    decoded: list[float] = []
    converted: list[float] = []
    try:
        async with asyncio.timeout(seconds + 15.0):
            start = None
            while (item := await queue.get()) is not None:
                now = time.monotonic()
                if start is None:
                    start = now
                if now - start >= WARMUP:
                    decoded.append(now - item[0])
                    converted.append(now - item[1])
                if now - start >= WARMUP + seconds:
                    break
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 5.0)
    return decoded, converted


def _pcts(prefix: str, values: list[float]) -> Result:
    return {
        f"{prefix}_p50_ms": _ms(percentile(values, 50)),
        f"{prefix}_p99_ms": _ms(percentile(values, 99)),
        f"{prefix}_max_ms": _ms(max(values)) if values else float("nan"),
        f"{prefix}_n": len(values),
    }


def handoff(path: Path, settings: Any, repeat: int) -> Result:
    """time.monotonic() - frame.captured_at when ``async for`` yields (test pattern and RTSP).

    Also camerapump alone on the 720p file paced like a camera (``realtime=True``): the
    same H.264 decode and conversion as the RTSP line, without the server's load.
    """
    out: Result = {}
    secs = settings.handoff_seconds
    size = DEFAULT_TEST_SIZE  # what Source.test() gives by default
    lavfi = f"testsrc2=size={size[0]}x{size[1]}:rate=30"
    order = ["cp", "raw"] if repeat % 2 == 0 else ["raw", "cp"]
    for which in order:
        if which == "cp":
            lat, conv = asyncio.run(_cp_handoff(cp.Source.test(), secs))
            out.update(_pcts("test_cp", lat))
            out.update(_pcts("test_cp_after_convert", conv))
        else:
            dec, conv = asyncio.run(
                _raw_handoff(lambda: av.open(lavfi, format="lavfi"), secs, paced=True)
            )
            out.update(_pcts("test_raw", dec))
            out.update(_pcts("test_raw_after_convert", conv))
    lat, conv = asyncio.run(_cp_handoff(cp.Source.file(path, realtime=True), secs))
    out.update(_pcts("file_cp", lat))
    out.update(_pcts("file_cp_after_convert", conv))
    with RtspServer(width=1280, height=720, fps=30, gop=30) as server:
        url = server.url("/h264")
        opts = {"rtsp_transport": "tcp", **FAST_PROBE}  # as camerapump opens it
        for which in order:
            if which == "cp":
                lat, conv = asyncio.run(_cp_handoff(cp.Source.rtsp(url), secs))
                out.update(_pcts("rtsp_cp", lat))
                out.update(_pcts("rtsp_cp_after_convert", conv))
            else:
                dec, conv = asyncio.run(
                    _raw_handoff(
                        lambda: av.open(url, options=opts, timeout=RTSP_OPEN_TIMEOUT),
                        secs,
                        paced=False,
                    )
                )
                out.update(_pcts("rtsp_raw", dec))
                out.update(_pcts("rtsp_raw_after_convert", conv))
    out["test_size"] = f"{size[0]}x{size[1]}"
    out["rtsp_size"] = "1280x720"
    return out


# =========================================================================== stall detection


async def _watch_status(pump: cp.Pump, events: list[tuple[float, cp.PumpStatus]]) -> None:
    while True:
        event = await pump.status.get()
        events.append((time.monotonic(), event))


async def _stall_once(url: str, proxy: TcpProxy, stall: float) -> Result:
    policy = cp.ReconnectPolicy(stall_timeout=stall, initial_backoff=1.0, jitter=0.0)
    events: list[tuple[float, cp.PumpStatus]] = []
    last_frame = [0.0]

    async def consume(pump: cp.Pump) -> None:
        async for frame in pump:
            last_frame[0] = frame.captured_at

    source = cp.Source.rtsp(url, open_timeout=5.0)
    async with asyncio.timeout(stall + 30.0), cp.open_pump(source, policy=policy) as pump:
        tasks = [
            asyncio.create_task(_watch_status(pump, events)),
            asyncio.create_task(consume(pump)),
        ]
        try:
            # A random moment, so that the watchdog's tick phase is sampled too.
            await asyncio.sleep(1.5 + random.uniform(0.0, 1.0))
            frozen_at = time.monotonic()
            proxy.freeze()
            detected_at = float("nan")
            async with asyncio.timeout(stall + 10.0):
                while True:
                    await asyncio.sleep(0.005)
                    hits = [
                        t
                        for t, e in events
                        if isinstance(e, cp.Reconnecting) and e.reason == "stall_timeout_exceeded"
                    ]
                    if hits:
                        detected_at = hits[0]
                        break
        finally:
            proxy.unfreeze()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "freeze_to_event_s": detected_at - frozen_at,
        "last_frame_to_event_s": detected_at - last_frame[0],
        "excess_s": detected_at - last_frame[0] - stall,  # the watchdog counts from here
        "watchdog_period_s": min(1.0, stall / 4),
    }


def stall(settings: Any, repeat: int) -> Result:
    """Freeze a TCP proxy under the stream: freeze -> Reconnecting(stall_timeout_exceeded)."""
    del repeat
    out: Result = {}
    server = RtspServer(width=640, height=480, fps=30, gop=30)
    with server, TcpProxy((HOST, server.port)) as proxy:
        url = f"rtsp://{HOST}:{proxy.port}/h264"
        for timeout in settings.stall_timeouts:
            res = asyncio.run(_stall_once(url, proxy, timeout))
            for key, value in res.items():
                out[f"{timeout:g}s_{key}"] = value
    return out
