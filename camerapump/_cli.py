"""The ``camerapump`` command line: ``watch``, ``snapshot``, ``record``, ``probe``, ``devices``.

Exit codes: 0 ok, 1 runtime failure (a typed error, one line), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._config import PIXEL_FORMATS, ReconnectPolicy, StreamConfig
from ._devices import devices_json, devices_table, list_devices, probe
from ._errors import CameraError
from ._image import IMAGE_CODECS, save_image
from ._pump import open_pump
from ._source import Source
from ._status import PumpStatus

__all__ = ["main"]

EXAMPLES = """\
examples:
  camerapump watch                         first camera, else the test pattern
  camerapump watch test:smptebars --frames 100
  camerapump watch rtsp://user:pass@192.0.2.10/stream1 --json
  camerapump watch /dev/video0 --size 1280x720 --fps 30
  camerapump snapshot rtsp://192.0.2.10/stream1 -o door.jpg
  camerapump snapshot test: -o shot.png --count 3 --interval 0.5
  camerapump record rtsp://192.0.2.10/stream1 -o cam.mp4 --seconds 60 --segment 10
  camerapump probe clip.mp4 --json
  camerapump devices --json
"""


class _UsageError(Exception):
    """A command-line mistake: exit status 2."""


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size is WIDTHxHEIGHT, e.g. 1280x720, not {text!r}"
        ) from None


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"camerapump: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = _Parser(
        prog="camerapump",
        description="Stream cameras, RTSP streams, files and test patterns; newest frames first.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    watch = _command(
        commands, "watch", "stream SOURCE and show live figures (fps, frame age, drops, status)"
    )
    watch.add_argument(
        "source", nargs="?", help=SOURCE_HELP + " (default: the first camera, else test:)"
    )
    watch.add_argument("--frames", type=_positive(int), help="stop after N frames")
    watch.add_argument("--seconds", type=_positive(float), help="stop after S seconds")
    watch.add_argument("--json", action="store_true", help="one JSON line a second (for scripts)")
    _stream_options(watch)
    watch.add_argument("--no-reconnect", action="store_true", help="stop at the first error")

    snapshot = _command(commands, "snapshot", "save fresh frames of SOURCE as images")
    snapshot.add_argument("source", help=SOURCE_HELP)
    snapshot.add_argument("-o", "--output", required=True, help="image file: .png, .jpg or .bmp")
    snapshot.add_argument("--count", type=_positive(int), default=1, help="how many images")
    snapshot.add_argument(
        "--interval", type=_positive(float), default=1.0, help="seconds between images"
    )
    snapshot.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100")
    _stream_options(snapshot)

    record = _command(commands, "record", "record SOURCE to a file without re-encoding")
    record.add_argument("source", help=SOURCE_HELP)
    record.add_argument("-o", "--output", required=True, help="file: .mp4, .mkv or .ts")
    record.add_argument("--seconds", type=_positive(float), help="stop after S seconds")
    record.add_argument("--segment", type=_positive(float), help="a new file every S seconds")
    _stream_options(record)

    probe = _command(commands, "probe", "show what SOURCE delivers")
    probe.add_argument("source", help=SOURCE_HELP)
    probe.add_argument("--json", action="store_true", help="print JSON")
    _stream_options(probe)

    devices = _command(commands, "devices", "list attached cameras")
    devices.add_argument("--json", action="store_true", help="print JSON")
    return parser


SOURCE_HELP = "rtsp://..., a camera index or /dev/videoN, usb:NAME, test:[PATTERN] or a file"


def _command(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _stream_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=_parse_size, help="ask for WIDTHxHEIGHT")
    parser.add_argument("--fps", type=_positive(float), help="ask for this frame rate")
    parser.add_argument("--pixel-format", choices=PIXEL_FORMATS, default="bgr24")
    parser.add_argument("--input-format", help="USB wire format, e.g. mjpeg or yuyv422")
    parser.add_argument("--udp", action="store_true", help="RTSP over UDP (default TCP)")


def _default_source() -> Source:
    for device in list_devices():
        return device.source
    return Source.test()


def _source_from(args: argparse.Namespace) -> Source:
    if args.source is None:
        return _default_source()
    try:
        source = Source.parse(args.source)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if args.udp and source.kind == "rtsp":
        source = Source.rtsp(str(source.target), transport="udp")
    return source


def _config_from(args: argparse.Namespace) -> StreamConfig:
    width, height = args.size if args.size else (None, None)
    try:
        return StreamConfig(width, height, args.fps, args.pixel_format, args.input_format)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


class _Figures:
    """Rolling figures of a watch session."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames = 0
        self.window: deque[tuple[float, float]] = deque()  # (received at, frame age), last second
        self.last_age = 0.0
        self.last_sequence = -1
        self.gaps = 0
        self.last_status = ""

    def add(self, sequence: int, captured_at: float) -> None:
        now = time.monotonic()
        self.frames += 1
        self.last_age = now - captured_at
        self.window.append((now, self.last_age))
        cutoff = now - 1.0
        while self.window and self.window[0][0] < cutoff:
            self.window.popleft()
        if self.last_sequence >= 0 and sequence > self.last_sequence + 1:
            self.gaps += sequence - self.last_sequence - 1
        self.last_sequence = sequence

    @property
    def fps(self) -> float:
        return float(len(self.window))

    @property
    def age_p99(self) -> float:
        """The 99th percentile of decode-to-consumer latency over the last second."""
        if not self.window:
            return 0.0
        ages = sorted(age for _, age in self.window)
        return ages[min(len(ages) - 1, int(len(ages) * 0.99))]


