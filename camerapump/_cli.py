"""The ``camerapump`` command line: ``watch``, ``snapshot``, ``record``, ``probe``, ``devices``.

What scripts can rely on:

* Exit status: 0 done; 1 a runtime failure (the source failed or gave up, a
  file could not be written), told in one line (what, then where) and the
  redacted detail on the next; 2 a usage error (nothing was opened); 130
  after Ctrl-C (SIGINT) and 143 after SIGTERM, once the work in hand is
  finished (a recording's file is closed and listed, ``watch`` prints its
  summary).
* With ``--json``, stdout carries JSON objects only, one a line, each with an
  ``"event"`` key: the pump's status events (``event.as_dict()``), the
  command's own lines (``statistics``, ``summary``, ``image``, ``recorded``,
  ``probe``) and, when it fails, one last ``{"event": "error", ...}``.
* People's messages go to stderr, prefixed ``camerapump:``; data (files
  written, images, figures) to stdout.

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a function that
adds its parser and one that runs it (``run(args) -> exit status``), so one
more subcommand is one more entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast
from urllib.parse import urlsplit

import av

from ._config import PIXEL_FORMATS, ReconnectPolicy, StreamConfig
from ._devices import devices_json, devices_table, list_devices, probe
from ._errors import (
    AuthenticationFailed,
    CameraError,
    ConnectionFailed,
    DeviceBusy,
    DeviceNotFound,
    PermissionDenied,
    StreamTimeout,
)
from ._frame import Frame
from ._image import IMAGE_CODECS, save_image
from ._output import FITS, Output
from ._pump import Pump, PumpStatistics, open_pump
from ._record import _CONTAINERS, Recorder, RecordingFailed
from ._source import Source, Transport
from ._status import Connected, GaveUp, PumpStatus, Reconnecting

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

#: Exit statuses.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: Columns the live line of ``watch`` may use (an 80-column terminal, minus the cursor).
LINE_WIDTH = 79
#: Seconds a snapshot waits for each frame by default: long enough to ride out a
#: reconnection (a few backoff rounds), short enough that a dead camera fails a script.
SNAPSHOT_TIMEOUT = 30.0

SOURCE_HELP = (
    "rtsp://HOST/PATH, http(s)://, rtmp://, srt://, udp://, tcp://, a camera index or "
    "/dev/videoN, usb:NAME, test:[PATTERN], or a file (PATH or file:PATH)"
)

MAIN_EXAMPLES = """\
examples:
  camerapump watch                            first camera, else the test pattern
  camerapump watch rtsp://192.0.2.10/stream1 --username admin --password-env CAM_PASSWORD
  camerapump snapshot rtsp://192.0.2.10/stream1 -o door.jpg
  camerapump record rtsp://192.0.2.10/stream1 -o door.mp4 --seconds 60
  camerapump probe clip.mp4 --json
  camerapump devices

exit status: 0 done, 1 runtime failure, 2 usage error, 130 Ctrl-C, 143 SIGTERM.
Every command has --help with examples of its own.
"""

WATCH_EXAMPLES = """\
examples:
  camerapump watch                            first camera, else the test pattern
  camerapump watch test:smptebars --frames 100
  camerapump watch /dev/video0 --size 1280x720 --fps 30
  camerapump watch rtsp://192.0.2.10/stream1 --username admin --password-env CAM_PASSWORD
  camerapump watch rtsp://192.0.2.10/stream1 --json --stall-timeout 5 --seconds 60
  camerapump watch clip.mp4 --loop --output-size 640x360 --max-fps 5

The live line: decoded fps (last second), age of the newest picture (both as of
now: a frozen stream shows 0 fps and a growing age), frames dropped, sessions
re-established, and the last status event.  A summary line is printed on exit.
"""

SNAPSHOT_EXAMPLES = """\
examples:
  camerapump snapshot rtsp://192.0.2.10/stream1 -o door.jpg
  camerapump snapshot test: -o shot.png --output-size 320x240
  camerapump snapshot /dev/video0 -o lapse.jpg --count 60 --interval 10
  camerapump snapshot rtsp://192.0.2.10/stream1 -o door.jpg --json --timeout 10

With --count N the images are numbered: lapse-0001.jpg, lapse-0002.jpg, ...
An image file that exists is replaced.  Each capture rides out a reconnection
for up to --timeout seconds.
"""

RECORD_EXAMPLES = """\
examples:
  camerapump record rtsp://192.0.2.10/stream1 -o door.mp4 --seconds 60
  camerapump record rtsp://192.0.2.10/stream1 -o door.mkv --segment 600
  camerapump record clip.mp4 -o copy.mp4 --overwrite
  camerapump record test: -o pattern.mp4 --seconds 5 --json

