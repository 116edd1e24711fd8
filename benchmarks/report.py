"""docs/benchmarks.md and its PNG plots, from one results file.

    python benchmarks/report.py [benchmarks/results.json] [--report docs/benchmarks.md]

``run.py`` calls :func:`write` at the end of a run; this can also redo the page from
a results file alone.  The page is one page of the MkDocs site (built with
``--strict``): plots are linked relative to it, and nothing links outside docs/.
Hand-written findings for the run come from ``benchmarks/findings.md`` when it exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FINDINGS = HERE / "findings.md"

Result = dict[str, Any]


# =========================================================================== figures


class Figures:
    """The summary of a run: per figure, its repeats' median, min, max and values."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self.summary: dict[str, Result] = result.get("summary", {})
        self.repeats = int(result.get("repeats", 1))

    def get(self, key: str) -> Result | None:
        st = self.summary.get(key)
        if st is None or not st.get("values") or _nan(st["median"]):
            return None
        return st

    def median(self, key: str) -> float:
        st = self.get(key)
        return st["median"] if st else math.nan

    def cell(self, key: str, fmt: str = "{:.2f}", scale: float = 1.0) -> str:
        """``median (min to max)``; the median alone for one repeat; n/a when missing."""
        st = self.get(key)
        if st is None:
            return "n/a"
        med = fmt.format(st["median"] * scale)
        if len(st["values"]) < 2:
            return med
        lo, hi = fmt.format(st["min"] * scale), fmt.format(st["max"] * scale)
        return f"{med} ({lo} to {hi})"

    def failures(self, scenario: str, prefix: str) -> list[str]:
        """The error texts of ``{prefix}_error`` over the repeats (one variant's failures)."""
        found = []
        for run in self.runs(scenario):
            text = run.get(f"{prefix}_error")
            if text:
                found.append(str(text).splitlines()[0][:200])
        return found

    def runs(self, scenario: str) -> list[Result]:
        return [run[scenario] for run in self.result.get("runs", []) if scenario in run]


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _pct(x: float) -> str:
    return "n/a" if _nan(x) else f"{x:.0f}"


# =========================================================================== targets


@dataclass(frozen=True)
class Target:
    """A target of an issue: a figure, how it is judged, and what it means."""

    issue: str
    label: str
    key: str
    fmt: str
    target: str
    check: Callable[[Figures], tuple[bool | None, str]]


def _at_most(key: str, limit: float) -> Callable[[Figures], tuple[bool | None, str]]:
    def check(f: Figures) -> tuple[bool | None, str]:
        st = f.get(key)
        if st is None:
            return None, "not measured"
        if st["median"] > limit:
            return False, ""
        every = all(v <= limit for v in st["values"])
        return True, "" if every else "median only; not every repeat"

    return check


def _at_least(key: str, limit: float) -> Callable[[Figures], tuple[bool | None, str]]:
    def check(f: Figures) -> tuple[bool | None, str]:
        st = f.get(key)
        if st is None:
            return None, "not measured"
        if st["median"] < limit:
            return False, ""
        every = all(v >= limit for v in st["values"])
        return True, "" if every else "median only; not every repeat"

    return check


def _within_noise(key: str, ref: str, fmt: str) -> Callable[[Figures], tuple[bool | None, str]]:
    """Lower is better: met when the median is at or below the worst repeat of ``ref``."""

    def check(f: Figures) -> tuple[bool | None, str]:
        st, base = f.get(key), f.get(ref)
        if st is None or base is None:
            return None, "not measured"
        detail = f"before: {f.cell(ref, fmt)}"
        return st["median"] <= base["max"], detail

    return check