async def _watch(args: argparse.Namespace, out: TextIO) -> int:
    source = _source_from(args)
    config = _config_from(args)
    policy = None if args.no_reconnect else ReconnectPolicy()  # watch keeps going by default
    figures = _Figures()
    interactive = out.isatty() and not args.json
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    print(f"camerapump: opening {source}", file=sys.stderr)
    async with open_pump(source, config, policy=policy) as pump:
        print(f"camerapump: {source} open: {pump.format}", file=sys.stderr)

        def status_events() -> list[PumpStatus]:
            events = []
            while not pump.status.empty():
                events.append(pump.status.get_nowait())
            return events

        def report(final: bool = False) -> None:
            stats = pump.statistics()
            events = status_events()
            if events:
                figures.last_status = repr(events[-1])
            if args.json:
                record = {
                    "t": round(time.monotonic() - figures.started, 3),
                    "source": str(source),
                    "state": stats.state,
                    "frames": figures.frames,
                    "fps": figures.fps,
                    "frame_age_ms": round(figures.last_age * 1000, 3),
                    "handoff_p99_ms": round(figures.age_p99 * 1000, 3),
                    "dropped": stats.frames_dropped,
                    "decoded": stats.frames_decoded,
                    "reconnects": stats.reconnects,
                    "format": str(stats.format) if stats.format else None,
                    "events": [repr(e) for e in events],
                }
                out.write(json.dumps(record) + "\n")
            else:
                line = (
                    f"{stats.state:<12} {figures.fps:5.1f} fps  frames {figures.frames:6d}  "
                    f"age {figures.last_age * 1000:6.1f} ms (p99 {figures.age_p99 * 1000:5.1f})  "
                    f"dropped {stats.frames_dropped:5d}  "
                    f"reconnects {stats.reconnects}  {figures.last_status}"
                )
                out.write(("\r" + line + "\x1b[K") if interactive and not final else line + "\n")
            out.flush()

        next_report = time.monotonic() + 1.0
        frames = pump.__aiter__()
        while True:
            if figures.frames and args.frames is not None and figures.frames >= args.frames:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = next_report - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            try:
                frame = await asyncio.wait_for(frames.__anext__(), timeout=max(0.0, wait))
            except TimeoutError:
                frame = None
            except StopAsyncIteration:
                break
            if frame is not None:
                figures.add(frame.sequence, frame.captured_at)
            if time.monotonic() >= next_report:
                report()
                next_report += 1.0
        report(final=True)
    return 0


