"""Everything that touches PyAV's open and error surface, in one place.

This is the boundary: PyAV errors are translated to :class:`CameraError` here
and nowhere else, with messages built from the redacted source label, and the
raw PyAV exception is never chained (its text carries the full URL, password
included).  Every function here runs on the pump's decode thread.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import av.codec.context
import av.error
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from ._config import StreamConfig, StreamFormat
from ._convert import upright_rotation
from ._errors import (
    AuthenticationFailed,
    CameraError,
    ConnectionFailed,
    DeviceBusy,
    DeviceNotFound,
    FormatNotSupported,
    PermissionDenied,
    StreamTimeout,
)
from ._redact import redact_text
from ._source import Source

__all__ = [
    "DEFAULT_TEST_FPS",
    "DEFAULT_TEST_SIZE",
    "READ_POLL",
    "OpenSpec",
    "check_fps",
    "declared_fps",
    "guard",
    "negotiate",
    "open_input",
    "open_spec",
    "translate",
    "upright_size",
]

logger = logging.getLogger("camerapump")

#: PyAV's read timeout on live sources.  It bounds every blocking read (PyAV
#: raises ExitError after about twice this), so the decode thread notices a
#: stop or a stall-abort within about half a second; a quiet stream simply
#: resumes reading on the same container.
READ_POLL = 0.25
DEFAULT_TEST_SIZE = (640, 480)
DEFAULT_TEST_FPS = 30.0
# An fps request matches a stream within this relative tolerance (29.97 vs 30).
_FPS_TOLERANCE = 0.02

T = TypeVar("T")

#: Open options that cut a network stream's probing short.
FAST_PROBE = {"analyzeduration": "100000", "probesize": "32"}


def translate(exc: BaseException, source: Source, stage: str) -> CameraError:
    """Map an exception raised by PyAV (or the OS under it) to a typed :class:`CameraError`.

    Args:
        exc: What PyAV raised.
        source: The source, for a redacted label and the secrets to strip.
        stage: ``"open"`` or ``"read"``, for the message.

    Returns:
        A new error whose message and ``detail`` hold no credentials.  Callers
        raise it outside their ``except`` block so that the raw exception is
        not kept as ``__context__``.
    """
    if isinstance(exc, CameraError):
        return exc
    detail = redact_text(f"{type(exc).__name__}: {exc}", source.secrets)
    label = source.label
    code = getattr(exc, "errno", None)
    # Specific HTTP/RTSP answers first: they are also generic FFmpegErrors.
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return AuthenticationFailed(f"{label}: the server rejected the credentials", detail=detail)
    if isinstance(exc, av.error.HTTPNotFoundError):
        return ConnectionFailed(f"{label}: the server has no such stream (404)", detail=detail)
    if isinstance(exc, av.error.HTTPError | av.error.HTTPClientError):
        return ConnectionFailed(f"{label}: the server refused the request", detail=detail)
    if (
        isinstance(exc, av.error.ExitError)
        or code == errno.ETIMEDOUT
        or isinstance(exc, TimeoutError)
    ):
        return StreamTimeout(f"{label}: no data in time during {stage}", detail=detail)
    if isinstance(exc, FileNotFoundError) or code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        what = "file" if source.kind == "file" else "device"
        return DeviceNotFound(f"{label}: no such {what}", detail=detail)
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{label}: permission denied", detail=detail)
    if code == errno.EBUSY:
        return DeviceBusy(f"{label}: the device is busy (another program holds it)", detail=detail)
    if isinstance(exc, ConnectionError) or code in (
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EPIPE,
        errno.ECONNABORTED,
    ):
        return ConnectionFailed(f"{label}: connection failed during {stage}", detail=detail)
    if source.traits.network:
        # Garbage answers, a handshake that broke off, name resolution: for a
        # network source all of these mean the stream could not be had.
        return ConnectionFailed(
            f"{label}: the stream could not be read during {stage}", detail=detail
        )
    if isinstance(exc, av.error.InvalidDataError | av.error.EOFError):
        return FormatNotSupported(f"{label}: not a readable video stream", detail=detail)
    return CameraError(f"{label}: {stage} failed", detail=detail)


def guard(source: Source, stage: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` and translate anything PyAV raises; the one boundary for PyAV calls."""
    error: CameraError | None = None
    try:
        return fn()
    except (av.error.FFmpegError, OSError) as exc:
        error = translate(exc, source, stage)
    # Raised here, outside the except block: the raw exception (whose text holds
    # the URL with its password) must not ride along as __context__.
    raise error


