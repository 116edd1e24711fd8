"""One benchmark client in a process of its own: ``python benchmarks/_child.py``.

The parent (``run.py``) starts this with ``PYTHONPATH`` pointing at the camerapump
tree to measure (the current checkout, or the code before the rewrite), sends it
one JSON task per line on stdin, and reads ``EVENT <name>`` lines and one
``RESULT <json>`` line per task on stdout.  A process of its own per variant means
that its CPU time (``os.times()`` over the measuring window) is that variant's
alone: no other variant's threads, no server, no parent.

Every variant of a comparison gets the same extras: the same event loop
(``anyio.run``, asyncio unless the task says trio), the same consumer tasks, the
same loop-lag ticker or none.  Imports of the peers (OpenCV, aiortc) happen only in
the tasks that use them, so a child measuring camerapump never loads them.

Nothing here judges a number; it only measures.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import av
from _stats import percentile

Result = dict[str, Any]

TICK = 0.005  # the loop-lag ticker sleeps this long, again and again
OPEN_TIMEOUT = (10.0, 1.0)  # (open, read) for the raw PyAV clients: every read bounded
TCP = {"rtsp_transport": "tcp"}
STAGGER = 0.15  # between opening clients: gst-rtsp-server 1.22 can abort on a burst of SETUPs
RSS_LIMIT_MB = 1500  # an aiortc run whose queues grow past this is stopped (see _watch_memory)


def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def open_cv2_rtsp(url: str) -> Any:
    """OpenCV's ``VideoCapture`` on an RTSP URL over TCP, with bounded open and reads."""
    import cv2  # noqa: PLC0415

    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    return cv2.VideoCapture(
        url,
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000],
    )


def cpu_now() -> float:
    """CPU seconds of this process, all threads (ns resolution, unlike os.times())."""
    return time.process_time()


_TICKS = os.sysconf("SC_CLK_TCK")


def pid_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_jiffies() -> tuple[int, int]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    busy = parts[0] + parts[1] + parts[2] + parts[5] + parts[6]
    return busy, sum(parts)


class Window:
    """CPU over a window: this process, this thread (the loop), other pids, the machine."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def start(self) -> Window:
        self.t0 = time.monotonic()
        self.cpu0 = cpu_now()
        self.thread0 = time.thread_time()
        self.others0 = [pid_cpu(p) for p in self.pids]
        self.machine0 = machine_jiffies()
        return self

    def stop(self) -> Result:
        wall = max(time.monotonic() - self.t0, 1e-9)
        cpu = cpu_now() - self.cpu0
        thread = time.thread_time() - self.thread0
        others = [pid_cpu(p) - c for p, c in zip(self.pids, self.others0, strict=True)]
        busy, total = machine_jiffies()
        d_total = total - self.machine0[1]
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_per_s": cpu / wall,  # cores used by this process
            "loop_thread_cpu_per_s": thread / wall,
            "server_cpu_per_s": sum(others) / wall if others else float("nan"),
            "machine_pct": 100.0 * (busy - self.machine0[0]) / d_total if d_total else math.nan,
        }


async def ticker(seconds: float, abort: threading.Event | None = None) -> list[float]:
    """Sleep 5 ms again and again; how late each wake-up was (seconds)."""
    late: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (abort is not None and abort.is_set()):
        t0 = time.monotonic()
        await anyio.sleep(TICK)
        late.append(time.monotonic() - t0 - TICK)
    return late


def letterbox(img: Any, width: int, height: int, cv2: Any, np: Any) -> Any:
    """What ``Output(width, height, fit="contain")`` gives, the OpenCV way: resize, pad."""
    h, w = img.shape[:2]
    scale = min(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, img.shape[2]), np.uint8)
    y, x = (height - sh) // 2, (width - sw) // 2
    canvas[y : y + sh, x : x + sw] = small
    return canvas


def _send(stream: Any, item: object) -> None:
    """On the loop: hand ``item`` on, unless the consumer is gone (the run is ending)."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        stream.send_nowait(item)


class RateGate:
    """Frames at least ``1 / fps`` apart on the stream's clock, as camerapump picks them."""

    def __init__(self, fps: float | None) -> None:
        self.step = None if fps is None else 1.0 / fps
        self.last: float | None = None

    def take(self, clock: float | None) -> bool:
        if self.step is None:
            return True
        if clock is None:
            clock = time.monotonic()
        if self.last is not None and self.last <= clock < self.last + self.step - 1e-4:
            return False
        self.last = clock
        return True