--seconds counts footage, not wall time: an outage does not eat into it.  When
the stream is lost, recording carries on in a new file once it is back (the
files are listed on stdout at the end).  Packets are remuxed, not re-encoded;
a raw source (the test pattern) is encoded with H.264.  A file or test pattern
is recorded at its own pace (a 5 s file takes 5 s).
"""

PROBE_EXAMPLES = """\
examples:
  camerapump probe clip.mp4
  camerapump probe rtsp://192.0.2.10/stream1 --json
  camerapump probe /dev/video0                 the modes the camera offers
"""

DEVICES_EXAMPLES = """\
examples:
  camerapump devices
  camerapump devices --json
"""


class UsageError(Exception):
    """A command-line mistake found after parsing: exit status 2, nothing opened."""


# -- parsing --------------------------------------------------------------------------------


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a size is WIDTHxHEIGHT, e.g. 1280x720, not {text!r}"
        ) from None
    if min(size) <= 0:
        raise argparse.ArgumentTypeError(f"a size is two numbers above 0, not {text!r}")
    return size


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    return parse


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_subcommand(
    commands: Any, name: str, summary: str, examples: str
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` with its one-line ``summary`` and its own ``examples``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def add_source_arguments(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """SOURCE and how to reach it: credentials, transport, open timeout, looping."""
    if optional:
        parser.add_argument(
            "source", nargs="?", help=SOURCE_HELP + " (default: the first camera, else test:)"
        )
    else:
        parser.add_argument("source", help=SOURCE_HELP)
    group = parser.add_argument_group("source")
    group.add_argument("--username", metavar="USER", help="user name for a stream URL")
    group.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from environment variable VAR (never from the command line)",
    )
    group.add_argument(
        "--transport",
        choices=("auto", "tcp", "udp"),
        help="RTSP transport (default auto: TCP, and UDP when the server offers no TCP)",
    )
    group.add_argument("--udp", action="store_true", help="the same as --transport udp")
    group.add_argument(
        "--open-timeout",
        type=_positive(float),
        metavar="S",
        help="seconds a network open may take (default 10)",
    )
    group.add_argument("--loop", action="store_true", help="play a file again at its end")


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """What to ask of the source (a StreamConfig)."""
    group = parser.add_argument_group("format (asked of the source; an error if it cannot)")
    group.add_argument("--size", type=_parse_size, metavar="WxH", help="ask for this size")
    group.add_argument("--fps", type=_positive(float), help="ask for this frame rate")
    group.add_argument("--pixel-format", choices=PIXEL_FORMATS, default="bgr24")
    group.add_argument("--input-format", help="USB wire format, e.g. mjpeg or yuyv422")


def add_reconnect_arguments(parser: argparse.ArgumentParser) -> None:
    """How a live source recovers (a ReconnectPolicy)."""
    group = parser.add_argument_group("reconnection (live sources)")
    group.add_argument(
        "--backoff",
        type=_positive(float),
        default=1.0,
        metavar="S",
        help="seconds before the first reconnect attempt, doubling up to 30 (default 1)",
    )
    group.add_argument(
        "--stall-timeout",
        type=_positive(float),
        default=15.0,
        metavar="S",
        help="seconds without a frame before the stream counts as lost (default 15)",
    )
    limit = group.add_mutually_exclusive_group()
    limit.add_argument(
        "--max-attempts",
        type=_count,
        metavar="N",
        help="give up after N failed attempts in a row (default: never)",
    )
    limit.add_argument(
        "--no-reconnect", action="store_true", help="stop at the first loss (--max-attempts 0)"
    )


def add_output_arguments(parser: argparse.ArgumentParser, *, rate: bool) -> None:
    """How the frames taken are shaped (an Output)."""
    group = parser.add_argument_group("output (shaped on the decode thread)")
    group.add_argument(
        "--output-size", type=_parse_size, metavar="WxH", help="deliver frames of this size"
    )
    group.add_argument(
        "--fit", choices=FITS, default="stretch", help="how --output-size meets another aspect"
    )
    if rate:
        group.add_argument(
            "--max-fps", type=_positive(float), metavar="F", help="take at most F frames a second"
        )


def add_common_arguments(parser: argparse.ArgumentParser, *, json_lines: bool = True) -> None:
    """``--json`` and ``--debug`` (the latter also accepted before the subcommand)."""
    if json_lines:
        parser.add_argument(
            "--json", action="store_true", help="JSON objects on stdout, one a line (for scripts)"
        )
    _add_debug(parser, default=argparse.SUPPRESS)


def _add_debug(parser: argparse.ArgumentParser, *, default: Any) -> None:
    # SUPPRESS after the subcommand: a flag given before it is not reset.
    parser.add_argument(
        "--debug", action="store_true", default=default, help="debug logs and tracebacks"
    )


def _add_watch(commands: Any) -> None:
    parser = add_subcommand(
        commands, "watch", "stream SOURCE and show live figures: fps, frame age, drops, status",
        WATCH_EXAMPLES,
    )  # fmt: skip
    add_source_arguments(parser, optional=True)
    parser.add_argument("--frames", type=_positive(int), metavar="N", help="stop after N frames")
    parser.add_argument("--seconds", type=_positive(float), metavar="S", help="stop after S s")
    add_common_arguments(parser)
    add_format_arguments(parser)
    add_output_arguments(parser, rate=True)
    add_reconnect_arguments(parser)


def _add_snapshot(commands: Any) -> None:
    parser = add_subcommand(
        commands, "snapshot", "save fresh frames of SOURCE as images", SNAPSHOT_EXAMPLES
    )
    add_source_arguments(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="IMAGE", help="a .png, .jpg or .bmp file"
    )
    parser.add_argument(
        "--count", type=_positive(int), default=1, metavar="N", help="images to take (default 1)"
    )
    parser.add_argument(
        "--interval",
        type=_positive(float),
        default=1.0,
        metavar="S",
        help="seconds from one image to the next (default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=SNAPSHOT_TIMEOUT,
        metavar="S",
        help=f"seconds each image may wait for a frame (default {SNAPSHOT_TIMEOUT:g})",
    )
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100 (90)")
    add_common_arguments(parser)
    add_format_arguments(parser)
    add_output_arguments(parser, rate=False)
    add_reconnect_arguments(parser)


def _add_record(commands: Any) -> None:
    parser = add_subcommand(
        commands, "record", "record SOURCE to a file without re-encoding", RECORD_EXAMPLES
    )
    add_source_arguments(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="a .mp4, .mkv, .mov or .ts file"
    )
    parser.add_argument(
        "--seconds", type=_positive(float), metavar="S", help="stop after S seconds of footage"
    )
    parser.add_argument(
        "--segment", type=_positive(float), metavar="S", help="start a new file every S seconds"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.add_argument(
        "--no-audio", action="store_true", help="record the video only (default: keep the audio)"
    )
    add_common_arguments(parser)
    add_format_arguments(parser)
    add_reconnect_arguments(parser)


def _add_probe(commands: Any) -> None:
    parser = add_subcommand(commands, "probe", "show what SOURCE delivers", PROBE_EXAMPLES)
    add_source_arguments(parser)
    add_common_arguments(parser)
    add_format_arguments(parser)


def _add_devices(commands: Any) -> None:
    parser = add_subcommand(commands, "devices", "list attached cameras", DEVICES_EXAMPLES)
    add_common_arguments(parser)


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand.

    Attributes:
        name: What is typed after ``camerapump``.
        add_parser: Adds the subcommand's parser to the subparsers action.
        run: Runs it on the parsed arguments; returns the exit status.  May
            raise :class:`UsageError` (exit 2).
    """

    name: str
    add_parser: Callable[[Any], object]
    run: Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: every command in :data:`COMMANDS` (exposed for the docs and tests)."""
    from . import __version__  # noqa: PLC0415 - the package imports this module's callers

    parser = _Parser(
        prog="camerapump",
        description="Stream cameras, RTSP and other streams, files and test patterns; "
        "newest frames first.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"camerapump {__version__} (PyAV {av.__version__}, FFmpeg {_ffmpeg_version()})",
    )
    _add_debug(parser, default=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for command in COMMANDS:
        command.add_parser(commands)
        sub = commands.choices[command.name]
        if not any("--debug" in action.option_strings for action in sub._actions):
            _add_debug(sub, default=argparse.SUPPRESS)
    return parser


def _ffmpeg_version() -> str:
    return str(getattr(av, "ffmpeg_version_info", "?"))


# -- from arguments to library objects ------------------------------------------------------


def _looks_like_a_path(text: str) -> bool:
    return "://" not in text and ("/" in text or os.sep in text or bool(Path(text).suffix))


def source_from_args(args: argparse.Namespace) -> Source:
    """The source the arguments name, with credentials, transport, timeout and looping.

    Raises:
        UsageError: The text names no source, or a flag does not fit its kind.
    """
    text: str | None = args.source
    if text is None:
        source = _default_source()
    else:
        try:
            source = Source.parse(text)
        except (TypeError, ValueError) as exc:
            if not _looks_like_a_path(text):
                raise UsageError(str(exc)) from None
            # A path that is not there: opening it says "no such file", exit 1,
            # the same as file:PATH.
            source = Source.file(text)
    network = source.traits.network
    password = _password(args)
    if (args.username is not None or password is not None) and not network:
        raise UsageError(f"--username and --password-env are for stream URLs, not {source}")
    if args.open_timeout is not None and not network:
        raise UsageError(f"--open-timeout is for stream URLs, not {source}")
    transport = "udp" if args.udp else args.transport
    if args.udp and args.transport not in (None, "udp"):
        raise UsageError("--udp and --transport disagree; give one of them")
    if transport is not None and source.kind != "rtsp":
        raise UsageError(f"--transport and --udp are for RTSP, not {source}")
    if args.loop and source.kind != "file":
        raise UsageError(f"--loop is for files, not {source}")
    try:
        if source.kind == "rtsp":
            source = Source.rtsp(
                str(source.target),
                username=args.username,
                password=password,
                transport=cast("Transport", transport or source.transport),
                open_timeout=args.open_timeout or source.open_timeout,
            )
        elif source.kind == "stream":
            source = Source.url(
                str(source.target),
                username=args.username,
                password=password,
                open_timeout=args.open_timeout or source.open_timeout,
            )
        elif args.loop:
            source = dataclasses.replace(source, loop=True)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return source


def _password(args: argparse.Namespace) -> str | None:
    name: str | None = args.password_env
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise UsageError(f"--password-env {name}: the environment variable {name} is not set")
    return value


def _default_source() -> Source:
    for device in list_devices():
        return device.source
    return Source.test()


def config_from_args(args: argparse.Namespace) -> StreamConfig:
    """The StreamConfig that ``--size``, ``--fps``, ``--pixel-format``, ``--input-format`` ask."""
    width, height = args.size if args.size else (None, None)
    try:
        return StreamConfig(width, height, args.fps, args.pixel_format, args.input_format)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def policy_from_args(args: argparse.Namespace) -> ReconnectPolicy:
    """The ReconnectPolicy of ``--backoff``, ``--stall-timeout``, ``--max-attempts``."""
    attempts = 0 if args.no_reconnect else args.max_attempts
    backoff = float(args.backoff)
    return ReconnectPolicy(
        initial_backoff=backoff,
        max_backoff=max(30.0, backoff),
        max_attempts=attempts,
        stall_timeout=float(args.stall_timeout),
    )


def output_from_args(args: argparse.Namespace) -> Output | None:
    """The Output of ``--output-size``, ``--fit``, ``--max-fps``; ``None``: as the source gives."""
    width, height = args.output_size if args.output_size else (None, None)
    max_fps = getattr(args, "max_fps", None)
    if width is None and max_fps is None:
        return None
    try:
        return Output(width, height, fit=args.fit, max_fps=max_fps)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# -- errors, as people and scripts read them -----------------------------------------------

_REFINED = (
    # (text in the detail, what to say): the OS's words, as PyAV passes them on.
    (("Connection refused",), "connection refused"),
    (("No route to host", "Network is unreachable"), "the host cannot be reached"),
    (
        ("Name or service not known", "nodename nor servname", "Temporary failure in name"),
        "unknown host name",
    ),
    (("Connection reset",), "the connection was reset"),
    (("Connection timed out",), "the connection timed out"),
)


def _unknown_host(source: Source) -> bool:
    """True when the host of a stream URL does not resolve.

    FFmpeg reports a failed lookup as a bare EIO, like any broken read, so
    the name is looked up again here, once, after the failure.
    """
    if not source.traits.network:
        return False
    try:
        host = urlsplit(source.label).hostname
    except ValueError:
        return False
    if not host:
        return False
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return True
    except OSError:
        return False
    return False


def describe(error: CameraError, source: Source | None) -> str:
    """One line for ``error``: what went wrong, then where (``connection refused: rtsp://…``).

    The wording comes from the error's type and its (redacted) detail; the
    message the library gave is the fallback.
    """
    label = source.label if source is not None else ""
    text = str(error)
    if label and text.startswith(label + ": "):
        text = text[len(label) + 2 :]
    where = label
    detail = error.detail or ""
    what = text
    if isinstance(error, AuthenticationFailed):
        what = (
            "the server rejected the credentials"
            if source is not None and source.secrets
            else "the server asks for credentials (give --username and --password-env)"
        )
    elif isinstance(error, DeviceNotFound) and source is not None:
        if source.kind == "file":
            what, where = "no such file", str(source.target)
        elif source.kind == "usb":
            what, where = "no such camera", str(source.target)
    elif isinstance(error, ConnectionFailed):
        for needles, words in _REFINED:
            if any(needle in detail for needle in needles):
                what = words
                break
        else:
            if source is not None and _unknown_host(source):
                what = "unknown host name"
    elif isinstance(error, StreamTimeout) and source is not None and "open" in text:
        what = f"no answer within the open timeout ({source.open_timeout:g} s)"
    elif isinstance(error, PermissionDenied) and source is not None:
        what, where = "permission denied", str(source.target)
    elif isinstance(error, DeviceBusy):
        what = "the camera is busy (another program holds it)"
    elif isinstance(error, RecordingFailed):
        where = ""
    line = f"{what}: {where}" if where else what
    return f"{line} ({error.code})"


# -- one run of a subcommand ----------------------------------------------------------------


class Run:
    """One run of a subcommand: its output streams, JSON mode, and the pump it opened.

    Status events are read from the pump in one place (:meth:`events`), which
    also writes them as JSON lines in ``--json`` mode; an error is reported in
    one place (:meth:`fail`).
    """

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.json = bool(getattr(args, "json", False))
        self.debug = bool(getattr(args, "debug", False))
        self.source: Source | None = None
        self.pump: Pump | None = None
        self.last_event: PumpStatus | None = None
        self.gave_up: GaveUp | None = None
        self.signal: int | None = None
        self.lost = False  # the stream is lost, and the pump is reconnecting
        self._progress = False  # a progress line without its newline is on stderr
        self._task: asyncio.Task[Any] | None = None

    # -- writing

    def say(self, text: str) -> None:
        """A line for people on stderr (always)."""
        self._end_progress()
        self.err.write(f"camerapump: {text}\n")
        self.err.flush()

    def info(self, text: str) -> None:
        """A line for people on stderr, left out in ``--json`` mode."""
        if not self.json:
            self.say(text)

    def progress(self, text: str) -> None:
        """A line that rewrites itself on an interactive stderr (nothing elsewhere)."""
        if self.json or not self.err.isatty():
            return
        self.err.write("\r" + text[:LINE_WIDTH] + "\x1b[K")
        self.err.flush()
        self._progress = True

    def _end_progress(self) -> None:
        if self._progress:
            self.err.write("\n")
            self._progress = False

    def emit(self, data: dict[str, Any]) -> None:
        """One JSON object on stdout."""
        self.out.write(json.dumps(data) + "\n")
        self.out.flush()

    def data(self, line: str) -> None:
        """One line of data on stdout (not in ``--json`` mode)."""
        if not self.json:
            self.out.write(line + "\n")
            self.out.flush()

    # -- the pump's status

    def events(self) -> list[PumpStatus]:
        """The status events published since the last call (written out in ``--json`` mode)."""
        pump = self.pump
        found: list[PumpStatus] = []
        if pump is None:
            return found
        while not pump.status.empty():
            event = pump.status.get_nowait()
            found.append(event)
            self.last_event = event
            if isinstance(event, GaveUp):
                self.gave_up = event
            if self.json:
                self.emit(event.as_dict())
        return found

    def follow_outages(self, lost: Callable[[Reconnecting], str], back: str) -> None:
        """Read the status events; say once when the stream is lost, and when it is back."""
        for event in self.events():
            if isinstance(event, Reconnecting):
                if not self.lost:
                    self.info(f"{self.source}: {lost(event)}")
                self.lost = True
            elif isinstance(event, Connected) and self.lost:
                self.lost = False
                self.info(f"{self.source}: {back}")

    # -- failing

    def fail(self, error: CameraError) -> None:
        """Report ``error``: one line, the redacted detail under it; one JSON line with --json."""
        self.events()  # a GaveUp still queued comes before the error
        message = describe(error, self.source)
        if self.gave_up is not None and self.gave_up.reason.startswith("max_attempts_reached"):
            attempts = 0 if self.pump is None else self.pump.statistics().reconnect_attempts
            if attempts:
                s = "s" if attempts != 1 else ""
                message = f"gave up after {attempts} reconnect attempt{s}: {message}"
            else:
                message = f"lost, and reconnection is off: {message}"
        self.say(message)
        if error.detail:
            self.err.write(f"camerapump:   {error.detail}\n")
        if self.debug:
            traceback.print_exception(error, file=self.err)
        if self.json:
            self.emit(
                {
                    "event": "error",
                    "error": error.code,
                    "message": message,
                    "detail": error.detail,
                    "source": None if self.source is None else self.source.label,
                    "gave_up": None if self.gave_up is None else self.gave_up.reason,
                }
            )

    # -- running

    async def guarded(self, body: Callable[[Run], Coroutine[Any, Any, int]]) -> int:
        """Run ``body``; SIGINT/SIGTERM stop it (it finishes its work in ``finally``)."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, AttributeError, RuntimeError):
                loop.add_signal_handler(signum, self._on_signal, signum)
                installed.append(signum)
        try:
            status = await body(self)
        except asyncio.CancelledError:
            if self.signal is None:
                raise
            if self._task is not None:
                self._task.uncancel()
            return 128 + self.signal
        except CameraError as error:
            self.fail(error)
            return EXIT_FAILURE
        finally:
            self._end_progress()
            for signum in installed:
                loop.remove_signal_handler(signum)
        return status if self.signal is None else 128 + self.signal

    def _on_signal(self, signum: int) -> None:
        if self.signal is not None:
            # A second signal while finishing: quit at once, as asked.
            self.err.flush()
            os._exit(128 + signum)
        self.signal = signum
        self.info("stopping (again to quit at once)")
        if self._task is not None:
            self._task.cancel()


async def _open(run: Run, source: Source, config: StreamConfig, **kwargs: Any) -> Pump:
    run.source = source
    run.info(f"opening {source}")
    pump = await open_pump(source, config, **kwargs)
    run.pump = pump
    return pump


# -- watch ----------------------------------------------------------------------------------


class _Taken:
    """What the watch itself took: a count, and hand-off latencies over the last second."""

    def __init__(self) -> None:
        self.frames = 0
        self.gaps = 0
        self._last_sequence: int | None = None
        self._window: deque[tuple[float, float]] = deque()  # (taken at, decode-to-take)

    def add(self, frame: Frame, now: float) -> None:
        self.frames += 1
        self._window.append((now, now - frame.captured_at))
        if self._last_sequence is not None and frame.sequence > self._last_sequence + 1:
            self.gaps += frame.sequence - self._last_sequence - 1
        self._last_sequence = frame.sequence

    def _recent(self, now: float) -> list[float]:
        while self._window and self._window[0][0] < now - 1.0:
            self._window.popleft()
        return [latency for _, latency in self._window]

    def fps(self, now: float) -> float:
        """Frames taken during the last second, as of ``now``."""
        return float(len(self._recent(now)))

    def handoff_p99(self, now: float) -> float | None:
        """The 99th percentile of decode-to-take latency over the last second (seconds)."""
        recent = sorted(self._recent(now))
        if not recent:
            return None
        return recent[min(len(recent) - 1, int(len(recent) * 0.99))]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 100.0:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def live_line(stats: PumpStatistics, event: PumpStatus | None, width: int = LINE_WIDTH) -> str:
    """The live line of ``watch``: figures as of now, then the last event, within ``width``.

    The last event stands for the state (``connected ...``, ``reconnecting #0
    in 0.9 s (stall_timeout_exceeded)``, ``gave up (...)``).  When the line
    would not fit, the count of reconnects goes first (the event then says
    the attempt, the summary the count), then the event is cut short with ``...``.
    """
    head = f"{stats.fps:.0f} fps  age {_age(stats.last_frame_age)}  {stats.frames_dropped} dropped"
    tail = str(event) if event is not None else str(stats.state)
    line = f"{head}  {tail}"
    if stats.reconnects:
        s = "s" if stats.reconnects != 1 else ""
        with_count = f"{head}  {stats.reconnects} reconnect{s}  {tail}"
        if len(with_count) <= width:
            line = with_count
    if len(line) > width:
        line = line[: width - 3] + "..."
    return line


async def _watch(run: Run) -> int:
    args = run.args
    source = source_from_args(args)
    config = config_from_args(args)
    output = output_from_args(args)
    policy = policy_from_args(args)
    taken = _Taken()
    async with await _open(run, source, config, output=output, policy=policy) as pump:
        started = time.monotonic()
        run.info(f"{source} open: {pump.format}")
        try:
            await _watch_frames(run, pump, taken, started)
        finally:
            _watch_summary(run, pump, taken, started)
    return EXIT_OK


async def _next_frame(pump: Pump) -> Frame | None:
    try:
        return await anext(pump)
    except StopAsyncIteration:
        return None


async def _watch_frames(run: Run, pump: Pump, taken: _Taken, started: float) -> None:
    args = run.args
    deadline = math.inf if args.seconds is None else started + args.seconds
    next_report = started + 1.0
    pending: asyncio.Task[Frame | None] | None = None
    try:
        while args.frames is None or taken.frames < args.frames:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_report:
                _watch_report(run, pump, taken, started)
                next_report = max(next_report + 1.0, now + 0.5)
            if pending is None:
                pending = asyncio.create_task(_next_frame(pump))
            wake = min(next_report, deadline)
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, wake - time.monotonic()))
            if pending in done:
                task, pending = pending, None
                frame = task.result()  # raises the pump's error when it failed or gave up
                if frame is None:
                    break  # the source ended
                taken.add(frame, time.monotonic())
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, CameraError):
                await pending


