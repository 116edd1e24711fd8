"""The benchmark scenarios.  Each runs once per repeat and returns a flat dict of figures.

Every scenario measures camerapump and its raw-PyAV (and OpenCV) counterpart in the
same call, interleaved, against the same file or the same server.  Every wait is
bounded; every server, proxy, thread, capture and pump is closed before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.codec.context
from _common import CpuMeter, cv2, percentile

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


@dataclass(frozen=True)
class Settings:
    """Durations and sample counts; ``--quick`` shrinks them."""

    throughput_passes: int = 5
    handoff_seconds: float = 4.0
    lag_seconds: float = 6.0
    ttff_samples: int = 3
    slow_seconds: float = 6.0
    stall_timeouts: tuple[float, ...] = (2.0, 5.0)

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            throughput_passes=1,
            handoff_seconds=2.0,
            lag_seconds=3.0,
            ttff_samples=1,
            slow_seconds=6.0,
            stall_timeouts=(2.0,),
        )


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _cpu_ms_per_frame(cpu: float, frames: int) -> float:
    return _ms(cpu) / frames if frames else float("nan")


def _cpu_now() -> float:
    t = os.times()
    return t.user + t.system


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
        try:
            with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10.0, 0.5)) as c:
                for _ in c.demux(video=0):
                    started.set()
                    if stop.is_set():
                        break
        finally:
            started.set()

    thread = threading.Thread(target=run, name="bench-keeper", daemon=True)
    thread.start()
    try:
        started.wait(15.0)
        yield
    finally:
        stop.set()
        thread.join(5.0)


# =========================================================================== 1. throughput


async def _cp_file(path: Path) -> int:
    frames = 0
    async with cp.open_pump(cp.Source.file(path, realtime=False)) as pump:
        async for frame in pump:
            frames += frame.data.ndim == 3
    return frames


def _pyav_file(path: Path, thread_type: str | None) -> int:
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if thread_type is not None:
            stream.thread_type = thread_type
        for frame in container.decode(stream):
            frames += frame.to_ndarray(format="bgr24").shape[0] > 0
    return frames


async def _thread_handoff_file(path: Path) -> int:
    """The architecture's floor: a raw PyAV decode thread (AUTO, as camerapump sets it for
    realtime=False files) handing bgr24 arrays to the loop with call_soon_threadsafe, with
    no backpressure, no Frame, no bookkeeping."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def run() -> None:
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    loop.call_soon_threadsafe(queue.put_nowait, frame.to_ndarray(format="bgr24"))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    thread = threading.Thread(target=run, name="bench-thread-handoff", daemon=True)
    thread.start()
    frames = 0
    try:
        async with asyncio.timeout(60.0):
            while (data := await queue.get()) is not None:
                frames += data.ndim == 3
    finally:
        await asyncio.to_thread(thread.join, 5.0)
    return frames


def _opencv_file(path: Path) -> int:
    frames = 0
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            frames += img.shape[0] > 0
    finally:
        cap.release()
    return frames


def throughput(path: Path, settings: Settings, repeat: int) -> Result:
    """720p H.264 file, every frame as bgr24: frames per second from open to the last frame."""
    variants: dict[str, Callable[[], int]] = {
        "camerapump": lambda: asyncio.run(_cp_file(path)),
        "pyav_default": lambda: _pyav_file(path, None),
        "pyav_auto": lambda: _pyav_file(path, "AUTO"),
        "thread_handoff": lambda: asyncio.run(_thread_handoff_file(path)),
    }
    if cv2 is not None:
        variants["opencv"] = lambda: _opencv_file(path)
    names = list(variants)
    fps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    frames_seen: dict[str, int] = {}
    for p in range(settings.throughput_passes):
        # Rotate the order so that no variant always runs first (or right after another).
        k = (repeat * settings.throughput_passes + p) % len(names)
        for name in names[k:] + names[:k]:
            c0, t0 = _cpu_now(), time.perf_counter()
            n = variants[name]()
            wall = time.perf_counter() - t0
            fps[name].append(n / wall)
            cpu[name].append(_cpu_ms_per_frame(_cpu_now() - c0, n))
            frames_seen[name] = n
    out: Result = {"frames": frames_seen, "fps_passes": fps}
    for name in names:
        out[f"{name}_fps"] = percentile(fps[name], 50)
        out[f"{name}_cpu_ms_per_frame"] = percentile(cpu[name], 50)
    out["ratio_vs_pyav_default"] = out["camerapump_fps"] / out["pyav_default_fps"]
    out["ratio_vs_pyav_auto"] = out["camerapump_fps"] / out["pyav_auto_fps"]
    return out


# =========================================================================== 2. hand-off latency

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