# =========================================================================== clients


class Clients:
    """N consumers of one stream URL inside this process, of one variant.

    ``on_frame(i, handoff_s | None)`` is called on the event loop for every frame a
    consumer takes.  ``open`` opens them one after the other; ``close`` ends them all.
    """

    def __init__(self, spec: Result, on_frame: Callable[[int, float | None], None]) -> None:
        self.spec = spec
        self.on_frame = on_frame
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.extra: Result = {}
        self.overflow = threading.Event()  # set by a thread: the run must stop

    # -- camerapump ---------------------------------------------------------------------
    async def open_cp(self, tg: Any, stack: contextlib.AsyncExitStack) -> None:
        import camerapump as cp  # noqa: PLC0415

        kwargs: Result = {}
        if self.spec.get("output"):
            kwargs["output"] = cp.Output(**self.spec["output"])
        self.pumps = []
        for i in range(self.spec["n"]):
            pump = await stack.enter_async_context(
                cp.open_pump(cp.Source.rtsp(self.spec["url"]), **kwargs)
            )
            self.pumps.append(pump)
            tg.start_soon(self._consume_cp, i, pump)
            await anyio.sleep(STAGGER)

    async def _consume_cp(self, i: int, pump: Any) -> None:
        async for frame in pump:
            self.on_frame(i, time.monotonic() - frame.captured_at)

    def cp_statistics(self) -> Result:
        totals: Result = {}
        for pump in getattr(self, "pumps", []):
            stats = pump.statistics()
            for name in (
                "frames_decoded",
                "frames_converted",
                "frames_delivered",
                "frames_dropped",
            ):
                if hasattr(stats, name):
                    totals[name] = totals.get(name, 0) + getattr(stats, name)
        return totals

    # -- raw PyAV threads ---------------------------------------------------------------
    async def open_pyav(self, tg: Any) -> None:
        import numpy as np  # noqa: PLC0415

        mode = self.spec.get("mode", "bgr_all")
        cv2 = None
        if mode == "shape_a":
            import cv2  # noqa: PLC0415
        out = self.spec.get("shape") or {}
        send, receive = anyio.create_memory_object_stream[tuple[int, float]](100_000)
        token = anyio.lowlevel.current_token()
        loop = token.native_token

        def post(item: tuple[int, float]) -> None:
            loop.call_soon_threadsafe(_send, send, item)

        def run(i: int) -> None:
            gate = RateGate(out.get("max_fps"))
            try:
                with av.open(self.spec["url"], options=TCP, timeout=OPEN_TIMEOUT) as container:
                    if mode == "demux":  # read the packets, decode nothing: below any reader
                        for packet in container.demux(video=0):
                            if self.stop.is_set():
                                break
                            if packet.is_keyframe:  # as many hand-offs as keyframes_only
                                post((i, time.monotonic()))
                        return
                    for frame in container.decode(video=0):
                        if self.stop.is_set():
                            break
                        t = time.monotonic()  # where camerapump stamps captured_at
                        if mode == "bgr_all":
                            frame.to_ndarray(format="bgr24")
                        elif mode == "keys":
                            if not frame.key_frame:
                                continue
                            frame.to_ndarray(format="bgr24")
                        elif mode == "shape_a":
                            # The usual code: every frame to a full-size array, then
                            # resize the ones the model will look at.
                            img = frame.to_ndarray(format="rgb24")
                            if not gate.take(frame.time):
                                continue
                            letterbox(img, out["width"], out["height"], cv2, np)
                        elif mode == "decode":
                            pass  # decode only: the floor inside Python
                        post((i, t))
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")

        for i in range(self.spec["n"]):
            t = threading.Thread(target=run, args=(i,), name=f"raw-{i}", daemon=True)
            t.start()
            self.threads.append(t)
            await anyio.sleep(STAGGER)
        tg.start_soon(self._consume_stream, receive)

    async def _consume_stream(self, receive: Any) -> None:
        async with receive:
            async for i, t in receive:
                self.on_frame(i, time.monotonic() - t)

    # -- OpenCV threads -----------------------------------------------------------------
    async def open_opencv(self, tg: Any) -> None:
        import cv2  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415

        out = self.spec.get("shape") or {}
        send, receive = anyio.create_memory_object_stream[tuple[int, float]](100_000)
        loop = anyio.lowlevel.current_token().native_token

        def run(i: int) -> None:
            gate = RateGate(out.get("max_fps"))
            cap = open_cv2_rtsp(self.spec["url"])
            try:
                while not self.stop.is_set():
                    # OpenCV's advice for a consumer that wants some frames: grab()
                    # every one (decode, no conversion), retrieve() those it keeps.
                    if not cap.grab():
                        self.errors.append("grab() failed")
                        break
                    t = time.monotonic()
                    if not gate.take(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0):
                        continue
                    ok, img = cap.retrieve()
                    if not ok:
                        continue
                    if out:
                        img = letterbox(img, out["width"], out["height"], cv2, np)
                        cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
                    loop.call_soon_threadsafe(_send, send, (i, t))
            finally:
                cap.release()

        for i in range(self.spec["n"]):
            t = threading.Thread(target=run, args=(i,), name=f"cv-{i}", daemon=True)
            t.start()
            self.threads.append(t)
            await anyio.sleep(STAGGER)
        tg.start_soon(self._consume_stream, receive)

    # -- aiortc MediaPlayer -------------------------------------------------------------
    async def open_aiortc(self, tg: Any) -> None:
        from aiortc.contrib.media import MediaPlayer  # noqa: PLC0415

        self.players = []
        for i in range(self.spec["n"]):
            # The constructor opens the stream, which blocks; in a thread, so that the
            # players already started are not held up by the next one's open.
            player = await anyio.to_thread.run_sync(
                lambda: MediaPlayer(self.spec["url"], options=TCP, timeout=10)
            )
            self.players.append(player)
            tg.start_soon(self._consume_aiortc, i, player)
            await anyio.sleep(STAGGER)
        watch = threading.Thread(target=self._watch_memory, name="rss-watch", daemon=True)
        watch.start()
        self.threads.append(watch)

    def _watch_memory(self) -> None:
        """aiortc queues every decoded picture without a bound (1.4 MB each at 720p), and
        when the loop falls behind they wait in its callbacks, not even in the queue.
        A thread of its own (the loop may be the one that is late) stops the players'
        decode threads before they fill the machine's memory."""
        while not self.stop.wait(0.1):
            rss = _rss_mb()
            self.extra["max_rss_mb"] = max(self.extra.get("max_rss_mb", 0.0), rss)
            if rss > RSS_LIMIT_MB:
                self.errors.append(
                    f"fell behind: the process grew to {rss:.0f} MB of queued pictures; "
                    "stopped early"
                )
                for player in self.players:
                    quit_event = getattr(player, "_MediaPlayer__thread_quit", None)
                    if quit_event is not None:
                        quit_event.set()
                self.overflow.set()
                return

    async def _consume_aiortc(self, i: int, player: Any) -> None:
        from aiortc.mediastreams import MediaStreamError  # noqa: PLC0415

        track = player.video
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                frame.to_ndarray(format="bgr24")  # frames come as av.VideoFrame
                self.on_frame(i, None)

    def close_aiortc(self) -> None:
        for player in getattr(self, "players", []):
            if player.video is not None:
                player.video.stop()  # joins its thread (on the loop, as aiortc does)

    def join_threads(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5.0)


