"""The comparisons: camerapump against its peers, each variant in a process of its own.

Every scenario runs once per repeat and returns a flat dict of figures (plus a few
lists for the plots).  The variants of a scenario measure the same file or the
same server in the same call, one after the other, in an order that rotates from
repeat to repeat (concurrently where the point is what they see of one event: a
slow consumer, a server restart).  Every variant runs in a child process
(``_child.py``) so that the CPU time it reports is its own; the RTSP server is
measured apart (its pid), and so is the rest of the machine (``TenantMeter`` in
``run.py``).

Peers: a plain PyAV loop, OpenCV ``VideoCapture``, aiortc's ``MediaPlayer``, and
``ffmpeg -f null`` as the floor; camerapump as it is now (asyncio and trio) and as
it was before the rewrite (commit df0af37, asyncio).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import percentile
from _harness import Child, ChildError, children, ffmpeg_floor
from scenarios import keeper

from netfaults import RtspServer

Result = dict[str, Any]

#: What the detector of issue 9 asks for.
DETECTOR = {"width": 640, "height": 640, "fit": "contain", "max_fps": 5, "pixel_format": "rgb24"}
#: The same for the baselines that shape frames themselves.
DETECTOR_SHAPE = {"width": 640, "height": 640, "max_fps": 5}
#: The stream most scenarios watch: 720p30, a keyframe a second (the ball picture).
HD: Result = {"width": 1280, "height": 720, "fps": 30, "gop": 30}
SLOW_WORK = 0.1  # seconds a slow consumer spends on each frame


@dataclass(frozen=True)
class Settings:
    """Durations and counts; ``--quick`` shrinks them."""

    file_passes: int = 4
    file_seconds: float = 10.0
    stream_counts: tuple[int, ...] = (1, 4, 8, 16)
    peer_counts: tuple[int, ...] = (1, 4, 16)  # where the plain PyAV and aiortc peers run too
    streams_seconds: float = 3.5
    shaped_seconds: float = 6.0
    slow_seconds: float = 8.0
    ttff_samples: int = 3
    reconnect_seconds: float = 11.0
    handoff_seconds: float = 3.0
    stall_timeouts: tuple[float, ...] = (2.0, 5.0)

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            file_passes=1,
            file_seconds=5.0,
            stream_counts=(1, 16),
            streams_seconds=2.5,
            shaped_seconds=3.0,
            slow_seconds=6.0,
            ttff_samples=1,
            reconnect_seconds=10.0,
            handoff_seconds=2.0,
            stall_timeouts=(2.0,),
        )


@dataclass
class Context:
    """What every scenario of a run shares."""

    settings: Settings
    trees: dict[str, Path]  # "after" (this checkout), maybe "before" (df0af37)
    files: dict[str, Path]  # "720p", "1080p"
    log_dir: Path
    repeat: int = 0
    notes: list[str] = field(default_factory=list)

    def rotate(self, names: list[str], salt: int = 0) -> list[str]:
        """``names`` starting at a place that moves from repeat to repeat."""
        if not names:
            return names
        k = (self.repeat + salt) % len(names)
        return names[k:] + names[:k]

    @property
    def has_before(self) -> bool:
        return "before" in self.trees


def _put(out: Result, prefix: str, res: Result, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in res:
            out[f"{prefix}_{key}"] = res[key]


# =========================================================================== 1. throughput

FILE_VARIANTS = {  # variant -> tree
    "cp": "after",
    "cp_before": "before",
    "cp_trio": "after",
    "pyav": "after",
    "opencv": "after",
    "aiortc": "after",
}


def throughput(ctx: Context) -> Result:
    """Every frame of a 720p and a 1080p H.264 file as bgr24: fps and CPU per frame."""
    variants = {k: v for k, v in FILE_VARIANTS.items() if v in ctx.trees}
    out: Result = {}
    with children(ctx.trees, ctx.log_dir, variants) as kids:
        for label, path in ctx.files.items():
            fps: dict[str, list[float]] = {v: [] for v in variants}
            cpu: dict[str, list[float]] = {v: [] for v in variants}
            for p in range(ctx.settings.file_passes):
                for variant in ctx.rotate(list(variants), salt=p):
                    task = "cp" if variant == "cp_before" else variant
                    res = kids[variant].call(
                        {"task": "file", "variant": task, "path": str(path)}, timeout=180.0
                    )
                    fps[variant].append(res["fps"])
                    cpu[variant].append(res["cpu_ms_per_frame"])
                    out[f"{label}_frames"] = res["frames"]
            for variant in variants:
                out[f"{label}_{variant}_fps"] = percentile(fps[variant], 50)
                out[f"{label}_{variant}_cpu_ms_per_frame"] = percentile(cpu[variant], 50)
                out[f"{label}_{variant}_fps_passes"] = fps[variant]
            base = out[f"{label}_cp_fps"]
            out[f"{label}_ratio_vs_pyav"] = base / out[f"{label}_pyav_fps"]
            if "cp_before" in variants:
                out[f"{label}_ratio_vs_before"] = base / out[f"{label}_cp_before_fps"]
                out[f"{label}_ratio_trio_vs_before"] = (
                    out[f"{label}_cp_trio_fps"] / out[f"{label}_cp_before_fps"]
                )
            out[f"{label}_ratio_trio_vs_asyncio"] = out[f"{label}_cp_trio_fps"] / base
        # aiortc as it comes plays a file at its own rate (a WebRTC source): 3 s of it.
        res = kids["aiortc"].call(
            {
                "task": "file",
                "variant": "aiortc_realtime",
                "path": str(ctx.files["720p"]),
                "limit_s": 3.0,
            },
            timeout=60.0,
        )
        out["720p_aiortc_realtime_fps"] = res["fps"]
    return out


# =========================================================================== 2. N streams


def _clients(
    ctx: Context,
    tree: str,
    spec: Result,
    name: str,
    env: dict[str, str] | None = None,
) -> Result:
    with Child(ctx.trees[tree], ctx.log_dir, name, env) as child:
        return child.call({"task": "clients", **spec}, timeout=90.0 + 2 * spec["n"])


STREAM_FIGURES = (
    "lag_p50_ms",
    "lag_p99_ms",
    "lag_max_ms",
    "handoff_p50_ms",
    "handoff_p99_ms",
    "cpu_per_s",
    "cpu_per_stream",
    "loop_thread_cpu_per_s",
    "server_cpu_per_s",
    "machine_pct",
    "open_all_s",
    "frames_decoded",
    "frames_converted",
    "frames_delivered",
    "frames_dropped",
)


#: The environment of a child whose decode threads keep the kernel's default slice.
NO_SLICE = {"CAMERAPUMP_DECODE_SLICE_MS": "0"}


def _stream_variant(ctx: Context, variant: str, url: str, n: int, pids: list[int]) -> Result:
    secs = ctx.settings.streams_seconds
    base = {"url": url, "n": n, "seconds": secs, "pids": pids, "ticker": True}
    if variant == "ffmpeg":
        return ffmpeg_floor(url, n, secs)
    if variant == "cp":
        return _clients(ctx, "after", {**base, "variant": "cp"}, f"n{n}-cp")
    if variant == "cp_trio":
        return _clients(ctx, "after", {**base, "variant": "cp", "backend": "trio"}, f"n{n}-trio")
    if variant == "cp_noslice":  # the decode threads' long scheduler slice off (camerapump._sched)
        return _clients(ctx, "after", {**base, "variant": "cp"}, f"n{n}-noslice", NO_SLICE)
    if variant == "cp_before":
        return _clients(ctx, "before", {**base, "variant": "cp"}, f"n{n}-before")
    if variant == "pyav":
        return _clients(ctx, "after", {**base, "variant": "pyav", "mode": "bgr_all"}, f"n{n}-pyav")
    if variant == "aiortc":
        return _clients(ctx, "after", {**base, "variant": "aiortc"}, f"n{n}-aiortc")
    raise ValueError(variant)


def streams(ctx: Context) -> Result:
    """N x 720p30 RTSP streams in one process, every frame as bgr24: loop lag, CPU per stream.

    Beside it ``ffmpeg -f null`` decoding the same stream N times (the floor), and at
    the largest N camerapump before the rewrite (asyncio) and under trio.
    """
    out: Result = {"counts": list(ctx.settings.stream_counts)}
    biggest = max(ctx.settings.stream_counts)
    with RtspServer(**HD) as server:
        url = server.url("/h264")
        pids = [server.pid] if server.pid else []
        with keeper(url):
            for n in ctx.settings.stream_counts:
                names = ["cp", "ffmpeg"]
                if n in ctx.settings.peer_counts:
                    names += ["pyav", "aiortc"]
                if n == biggest:
                    names += ["cp_trio", "cp_noslice"] + (["cp_before"] if ctx.has_before else [])
                for variant in ctx.rotate(names, salt=n):
                    try:
                        res = _stream_variant(ctx, variant, url, n, pids)
                    except Exception as exc:  # one variant failing must not cost the rest
                        out[f"n{n}_{variant}_error"] = str(exc)[:2000]
                        continue
                    if "error" in res:
                        out[f"n{n}_{variant}_error"] = res["error"]
                        continue
                    if res.get("aborted"):
                        out[f"n{n}_{variant}_error"] = "; ".join(res.get("errors", []))
                        out[f"n{n}_{variant}_max_rss_mb"] = res.get("max_rss_mb")
                        continue
                    _put(out, f"n{n}_{variant}", res, STREAM_FIGURES)
                    if res.get("fps_per_stream"):
                        out[f"n{n}_{variant}_fps_min"] = min(res["fps_per_stream"])
                    if res.get("errors"):
                        out[f"n{n}_{variant}_client_errors"] = res["errors"]
                    time.sleep(0.5)
    return out


# =========================================================================== 3. shaped outputs


def shaped(ctx: Context) -> Result:
    """Issue 9: what a consumer that wants less costs, against doing it by hand.

    One 720p30 H.264 RTSP stream, keyframe every 30 frames; process CPU seconds per
    second of stream, no loop-lag ticker in any variant (it would cost the same
    everywhere and hide the difference).  Then 16 such streams at 2 fps, with the ticker.
    Then the detector and the keyframes again on the issue's own camera, 2688x1520@25,
    and on a 720p30 picture encoded as cameras do.
    """
    out: Result = {}
    one: dict[str, tuple[str, Result]] = {
        # the detector of issue 9: 640x640 rgb24 letterboxed, at most 5 fps
        "cp_detector": ("after", {"variant": "cp", "output": DETECTOR}),
        # (a) a plain PyAV thread: every frame to rgb24, the chosen ones resized (cv2)
        "pyav_a": ("after", {"variant": "pyav", "mode": "shape_a", "shape": DETECTOR_SHAPE}),
        # (b) OpenCV: grab() every frame, retrieve() the chosen ones, cv2.resize
        "opencv_b": ("after", {"variant": "opencv", "shape": DETECTOR_SHAPE}),
        # references: every frame full size; decode only (no conversion at all)
        "cp_full": ("after", {"variant": "cp"}),
        "pyav_decode": ("after", {"variant": "pyav", "mode": "decode"}),
        "pyav_demux": ("after", {"variant": "pyav", "mode": "demux"}),
        # keyframes only: camerapump skips the rest in the decoder; by hand one
        # decodes everything and converts the keyframes
        "cp_keys": ("after", {"variant": "cp", "output": {"keyframes_only": True}}),
        "pyav_keys": ("after", {"variant": "pyav", "mode": "keys"}),
    }
    sixteen: dict[str, tuple[str, Result]] = {
        "cp16": ("after", {"variant": "cp", "output": {**DETECTOR, "max_fps": 2}}),
        # the same with the decode threads' long scheduler slice off (camerapump._sched)
        "cp16_noslice": ("after", {"variant": "cp", "output": {**DETECTOR, "max_fps": 2}}),
        "pyav_a16": (
            "after",
            {"variant": "pyav", "mode": "shape_a", "shape": {**DETECTOR_SHAPE, "max_fps": 2}},
        ),
    }
    # The camera of the issue (2688x1520 at 25 fps, a keyframe every 30 frames): the same
    # consumers on 4.4 times the pixels, where decoding and converting cost more
    # and reading the packets about what it costs at 720p.
    pairs = ("cp_detector", "pyav_a", "cp_keys", "pyav_keys")
    big = {f"big_{name}": one[name] for name in pairs}
    # A 720p30 picture as a camera sends it (textured, moving; CABAC and the
    # deblocking filter on): 1.7 to 1.8 times the decoding work of the ball above.
    cam = {f"cam_{name}": one[name] for name in pairs}
    with RtspServer(**HD) as server:
        url = server.url("/h264")
        pids = [server.pid] if server.pid else []
        with keeper(url):
            _each_alone(ctx, one, {"url": url, "pids": pids}, out)
            for name in ctx.rotate(list(sixteen)):
                tree, spec = sixteen[name]
                full = {"url": url, "n": 16, "seconds": ctx.settings.streams_seconds}
                full.update({"pids": pids, "ticker": True})
                env = NO_SLICE if name == "cp16_noslice" else None
                try:
                    res = _clients(ctx, tree, {**full, **spec}, f"shaped-{name}", env)
                except Exception as exc:  # one variant failing must not cost the rest
                    out[f"{name}_error"] = str(exc)[:2000]
                    continue
                _put(out, name, res, STREAM_FIGURES)
                out[f"{name}_fps_min"] = min(res["fps_per_stream"])
                time.sleep(0.5)
    _one_stream_each(ctx, {"width": 2688, "height": 1520, "fps": 25, "gop": 30}, big, out)
    _one_stream_each(ctx, {**HD, "picture": "camera"}, cam, out)
    ratio = _ratio(out)
    for s in ("big_", "cam_"):
        ratio(f"ratio_{s}detector_vs_a", f"{s}cp_detector_cpu_per_s", f"{s}pyav_a_cpu_per_s")
        ratio(f"ratio_{s}keys_vs_full_decode", f"{s}cp_keys_cpu_per_s", f"{s}pyav_keys_cpu_per_s")
    ratio("ratio_detector_vs_a", "cp_detector_cpu_per_s", "pyav_a_cpu_per_s")
    ratio("ratio_detector_vs_b", "cp_detector_cpu_per_s", "opencv_b_cpu_per_s")
    ratio("ratio_detector_vs_full", "cp_detector_cpu_per_s", "cp_full_cpu_per_s")
    ratio("ratio_keys_vs_full_decode", "cp_keys_cpu_per_s", "pyav_keys_cpu_per_s")
    ratio("ratio_keys_vs_cp_full", "cp_keys_cpu_per_s", "cp_full_cpu_per_s")
    ratio("ratio_cp16_vs_a16", "cp16_cpu_per_s", "pyav_a16_cpu_per_s")
    return out


def _one_stream_each(
    ctx: Context, server: Result, variants: dict[str, tuple[str, Result]], out: Result
) -> None:
    """Each variant alone on a stream of a server of its own (``RtspServer(**server)``)."""
    with RtspServer(**server) as rtsp:
        url = rtsp.url("/h264")
        with keeper(url):
            _each_alone(ctx, variants, {"url": url, "pids": [rtsp.pid] if rtsp.pid else []}, out)


def _each_alone(
    ctx: Context, variants: dict[str, tuple[str, Result]], stream: Result, out: Result
) -> None:
    """Each variant alone on the stream, in rotating order: its CPU per second of stream."""
    for name in ctx.rotate(list(variants)):
        tree, spec = variants[name]
        full = {**stream, "n": 1, "seconds": ctx.settings.shaped_seconds, "ticker": False}
        try:
            res = _clients(ctx, tree, {**full, **spec}, f"shaped-{name}")
        except Exception as exc:  # one variant failing must not cost the rest
            out[f"{name}_error"] = str(exc)[:2000]
            continue
        _put(out, name, res, ("cpu_per_s", "server_cpu_per_s", "machine_pct"))
        _put(out, name, res, ("frames_decoded", "frames_converted", "frames_delivered"))
        out[f"{name}_fps"] = res["fps_per_stream"][0]
        time.sleep(0.3)


def _ratio(out: Result) -> Callable[[str, str, str], None]:
    def put(name: str, num: str, den: str) -> None:
        if num in out and den in out and out[den]:
            out[name] = out[num] / out[den]

    return put


# =========================================================================== 4. slow consumer

PEERS = ("cp", "pyav", "opencv", "aiortc")


def slow(ctx: Context) -> Result:
    """A consumer that needs 100 ms a frame on a 30 fps stream: how old its frames are, over time.

    One peer at a time (a client joining a shared gst-rtsp-server mount can hold up
    the stream of the others for about a second), each in its own process.  A
    frame's age is its arrival time minus its pts, less the smallest such figure of
    the run: 0 for the freshest frame this consumer saw, and how much older than that
    every other frame was.  It leaves out what no consumer can see (the transport
    and the probe before the first frame; see the time to first frame).
    """
    out: Result = {"seconds": ctx.settings.slow_seconds, "work_s": SLOW_WORK}
    with RtspServer(**HD) as server:
        url = server.url("/h264")
        with keeper(url):
            for variant in ctx.rotate(list(PEERS)):
                spec = {"task": "slow", "variant": variant, "url": url, "work": SLOW_WORK}
                spec["seconds"] = ctx.settings.slow_seconds
                try:
                    with Child(ctx.trees["after"], ctx.log_dir, f"slow-{variant}") as child:
                        res = child.call(spec, timeout=ctx.settings.slow_seconds + 40.0)
                except ChildError as exc:
                    out[f"{variant}_error"] = str(exc)[:2000]
                    continue
                series = res["series"]  # (s since the first frame, behind the first frame)
                if series:
                    floor = min(b for _, b in series)
                    ages = [(round(t, 3), round(b - floor, 4)) for t, b in series]
                    out[f"{variant}_series"] = ages
                    out[f"{variant}_age_end_s"] = ages[-1][1]
                    tail = [a for t, a in ages if t >= ages[-1][0] - 1.0]
                    out[f"{variant}_age_last_1s_median_s"] = percentile(tail, 50)
                    out[f"{variant}_age_max_s"] = max(a for _, a in ages)
                    out[f"{variant}_frames_taken"] = len(ages)
                for key in ("dropped", "queued_at_end"):
                    if key in res:
                        out[f"{variant}_{key}"] = res[key]
                time.sleep(0.3)
    return out


# =========================================================================== 5. time to first frame

TTFF_VARIANTS = ("cp", "pyav", "pyav_fastprobe", "opencv", "aiortc")


def ttff(ctx: Context) -> Result:
    """Open -> first bgr24 frame, joining a 720p30 stream another client already watches."""
    out: Result = {"keyframe_interval_s": 1.0}
    with RtspServer(**HD) as server:
        url = server.url("/h264")
        with keeper(url):
            time.sleep(0.5)
            for variant in ctx.rotate(list(TTFF_VARIANTS)):
                with Child(ctx.trees["after"], ctx.log_dir, f"ttff-{variant}") as child:
                    try:
                        res = child.call(
                            {
                                "task": "ttff",
                                "variant": variant,
                                "url": url,
                                "samples": ctx.settings.ttff_samples,
                            },
                            timeout=30.0 * ctx.settings.ttff_samples + 10,
                        )
                    except ChildError as exc:
                        out[f"{variant}_error"] = str(exc)[:2000]
                        continue
                out[f"{variant}_samples"] = res["samples"]
                out[f"{variant}_s"] = percentile(res["samples"], 50)
    return out


# =========================================================================== 6. reconnect

KILL_AFTER = 1.0  # s after every peer has its first frame
RESTART_AFTER = 1.5  # s after the kill


def reconnect(ctx: Context) -> Result:
    """The server is killed (SIGKILL) and restarted on the same port 1.5 s later.

    All four peers watch it at the same time.  A peer recovers when it gets frames
    of the new session; the plain PyAV loop, OpenCV's read loop and aiortc's track
    end when the stream does, which is what their users get without writing a
    reconnect loop of their own.  camerapump: ``ReconnectPolicy(initial_backoff=1,
    jitter=0)``; its recovery is counted from the new server's READY and set
    against the backoff still pending then.
    """
    out: Result = {"kill_after_s": KILL_AFTER, "restart_after_s": RESTART_AFTER}
    server = RtspServer(**HD)
    with server, children(ctx.trees, ctx.log_dir, dict.fromkeys(PEERS, "after")) as kids:
        url = server.url("/h264")
        for variant in ctx.rotate(list(PEERS)):
            kids[variant].send(
                {
                    "task": "reconnect",
                    "variant": variant,
                    "url": url,
                    "seconds": ctx.settings.reconnect_seconds,
                }
            )
            kids[variant].wait_event("started", timeout=30.0)  # one client at a time
        time.sleep(KILL_AFTER)
        killed = time.monotonic()
        server.kill()
        time.sleep(max(0.0, killed + RESTART_AFTER - time.monotonic()))
        restarted = time.monotonic()
        server.restart()
        ready = time.monotonic()
        results: dict[str, Result] = {}
        for variant in PEERS:
            try:
                results[variant] = kids[variant].result(ctx.settings.reconnect_seconds + 40.0)
            except ChildError as exc:
                out[f"{variant}_error"] = str(exc)[:2000]
    out.update(
        {
            "server_start_s": ready - restarted,
            "kill_t": 0.0,
            "restart_t": restarted - killed,
            "ready_t": ready - killed,
        }
    )
    for variant, res in results.items():
        arrivals = res["arrivals"]
        out[f"{variant}_arrivals"] = [round(t - killed, 3) for t in arrivals]
        new = [t for t in arrivals if t > ready]
        out[f"{variant}_recovered"] = bool(new)
        out[f"{variant}_recovery_s"] = (new[0] - ready) if new else float("nan")
        before = [t for t in arrivals if t <= killed]
        out[f"{variant}_last_frame_before_kill_t"] = (before[-1] - killed) if before else None
        if res.get("ended_at") is not None:
            out[f"{variant}_ended_t"] = res["ended_at"] - killed
            out[f"{variant}_end"] = res["end"]
        if variant == "cp":
            events = res.get("events", [])
            out["cp_events"] = [{**e, "t": round(e["t"] - killed, 3)} for e in events]
            retries = [e for e in events if e["event"] == "Reconnecting"]
            early = [e for e in retries if e["t"] <= ready]
            pending = max(0.0, early[-1]["t"] + early[-1]["next_delay"] - ready) if early else 0.0
            out["cp_pending_backoff_s"] = pending
            out["cp_excess_s"] = out["cp_recovery_s"] - pending
            if retries:
                out["cp_kill_to_first_event_s"] = retries[0]["t"] - killed
    return out