TARGETS: list[Target] = [
    Target(
        "9",
        "CPU of the 640x640 rgb24 contain 5 fps consumer / (a) plain PyAV thread",
        "shaped.ratio_detector_vs_a",
        "{:.2f}",
        "<= 0.6",
        _at_most("shaped.ratio_detector_vs_a", 0.6),
    ),
    Target(
        "9",
        "the same / (b) OpenCV grab() every frame, retrieve() the chosen ones",
        "shaped.ratio_detector_vs_b",
        "{:.2f}",
        "<= 0.9",
        _at_most("shaped.ratio_detector_vs_b", 0.9),
    ),
    Target(
        "9",
        "CPU of keyframes_only / full decode (keyframes converted), 720p30, keyframe every 30",
        "shaped.ratio_keys_vs_full_decode",
        "{:.2f}",
        "<= 0.25",
        _at_most("shaped.ratio_keys_vs_full_decode", 0.25),
    ),
    Target(
        "9",
        "the same on the issue's camera, 2688x1520@25, keyframe every 30 frames",
        "shaped.ratio_big_keys_vs_full_decode",
        "{:.2f}",
        "<= 0.25",
        _at_most("shaped.ratio_big_keys_vs_full_decode", 0.25),
    ),
    Target(
        "9",
        "16 x 720p30 pumps, 640x640 at max_fps=2: event-loop lag p99 (ms)",
        "shaped.cp16_lag_p99_ms",
        "{:.2f}",
        "<= 5",
        _at_most("shaped.cp16_lag_p99_ms", 5.0),
    ),
    Target(
        "11",
        "720p file throughput, after / before (df0af37), asyncio",
        "throughput.720p_ratio_vs_before",
        "{:.3f}",
        ">= 0.97",
        _at_least("throughput.720p_ratio_vs_before", 0.97),
    ),
    Target(
        "11",
        "1080p file throughput, after / before, asyncio",
        "throughput.1080p_ratio_vs_before",
        "{:.3f}",
        ">= 0.97",
        _at_least("throughput.1080p_ratio_vs_before", 0.97),
    ),
    Target(
        "11",
        "720p file throughput, after under trio / before",
        "throughput.720p_ratio_trio_vs_before",
        "{:.3f}",
        ">= 0.97",
        _at_least("throughput.720p_ratio_trio_vs_before", 0.97),
    ),
    Target(
        "11",
        "1080p file throughput, after under trio / before",
        "throughput.1080p_ratio_trio_vs_before",
        "{:.3f}",
        ">= 0.97",
        _at_least("throughput.1080p_ratio_trio_vs_before", 0.97),
    ),
    Target(
        "11",
        "16 RTSP streams: hand-off p99 (ms), after, asyncio",
        "streams.n16_cp_handoff_p99_ms",
        "{:.2f}",
        "within noise of before",
        _within_noise(
            "streams.n16_cp_handoff_p99_ms", "streams.n16_cp_before_handoff_p99_ms", "{:.2f}"
        ),
    ),
    Target(
        "11",
        "16 RTSP streams: hand-off p99 (ms), after, trio",
        "streams.n16_cp_trio_handoff_p99_ms",
        "{:.2f}",
        "within noise of before",
        _within_noise(
            "streams.n16_cp_trio_handoff_p99_ms", "streams.n16_cp_before_handoff_p99_ms", "{:.2f}"
        ),
    ),
    Target(
        "11",
        "16 RTSP streams: event-loop lag p99 (ms), after, asyncio",
        "streams.n16_cp_lag_p99_ms",
        "{:.2f}",
        "within noise of before",
        _within_noise("streams.n16_cp_lag_p99_ms", "streams.n16_cp_before_lag_p99_ms", "{:.2f}"),
    ),
    Target(
        "11",
        "16 RTSP streams: event-loop lag p99 (ms), after, trio",
        "streams.n16_cp_trio_lag_p99_ms",
        "{:.2f}",
        "within noise of before",
        _within_noise(
            "streams.n16_cp_trio_lag_p99_ms", "streams.n16_cp_before_lag_p99_ms", "{:.2f}"
        ),
    ),
    Target(
        "earlier",
        "720p file throughput, camerapump / plain PyAV loop",
        "throughput.720p_ratio_vs_pyav",
        "{:.3f}",
        ">= 0.95",
        _at_least("throughput.720p_ratio_vs_pyav", 0.95),
    ),
    Target(
        "earlier",
        "4 x 720p30 RTSP pumps: event-loop lag p99 (ms)",
        "streams.n4_cp_lag_p99_ms",
        "{:.2f}",
        "<= 5",
        _at_most("streams.n4_cp_lag_p99_ms", 5.0),
    ),
    Target(
        "earlier",
        "hand-off p99 (ms), test pattern 640x480",
        "handoff.test_cp_p99_ms",
        "{:.2f}",
        "<= 2",
        _at_most("handoff.test_cp_p99_ms", 2.0),
    ),
    Target(
        "earlier",
        "hand-off p99 (ms), one RTSP 1280x720 stream",
        "handoff.rtsp_cp_p99_ms",
        "{:.2f}",
        "<= 2",
        _at_most("handoff.rtsp_cp_p99_ms", 2.0),
    ),
    Target(
        "earlier",
        "slow consumer (100 ms a frame): camerapump's frame age, last second's median (s)",
        "slow.cp_age_last_1s_median_s",
        "{:.3f}",
        "<= 0.05",
        _at_most("slow.cp_age_last_1s_median_s", 0.05),
    ),
    Target(
        "earlier",
        "server restart: READY -> first new frame, minus the backoff pending then (s)",
        "reconnect.cp_excess_s",
        "{:.3f}",
        "<= 0.5",
        _at_most("reconnect.cp_excess_s", 0.5),
    ),
    Target(
        "earlier",
        "stall detected, beyond stall_timeout = 2 s (s)",
        "stall.2s_excess_s",
        "{:.3f}",
        "<= 1.0",
        _at_most("stall.2s_excess_s", 1.0),
    ),
    Target(
        "earlier",
        "stall detected, beyond stall_timeout = 5 s (s)",
        "stall.5s_excess_s",
        "{:.3f}",
        "<= 1.5",
        _at_most("stall.5s_excess_s", 1.5),
    ),
]


def _met(ok: bool | None, detail: str) -> str:
    if ok is None:
        return detail or "not measured"
    word = "yes" if ok else "**no**"
    return f"{word} ({detail})" if detail else word