async def _clients_main(spec: Result) -> Result:
    """Open N clients, wait until all deliver, then measure a window (ticker optional)."""
    n = spec["n"]
    counts = [0] * n
    handoff: list[float] = []
    measuring = [False]
    window_counts = [0] * n

    def on_frame(i: int, lat: float | None) -> None:
        counts[i] += 1
        if measuring[0]:
            window_counts[i] += 1
            if lat is not None:
                handoff.append(lat)

    clients = Clients(spec, on_frame)
    variant = spec["variant"]
    out: Result = {"variant": variant, "n": n}
    opened_at = time.monotonic()
    async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tg:
        try:
            with anyio.fail_after(30.0 + n):
                if variant == "cp":
                    await clients.open_cp(tg, stack)
                elif variant == "pyav":
                    await clients.open_pyav(tg)
                elif variant == "opencv":
                    await clients.open_opencv(tg)
                elif variant == "aiortc":
                    await clients.open_aiortc(tg)
                else:
                    raise ValueError(variant)
                while min(counts) == 0 and not clients.errors:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            out["open_all_s"] = time.monotonic() - opened_at
            if spec.get("nice_others"):  # a diagnostic knob: every thread but the loop's, niced
                _nice_other_threads(spec["nice_others"])
            await anyio.sleep(spec.get("warm", 1.0))  # past the open bursts
            meter = Window(spec.get("pids", [])).start()
            measuring[0] = True
            if spec.get("ticker", True):
                late = await ticker(spec["seconds"], clients.overflow)
            else:
                late = []
                end = time.monotonic() + spec["seconds"]
                while time.monotonic() < end and not clients.overflow.is_set():  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            measuring[0] = False
            cpu = meter.stop()
        finally:
            tg.cancel_scope.cancel()
            clients.join_threads()
            clients.close_aiortc()
    out.update(cpu)
    out["cpu_per_stream"] = cpu["cpu_per_s"] / n
    out["lag_p50_ms"] = 1000 * percentile(late, 50)
    out["lag_p99_ms"] = 1000 * percentile(late, 99)
    out["lag_max_ms"] = 1000 * max(late) if late else float("nan")
    out["lag_n"] = len(late)
    out["handoff_p50_ms"] = 1000 * percentile(handoff, 50)
    out["handoff_p99_ms"] = 1000 * percentile(handoff, 99)
    out["handoff_n"] = len(handoff)
    out["fps_per_stream"] = [c / cpu["wall_s"] for c in window_counts]
    out["errors"] = clients.errors
    out["aborted"] = clients.overflow.is_set()
    out.update(clients.extra)
    out.update(clients.cp_statistics())
    return out