def _watch_report(run: Run, pump: Pump, taken: _Taken, started: float) -> None:
    stats = pump.statistics()
    run.events()
    now = time.monotonic()
    if run.json:
        p99 = taken.handoff_p99(now)
        run.emit(
            {
                "event": "statistics",
                "at": round(time.time(), 3),
                "t": round(now - started, 3),
                "source": str(pump.source),
                "frames": taken.frames,
                "taken_fps": taken.fps(now),
                "handoff_p99_ms": None if p99 is None else round(p99 * 1000, 3),
                "sequence_gaps": taken.gaps,
                **stats.as_dict(),
            }
        )
        return
    line = live_line(stats, run.last_event)
    if run.out.isatty():
        run.out.write("\r" + line + "\x1b[K")
    else:
        run.out.write(line + "\n")
    run.out.flush()


def _watch_summary(run: Run, pump: Pump, taken: _Taken, started: float) -> None:
    run.events()
    stats = pump.statistics()
    seconds = time.monotonic() - started
    if run.json:
        run.emit(
            {
                "event": "summary",
                "at": round(time.time(), 3),
                "seconds": round(seconds, 3),
                "source": str(pump.source),
                "frames": taken.frames,
                "sequence_gaps": taken.gaps,
                **stats.as_dict(),
            }
        )
        return
    if run.out.isatty():
        run.out.write("\n")
    rate = taken.frames / seconds if seconds > 0 else 0.0
    reconnects = f"{stats.reconnects} reconnect{'s' if stats.reconnects != 1 else ''}"
    run.out.write(
        f"{pump.source}: {taken.frames} frames in {seconds:.1f} s ({rate:.1f} fps), "
        f"{stats.frames_dropped} dropped, {reconnects}, {stats.state}\n"
    )
    run.out.flush()