@dataclass(frozen=True, slots=True)
class OpenSpec:
    """The arguments of ``av.open`` for one source and config."""

    file: str
    format: str | None
    options: dict[str, str]
    timeout: tuple[float, float] | None


def _usb_spec(source: Source, config: StreamConfig) -> OpenSpec:
    options: dict[str, str] = {}
    if config.width is not None:
        options["video_size"] = f"{config.width}x{config.height}"
    if config.fps is not None:
        options["framerate"] = f"{config.fps:g}"
    backend = source.backend or "v4l2"
    device = source.target
    if backend == "v4l2":
        if config.input_format:
            options["input_format"] = config.input_format
        path = f"/dev/video{device}" if isinstance(device, int) else str(device)
        if not path.startswith("/dev/"):
            path = _v4l2_path_by_name(path)
        return OpenSpec(path, "v4l2", options, (5.0, READ_POLL))
    if backend == "avfoundation":
        if config.input_format:
            options["pixel_format"] = config.input_format
        # "N" is a video device index, ":none" says no audio device.
        return OpenSpec(f"{device}:none", "avfoundation", options, (5.0, READ_POLL))
    # dshow: devices are opened by name; an index is resolved through enumeration.
    if config.input_format in ("mjpeg", "h264"):
        options["vcodec"] = config.input_format
    elif config.input_format:
        options["pixel_format"] = config.input_format
    options.setdefault("rtbufsize", "16M")  # bounded: dshow buffers up to this much
    name = _dshow_name(device) if isinstance(device, int) else str(device)
    return OpenSpec(f"video={name}", "dshow", options, (5.0, READ_POLL))


def _v4l2_path_by_name(name: str) -> str:
    """Find the /dev/videoN whose sysfs name is ``name`` (Linux)."""
    for node in sorted(Path("/sys/class/video4linux").glob("video*")):
        try:
            if (node / "name").read_text().strip() == name:
                return f"/dev/{node.name}"
        except OSError:
            continue
    return name  # FFmpeg reports it as missing, which we map to DeviceNotFound


def _dshow_name(index: int) -> str:
    enumerate_devices = getattr(av, "enumerate_input_devices", None)
    names: list[str] = []
    if enumerate_devices is not None:
        try:
            names = [
                d.name for d in enumerate_devices("dshow") if not getattr(d, "is_audio", False)
            ]
        except (av.error.FFmpegError, OSError, ValueError):
            names = []
    if index >= len(names):
        raise DeviceNotFound(f"usb:{index}: no such device ({len(names)} video devices found)")
    return names[index]