def _nice_other_threads(nice: int) -> None:
    me = threading.get_native_id()
    for task in Path("/proc/self/task").iterdir():
        tid = int(task.name)
        if tid != me:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid, nice)


def task_clients(spec: Result) -> Result:
    if spec.get("switchinterval"):  # a diagnostic knob: the GIL's switch interval
        sys.setswitchinterval(spec["switchinterval"])
    return anyio.run(_clients_main, spec, backend=spec.get("backend", "asyncio"))


# =========================================================================== file throughput


async def _cp_file(path: str, backend_note: str) -> int:
    import camerapump as cp  # noqa: PLC0415

    del backend_note
    frames = 0
    async with cp.open_pump(cp.Source.file(path, realtime=False)) as pump:
        async for frame in pump:
            frames += frame.data.ndim == 3
    return frames


def _pyav_file(path: str) -> int:
    frames = 0
    with av.open(path) as container:
        for frame in container.decode(video=0):
            frames += frame.to_ndarray(format="bgr24").ndim == 3
    return frames


def _opencv_file(path: str) -> int:
    import cv2  # noqa: PLC0415

    frames = 0
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            frames += img.ndim == 3
    finally:
        cap.release()
    return frames


async def _aiortc_file(path: str, throttle: bool, limit_s: float | None) -> int:
    from aiortc.contrib.media import MediaPlayer  # noqa: PLC0415
    from aiortc.mediastreams import MediaStreamError  # noqa: PLC0415

    player = MediaPlayer(path)
    if not throttle:
        # MediaPlayer plays a file at its own rate (it is a WebRTC source); this
        # attribute is what it checks, so off is the most it can decode.
        player._throttle_playback = False
    frames = 0
    start = time.monotonic()
    track = player.video
    try:
        while True:
            frame = await track.recv()
            frames += frame.to_ndarray(format="bgr24").ndim == 3
            if limit_s is not None and time.monotonic() - start > limit_s:
                break
    except MediaStreamError:
        pass
    finally:
        track.stop()
    return frames


def _import_for(variant: str) -> None:
    if variant.startswith("cp"):
        import camerapump  # noqa: F401, PLC0415
    elif variant == "opencv":
        import cv2  # noqa: F401, PLC0415
    elif variant.startswith("aiortc"):
        import aiortc.contrib.media  # noqa: F401, PLC0415


def task_file(spec: Result) -> Result:
    """Frames per second and CPU per frame of one pass over a file."""
    path, variant = spec["path"], spec["variant"]
    _import_for(variant)  # not inside the timed pass
    c0, t0 = cpu_now(), time.perf_counter()
    if variant in ("cp", "cp_trio"):
        backend = "trio" if variant == "cp_trio" else "asyncio"
        frames = anyio.run(_cp_file, path, backend, backend=backend)
    elif variant == "pyav":
        frames = _pyav_file(path)
    elif variant == "opencv":
        frames = _opencv_file(path)
    elif variant == "aiortc":
        frames = anyio.run(_aiortc_file, path, False, None)
    elif variant == "aiortc_realtime":
        frames = anyio.run(_aiortc_file, path, True, spec.get("limit_s", 3.0))
    else:
        raise ValueError(variant)
    wall = time.perf_counter() - t0
    cpu = cpu_now() - c0
    return {
        "frames": frames,
        "fps": frames / wall,
        "wall_s": wall,
        "cpu_ms_per_frame": 1000 * cpu / frames if frames else float("nan"),
    }


