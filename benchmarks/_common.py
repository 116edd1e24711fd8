"""Helpers shared by the benchmark scenarios: statistics, CPU meters, the test file, imports."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    # tests/netfaults.py (RtspServer, TcpProxy, free_port) has no pytest import.
    sys.path.insert(0, str(TESTS))

import av  # noqa: E402

try:  # the `bench` extra; the OpenCV lines are skipped without it
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    cv2 = None  # type: ignore[assignment]

__all__ = ["ROOT", "CpuMeter", "cv2", "machine_info", "make_test_file", "percentile", "summary"]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of the per-repeat values."""
    clean = [v for v in values if v == v]  # drop NaN
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": percentile(clean, 50), "min": min(clean), "max": max(clean)}


# --------------------------------------------------------------------------- CPU

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), or NaN."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return float("nan")


def _machine_busy() -> tuple[float, float, float]:
    """(busy, steal, total) jiffies of all CPUs from /proc/stat, or NaNs."""
    try:
        parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return float("nan"), float("nan")
    parts += [0] * (8 - len(parts))
    # user nice system idle iowait irq softirq steal: busy is what ran here; steal
    # (the hypervisor gave the core to another guest) counts as neither busy nor idle.
    busy = parts[0] + parts[1] + parts[2] + parts[5] + parts[6]
    return busy, parts[7], sum(parts[:8])


@dataclass
class CpuMeter:
    """CPU use over a window: this process, other pids (the RTSP server), the whole machine.

    Percentages are of one core (the machine has ``os.cpu_count()`` of them, so
    200 % is everything on 2 cores); ``machine_pct`` is of the whole machine.
    """

    pids: list[int] = field(default_factory=list)
    _wall: float = 0.0
    _self: float = 0.0
    _others: list[float] = field(default_factory=list)
    _busy: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self) -> CpuMeter:
        t = os.times()
        self._wall = time.monotonic()
        self._self = t.user + t.system
        self._others = [_proc_cpu_seconds(p) for p in self.pids]
        self._busy = _machine_busy()
        return self

    def stop(self) -> dict[str, float]:
        nan = float("nan")
        t = os.times()
        wall = max(time.monotonic() - self._wall, 1e-9)
        others = [_proc_cpu_seconds(p) - s for p, s in zip(self.pids, self._others, strict=True)]
        busy, steal, total = _machine_busy()
        d_total = total - self._busy[2]
        return {
            "wall_s": wall,
            "process_pct": 100.0 * (t.user + t.system - self._self) / wall,
            "others_pct": 100.0 * sum(others) / wall if others else 0.0,
            "machine_pct": 100.0 * (busy - self._busy[0]) / d_total if d_total > 0 else nan,
            "steal_pct": 100.0 * (steal - self._busy[1]) / d_total if d_total > 0 else nan,
            "cores": float(os.cpu_count() or 1),
        }


# --------------------------------------------------------------------------- test file


def make_test_file(
    path: Path, *, width: int = 1280, height: int = 720, fps: int = 30, seconds: float = 10.0
) -> Path:
    """Encode FFmpeg's moving ``testsrc2`` pattern with libx264 ultrafast into ``path``."""
    frames = round(fps * seconds)
    src = av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi")
    try:
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "ultrafast"}
            for n, frame in enumerate(src.decode(video=0)):
                if n >= frames:
                    break
                frame.pts = None  # let the encoder count frames at `rate`
                out.mux(stream.encode(frame.reformat(format="yuv420p")))
            out.mux(stream.encode(None))
    finally:
        src.close()
    return path


# --------------------------------------------------------------------------- machine


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _git(*args: str) -> str:
    """Output of a read-only git command in the checkout, or '' (no git, not a checkout)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy as np  # noqa: PLC0415

    import camerapump  # noqa: PLC0415

    ffmpeg = getattr(av, "ffmpeg_version_info", None) or "unknown"
    try:
        date = subprocess.run(["date"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        date = time.strftime("%Y-%m-%d %H:%M:%S")
    return {
        "date": date,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "camerapump_dirty": bool(_git("status", "--porcelain", "--", "camerapump")),
        "nproc": os.cpu_count(),
        "cpu": _first("/proc/cpuinfo", "model name"),
        "memory": _first("/proc/meminfo", "MemTotal"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg": str(ffmpeg),
        "numpy": np.__version__,
        "opencv": cv2.__version__ if cv2 is not None else None,
        "camerapump": camerapump.__version__,
    }
