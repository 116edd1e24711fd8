"""camerapump benchmarks against a plain PyAV loop, OpenCV, aiortc and ffmpeg, in one run.

    python benchmarks/run.py               # full run (3 repeats), about 20 minutes
    python benchmarks/run.py --quick       # 1 repeat, shorter windows: a few minutes
    python benchmarks/run.py --only streams,shaped --repeat 5

Writes every raw figure to benchmarks/results.json and, from it, the report
docs/benchmarks.md with its plots in docs/benchmarks/ (``report.py``; it can also
redo the page from a results file alone).  This is measurement: nothing here fails
on a number; the "met" column only compares the median with the target.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare
import scenarios
from _common import ROOT, machine_info, make_test_file, summary
from _harness import BEFORE_COMMIT, TenantMeter, before_tree, loadavg

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
DEFAULT_REPORT = ROOT / "docs" / "benchmarks.md"

Scenario = Callable[[compare.Context], dict[str, Any]]

SCENARIOS: dict[str, Scenario] = {
    "throughput": compare.throughput,
    "streams": compare.streams,
    "shaped": compare.shaped,
    "slow": compare.slow,
    "ttff": compare.ttff,
    "reconnect": compare.reconnect,
    "handoff": lambda ctx: scenarios.handoff(ctx.files["720p"], ctx.settings, ctx.repeat),
    "stall": lambda ctx: scenarios.stall(ctx.settings, ctx.repeat),
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None, help="repeats (default 3; 1 --quick)")
    parser.add_argument("--quick", action="store_true", help="1 repeat, shorter windows")
    parser.add_argument("--only", default="", help=f"comma list of: {', '.join(SCENARIOS)}")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="raw results file")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="Markdown page")
    parser.add_argument(
        "--plots", type=Path, default=None, help="PNG folder (default: beside the page)"
    )
    parser.add_argument("--no-report", action="store_true", help="results.json only")
    args = parser.parse_args(argv)
    repeats = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeats < 1:
        parser.error("--repeat must be at least 1")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    settings = compare.Settings.quick() if args.quick else compare.Settings()

    info = machine_info()
    print(
        f"camerapump benchmarks, {info['date']}: {info['nproc']} x {info['cpu']}, "
        f"Python {info['python']}, PyAV {info['pyav']} (FFmpeg {info['ffmpeg']}), "
        f"OpenCV {info['opencv']}, aiortc {info['aiortc']}; commit {info['commit'] or '?'}"
        f"{' (camerapump/ modified)' if info['camerapump_dirty'] else ''}; "
        f"{repeats} repeat(s){', quick' if args.quick else ''}; load {loadavg()}",
        file=sys.stderr,
        flush=True,
    )
    runs: list[dict[str, dict[str, Any]]] = []
    tenants: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="camerapump-bench-") as tmp_name:
        tmp = Path(tmp_name)
        trees = {"after": ROOT}
        before = before_tree(tmp / "before")
        if before is not None:
            trees["before"] = before
        else:
            print(f"no git checkout: no 'before' ({BEFORE_COMMIT}) figures", file=sys.stderr)
        log_dir = tmp / "logs"
        log_dir.mkdir()
        print("making the test files ...", end=" ", file=sys.stderr, flush=True)
        files = {
            "720p": make_test_file(tmp / "720p30.mp4", seconds=settings.file_seconds),
            "1080p": make_test_file(
                tmp / "1080p30.mp4", width=1920, height=1080, seconds=settings.file_seconds
            ),
        }
        print("done", file=sys.stderr, flush=True)
        for r in range(repeats):
            ctx = compare.Context(settings, trees, files, log_dir, repeat=r)
            run: dict[str, dict[str, Any]] = {}
            for name in chosen:
                t0 = time.monotonic()
                print(f"[{r + 1}/{repeats}] {name} ...", end=" ", file=sys.stderr, flush=True)
                meter = TenantMeter().start()
                try:
                    run[name] = SCENARIOS[name](ctx)
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
                finally:
                    tenants.append({"repeat": r, "scenario": name, **meter.stop()})
                failed = sorted(k for k in run[name] if k.endswith("_error"))
                note = f" ({len(failed)} variant(s) failed: {', '.join(failed)})" if failed else ""
                print(f"{time.monotonic() - t0:.1f} s{note}", file=sys.stderr, flush=True)
            runs.append(run)
    stats = summarize(runs)
    elapsed = time.monotonic() - started
    result = {
        "machine": info,
        "repeats": repeats,
        "quick": args.quick,
        "scenarios": chosen,
        "settings": asdict(settings),
        "before_commit": BEFORE_COMMIT if "before" in trees else None,
        "elapsed_s": elapsed,
        "tenants": tenants,
        "summary": stats,
        "runs": runs,
        "errors": errors,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str, allow_nan=True) + "\n")
    print(f"{repeats} repeat(s) in {elapsed:.0f} s; raw results in {args.json}", flush=True)
    if not args.no_report:
        import report  # noqa: PLC0415 - matplotlib is needed only here

        plots = args.plots or args.report.with_suffix("")
        report.write(result, args.report, plots)
        print(f"report: {args.report}, plots in {plots}", flush=True)
    if errors:
        print(f"{len(errors)} scenario run(s) failed; see 'errors' in {args.json}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