def _stream_options(url: str) -> dict[str, str]:
    """FFmpeg options that fit each stream protocol (other than RTSP)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        # MJPEG cameras and HLS: a dropped HTTP connection is our reconnect's
        # business, not FFmpeg's (its own retries would hide a dead camera).
        return {"reconnect": "0", "multiple_requests": "1"}
    if scheme == "udp":
        # A bigger socket buffer loses fewer datagrams at 1080p bursts; overrun
        # reports instead of stopping.
        return {"buffer_size": str(4 * 1024 * 1024), "overrun_nonfatal": "1", "fifo_size": "100000"}
    if scheme == "srt":
        return {"latency": "120000"}
    return {}


def _short_probe(scheme: str) -> bool:
    """Whether the short probe finds the video stream of this protocol.

    RTMP (FLV) announces its streams as packets come; with a short probe an
    audio packet first hides the video stream altogether (measured against
    nginx-rtmp with AAC), so FLV is probed as long as FFmpeg likes.
    """
    return scheme not in ("rtmp", "rtmps")


def open_spec(source: Source, config: StreamConfig, *, transport: str | None = None) -> OpenSpec:
    """Work out how to open ``source`` with PyAV for ``config``.

    Args:
        source: What to open.
        config: What to ask for.
        transport: For RTSP, the transport of this try (``tcp`` or ``udp``);
            ``None`` takes the source's own (``auto`` tries TCP first).
    """
    if source.kind in ("rtsp", "stream"):
        url = str(source.target)
        scheme = url.split("://", 1)[0].lower()
        options: dict[str, str] = {}
        if source.kind == "rtsp":
            chosen = transport or ("tcp" if source.transport == "auto" else source.transport)
            options["rtsp_transport"] = chosen
            if chosen == "udp":
                options["buffer_size"] = str(4 * 1024 * 1024)  # fewer losses at 1080p bursts
        else:
            options.update(_stream_options(url))
        if _short_probe(scheme):
            # Probe as little as possible: the SDP or the first packets name the
            # stream, and the first decoded picture tells its size (see
            # Worker.open), so no second, fully probed open is ever needed.
            # Measured on loopback (docs/benchmarks.md), time to first frame:
            # H.264 1.0 s -> 0.12 s, MJPEG 0.73 s -> 0.07 s.  fflags=nobuffer
            # made it slower (1.1 s: it drops the keyframe read while probing).
            options.update(FAST_PROBE)
        options.update(dict(source.options))
        return OpenSpec(url, None, options, (source.open_timeout, READ_POLL))
    if source.kind == "usb":
        return _usb_spec(source, config)
    if source.kind == "test":
        width, height = (config.width, config.height) if config.width else DEFAULT_TEST_SIZE
        fps = config.fps or DEFAULT_TEST_FPS
        return OpenSpec(f"{source.target}=size={width}x{height}:rate={fps:g}", "lavfi", {}, None)
    return OpenSpec(str(source.target), None, {}, None)


def _transport_refused(error: CameraError) -> bool:
    """Whether an RTSP open over TCP failed in a way that UDP may cure.

    RTSP over UDP still talks RTSP over TCP, so a refused or unreachable
    server, a wrong password, a missing path or a silent server fail the same
    way on both; what UDP cures is a server that offers no TCP transport
    ("461 Unsupported transport"), which FFmpeg reports as a failed read.
    """
    if type(error) is not ConnectionFailed:
        return False
    detail = (error.detail or "").lower()
    return not any(
        word in detail for word in ("refused", "unreachable", "404", "not found", "reset")
    )


def open_input(source: Source, config: StreamConfig) -> tuple[InputContainer, VideoStream]:
    """Open ``source`` and pick its first video stream (on the decode thread).

    An RTSP source with ``transport="auto"`` that TCP cannot open (a server
    that offers only UDP answers "461 Unsupported transport") is tried once
    more over UDP.

    Raises:
        CameraError: The typed error for whatever went wrong; the container is
            closed again if it was opened.
    """
    if source.kind == "rtsp" and source.transport == "auto":
        try:
            return _open_input(source, config, "tcp")
        except CameraError as error:
            if not _transport_refused(error):
                raise
            logger.debug("%s: TCP failed (%s); trying UDP", source.label, error)
            try:
                return _open_input(source, config, "udp")
            except CameraError as second:
                if isinstance(second, type(error)):
                    # Neither transport worked: say so, with the first answer's detail.
                    raise type(error)(f"{error}; UDP failed as well", detail=error.detail) from None
                raise
    return _open_input(source, config, None)


def _open_input(
    source: Source, config: StreamConfig, transport: str | None
) -> tuple[InputContainer, VideoStream]:
    if source.kind == "file" and not os.path.exists(str(source.target)):
        raise DeviceNotFound(f"{source.label}: no such file")
    spec = open_spec(source, config, transport=transport)
    if spec.format == "v4l2" and not os.path.exists(spec.file):
        raise DeviceNotFound(f"{source.label}: no such device ({spec.file} does not exist)")
    logger.debug("opening %s (format=%s)", source.label, spec.format)

    def _open() -> InputContainer:
        return av.open(
            spec.file, mode="r", format=spec.format, options=spec.options, timeout=spec.timeout
        )

    started = time.monotonic()
    try:
        container = guard(source, "open", _open)
    except CameraError as error:
        if spec.timeout is not None and time.monotonic() - started >= spec.timeout[0] * 0.95:
            # FFmpeg reports a server that never answered as "invalid data" once
            # our interrupt fires; what the user needs to hear is the timeout.
            raise StreamTimeout(
                f"{source.label}: no answer within the open timeout ({spec.timeout[0]:g} s)",
                detail=error.detail,
            ) from None
        raise
    if not container.streams.video:
        container.close()
        raise FormatNotSupported(f"{source.label}: the source has no video stream")
    stream = container.streams.video[0]
    cc = stream.codec_context
    # FFmpeg's default decoder threading (slice threads) is kept for files too:
    # frame threading ("AUTO") was 16 % slower on 2 cores, where the bgr24
    # conversion competes for the same cores (docs/benchmarks.md).
    if source.is_live:
        cc.flags |= av.codec.context.Flags.low_delay  # no frame held back for reordering
    return container, stream


def declared_fps(stream: VideoStream) -> float | None:
    """The stream's own average frame rate, where the container knows it.

    Only ``average_rate``: the "base" or "guessed" rates double a 25 fps H.264
    stream that declares no rate (field timing: 50), and an RTP clock leaks
    into them as 90000.  A stream without one is measured (see the worker).
    """
    rate = stream.average_rate
    if rate is None or rate <= 0:
        return None
    fps = float(rate)
    return fps if fps <= 1000 else None


def upright_size(vframe: VideoFrame, autorotate: bool) -> tuple[int, int]:
    """The size of ``vframe`` as shown: turned upright where its display matrix says so."""
    if autorotate and upright_rotation(vframe) in (90, 270):
        return vframe.height, vframe.width
    return vframe.width, vframe.height


def check_fps(source: Source, config: StreamConfig, fmt: StreamFormat) -> None:
    """Check a requested frame rate against what the stream gives (declared or measured).

    Raises:
        FormatNotSupported: The stream's rate is not the one asked for.
    """
    if config.fps is None or fmt.fps is None:
        return
    if abs(fmt.fps - config.fps) > _FPS_TOLERANCE * config.fps:
        raise FormatNotSupported(
            f"{source.label}: asked for {config.fps:g} fps, but the source gives "
            f"{fmt.width}x{fmt.height} at {'about ' if fmt.fps_measured else ''}{fmt.fps:g} fps "
            f"({fmt.codec}); for fewer frames a second, ask for "
            f"output=cp.Output(max_fps={config.fps:g}) instead"
        )


def negotiate(
    source: Source, config: StreamConfig, stream: VideoStream, first: VideoFrame
) -> StreamFormat:
    """Check what the opened stream gives (its first picture) against what ``config`` asked for.

    A live stream that declares no frame rate is measured over its first
    second; the rate is then checked (:func:`check_fps`) when it is known.

    Raises:
        FormatNotSupported: A requested size or rate that the source does not
            deliver, naming what it does deliver and how to get resized or
            decimated frames instead.
    """
    cc = stream.codec_context
    width, height = upright_size(first, config.autorotate)
    fps = declared_fps(stream)
    if source.kind == "test":
        fps = float(config.fps or DEFAULT_TEST_FPS)
    got = StreamFormat(width, height, fps, config.pixel_format, cc.name or "unknown")
    problems: list[str] = []
    if config.width is not None and (width, height) != (config.width, config.height):
        problems.append(f"size {config.width}x{config.height}")
    if config.fps is not None and (
        (fps is None and not source.is_live)
        or (fps is not None and abs(fps - config.fps) > _FPS_TOLERANCE * config.fps)
    ):
        problems.append(f"{config.fps:g} fps")
    if config.input_format is not None and source.kind == "usb":
        wire = (cc.name or "", cc.format.name if cc.format else "")
        if config.input_format not in wire and not (
            config.input_format == "mjpeg" and cc.name == "mjpeg"
        ):
            problems.append(f"input format {config.input_format}")
    if problems:
        fps_text = "unknown fps" if fps is None else f"{fps:g} fps"
        hint = ""
        if config.width is not None or config.fps is not None:
            wants = []
            if config.width is not None:
                wants.append(f"width={config.width}, height={config.height}")
            if config.fps is not None:
                wants.append(f"max_fps={config.fps:g}")
            hint = (
                "; for resized or fewer frames from this source, leave StreamConfig open and "
                f"ask for output=cp.Output({', '.join(wants)})"
            )
        raise FormatNotSupported(
            f"{source.label}: asked for {' and '.join(problems)}, but the source gives "
            f"{width}x{height} at {fps_text} ({cc.name}){hint}"
        )
    return got
