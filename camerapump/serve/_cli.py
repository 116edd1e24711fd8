"""``camerapump serve SOURCE [SOURCE ...]``: the live viewer, served by uvicorn.

:func:`add_parser` adds the subcommand to an ``argparse`` subparsers action and
:func:`run` carries it out; ``python -m camerapump.serve`` runs it on its own.
Exit codes as for every ``camerapump`` command: 0 ok (Ctrl-C included), 1 a
runtime failure, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Generator, Sequence
from typing import Any

import anyio
import uvicorn

from .._config import ReconnectPolicy
from .._errors import CameraError
from .._pump import Pump, open_pump
from .._source import Source
from ._app import MAX_WIDTH, MIN_WIDTH, app
from ._auth import LoopbackHostsOnly, check_token, is_loopback
from ._hub import Hub

__all__ = ["add_arguments", "add_parser", "run"]

logger = logging.getLogger("camerapump.serve")

SUMMARY = "serve every SOURCE live in the browser, with snapshot, MJPEG and status endpoints"
EXAMPLES = """\
examples:
  camerapump serve test:                          the test pattern at http://127.0.0.1:8080/
  camerapump serve rtsp://user:pass@192.0.2.10/stream1 /dev/video0 --port 8000
  CAMERAPUMP_TOKEN=s3cret camerapump serve rtsp://192.0.2.10/stream1 --host 0.0.0.0

endpoints: /  /api/cameras  /cameras/I/snapshot.jpg?width=W  /cameras/I/mjpeg
           /cameras/I/events (server-sent events)
"""
#: The environment variable that may hold the token (``ps`` shows a command line).
TOKEN_VARIABLE = "CAMERAPUMP_TOKEN"  # noqa: S105 - a name, not a secret
#: Seconds uvicorn waits for open responses when it stops.
GRACEFUL_SHUTDOWN = 2.0
# A camera that is down when the server starts shows as reconnecting, and comes
# up when it does: a viewer is started before its cameras as often as not.
_POLICY = ReconnectPolicy(retry_initial_open=True)


def _number(kind: type[int] | type[float], low: float, high: float) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}: {text!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` arguments to ``parser``."""
    parser.add_argument(
        "sources",
        metavar="SOURCE",
        nargs="+",
        help="rtsp://..., http://..., a camera index or /dev/videoN, usb:NAME, test:[PATTERN] "
        "or a file",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; any other needs --token)",
    )
    parser.add_argument(
        "--port", type=_number(int, 0, 65535), default=8080, help="TCP port (default 8080)"
    )
    parser.add_argument(
        "--fps",
        type=_number(float, 0.1, 60),
        default=10.0,
        help="pictures a second per stream (default 10)",
    )
    parser.add_argument(
        "--width",
        type=_number(int, MIN_WIDTH, MAX_WIDTH),
        default=640,
        help="picture width (default 640; the height keeps the aspect ratio)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="require this token on every request (Authorization: Bearer TOKEN, "
        f"X-Camerapump-Token or ?token=); default: ${TOKEN_VARIABLE}, which ps does not show",
    )


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to a subparsers action (``parser.add_subparsers()``) and return its parser.

    Args:
        commands: The subparsers action of the ``camerapump`` parser.
    """
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help=SUMMARY,
        description=SUMMARY[0].upper() + SUMMARY[1:] + ".",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


class _UsageError(Exception):
    """A command-line mistake: exit status 2."""


def run(args: argparse.Namespace) -> int:
    """Serve the sources in ``args`` until Ctrl-C (or SIGTERM); returns the exit status.

    Opens one pump per source, serves :func:`camerapump.serve.app` with
    uvicorn, and closes the pumps on the way out.
    """
    try:
        sources = [_parse(text) for text in args.sources]
        token = _token(args)
        sock = _bind(args.host, args.port)
    except (_UsageError, ValueError) as exc:
        _say(f"error: {exc}")
        return 2
    except OSError as exc:
        _say(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return 1
    status = 0
    try:
        with sock, contextlib.suppress(KeyboardInterrupt):
            status = asyncio.run(_serve(sources, sock, args, token))
    except CameraError as exc:
        if getattr(args, "debug", False):
            raise
        _say(f"{type(exc).__name__}: {exc}")
        return 1
    return status


def _say(text: str) -> None:
    sys.stderr.write(f"camerapump: {text}\n")
    sys.stderr.flush()


def _token(args: argparse.Namespace) -> str | None:
    token: str | None = args.token
    if token is None:
        token = os.environ.get(TOKEN_VARIABLE) or None
    if token is not None:
        check_token(token)
    elif not is_loopback(args.host):
        raise _UsageError(
            f"--host {args.host} serves the cameras to other machines: give a token "
            f"(--token TOKEN, or ${TOKEN_VARIABLE}) that every request must carry"
        )
    return token


def _parse(text: str) -> Source:
    try:
        return Source.parse(text)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket of our own: a port in use is a clear error, and --port 0 works."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise _UsageError(f"--host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn, with Ctrl-C and SIGTERM handled on the event loop.

    uvicorn's own handling raises the signal again once it has stopped, which
    would interrupt the pumps' close; here a signal only starts the shutdown,
    and a second Ctrl-C forces it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
                installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            # No loop signal handlers here (Windows, or not the main thread).
            for sig in installed:
                loop.remove_signal_handler(sig)
            with super().capture_signals():
                yield
            return
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


async def _serve(
    sources: Sequence[Source], sock: socket.socket, args: argparse.Namespace, token: str | None
) -> int:
    async with contextlib.AsyncExitStack() as stack:
        pumps: list[Pump] = []
        for source in sources:
            _say(f"opening {source}")
            pumps.append(await stack.enter_async_context(open_pump(source, policy=_POLICY)))
        viewer = app(pumps, token=token, fps=args.fps, width=args.width)
        hub: Hub = viewer.state.camerapump
        local = token is None  # then only requests to a loopback name are answered
        config = uvicorn.Config(
            LoopbackHostsOnly(viewer) if local else viewer,
            log_level="warning",
            access_log=False,  # request lines may carry ?token=
            lifespan="off",
            timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
        )
        server = _Server(config)
        guard = "" if local else "; every request needs the token"
        count = f"{len(pumps)} camera{'s' if len(pumps) != 1 else ''}"
        _say(f"serving {count} at {_url(sock)}{guard} (Ctrl-C stops)")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_end_streams_on_shutdown, server, hub)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
        _say("stopping")
    return 0


async def _end_streams_on_shutdown(server: uvicorn.Server, hub: Hub) -> None:
    """uvicorn waits for open responses when it stops: end the MJPEG and event streams."""
    while not server.should_exit:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await anyio.sleep(0.1)
    hub.close()