def handoff(path: Path, settings: Settings, repeat: int) -> Result:
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


# =========================================================================== 3. event-loop lag

TICK = 0.005


async def _ticker(seconds: float) -> list[float]:
    """Sleep 5 ms again and again; record how late each wake-up was."""
    late: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        await asyncio.sleep(TICK)
        late.append(time.monotonic() - t0 - TICK)
    return late


def _lag_figures(prefix: str, late: list[float], cpu: dict[str, float]) -> Result:
    return {
        f"{prefix}_p50_ms": _ms(percentile(late, 50)),
        f"{prefix}_p99_ms": _ms(percentile(late, 99)),
        f"{prefix}_max_ms": _ms(max(late)) if late else float("nan"),
        f"{prefix}_process_cpu_pct": cpu["process_pct"],
        f"{prefix}_server_cpu_pct": cpu["others_pct"],
        f"{prefix}_machine_cpu_pct": cpu["machine_pct"],
        f"{prefix}_steal_pct": cpu["steal_pct"],
    }


async def _lag_cp(url: str, seconds: float, pids: list[int]) -> Result:
    counts = [0] * 4

    async def consume(i: int, pump: cp.Pump) -> None:
        async for _ in pump:
            counts[i] += 1

    async with contextlib.AsyncExitStack() as stack, asyncio.timeout(seconds + 30.0):
        pumps = [
            await stack.enter_async_context(cp.open_pump(cp.Source.rtsp(url))) for _ in range(4)
        ]
        tasks = [asyncio.create_task(consume(i, p)) for i, p in enumerate(pumps)]
        try:
            await asyncio.sleep(1.0)  # past the open bursts
            before = list(counts)
            meter = CpuMeter(pids).start()
            late = await _ticker(seconds)
            cpu = meter.stop()
            delivered = [c - b for c, b in zip(counts, before, strict=True)]
            stats = [p.statistics() for p in pumps]
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    out = _lag_figures("cp", late, cpu)
    out["cp_fps_per_stream"] = [d / cpu["wall_s"] for d in delivered]
    out["cp_dropped"] = [s.frames_dropped for s in stats]
    return out


def _lag_raw(url: str, seconds: float, pids: list[int]) -> Result:
    stop = threading.Event()
    counts = [0] * 4
    errors: list[str] = []

    def run(i: int) -> None:
        try:
            with av.open(
                url, options={"rtsp_transport": "tcp"}, timeout=RTSP_OPEN_TIMEOUT
            ) as container:
                for frame in container.decode(video=0):
                    frame.to_ndarray(format="bgr24")
                    counts[i] += 1
                    if stop.is_set():
                        break
        except Exception as exc:
            errors.append(f"{type(exc).__name__}")

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.2)  # one at a time, as the pumps open
    try:
        deadline = time.monotonic() + 15.0
        while min(counts) == 0 and time.monotonic() < deadline and not errors:
            time.sleep(0.05)
        time.sleep(1.0)  # past the open bursts (PyAV's defaults buffer ~1 s while probing)
        before = list(counts)
        meter = CpuMeter(pids).start()
        late = asyncio.run(_ticker(seconds))
        cpu = meter.stop()
        decoded = [c - b for c, b in zip(counts, before, strict=True)]
    finally:
        stop.set()
        for t in threads:
            t.join(5.0)
    if min(decoded) == 0:  # a client failed: this window did not measure 4 streams
        late = []
        errors.append("a raw client decoded nothing during the window")
    out = _lag_figures("raw", late, cpu)
    out["raw_fps_per_stream"] = [d / cpu["wall_s"] for d in decoded]
    out["raw_errors"] = errors
    return out


def loop_lag(settings: Settings, repeat: int) -> Result:
    """Lateness of a 5 ms ticker while 4 x 720p30 RTSP streams are decoded."""
    secs = settings.lag_seconds
    out: Result = {}
    with RtspServer(width=1280, height=720, fps=30, gop=30) as server:
        url = server.url("/h264")
        pids = [server.pid] if server.pid else []
        with keeper(url):
            out.update(_loop_lag_variants(url, secs, pids, repeat))
    return out


def _loop_lag_variants(url: str, secs: float, pids: list[int], repeat: int) -> Result:
    out: Result = {}
    meter = CpuMeter(pids).start()
    idle = asyncio.run(_ticker(min(secs, 3.0)))
    out.update(_lag_figures("idle", idle, meter.stop()))
    order = ["cp", "raw"] if repeat % 2 == 0 else ["raw", "cp"]
    for which in order:
        if which == "cp":
            out.update(asyncio.run(_lag_cp(url, secs, pids)))
        else:
            out.update(_lag_raw(url, secs, pids))
        time.sleep(0.5)
    return out