# -- snapshot -------------------------------------------------------------------------------


async def _snapshot(run: Run) -> int:
    args = run.args
    target = Path(args.output)
    if target.suffix.lower() not in IMAGE_CODECS:
        raise UsageError(f"-o must end in {', '.join(IMAGE_CODECS)}, not {target.name!r}")
    if not 1 <= args.quality <= 100:
        raise UsageError("--quality goes from 1 to 100")
    source = source_from_args(args)
    config = config_from_args(args)
    output = output_from_args(args)
    async with await _open(run, source, config, policy=policy_from_args(args)) as pump:
        pump.set_active(False)  # only captures: no per-frame work in between
        started = time.monotonic()
        for index in range(args.count):
            due = started + index * args.interval
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            run.follow_outages(_lost, "back")
            frame = await pump.capture_frame(output=output, timeout=args.timeout)
            run.follow_outages(_lost, "back")
            if frame is None:
                raise _no_frame(pump, index, args.count, args.timeout)
            path = (
                target
                if args.count == 1
                else target.with_name(f"{target.stem}-{index + 1:04d}{target.suffix}")
            )
            save_image(frame, path, quality=args.quality)
            run.data(f"{path} {frame.width}x{frame.height} #{frame.sequence}")
            if run.json:
                run.emit(
                    {
                        "event": "image",
                        "path": str(path),
                        "width": frame.width,
                        "height": frame.height,
                        "sequence": frame.sequence,
                        "keyframe": frame.keyframe,
                        "quality": frame.quality,
                        "pts": frame.pts,
                    }
                )
    return EXIT_OK