def targets_table(f: Figures) -> list[str]:
    lines = [
        "| issue | figure | median (min to max) | target | met |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for t in TARGETS:
        ok, detail = t.check(f)
        cell = "not measured" if ok is None and f.get(t.key) is None else f.cell(t.key, t.fmt)
        lines.append(f"| {t.issue} | {t.label} | {cell} | {t.target} | {_met(ok, detail)} |")
    return lines


# =========================================================================== tables

FILE_ROWS = [
    ("cp", "camerapump `Source.file(realtime=False)`, asyncio"),
    ("cp_trio", "camerapump, the same under trio"),
    ("cp_before", "camerapump before the rewrite (df0af37), asyncio"),
    ("pyav", "plain PyAV loop: `decode()` + `to_ndarray('bgr24')`"),
    ("opencv", "OpenCV `VideoCapture.read()`"),
    ("aiortc", "aiortc `MediaPlayer` + `to_ndarray`, real-time throttle off"),
]

PEER_NAMES = {
    "cp": "camerapump",
    "cp_trio": "camerapump (trio)",
    "cp_before": "camerapump before (df0af37)",
    "cp_noslice": "camerapump, decode slice off",
    "pyav": "plain PyAV loop",
    "pyav_fastprobe": "plain PyAV + camerapump's probe options",
    "opencv": "OpenCV VideoCapture",
    "aiortc": "aiortc MediaPlayer",
    "ffmpeg": "ffmpeg -f null (floor)",
}


def throughput_table(f: Figures) -> list[str]:
    lines = [
        "| reader | 720p fps | 720p CPU ms/frame | 1080p fps | 1080p CPU ms/frame |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in FILE_ROWS:
        cells = []
        for size in ("720p", "1080p"):
            cells.append(f.cell(f"throughput.{size}_{key}_fps", "{:.0f}"))
            cells.append(f.cell(f"throughput.{size}_{key}_cpu_ms_per_frame", "{:.2f}"))
        lines.append(f"| {label} | {' | '.join(cells)} |")
    rt = f.cell("throughput.720p_aiortc_realtime_fps", "{:.1f}")
    lines.append(f"| aiortc `MediaPlayer` as it comes (plays files in real time) | {rt} | | | |")
    for name, label in (
        ("ratio_vs_pyav", "ratio camerapump / plain PyAV"),
        ("ratio_vs_before", "ratio camerapump / before"),
        ("ratio_trio_vs_asyncio", "ratio trio / asyncio"),
    ):
        cells = [f.cell(f"throughput.{s}_{name}", "{:.3f}") for s in ("720p", "1080p")]
        lines.append(f"| {label} | {cells[0]} | | {cells[1]} | |")
    return lines


def slow_table(f: Figures) -> list[str]:
    secs = _setting(f, "slow_seconds", 10.0)
    lines = [
        f"| peer | frame age after {secs:g} s (s) | median over the last second (s) | "
        "oldest (s) | frames taken | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for peer in ("cp", "pyav", "opencv", "aiortc"):
        note = ""
        if f.get(f"slow.{peer}_dropped"):
            note = f"skipped {f.cell(f'slow.{peer}_dropped', '{:.0f}')} frames to stay live"
        if f.get(f"slow.{peer}_queued_at_end"):
            note = f"{f.cell(f'slow.{peer}_queued_at_end', '{:.0f}')} frames queued at the end"
        lines.append(
            f"| {PEER_NAMES[peer]} | {f.cell(f'slow.{peer}_age_end_s', '{:.3f}')} | "
            f"{f.cell(f'slow.{peer}_age_last_1s_median_s', '{:.3f}')} | "
            f"{f.cell(f'slow.{peer}_age_max_s', '{:.3f}')} | "
            f"{f.cell(f'slow.{peer}_frames_taken', '{:.0f}')} | {note} |"
        )
    return lines


def ttff_table(f: Figures) -> list[str]:
    peers = ("cp", "pyav", "pyav_fastprobe", "opencv", "aiortc")
    return [
        "| peer | open -> first bgr24 frame (s) |",
        "| --- | ---: |",
        *(f"| {PEER_NAMES[p]} | {f.cell(f'ttff.{p}_s', '{:.3f}')} |" for p in peers),
    ]


def reconnect_table(f: Figures) -> list[str]:
    lines = [
        "| peer | recovered | READY -> first new frame (s) | how it ended "
        "| ended, s after the kill |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    runs = f.runs("reconnect")
    for peer in ("cp", "pyav", "opencv", "aiortc"):
        st = f.get(f"reconnect.{peer}_recovered")
        if st is None:
            rec = "not measured"
        else:
            got = sum(1 for v in st["values"] if v)
            rec = (
                f"yes ({got} of {len(st['values'])} runs)"
                if got
                else (f"**never** (0 of {len(st['values'])} runs)")
            )
        ends = sorted({str(r.get(f"{peer}_end")) for r in runs if r.get(f"{peer}_end")})
        ended = f.cell(f"reconnect.{peer}_ended_t", "{:.2f}") if ends else ""
        lines.append(
            f"| {PEER_NAMES[peer]} | {rec} | {f.cell(f'reconnect.{peer}_recovery_s', '{:.3f}')} "
            f"| {'; '.join(ends) or 'did not end'} | {ended} |"
        )
    return lines


def streams_tables(f: Figures) -> list[str]:
    counts = _setting(f, "stream_counts", [1, 4, 8, 16])
    variants = ["cp", "pyav", "aiortc", "ffmpeg", "cp_trio", "cp_noslice", "cp_before"]
    out: list[str] = []
    for title, fig, fmt, scale in (
        ("Event-loop lag p99 of a 5 ms ticker (ms)", "lag_p99_ms", "{:.2f}", 1.0),
        ("CPU per stream (% of one core)", "cpu_per_stream", "{:.1f}", 100.0),
        ("Hand-off p99, decoded -> consumer (ms)", "handoff_p99_ms", "{:.2f}", 1.0),
    ):
        out += [
            f"**{title}**",
            "",
            "| peer | " + " | ".join(f"N = {n}" for n in counts) + " |",
            "| --- | " + " | ".join("---:" for _ in counts) + " |",
        ]
        for v in variants:
            cells = []
            for n in counts:
                cell = f.cell(f"streams.n{n}_{v}_{fig}", fmt, scale)
                failed = f.failures("streams", f"n{n}_{v}")
                if failed:
                    note = "fell behind" if any("fell behind" in t for t in failed) else "failed"
                    cell = f"{cell}; {note} in {len(failed)} run(s)" if cell != "n/a" else note
                cells.append(cell)
            if all(c == "n/a" for c in cells):
                continue
            out.append(f"| {PEER_NAMES[v]} | " + " | ".join(cells) + " |")
        out.append("")
    failures = sorted(
        {
            f"N = {n}, {PEER_NAMES[v]}: {text}"
            for n in counts
            for v in variants
            for text in f.failures("streams", f"n{n}_{v}")
        }
    )
    if failures:
        out += ["What failed:", "", *(f"- {t}" for t in failures), ""]
    out += [
        "**Beside it (camerapump's run at each N)**",
        "",
        "| figure | " + " | ".join(f"N = {n}" for n in counts) + " |",
        "| --- | " + " | ".join("---:" for _ in counts) + " |",
    ]
    for label, fig, fmt, scale in (
        ("this process, % of one core", "cpu_per_s", "{:.0f}", 100.0),
        ("of which the event-loop thread", "loop_thread_cpu_per_s", "{:.0f}", 100.0),
        (
            "RTSP server (one shared x264 encoder), % of one core",
            "server_cpu_per_s",
            "{:.0f}",
            100.0,
        ),
        ("whole machine, % of all cores", "machine_pct", "{:.0f}", 1.0),
        ("slowest stream's frames per second", "fps_min", "{:.1f}", 1.0),
    ):
        cells = [f.cell(f"streams.n{n}_cp_{fig}", fmt, scale) for n in counts]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


SHAPED_ROWS = [
    (
        "cp_detector",
        "camerapump `Output(640, 640, fit='contain', max_fps=5, pixel_format='rgb24')`",
    ),
    ("pyav_a", "(a) plain PyAV thread: every frame to rgb24, the chosen ones resized (cv2)"),
    ("opencv_b", "(b) OpenCV: `grab()` every frame, `retrieve()` + `cv2.resize` the chosen"),
    ("cp_full", "reference: camerapump, every frame full size bgr24"),
    ("pyav_decode", "floor: plain PyAV thread, decode only, no conversion"),
    ("pyav_demux", "below it: plain PyAV thread, read the packets, decode nothing"),
    ("cp_keys", "camerapump `Output(keyframes_only=True)` (decoder skips the rest)"),
    ("pyav_keys", "full decode: plain PyAV, every frame decoded, keyframes converted"),
]


def shaped_tables(f: Figures) -> list[str]:
    out = [
        "| consumer (one 720p30 stream, no ticker) | CPU, % of one core | frames taken per s |",
        "| --- | ---: | ---: |",
    ]
    for key, label in SHAPED_ROWS:
        out.append(
            f"| {label} | {f.cell(f'shaped.{key}_cpu_per_s', '{:.1f}', 100.0)} | "
            f"{f.cell(f'shaped.{key}_fps', '{:.1f}')} |"
        )
    out += [
        "",
        "| the same consumers on two other streams, CPU in % of one core "
        "| 2688x1520@25, the issue's camera | ratio | 720p30 as a camera encodes | ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label, ratio in (
        ("cp_detector", "camerapump, the detector (640x640 rgb24 contain, 5 fps)", ""),
        ("pyav_a", "(a) plain PyAV thread, every frame to rgb24", "detector_vs_a"),
        ("cp_keys", "camerapump `Output(keyframes_only=True)`", ""),
        ("pyav_keys", "full decode: plain PyAV, keyframes converted", "keys_vs_full_decode"),
    ):
        cells = []
        for stream in ("big", "cam"):
            cells.append(f.cell(f"shaped.{stream}_{key}_cpu_per_s", "{:.1f}", 100.0))
            cells.append(f.cell(f"shaped.ratio_{stream}_{ratio}", "{:.2f}") if ratio else "")
        out.append(f"| {label} | {' | '.join(cells)} |")
    out += [
        "",
        "| 16 x 720p30 streams, 640x640 rgb24 contain at 2 fps | camerapump "
        "| camerapump, decode slice off | (a) plain PyAV threads |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, fig, fmt, scale in (
        ("this process, % of one core", "cpu_per_s", "{:.0f}", 100.0),
        ("event-loop lag p99 (ms)", "lag_p99_ms", "{:.2f}", 1.0),
        ("event-loop lag p50 (ms)", "lag_p50_ms", "{:.2f}", 1.0),
        ("RTSP server, % of one core", "server_cpu_per_s", "{:.0f}", 100.0),
        ("whole machine, % of all cores", "machine_pct", "{:.0f}", 1.0),
        ("slowest stream's frames per second", "fps_min", "{:.2f}", 1.0),
    ):
        out.append(
            f"| {label} | {f.cell(f'shaped.cp16_{fig}', fmt, scale)} | "
            f"{f.cell(f'shaped.cp16_noslice_{fig}', fmt, scale)} | "
            f"{f.cell(f'shaped.pyav_a16_{fig}', fmt, scale)} |"
        )
    ref = f.cell("streams.n16_cp_cpu_per_s", "{:.0f}", 100.0)
    out += [
        "",
        f"For comparison, 16 camerapump pumps delivering every frame full size: {ref} % "
        "of one core. *Decode slice off*: `CAMERAPUMP_DECODE_SLICE_MS=0`, the decode "
        "threads at the kernel's default scheduler slice instead of 10 ms "
        "([async.md](async.md)).",
    ]
    return out


def anyio_table(f: Figures) -> list[str]:
    out = [
        "| figure | before (df0af37), asyncio | after, asyncio | after, trio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key, fmt, scale in (
        ("720p file, fps", "throughput.720p_{v}_fps", "{:.0f}", 1.0),
        ("1080p file, fps", "throughput.1080p_{v}_fps", "{:.0f}", 1.0),
        ("720p file, CPU ms per frame", "throughput.720p_{v}_cpu_ms_per_frame", "{:.2f}", 1.0),
        ("16 RTSP streams: hand-off p50 (ms)", "streams.n16_{v}_handoff_p50_ms", "{:.2f}", 1.0),
        ("16 RTSP streams: hand-off p99 (ms)", "streams.n16_{v}_handoff_p99_ms", "{:.2f}", 1.0),
        ("16 RTSP streams: loop lag p99 (ms)", "streams.n16_{v}_lag_p99_ms", "{:.2f}", 1.0),
        ("16 RTSP streams: CPU, % of one core", "streams.n16_{v}_cpu_per_s", "{:.0f}", 100.0),
        (
            "16 RTSP streams: loop thread, % of one core",
            "streams.n16_{v}_loop_thread_cpu_per_s",
            "{:.0f}",
            100.0,
        ),
    ):
        cells = [f.cell(key.format(v=v), fmt, scale) for v in ("cp_before", "cp", "cp_trio")]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


HANDOFF_ROWS = [
    ("test_cp_p50_ms", "test pattern 640x480: camerapump p50"),
    ("test_cp_p99_ms", "test pattern 640x480: camerapump p99"),
    ("test_cp_after_convert_p99_ms", "the same, timed from after the conversion"),
    ("test_raw_p99_ms", "raw thread + call_soon_threadsafe p99 (same stamp)"),
    ("file_cp_p99_ms", "720p file paced at 30 fps (no server): camerapump p99"),
    ("file_cp_after_convert_p99_ms", "the same, timed from after the conversion"),
    ("rtsp_cp_p50_ms", "RTSP 1280x720: camerapump p50"),
    ("rtsp_cp_p99_ms", "RTSP 1280x720: camerapump p99"),
    ("rtsp_cp_after_convert_p99_ms", "the same, timed from after the conversion"),
    ("rtsp_raw_p99_ms", "raw thread + call_soon_threadsafe p99 (same stamp)"),
]

STALL_ROWS = [
    ("2s_freeze_to_event_s", "stall_timeout = 2 s: freeze -> Reconnecting(stall_timeout_exceeded)"),
    ("2s_excess_s", "last frame -> event, minus stall_timeout"),
    ("5s_freeze_to_event_s", "stall_timeout = 5 s: freeze -> Reconnecting(stall_timeout_exceeded)"),
    ("5s_excess_s", "last frame -> event, minus stall_timeout"),
]


def simple_table(f: Figures, scenario: str, rows: list[tuple[str, str]], fmt: str) -> list[str]:
    out = ["| figure | median (min to max) |", "| --- | ---: |"]
    for key, label in rows:
        out.append(f"| {label} | {f.cell(f'{scenario}.{key}', fmt)} |")
    return out


def tenants_table(result: Result) -> list[str]:
    by: dict[str, list[Result]] = {}
    for entry in result.get("tenants", []):
        by.setdefault(entry["scenario"], []).append(entry)
    out = [
        "| scenario | wall s per repeat | this suite, % of the machine | others, % of the machine "
        "(median, max) | 1-minute load average seen "
        "| busiest other processes (% of one core) |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for scenario, entries in by.items():
        walls = [e["wall_s"] for e in entries]
        suite = [e["suite_pct"] for e in entries]
        others = [e["others_pct"] for e in entries]
        loads = [float(e[k].split()[0]) for e in entries for k in ("loadavg_start", "loadavg_end")]
        worst = max(entries, key=lambda e: e["others_pct"])
        top = ", ".join(f"{name} {pct:g}" for name, pct in worst["others_top"][:3]) or "none"
        out.append(
            f"| {scenario} | {_median(walls):.0f} | {_median(suite):.0f} | "
            f"{_median(others):.0f}, {max(others):.0f} | {min(loads):.2f} to {max(loads):.2f} "
            f"| {top} |"
        )
    return out


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _setting(f: Figures, name: str, default: Any) -> Any:
    return f.result.get("settings", {}).get(name, default)


# =========================================================================== plots

COLORS = {
    "cp": "#1f77b4",
    "cp_trio": "#17becf",
    "cp_before": "#9467bd",
    "pyav": "#ff7f0e",
    "pyav_fastprobe": "#ffbb78",
    "opencv": "#2ca02c",
    "aiortc": "#d62728",
    "ffmpeg": "#7f7f7f",
}


def _bars(
    ax: Any, labels: list[str], sts: list[Result | None], scale: float, colors: list[str]
) -> None:
    meds = [st["median"] * scale if st else 0.0 for st in sts]
    lo = [(st["median"] - st["min"]) * scale if st else 0.0 for st in sts]
    hi = [(st["max"] - st["median"]) * scale if st else 0.0 for st in sts]
    ys = list(range(len(labels)))
    ax.barh(ys, meds, xerr=[lo, hi], color=colors, capsize=3)
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    for y, m, st in zip(ys, meds, sts, strict=True):
        x = st["max"] * scale if st else 0.0  # past the error bar
        ax.text(x, y, f"  {m:.3g}" if st else " n/a", va="center", fontsize=8)
    ax.set_xlim(0, max([st["max"] * scale for st in sts if st] or [1.0]) * 1.18)


def _plot_throughput(f: Figures, plt: Any, path: Path) -> bool:
    if f.get("throughput.720p_cp_fps") is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    keys = [k for k, _ in FILE_ROWS]
    for ax, size in zip(axes, ("720p", "1080p"), strict=True):
        sts = [f.get(f"throughput.{size}_{k}_fps") for k in keys]
        _bars(ax, [PEER_NAMES[k] for k in keys], sts, 1.0, [COLORS[k] for k in keys])
        ax.set_title(f"{size} H.264 file, every frame as bgr24")
        ax.set_xlabel("frames per second (median; bars: min to max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_slow(f: Figures, plt: Any, path: Path) -> bool:
    runs = [r for r in f.runs("slow") if r.get("cp_series")]
    if not runs:
        return False
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, run in enumerate(runs):
        for peer in ("cp", "pyav", "opencv", "aiortc"):
            series = run.get(f"{peer}_series") or []
            if not series:
                continue
            ts, bs = zip(*series, strict=True)
            label = PEER_NAMES[peer] if i == len(runs) - 1 else None
            alpha = 1.0 if i == len(runs) - 1 else 0.3
            for a in (ax, zoom):
                a.plot(ts, bs, color=COLORS[peer], alpha=alpha, label=label, lw=1.3)
    ax.set_title("Age of the frame in hand (100 ms of work per frame, 30 fps)")
    ax.set_xlabel("seconds since the consumer's first frame")
    ax.set_ylabel("frame age above the freshest seen (s)")
    ax.legend(loc="upper left", fontsize=8)
    zoom.set_ylim(-0.01, 0.3)
    for frames in (1, 2):
        zoom.axhline(frames / 30, color="k", ls=":", lw=0.8)
        zoom.text(
            0.1, frames / 30 + 0.004, f"{frames} frame{'s' if frames > 1 else ''}", fontsize=8
        )
    zoom.set_title("The same, zoomed to the first 0.3 s of age")
    zoom.set_xlabel("seconds since the consumer's first frame")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_ttff(f: Figures, plt: Any, path: Path) -> bool:
    keys = [k for k in ("cp", "pyav", "pyav_fastprobe", "opencv", "aiortc") if f.get(f"ttff.{k}_s")]
    if not keys:
        return False
    fig, ax = plt.subplots(figsize=(8, 2.8))
    _bars(
        ax,
        [PEER_NAMES[k] for k in keys],
        [f.get(f"ttff.{k}_s") for k in keys],
        1.0,
        [COLORS[k] for k in keys],
    )
    ax.set_xlabel("open -> first bgr24 frame, 720p30 RTSP (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_reconnect(f: Figures, plt: Any, path: Path) -> bool:
    runs = [r for r in f.runs("reconnect") if r.get("cp_arrivals")]
    if not runs:
        return False
    run = runs[-1]
    peers = [p for p in ("cp", "pyav", "opencv", "aiortc") if f"{p}_arrivals" in run]
    fig, ax = plt.subplots(figsize=(11, 3.2))
    for y, peer in enumerate(peers):
        ts = [t for t in run[f"{peer}_arrivals"] if t > -3.0]
        ax.eventplot([ts], lineoffsets=y, linelengths=0.6, colors=COLORS[peer], linewidths=0.6)
        if run.get(f"{peer}_recovered"):
            ax.text(
                run["ready_t"] + run[f"{peer}_recovery_s"] + 0.1,
                y + 0.35,
                f"recovered {run[f'{peer}_recovery_s']:.2f} s after READY",
                fontsize=8,
            )
        else:
            end = run.get(f"{peer}_ended_t")
            x = end if end is not None else (ts[-1] if ts else 0.0)
            ax.plot([x], [y], marker="x", color="k")
            ax.text(x + 0.1, y + 0.35, "stream ended: never recovers", fontsize=8)
    for x, label in ((0.0, "server killed"), (run["ready_t"], "server READY again")):
        ax.axvline(x, color="k", ls="--", lw=0.8)
        ax.text(x + 0.05, len(peers) - 0.4, label, fontsize=8)
    ax.set_yticks(range(len(peers)), [PEER_NAMES[p] for p in peers])
    ax.set_ylim(-0.6, len(peers) - 0.1)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the server was killed (each tick: a frame received)")
    ax.set_title("Server restart: who gets frames again")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_streams(f: Figures, plt: Any, path: Path) -> bool:
    counts = _setting(f, "stream_counts", [1, 4, 8, 16])
    if f.get(f"streams.n{counts[0]}_cp_cpu_per_stream") is None:
        return False
    fig, (lag, cpu) = plt.subplots(1, 2, figsize=(11, 3.8))
    for v in ("cp", "pyav", "aiortc", "ffmpeg", "cp_trio", "cp_before"):
        for ax, fig_key, scale in ((lag, "lag_p99_ms", 1.0), (cpu, "cpu_per_stream", 100.0)):
            pts = [(n, f.get(f"streams.n{n}_{v}_{fig_key}")) for n in counts]
            pts = [(n, st) for n, st in pts if st is not None]
            if not pts:
                continue
            xs = [n for n, _ in pts]
            ys = [st["median"] * scale for _, st in pts]
            err = [
                [(st["median"] - st["min"]) * scale for _, st in pts],
                [(st["max"] - st["median"]) * scale for _, st in pts],
            ]
            ls = "--" if v == "ffmpeg" else "-"
            ax.errorbar(
                xs,
                ys,
                yerr=err,
                fmt="o",
                ls=ls if len(pts) > 1 else "none",
                color=COLORS[v],
                label=PEER_NAMES[v],
                capsize=3,
                ms=4,
            )
    lag.set_yscale("log")
    lag.minorticks_off()
    top = lag.get_ylim()[1]
    lag.set_yticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if t <= top * 1.5])
    lag.yaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    lag.axhline(5.0, color="k", ls=":", lw=0.8)
    lag.text(counts[0], 5.2, "target 5 ms", fontsize=8)
    lag.set_title("Event-loop lag p99, 5 ms ticker")
    lag.set_ylabel("ms (log scale)")
    cpu.set_title("CPU per stream, every frame decoded (bgr24 but ffmpeg)")
    cpu.set_ylabel("% of one core")
    for ax in (lag, cpu):
        ax.set_xlabel("720p30 RTSP streams in one process")
        ax.set_xticks(counts)
    cpu.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_shaped(f: Figures, plt: Any, path: Path) -> bool:
    if f.get("shaped.cp_detector_cpu_per_s") is None:
        return False
    fig, (one, many) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    names = {
        "cp_full": "camerapump, every frame bgr24",
        "pyav_a": "(a) PyAV thread, every frame rgb24, resize chosen",
        "opencv_b": "(b) OpenCV grab all, retrieve+resize chosen",
        "cp_detector": "camerapump Output(640,640,contain,5 fps,rgb24)",
        "pyav_decode": "floor: PyAV decode only",
        "pyav_demux": "PyAV read packets, no decode",
        "pyav_keys": "full decode, keyframes converted",
        "cp_keys": "camerapump keyframes_only",
    }
    colors = {
        "cp_full": COLORS["cp_before"],
        "pyav_a": COLORS["pyav"],
        "opencv_b": COLORS["opencv"],
        "cp_detector": COLORS["cp"],
        "pyav_decode": COLORS["ffmpeg"],
        "pyav_demux": COLORS["ffmpeg"],
        "pyav_keys": COLORS["pyav"],
        "cp_keys": COLORS["cp"],
    }
    keys = list(names)
    _bars(
        one,
        [names[k] for k in keys],
        [f.get(f"shaped.{k}_cpu_per_s") for k in keys],
        100.0,
        [colors[k] for k in keys],
    )
    one.set_xlabel("CPU, % of one core (one 720p30 RTSP stream)")
    one.set_title("What a consumer that wants less costs")
    many_keys = [
        ("streams.n16_cp_cpu_per_s", "camerapump, every frame bgr24", COLORS["cp_before"]),
        ("shaped.pyav_a16_cpu_per_s", "(a) PyAV threads, 2 fps chosen", COLORS["pyav"]),
        ("shaped.cp16_cpu_per_s", "camerapump 640x640 at 2 fps", COLORS["cp"]),
    ]
    _bars(
        many,
        [k[1] for k in many_keys],
        [f.get(k[0]) for k in many_keys],
        100.0,
        [k[2] for k in many_keys],
    )
    many.set_xlabel("CPU, % of one core")
    many.set_title("16 x 720p30 streams")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_anyio(f: Figures, plt: Any, path: Path) -> bool:
    if (
        f.get("throughput.720p_cp_before_fps") is None
        and f.get("streams.n16_cp_before_lag_p99_ms") is None
    ):
        return False
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    vs = ("cp_before", "cp", "cp_trio")
    labels = ["before, asyncio", "after, asyncio", "after, trio"]
    colors = [COLORS[v] for v in vs]
    for ax, key, title, unit in (
        (axes[0], "throughput.720p_{v}_fps", "720p file throughput", "fps"),
        (axes[1], "streams.n16_{v}_handoff_p99_ms", "16 streams: hand-off p99", "ms"),
        (axes[2], "streams.n16_{v}_lag_p99_ms", "16 streams: loop lag p99", "ms"),
    ):
        _bars(ax, labels, [f.get(key.format(v=v)) for v in vs], 1.0, colors)
        ax.set_title(title)
        ax.set_xlabel(unit)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


PLOTS: dict[str, tuple[Callable[[Figures, Any, Path], bool], str]] = {
    "throughput": (_plot_throughput, "Throughput on a 720p and a 1080p H.264 file"),
    "slow_consumer": (_plot_slow, "Frame age seen by a slow consumer, over time"),
    "ttff": (_plot_ttff, "Time to first frame"),
    "reconnect": (_plot_reconnect, "Frames received around a server restart"),
    "streams": (_plot_streams, "Event-loop lag and CPU per stream at N streams"),
    "shaped": (_plot_shaped, "Shaped outputs: CPU saved"),
    "anyio": (_plot_anyio, "Before and after anyio, asyncio and trio"),
}


def make_plots(f: Figures, folder: Path) -> dict[str, str]:
    """Draw what the results allow; returns plot name -> file name."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("matplotlib is missing: no plots (pip install -e .[bench])", file=sys.stderr)
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    for name, (draw, _) in PLOTS.items():
        path = folder / f"{name}.png"
        try:
            ok = draw(f, plt, path)
        except Exception as exc:  # a plot must not cost the page
            print(f"plot {name} failed: {exc!r}", file=sys.stderr)
            plt.close("all")
            continue
        if ok:
            made[name] = path.name
    return made


# =========================================================================== the page


def render(result: Result, plots: dict[str, str], plot_dir: str) -> str:
    f = Figures(result)
    m = result.get("machine", {})
    quick = result.get("quick")
    repeats = result.get("repeats", 1)
    elapsed = result.get("elapsed_s", 0.0)

    def img(name: str) -> list[str]:
        if name not in plots:
            return [f"(No plot: {PLOTS[name][1].lower()} was not measured in this run.)", ""]
        return [f"![{PLOTS[name][1]}]({plot_dir}/{plots[name]})", ""]

    lines: list[str] = [
        "# Benchmarks",
        "",
        "camerapump measured against a plain PyAV loop, OpenCV's `VideoCapture`, aiortc's "
        "`MediaPlayer` and `ffmpeg -f null`, **in one run, on the same files and the same "
        "loopback RTSP server**, and against itself before the rewrite (commit "
        f"{result.get('before_commit') or 'df0af37: not available in this run'}). "
        "This page is written by `nox -s bench` (`benchmarks/run.py`, then "
        "`benchmarks/report.py`); every raw figure is in `benchmarks/results.json`, and "
        "`benchmarks/README.md` says how each one is taken. These are measurements on one "
        "small shared machine, not guarantees.",
        "",
        f"**This run:** {m.get('date', '?')}, commit {m.get('commit', '?')}"
        f"{' (camerapump/ modified)' if m.get('camerapump_dirty') else ''}, "
        f"{repeats} repeat{'s' if repeats != 1 else ''}"
        f"{', quick (short windows: not the reference figures)' if quick else ''}, "
        f"{elapsed / 60:.1f} minutes. Each cell is the median of the repeats, with their "
        "min to max in brackets (each repeat's figure is itself a median of its passes or "
        'samples). "met" compares the median with the target.',
        "",
    ]
    skipped = [
        s
        for s in (
            "throughput",
            "streams",
            "shaped",
            "slow",
            "ttff",
            "reconnect",
            "handoff",
            "stall",
        )
        if s not in result.get("scenarios", [])
    ]
    if skipped:
        lines += [f"Not run this time: {', '.join(skipped)}.", ""]
    if result.get("errors"):
        lines += [
            f"**{len(result['errors'])} scenario run(s) failed** in this run (see `errors` in "
            "`benchmarks/results.json`): "
            + "; ".join(
                f"{e['scenario']} (repeat {e['repeat'] + 1}): {e['error'][:120]}"
                for e in result["errors"]
            ),
            "",
        ]
    lines += ["## Targets", "", *targets_table(f), ""]
    lines += [
        "## Machine and versions",
        "",
        f"- Date: {m.get('date', '?')}; commit {m.get('commit', '?')}.",
        f"- {m.get('nproc', '?')} vCPUs ({m.get('cpu', '?')}), {m.get('memory', '?')} of memory; "
        f"{m.get('os', '?')}, {m.get('platform', '?')}. A shared machine: other people's test "
        "suites ran during the run (see *Other load on the machine*).",
        f"- Python {m.get('python')}, PyAV {m.get('pyav')} (FFmpeg {m.get('ffmpeg')} inside), "
        f"numpy {m.get('numpy')}, anyio {m.get('anyio')}, trio {m.get('trio')}.",
        f"- Peers: OpenCV {m.get('opencv')} (`opencv-python-headless`, its own FFmpeg), aiortc "
        f"{m.get('aiortc')}; the floor: {m.get('ffmpeg_cli')}.",
        f"- RTSP server: {m.get('gstreamer')} gst-rtsp-server (`tests/rtsp_server.py`), H.264 by "
        "x264enc (`tune=zerolatency speed-preset=ultrafast bitrate=1000`, keyframe every 30 "
        "frames, the moving-ball test picture), 1280x720 at 30 fps, one shared encoder for "
        "all clients, on 127.0.0.1, RTSP over TCP.",
        "- Files: 10 s of FFmpeg's `testsrc2` at 30 fps, 1280x720 and 1920x1080, libx264 "
        "ultrafast, made with PyAV at the start of the run.",
        f"- Load average when the run started: {m.get('loadavg_at_start', '?')}.",
        "",
        "## Reproduce",
        "",
        "```bash",
        "nox -s bench                          # installs -e .[bench], runs all, writes this page",
        "python benchmarks/run.py --quick      # 1 repeat, short windows: a few minutes",
        "python benchmarks/run.py --only streams,shaped --repeat 5",
        "python benchmarks/report.py benchmarks/results.json   # this page again, from the results",
        "```",
        "",
    ]
    if FINDINGS.exists():
        lines += [FINDINGS.read_text().strip(), ""]
    lines += [
        "## 1. Throughput on a file",
        "",
        "Every frame of the file as a bgr24 array, as fast as the reader goes; frames per "
        "second from open to the last frame, and the process's CPU time per frame. Each "
        "reader runs in a process of its own, in turns that rotate.",
        "",
        *throughput_table(f),
        "",
        *img("throughput"),
        "## 2. A slow consumer on a live stream",
        "",
        "A consumer that needs 100 ms per frame on a 30 fps RTSP stream (so it can take "
        "about 10 of the 30 frames a second), one peer after the other on the same server. "
        "A frame's age is its arrival time minus its pts, less the smallest such figure of "
        "the run: 0 for the freshest frame that consumer saw, and how much older than that "
        "each other frame was when the consumer got it. (What happened before the first "
        "frame, such as plain PyAV's one-second probe, is not in it: see the time to first "
        "frame.)",
        "",
        *slow_table(f),
        "",
        *img("slow_consumer"),
        "## 3. Time to first frame",
        "",
        "Open to the first bgr24 frame, joining a 720p30 stream another client already "
        "watches (as with a camera that streams anyway).",
        "",
        *ttff_table(f),
        "",
        *img("ttff"),
        "## 4. Recovery after a server restart",
        "",
        "All four watch the stream; the server is killed (SIGKILL) and restarted on the same "
        "port 1.5 s later. The plain PyAV loop, OpenCV's read loop and aiortc's track end when "
        "the stream does: that is what their users get without a reconnect loop of their own. "
        "camerapump reconnects with `ReconnectPolicy(initial_backoff=1.0, jitter=0)`.",
        "",
        *reconnect_table(f),
        "",
        *img("reconnect"),
        "## 5. N streams in one process",
        "",
        "N clients of the same 720p30 stream in one process, every frame decoded and converted "
        "to bgr24 and handed to the event loop, while a task sleeps 5 ms over and over and "
        "records how late it wakes (the same ticker in every variant). CPU is this process's, "
        "over the measuring window, divided by N; `ffmpeg -f null` runs N decoders of the same "
        "stream with no conversion and no Python (the practical floor). The server's CPU is "
        "measured apart (its pid).",
        "",
        *streams_tables(f),
        "",
        *img("streams"),
        "## 6. Shaped outputs (issue 9)",
        "",
        "One 720p30 H.264 RTSP stream with a keyframe every 30 frames; process CPU seconds "
        "per second of stream (shown as % of one core), over the window, with no ticker in "
        "any variant (it would cost the same everywhere). The detector wants 640x640 rgb24, "
        "letterboxed, at most 5 fps; the baselines pick their frames the same way (at least "
        "1/5 s apart on the stream's clock) and letterbox with `cv2.resize` (INTER_AREA) "
        "onto black. The detector and the keyframes pair also run on the issue's own camera "
        "(2688x1520@25, a keyframe every 30 frames) and on a 720p30 picture encoded as "
        "cameras encode (textured, scrolling, CABAC and deblocking on; the ball above is the "
        "cheapest H.264 there is to decode).",
        "",
        *shaped_tables(f),
        "",
        *img("shaped"),
        "## 7. anyio inside: before and after, asyncio and trio (issue 11)",
        "",
        "The same scenarios with camerapump before the rewrite (plain asyncio, every frame "
        "converted at full size) and after it, under asyncio and under trio "
        '(`anyio.run(..., backend="trio")`), each in a process of its own, in one run.',
        "",
        *anyio_table(f),
        "",
        *img("anyio"),
        "## 8. Hand-off latency",
        "",
        "`time.monotonic() - frame.captured_at` when `async for` yields; `captured_at` is taken "
        "when decoding finished, before the conversion. In this process, "
        f"{_setting(f, 'handoff_seconds', 3.0):g} s windows.",
        "",
        *simple_table(f, "handoff", HANDOFF_ROWS, "{:.2f}"),
        "",
        "## 9. Stall detection",
        "",
        "The stream goes through a TCP proxy that is frozen at a random moment; the time to "
        '`Reconnecting(reason="stall_timeout_exceeded")`.',
        "",
        *simple_table(f, "stall", STALL_ROWS, "{:.3f}"),
        "",
        "## Other load on the machine",
        "",
        "Per scenario: the CPU this suite used (this process and every process it started: "
        "children, servers, ffmpeg) and what the rest of the machine used meanwhile "
        "(`/proc/stat` less the suite), both as % of all cores; the lowest and highest "
        "1-minute load average at the start and the end of each scenario (2 cores: 2.0 is a "
        "full machine).",
        "",
        *tenants_table(result),
        "",
    ]
    return "\n".join(lines)


def write(result: Result, page: Path, plots_dir: Path) -> None:
    """Write the page and its plots."""
    made = make_plots(Figures(result), plots_dir)
    rel = os.path.relpath(plots_dir, page.parent)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(result, made, rel))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=HERE / "results.json")
    parser.add_argument("--report", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    parser.add_argument("--plots", type=Path, default=None)
    args = parser.parse_args(argv)
    result = json.loads(args.results.read_text())
    plots = args.plots or args.report.with_suffix("")
    write(result, args.report, plots)
    print(f"report: {args.report}, plots in {plots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