# =========================================================================== 4. time to first frame


async def _cp_ttff(url: str) -> float:
    t0 = time.monotonic()
    async with asyncio.timeout(20.0), cp.open_pump(cp.Source.rtsp(url)) as pump:
        await anext(pump)
        return time.monotonic() - t0


def _raw_ttff(url: str, options: dict[str, str]) -> float:
    t0 = time.monotonic()
    with av.open(url, options=options, timeout=RTSP_OPEN_TIMEOUT) as container:
        for frame in container.decode(video=0):
            frame.to_ndarray(format="bgr24")  # the consumer wants bgr24, as camerapump gives
            return time.monotonic() - t0
    return float("nan")


def _ttff_server(
    path: str,
    gop: int,
    rounds: int,
    repeat: int,
    variants: dict[str, Callable[[str], float]],
) -> dict[str, list[float]]:
    """Time to first frame of each variant on one 720p30 server, ``rounds`` times each."""
    samples: dict[str, list[float]] = {k: [] for k in variants}
    with RtspServer(width=1280, height=720, fps=30, gop=gop) as server:
        url = server.url(path)
        with keeper(url):
            time.sleep(0.5)
            names = list(variants)
            for i in range(rounds):
                k = (repeat + i) % len(names)
                for name in names[k:] + names[:k]:
                    samples[name].append(variants[name](url))
                    time.sleep(0.3)
    return samples


def ttff(settings: Settings, repeat: int) -> Result:
    """RTSP open -> first bgr24 frame on loopback, joining a stream that is already running.

    Also on a server with a 10 s keyframe interval (gop=300): the test server
    (gst-rtsp-server) starts each new client on a fresh keyframe, so the keyframe
    interval does not show up in the time to first frame; that line is the evidence.
    And once for MJPEG (no keyframes at all).
    """
    gop, fps = 30, 30
    tcp = {"rtsp_transport": "tcp"}
    variants: dict[str, Callable[[str], float]] = {
        "cp": lambda u: asyncio.run(_cp_ttff(u)),
        "pyav_default": lambda u: _raw_ttff(u, tcp),
        "pyav_analyze": lambda u: _raw_ttff(u, {**tcp, "analyzeduration": "100000"}),
        "pyav_fastprobe": lambda u: _raw_ttff(u, {**tcp, **FAST_PROBE}),
    }
    two = {k: variants[k] for k in ("cp", "pyav_default")}
    samples = _ttff_server("/h264", gop, settings.ttff_samples, repeat, variants)
    out: Result = {
        "samples": samples,
        "keyframe_interval_s": gop / fps,
        "gop": gop,
        "fps": fps,
        "fast_probe": FAST_PROBE,
    }
    for name, vals in samples.items():
        out[f"{name}_s"] = percentile(vals, 50)
    for label, path, g in (("gop300", "/h264", 300), ("mjpeg", "/mjpeg", gop)):
        more = _ttff_server(path, g, 1, repeat, two)
        out[f"{label}_samples"] = more
        for name, vals in more.items():
            out[f"{label}_{name}_s"] = percentile(vals, 50)
    return out


# =========================================================================== 5. slow consumer

SLOW = 0.1  # seconds of work per frame


async def _cp_slow(url: str, seconds: float) -> Result:
    async with asyncio.timeout(seconds + 20.0), cp.open_pump(cp.Source.rtsp(url)) as pump:
        first: tuple[float, float] | None = None
        consumed = 0
        async for frame in pump:
            if frame.pts is None:
                continue
            now = time.monotonic()
            consumed += 1
            if first is None:
                first = (now, frame.pts)
            elif now - first[0] >= seconds:
                wall, stream = now - first[0], frame.pts - first[1]
                return {
                    "behind_s": wall - stream,
                    "consumed": consumed,
                    "dropped": pump.statistics().frames_dropped,
                }
            await asyncio.sleep(SLOW)
    return {"behind_s": float("nan")}


def _raw_slow(url: str, seconds: float) -> Result:
    deadline = time.monotonic() + seconds + 20.0
    first: tuple[float, float] | None = None
    consumed = 0
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=RTSP_OPEN_TIMEOUT) as container:
        for frame in container.decode(video=0):
            if frame.time is None:
                continue
            frame.to_ndarray(format="bgr24")
            now = time.monotonic()
            consumed += 1
            if first is None:
                first = (now, frame.time)
            elif now - first[0] >= seconds:
                return {
                    "behind_s": (now - first[0]) - (frame.time - first[1]),
                    "consumed": consumed,
                }
            if now > deadline:
                break
            time.sleep(SLOW)
    return {"behind_s": float("nan")}