async def _snapshot(args: argparse.Namespace, out: TextIO) -> int:
    source = _source_from(args)
    target = Path(args.output)
    if target.suffix.lower() not in IMAGE_CODECS:
        raise _UsageError(f"-o must end in {', '.join(IMAGE_CODECS)}")
    if not 1 <= args.quality <= 100:
        raise _UsageError("--quality goes from 1 to 100")
    async with open_pump(source, _config_from(args), policy=None) as pump:
        pump.set_active(False)  # only captures: no per-frame work in between
        for index in range(args.count):
            if index:
                await asyncio.sleep(args.interval)
            frame = await pump.capture_frame(timeout=max(10.0, source.open_timeout))
            if frame is None:
                raise pump.error or CameraError(f"{source}: no frame could be captured")
            path = (
                target
                if args.count == 1
                else target.with_name(f"{target.stem}-{index + 1:04d}{target.suffix}")
            )
            save_image(frame, path, quality=args.quality)
            out.write(f"{path} {frame.width}x{frame.height} #{frame.sequence}\n")
    return 0


async def _record(args: argparse.Namespace, out: TextIO) -> int:
    source = _source_from(args)
    started = time.monotonic()
    interactive = sys.stderr.isatty()
    async with open_pump(source, _config_from(args)) as pump:
        pump.set_active(False)  # recording needs packets, not converted frames
        try:
            recorder = pump.record(args.output, segment_seconds=args.segment)
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
        async with recorder:
            while args.seconds is None or time.monotonic() - started < args.seconds:
                await asyncio.sleep(0.5)
                if pump.state in ("failed", "ended") or recorder.error is not None:
                    break
                elapsed = time.monotonic() - started
                total = f"/{args.seconds:.0f}" if args.seconds else ""
                line = (
                    f"recording {elapsed:5.1f}{total} s  packets {recorder.packets_written}  "
                    f"files {len(recorder.files)}  {pump.state}"
                )
                if interactive:
                    sys.stderr.write("\r" + line + "\x1b[K")
                    sys.stderr.flush()
        if interactive:
            sys.stderr.write("\n")
        if pump.error is not None:
            raise pump.error
    for path in recorder.files:
        out.write(f"{path}\n")
    return 0


async def _probe(args: argparse.Namespace, out: TextIO) -> int:
    source = _source_from(args)
    if source.kind == "usb":
        caps = probe(source)
        if args.json:
            modes = [dataclasses.asdict(f) for f in caps.formats]
            out.write(json.dumps({"source": str(source), "kind": "usb", "formats": modes}) + "\n")
        else:
            out.write(f"{source}: {caps.summary()}\n")
            for mode in caps.formats:
                out.write(f"  {mode}\n")
        return 0
    async with open_pump(source, _config_from(args), policy=None) as pump:
        fmt = pump.format
    assert fmt is not None
    record = {"source": str(source), "kind": source.kind, **dataclasses.asdict(fmt)}
    if args.json:
        out.write(json.dumps(record) + "\n")
    else:
        out.write(f"{source}: {fmt}\n")
    return 0


async def _stoppable(work: Coroutine[Any, Any, int]) -> int:
    """Run ``work``; SIGTERM cancels it, so pumps close and recordings are finished properly."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    with contextlib.suppress(NotImplementedError, AttributeError):  # no signals on Windows
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


def _devices(args: argparse.Namespace, out: TextIO) -> int:
    devices = list_devices()
    out.write(devices_json(devices) + "\n" if args.json else devices_table(devices))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="camerapump: %(levelname)s %(message)s",
    )
    try:
        if args.command == "devices":
            return _devices(args, sys.stdout)
        command = {"watch": _watch, "snapshot": _snapshot, "record": _record, "probe": _probe}
        status = 0  # Ctrl-C (or SIGTERM from a service manager) is how a watch normally ends
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            status = asyncio.run(_stoppable(command[args.command](args, sys.stdout)))
    except _UsageError as exc:
        print(f"camerapump: error: {exc}", file=sys.stderr)
        return 2
    except CameraError as exc:
        if args.debug:
            raise
        print(f"camerapump: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
