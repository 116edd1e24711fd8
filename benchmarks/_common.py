"""Helpers shared by the benchmark scenarios: statistics, the test files, the machine, imports."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    # tests/netfaults.py (RtspServer, TcpProxy, free_port) has no pytest import.
    sys.path.insert(0, str(TESTS))
try:  # installed (nox -s bench installs -e .), or else this checkout
    import camerapump  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from _stats import percentile  # noqa: E402

try:  # the `bench` extra; the OpenCV lines are skipped without it
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    cv2 = None  # type: ignore[assignment]

__all__ = ["ROOT", "cv2", "machine_info", "make_test_file", "percentile", "summary"]


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of the per-repeat values."""
    clean = [v for v in values if v == v]  # drop NaN
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": percentile(clean, 50), "min": min(clean), "max": max(clean)}


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


def _version(module: str) -> str | None:
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def _command(*cmd: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


_GST_VERSION = (
    "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; "
    "Gst.init(None); print(Gst.version_string())"
)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy as np  # noqa: PLC0415

    import camerapump  # noqa: PLC0415

    ffmpeg = getattr(av, "ffmpeg_version_info", None) or "unknown"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
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
        "aiortc": _version("aiortc"),
        "anyio": _version("anyio"),
        "trio": _version("trio"),
        "matplotlib": _version("matplotlib"),
        "ffmpeg_cli": _command("ffmpeg", "-hide_banner", "-version"),
        "gstreamer": _command("/usr/bin/python3", "-c", _GST_VERSION),
        "os": _os_release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().strip()
        if Path("/proc/loadavg").exists()
        else "?",
        "camerapump": camerapump.__version__,
    }


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"