def _opencv_slow(url: str, seconds: float) -> Result:
    deadline = time.monotonic() + seconds + 20.0
    previous = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    try:
        cap = cv2.VideoCapture(
            url,
            cv2.CAP_FFMPEG,
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000],
        )
    finally:
        if previous is None:
            os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
        else:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = previous
    try:
        first: tuple[float, float] | None = None
        reads = consumed = 0
        while time.monotonic() < deadline:
            ok, _img = cap.read()
            if not ok:
                break
            reads += 1
            if reads == 1:
                continue  # the first frame has no pts (as in PyAV); OpenCV reports 0 for it
            now = time.monotonic()
            pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            consumed += 1
            if first is None:
                first = (now, pos)
            elif now - first[0] >= seconds:
                return {"behind_s": (now - first[0]) - (pos - first[1]), "consumed": consumed}
            time.sleep(SLOW)
    finally:
        cap.release()
    return {"behind_s": float("nan")}


def slow_consumer(settings: Settings, repeat: int) -> Result:
    """A consumer needing 100 ms a frame on 30 fps RTSP: wall time minus stream time after 6 s."""
    secs = settings.slow_seconds
    variants: dict[str, Callable[[str], Result]] = {
        "cp": lambda u: asyncio.run(_cp_slow(u, secs)),
        "pyav": lambda u: _raw_slow(u, secs),
    }
    if cv2 is not None:
        variants["opencv"] = lambda u: _opencv_slow(u, secs)
    out: Result = {"seconds": secs}
    names = list(variants)
    k = repeat % len(names)
    with RtspServer(width=1280, height=720, fps=30, gop=30) as server:
        url = server.url("/h264")
        for name in names[k:] + names[:k]:
            res = variants[name](url)
            for key, value in res.items():
                out[f"{name}_{key}"] = value
            time.sleep(0.3)
    return out


# =========================================================================== 6. reconnect


async def _watch_status(pump: cp.Pump, events: list[tuple[float, cp.PumpStatus]]) -> None:
    while True:
        event = await pump.status.get()
        events.append((time.monotonic(), event))


async def _reconnect_once(server: RtspServer, restart_after: float) -> Result:
    policy = cp.ReconnectPolicy(initial_backoff=1.0, jitter=0.0)
    events: list[tuple[float, cp.PumpStatus]] = []
    frames: list[tuple[float, float]] = []  # (received, captured_at)
    got_new = asyncio.Event()
    ready_at = float("inf")

    async def consume(pump: cp.Pump) -> None:
        async for frame in pump:
            now = time.monotonic()
            frames.append((now, frame.captured_at))
            if frame.captured_at > ready_at:
                got_new.set()

    source = cp.Source.rtsp(server.url("/h264"), open_timeout=5.0)
    async with asyncio.timeout(40.0), cp.open_pump(source, policy=policy) as pump:
        tasks = [
            asyncio.create_task(_watch_status(pump, events)),
            asyncio.create_task(consume(pump)),
        ]
        try:
            await asyncio.sleep(1.0)
            killed_at = time.monotonic()
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(max(0.0, killed_at + restart_after - time.monotonic()))
            restart_at = time.monotonic()
            await asyncio.to_thread(server.restart)
            ready_at = time.monotonic()
            async with asyncio.timeout(20.0):
                await got_new.wait()
            first_new = next(r for r, c in frames if c > ready_at)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    reconnecting = [(t, e) for t, e in events if isinstance(e, cp.Reconnecting)]
    before = [(t, e) for t, e in reconnecting if t <= ready_at]
    pending = max(0.0, before[-1][0] + before[-1][1].next_delay - ready_at) if before else 0.0
    recovery = first_new - ready_at
    return {
        "restart_after_kill_s": restart_after,
        "server_start_s": ready_at - restart_at,
        "kill_to_first_event_s": reconnecting[0][0] - killed_at if reconnecting else float("nan"),
        "pending_backoff_s": pending,
        "recovery_s": recovery,
        "excess_s": recovery - pending,
        "events": [
            {
                "t": round(t - killed_at, 3),
                "event": type(e).__name__,
                **(
                    {"attempt": e.attempt, "next_delay": e.next_delay, "reason": e.reason}
                    if isinstance(e, cp.Reconnecting)
                    else {}
                ),
            }
            for t, e in events
        ],
    }


def reconnect(settings: Settings, repeat: int) -> Result:
    """Kill the server, restart it 1.5 s later on the same port: READY -> first new frame."""
    del settings, repeat
    server = RtspServer(width=640, height=480, fps=30, gop=30)
    with server:
        return asyncio.run(_reconnect_once(server, restart_after=1.5))


# =========================================================================== 7. stall detection


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


def stall(settings: Settings, repeat: int) -> Result:
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