# =========================================================================== slow consumer


async def _slow_main(spec: Result) -> Result:
    """A consumer that needs ``work`` s a frame: how far behind live each frame is."""
    variant, url, seconds, work = spec["variant"], spec["url"], spec["seconds"], spec["work"]
    series: list[tuple[float, float]] = []
    first: list[tuple[float, float]] = []
    extra: Result = {}

    def note(stream_time: float | None) -> bool:
        """Record one frame; False when the run is over."""
        if stream_time is None:
            return True
        now = time.monotonic()
        if not first:
            first.append((now, stream_time))
            emit("EVENT started")
        t0, s0 = first[0]
        series.append((now - t0, (now - t0) - (stream_time - s0)))
        return now - t0 < seconds

    deadline = seconds + 25.0
    with anyio.fail_after(deadline):
        if variant == "cp":
            import camerapump as cp  # noqa: PLC0415

            async with cp.open_pump(cp.Source.rtsp(url)) as pump:
                async for frame in pump:
                    if not note(frame.pts):
                        break
                    await anyio.sleep(work)
                extra["dropped"] = pump.statistics().frames_dropped
        elif variant == "aiortc":
            from aiortc.contrib.media import MediaPlayer  # noqa: PLC0415

            player = MediaPlayer(url, options=TCP, timeout=10)
            track = player.video
            try:
                while True:
                    frame = await track.recv()
                    frame.to_ndarray(format="bgr24")
                    if not note(frame.time):
                        break
                    await anyio.sleep(work)
                extra["queued_at_end"] = track._queue.qsize()
            finally:
                track.stop()
        else:
            await anyio.to_thread.run_sync(_slow_thread, variant, url, work, note)
    return {"series": series, **extra}


def _slow_thread(variant: str, url: str, work: float, note: Callable[[float | None], bool]) -> None:
    if variant == "pyav":
        with av.open(url, options=TCP, timeout=OPEN_TIMEOUT) as container:
            for frame in container.decode(video=0):
                frame.to_ndarray(format="bgr24")
                if not note(frame.time):
                    return
                time.sleep(work)
        return
    import cv2  # noqa: PLC0415

    cap = open_cv2_rtsp(url)
    try:
        reads = 0
        while True:
            ok, _img = cap.read()
            if not ok:
                return
            reads += 1
            if reads == 1:
                continue  # the first frame has no pts; OpenCV reports 0 for it
            if not note(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0):
                return
            time.sleep(work)
    finally:
        cap.release()


def task_slow(spec: Result) -> Result:
    return anyio.run(_slow_main, spec)


# =========================================================================== time to first frame


async def _ttff_once(variant: str, url: str) -> float:
    t0 = time.monotonic()
    if variant == "cp":
        import camerapump as cp  # noqa: PLC0415

        async with cp.open_pump(cp.Source.rtsp(url)) as pump:
            await pump.__anext__()
            return time.monotonic() - t0
    if variant == "aiortc":
        from aiortc.contrib.media import MediaPlayer  # noqa: PLC0415

        player = MediaPlayer(url, options=TCP, timeout=10)
        try:
            frame = await player.video.recv()
            frame.to_ndarray(format="bgr24")
            return time.monotonic() - t0
        finally:
            player.video.stop()
    return await anyio.to_thread.run_sync(_ttff_thread, variant, url, t0)


def _ttff_thread(variant: str, url: str, t0: float) -> float:
    if variant in ("pyav", "pyav_fastprobe"):
        options = dict(TCP)
        if variant == "pyav_fastprobe":
            options.update({"analyzeduration": "100000", "probesize": "32"})
        with av.open(url, options=options, timeout=OPEN_TIMEOUT) as container:
            for frame in container.decode(video=0):
                frame.to_ndarray(format="bgr24")
                return time.monotonic() - t0
        return float("nan")
    cap = open_cv2_rtsp(url)
    try:
        ok, _img = cap.read()
        return time.monotonic() - t0 if ok else float("nan")
    finally:
        cap.release()