def _no_frame(pump: Pump, index: int, count: int, timeout: float) -> CameraError:
    if pump.error is not None:
        return pump.error
    label = pump.source.label
    if pump.state == "ended":
        return CameraError(f"{label}: the source ended after {index} of {count} images")
    return StreamTimeout(f"{label}: no frame within {timeout:g} s (--timeout)")


def _lost(event: Reconnecting) -> str:
    return f"stream lost ({event.reason}); {event}"


# -- record ---------------------------------------------------------------------------------


def _record_target(args: argparse.Namespace) -> Path:
    """The file to record to, checked before anything is opened."""
    target = Path(args.output)
    if target.suffix.lower() not in _CONTAINERS:
        raise UsageError(f"-o must end in {', '.join(sorted(_CONTAINERS))}, not {target.name!r}")
    # With --segment every file gets a time stamp and a name nobody has yet.
    if args.segment is None and not args.overwrite and target.exists():
        raise UsageError(f"{target} exists; add --overwrite to replace it")
    return target


async def _record(run: Run) -> int:
    args = run.args
    target = _record_target(args)
    source = source_from_args(args)
    config = config_from_args(args)
    async with await _open(run, source, config, policy=policy_from_args(args)) as pump:
        # Attach the recorder first, before any await: it starts at the keyframe
        # of the GOP in progress, which is the first one for a file.
        recorder = pump.record(target, segment_seconds=args.segment, audio=not args.no_audio)
        if source.is_live:
            pump.set_active(False)  # recording needs packets, not converted frames
        # A file or pattern stays active, so it plays at its own pace: paused, it
        # would be recorded as fast as it decodes, past any --seconds.
        run.info(f"recording {source} to {target}")
        try:
            await _record_until_done(run, pump, recorder)
        finally:
            await _finish_recording(run, recorder)
        if pump.error is not None:
            raise pump.error
        if args.seconds is not None and recorder.footage_seconds < args.seconds - 0.5:
            run.info(f"{source} ended after {recorder.footage_seconds:.1f} s of footage")
    return EXIT_OK


