"""camerapump benchmarks against raw PyAV and OpenCV, in the same run.

    python benchmarks/run.py               # full run (--repeat 3), about 5.5 minutes
    python benchmarks/run.py --quick       # 1 repeat, shorter windows: a smoke check
    python benchmarks/run.py --only ttff,stall --repeat 5

Prints one Markdown table of medians (min-max over the repeats) and writes every
raw figure to benchmarks/results.json.  This is measurement: nothing here fails
on a number; the "met" column only compares the median with the target.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios
from _common import machine_info, make_test_file, summary

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its format, and its target if it has one."""

    section: str
    key: str  # "scenario.figure" in the results
    label: str
    fmt: str = "{:.2f}"
    target: str = ""
    check: Callable[[float], bool] | None = None


def _at_least(x: float) -> Callable[[float], bool]:
    return lambda v: v >= x


def _at_most(x: float) -> Callable[[float], bool]:
    return lambda v: v <= x


def _section(title: str, *rows: tuple[Any, ...]) -> list[Row]:
    return [Row(title, *row) for row in rows]


F0, F3 = "{:.0f}", "{:.3f}"
ROWS: list[Row] = [
    *_section(
        "1. Throughput, 720p30 H.264 file (10 s, 300 frames) to bgr24 (fps)",
        ("throughput.camerapump_fps", "camerapump `Source.file(realtime=False)`", F0),
        ("throughput.pyav_default_fps", "raw PyAV, defaults (thread_type SLICE)", F0),
        ("throughput.pyav_auto_fps", "raw PyAV, thread_type AUTO", F0),
        ("throughput.opencv_fps", "OpenCV `VideoCapture.read()`", F0),
        ("throughput.thread_handoff_fps", "floor: raw AUTO thread + call_soon_threadsafe", F0),
        (
            "throughput.ratio_vs_pyav_default",
            "ratio camerapump / raw PyAV defaults",
            F3,
            ">= 0.95",
            _at_least(0.95),
        ),
        (
            "throughput.ratio_vs_pyav_auto",
            "ratio camerapump / raw PyAV AUTO",
            F3,
            ">= 0.95",
            _at_least(0.95),
        ),
    ),
    *_section(
        "2. Hand-off latency, `now - frame.captured_at` when `async for` yields (ms)",
        ("handoff.test_cp_p50_ms", "test pattern 640x480: camerapump p50"),
        (
            "handoff.test_cp_p99_ms",
            "test pattern 640x480: camerapump p99",
            "{:.2f}",
            "<= 2",
            _at_most(2.0),
        ),
        (
            "handoff.test_cp_after_convert_p99_ms",
            "↳ camerapump p99 from after the bgr24 conversion",
        ),
        ("handoff.test_raw_p99_ms", "↳ raw thread + call_soon_threadsafe p99 (same stamp)"),
        ("handoff.test_raw_after_convert_p99_ms", "↳ raw thread p99 from after the conversion"),
        ("handoff.file_cp_p99_ms", "720p file paced at 30 fps (no server): camerapump p99"),
        ("handoff.file_cp_after_convert_p99_ms", "↳ camerapump p99 from after the conversion"),
        ("handoff.rtsp_cp_p50_ms", "RTSP 1280x720: camerapump p50"),
        (
            "handoff.rtsp_cp_p99_ms",
            "RTSP 1280x720: camerapump p99",
            "{:.2f}",
            "<= 2",
            _at_most(2.0),
        ),
        (
            "handoff.rtsp_cp_after_convert_p99_ms",
            "↳ camerapump p99 from after the bgr24 conversion",
        ),
        ("handoff.rtsp_raw_p99_ms", "↳ raw thread + call_soon_threadsafe p99 (same stamp)"),
        ("handoff.rtsp_raw_after_convert_p99_ms", "↳ raw thread p99 from after the conversion"),
    ),
    *_section(
        "3. Event-loop lag of a 5 ms ticker, 4 x 720p30 RTSP streams (ms; CPU % of one core)",
        ("looplag.idle_p99_ms", "no pump (server running, one idle client): p99"),
        ("looplag.cp_p50_ms", "camerapump, 4 pumps consumed: p50"),
        ("looplag.cp_p99_ms", "camerapump, 4 pumps consumed: p99", "{:.2f}", "<= 5", _at_most(5.0)),
        ("looplag.cp_process_cpu_pct", "↳ this process CPU %", F0),
        ("looplag.cp_machine_cpu_pct", "↳ whole machine CPU % (of all cores)", F0),
        ("looplag.raw_p99_ms", "raw PyAV, 4 decode threads (no hand-off): p99"),
        ("looplag.raw_process_cpu_pct", "↳ this process CPU %", F0),
        ("looplag.raw_machine_cpu_pct", "↳ whole machine CPU % (of all cores)", F0),
        ("looplag.cp_server_cpu_pct", "RTSP server (1 shared x264 encoder) CPU %", F0),
    ),
    *_section(
        "4. RTSP time to first frame, H.264 720p30, keyframe every 30 frames, joining (s)",
        ("ttff.cp_s", "camerapump `open_pump` -> first frame", F3),
        ("ttff.pyav_default_s", "raw PyAV `av.open` defaults -> first frame", F3),
        ("ttff.pyav_analyze_s", "raw PyAV + analyzeduration=100000", F3),
        ("ttff.pyav_fastprobe_s", "raw PyAV + camerapump's options (+ probesize=32)", F3),
        ("ttff.keyframe_interval_s", "server keyframe interval (gop / fps)", "{:.2f}"),
        ("ttff.gop300_cp_s", "gop=300 (10 s keyframe interval): camerapump", F3),
        ("ttff.gop300_pyav_default_s", "gop=300: raw PyAV defaults", F3),
        ("ttff.mjpeg_cp_s", "MJPEG 720p30: camerapump", F3),
        ("ttff.mjpeg_pyav_default_s", "MJPEG 720p30: raw PyAV defaults", F3),
    ),
    *_section(
        "5. Slow consumer (100 ms/frame) on 30 fps RTSP: behind live after 6 s (s)",
        (
            "slow.cp_behind_s",
            "camerapump `async for` + `await asyncio.sleep(0.1)`",
            F3,
            "<= 0.05",
            _at_most(0.05),
        ),
        ("slow.pyav_behind_s", "raw PyAV decode loop + `time.sleep(0.1)`", F3),
        ("slow.opencv_behind_s", "OpenCV read loop + `time.sleep(0.1)`", F3),
    ),
    *_section(
        "6. Reconnect: server killed, restarted on the same port 1.5 s later (s)",
        ("reconnect.pending_backoff_s", "pending backoff when the server is READY", F3),
        ("reconnect.recovery_s", "READY -> first new frame", F3),
        ("reconnect.excess_s", "recovery minus pending backoff", F3, "<= 0.5", _at_most(0.5)),
        ("reconnect.kill_to_first_event_s", "kill -> first Reconnecting event", F3),
    ),
    *_section(
        "7. Stall detection through a frozen TCP proxy (s)",
        ("stall.2s_freeze_to_event_s", "stall_timeout=2: freeze -> Reconnecting(stall_...)", F3),
        (
            "stall.2s_excess_s",
            "↳ last frame -> event, minus stall_timeout",
            F3,
            "<= 1.0 (period 0.5 + read poll 0.5)",
            _at_most(1.0),
        ),
        ("stall.5s_freeze_to_event_s", "stall_timeout=5: freeze -> Reconnecting(stall_...)", F3),
        (
            "stall.5s_excess_s",
            "↳ last frame -> event, minus stall_timeout",
            F3,
            "<= 1.5 (period 1.0 + read poll 0.5)",
            _at_most(1.5),
        ),
    ),
]

SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": scenarios.throughput,
    "handoff": scenarios.handoff,
    "looplag": scenarios.loop_lag,
    "ttff": scenarios.ttff,
    "slow": scenarios.slow_consumer,
    "reconnect": scenarios.reconnect,
    "stall": scenarios.stall,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def summarize(runs: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Every numeric figure: its per-repeat values, median, min and max."""
    keys: dict[str, None] = {}
    for run in runs:
        for scenario, figures in run.items():
            for name, value in figures.items():
                if _number(value) is not None:
                    keys[f"{scenario}.{name}"] = None
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        scenario, name = key.split(".", 1)
        values = [v for run in runs if (v := _number(run.get(scenario, {}).get(name))) is not None]
        out[key] = {**summary(values), "values": values}
    return out


def table(stats: dict[str, dict[str, Any]], repeats: int) -> str:
    """The Markdown table of medians, min-max, targets."""
    lines: list[str] = []
    section = None
    measured = {row.section for row in ROWS if row.key in stats}
    for row in ROWS:
        if row.section not in measured:
            continue  # not run (--only)
        if row.section != section:
            section = row.section
            lines += [
                "",
                f"**{section}**",
                "",
                f"| figure | median | min to max (n={repeats}) | target | met |",
                "| --- | ---: | ---: | --- | --- |",
            ]
        st = stats.get(row.key)
        if st is None or math.isnan(st["median"]):
            lines.append(f"| {row.label} | n/a | | {row.target} | |")
            continue
        med, lo, hi = (row.fmt.format(st[k]) for k in ("median", "min", "max"))
        met = ""
        if row.check is not None:
            ok_all = all(row.check(v) for v in st["values"])
            met = (
                ("yes" if ok_all else "yes (not every run)")
                if row.check(st["median"])
                else "**NO**"
            )
        lines.append(f"| {row.label} | {med} | {lo} to {hi} | {row.target} | {met} |")
    return "\n".join(lines).lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None, help="repeats (default 3; 1 --quick)")
    parser.add_argument("--quick", action="store_true", help="1 repeat, shorter windows")
    parser.add_argument("--only", default="", help=f"comma list of: {', '.join(SCENARIOS)}")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="raw results file")
    args = parser.parse_args(argv)
    repeats = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeats < 1:
        parser.error("--repeat must be at least 1")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    settings = scenarios.Settings.quick() if args.quick else scenarios.Settings()

    info = machine_info()
    print(
        f"camerapump benchmarks, {info['date']}: {info['nproc']} x {info['cpu']}, "
        f"Python {info['python']}, PyAV {info['pyav']} (FFmpeg {info['ffmpeg']}), "
        f"OpenCV {info['opencv']}; commit {info['commit'] or '?'}"
        f"{' (camerapump/ modified)' if info['camerapump_dirty'] else ''}; "
        f"{repeats} repeat(s){', quick' if args.quick else ''}",
        file=sys.stderr,
        flush=True,
    )
    runs: list[dict[str, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="camerapump-bench-") as tmp:
        path = make_test_file(Path(tmp) / "720p30.mp4", seconds=10.0)
        for r in range(repeats):
            run: dict[str, dict[str, Any]] = {}
            for name in chosen:
                t0 = time.monotonic()
                print(f"[{r + 1}/{repeats}] {name} ...", end=" ", file=sys.stderr, flush=True)
                try:
                    if name in ("throughput", "handoff"):
                        run[name] = SCENARIOS[name](path, settings, r)
                    else:
                        run[name] = SCENARIOS[name](settings, r)
                except Exception as exc:
                    errors.append(
                        {
                            "repeat": r,
                            "scenario": name,
                            "error": repr(exc),
                            "traceback": traceback.format_exc(),
                        }
                    )
                    print(f"FAILED: {exc!r}", file=sys.stderr, flush=True)
                    continue
                print(f"{time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
            runs.append(run)
    stats = summarize(runs)
    elapsed = time.monotonic() - started
    result = {
        "machine": info,
        "repeats": repeats,
        "quick": args.quick,
        "settings": asdict(settings),
        "elapsed_s": elapsed,
        "summary": stats,
        "runs": runs,
        "errors": errors,
    }
    args.json.write_text(json.dumps(result, indent=1, default=str, allow_nan=True) + "\n")
    print(table(stats, repeats))
    print(f"\n{repeats} repeat(s) in {elapsed:.0f} s; raw results in {args.json}", flush=True)
    if errors:
        print(f"{len(errors)} scenario run(s) failed; see 'errors' in {args.json}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