async def _ttff_main(spec: Result) -> Result:
    samples = []
    for _ in range(spec["samples"]):
        with anyio.fail_after(25.0):
            samples.append(await _ttff_once(spec["variant"], spec["url"]))
        await anyio.sleep(spec.get("gap", 0.3))
    return {"samples": samples}


def task_ttff(spec: Result) -> Result:
    return anyio.run(_ttff_main, spec)


# =========================================================================== reconnect


async def _reconnect_main(spec: Result) -> Result:
    """Receive frames for ``seconds`` after the first; the parent kills and restarts the server.

    Returns every frame's arrival time (``time.monotonic()``, the same clock in every
    process of this machine), when and how the stream ended, camerapump's events.
    """
    variant, url, seconds = spec["variant"], spec["url"], spec["seconds"]
    arrivals: list[float] = []
    out: Result = {"ended_at": None, "end": None}
    start: list[float] = []

    def note() -> bool:
        now = time.monotonic()
        if not start:
            start.append(now)
            emit("EVENT started")
        arrivals.append(now)
        return now - start[0] < seconds

    with anyio.move_on_after(seconds + 30.0):
        if variant == "cp":
            import camerapump as cp  # noqa: PLC0415

            events: list[Result] = []
            policy = cp.ReconnectPolicy(initial_backoff=1.0, jitter=0.0)
            source = cp.Source.rtsp(url, open_timeout=5.0)
            async with cp.open_pump(source, policy=policy) as pump, anyio.create_task_group() as tg:

                async def watch() -> None:
                    while True:
                        event = await pump.status.get()
                        entry = {"t": time.monotonic(), "event": type(event).__name__}
                        for name in ("attempt", "next_delay", "reason"):
                            if hasattr(event, name):
                                entry[name] = getattr(event, name)
                        events.append(entry)

                tg.start_soon(watch)
                async for _frame in pump:
                    if not note():
                        break
                tg.cancel_scope.cancel()
            out["events"] = events
        elif variant == "aiortc":
            from aiortc.contrib.media import MediaPlayer  # noqa: PLC0415
            from aiortc.mediastreams import MediaStreamError  # noqa: PLC0415

            player = MediaPlayer(url, options=TCP, timeout=10)
            track = player.video
            try:
                while True:
                    frame = await track.recv()
                    frame.to_ndarray(format="bgr24")
                    if not note():
                        break
            except MediaStreamError as exc:
                out["ended_at"], out["end"] = time.monotonic(), f"MediaStreamError {exc}"
            finally:
                track.stop()
        else:
            await anyio.to_thread.run_sync(_reconnect_thread, variant, url, note, out)
    out["arrivals"] = arrivals
    return out


def _reconnect_thread(variant: str, url: str, note: Callable[[], bool], out: Result) -> None:
    if variant == "pyav":
        try:
            with av.open(url, options=TCP, timeout=OPEN_TIMEOUT) as container:
                for frame in container.decode(video=0):
                    frame.to_ndarray(format="bgr24")
                    if not note():
                        return
            out["ended_at"], out["end"] = time.monotonic(), "decode() ended (StopIteration)"
        except Exception as exc:
            out["ended_at"], out["end"] = time.monotonic(), type(exc).__name__
        return
    cap = open_cv2_rtsp(url)
    try:
        while True:
            ok, _img = cap.read()
            if not ok:
                out["ended_at"], out["end"] = time.monotonic(), "read() returned False"
                return
            if not note():
                return
    finally:
        cap.release()


def task_reconnect(spec: Result) -> Result:
    return anyio.run(_reconnect_main, spec)


# =========================================================================== main

TASKS: dict[str, Callable[[Result], Result]] = {
    "clients": task_clients,
    "file": task_file,
    "slow": task_slow,
    "ttff": task_ttff,
    "reconnect": task_reconnect,
}


def main() -> int:
    import faulthandler  # noqa: PLC0415
    import logging  # noqa: PLC0415
    import signal  # noqa: PLC0415

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: where is it stuck?

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # "Skipping video frame with no pts" on every RTSP start (the first frame has none).
    logging.getLogger("aiortc").setLevel(logging.ERROR)
    av.logging.set_level(av.logging.ERROR)
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        try:
            result = TASKS[spec["task"]](spec)
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        emit("RESULT " + json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