async def _record_until_done(run: Run, pump: Pump, recorder: Recorder) -> None:
    seconds: float | None = run.args.seconds

    def lost(event: Reconnecting) -> str:
        return (
            f"stream lost ({event.reason}) after {recorder.footage_seconds:.1f} s of footage; "
            "reconnecting"
        )

    while seconds is None or recorder.footage_seconds < seconds:
        if pump.state in ("ended", "failed", "closed") or recorder.error is not None:
            return
        run.follow_outages(lost, "back; recording continues in a new file")
        total = f"/{seconds:g}" if seconds is not None else ""
        files = len(recorder.files) + (0 if run.lost else 1)
        run.progress(
            f"recording {recorder.footage_seconds:5.1f}{total} s of footage  "
            f"{files} file{'s' if files != 1 else ''}  {pump.state}"
        )
        await asyncio.sleep(0.05)


async def _finish_recording(run: Run, recorder: Recorder) -> None:
    """Close the file, then list every file written (also when closing failed)."""
    error: RecordingFailed | None = None
    try:
        await recorder.stop()
    except RecordingFailed as exc:
        error = exc
    files = recorder.files
    for path in files:
        run.data(str(path))
    footage = recorder.footage_seconds
    if run.json:
        run.emit(
            {
                "event": "recorded",
                "files": [str(path) for path in files],
                "footage_seconds": round(footage, 3),
                "outages": recorder.outages,
                "packets": recorder.packets_written,
            }
        )
    elif files:
        outages = f", {recorder.outages} outage{'s' if recorder.outages != 1 else ''}"
        run.info(
            f"recorded {footage:.1f} s of footage in {len(files)} "
            f"file{'s' if len(files) != 1 else ''}{outages if recorder.outages else ''}"
        )
    if error is not None:
        raise error


# -- probe and devices ----------------------------------------------------------------------


async def _probe(run: Run) -> int:
    args = run.args
    source = source_from_args(args)
    run.source = source
    if source.kind == "usb":
        caps = probe(source)
        if run.json:
            modes = [dataclasses.asdict(f) for f in caps.formats]
            run.emit({"event": "probe", "source": str(source), "kind": "usb", "formats": modes})
        else:
            run.data(f"{source}: {caps.summary()}")
            for mode in caps.formats:
                run.data(f"  {mode}")
        return EXIT_OK
    async with await _open(run, source, config_from_args(args), policy=None) as pump:
        fmt = pump.format
    assert fmt is not None  # an open pump has negotiated
    if run.json:
        run.emit(
            {"event": "probe", "source": str(source), "kind": source.kind, "format": fmt.as_dict()}
        )
    else:
        run.data(f"{source}: {fmt}")
    return EXIT_OK


async def _devices(run: Run) -> int:
    devices = list_devices()
    if run.json:
        run.out.write(devices_json(devices) + "\n")
    else:
        run.out.write(devices_table(devices))
    run.out.flush()
    return EXIT_OK


def _runner(body: Callable[[Run], Coroutine[Any, Any, int]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        state = Run(args, sys.stdout, sys.stderr)
        try:
            return asyncio.run(state.guarded(body))
        except asyncio.CancelledError:
            # A signal that came as the work ended cancels the finished task.
            if state.signal is None:
                raise
            return 128 + state.signal

    return run


def _add_serve(commands: Any) -> object:
    """``serve`` comes from camerapump.serve; without the extra, a stub that says so."""
    try:
        from .serve import _cli as serve_cli  # noqa: PLC0415 - an optional extra
    except ImportError as exc:
        parser = commands.add_parser(
            "serve",
            help="serve every SOURCE live in the browser (needs camerapump[serve])",
            description=str(exc),
        )
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(serve_missing=str(exc))
        return parser
    return serve_cli.add_parser(commands)


def _serve(args: argparse.Namespace) -> int:
    missing = getattr(args, "serve_missing", None)
    if missing is not None:
        print(f"camerapump serve: error: {missing}", file=sys.stderr)
        return EXIT_USAGE
    from .serve import _cli as serve_cli  # noqa: PLC0415 - an optional extra

    # It runs its own event loop (uvicorn's) and handles Ctrl-C and SIGTERM itself.
    return serve_cli.run(args)


#: The subcommands, in the order ``--help`` lists them.
COMMANDS: list[Command] = [
    Command("watch", _add_watch, _runner(_watch)),
    Command("snapshot", _add_snapshot, _runner(_snapshot)),
    Command("record", _add_record, _runner(_record)),
    Command("probe", _add_probe, _runner(_probe)),
    Command("devices", _add_devices, _runner(_devices)),
    Command("serve", _add_serve, _serve),
]


def _said_by_the_cli(record: logging.LogRecord) -> bool:
    """Leave out the library's warnings that the CLI gives in its own words.

    The recorder warns of each outage and of a failed file, and the pump of a
    thread left in a blocking open at close; the CLI says the first two itself
    (once, with the footage so far, or as the error line) and exits past the
    third.  ``--debug`` shows them all.
    """
    return not (record.name == "camerapump" and record.module in ("_record", "_pump"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(name)s: %(levelname)s: %(message)s",
    )
    if not args.debug:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_said_by_the_cli)
    run = {command.name: command.run for command in COMMANDS}[args.command]
    try:
        return run(args)
    except UsageError as exc:
        print(f"camerapump {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # where the loop has no signal handlers (Windows)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # stdout was closed (``| head``): nothing more can be said there.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # as a process killed by SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
