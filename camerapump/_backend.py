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
from typing import TypeVar, cast

import av
import av.codec.context
import av.error
import av.format
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
    "STREAM_READ_TIMEOUT",
    "OpenSpec",
    "check_fps",
    "declared_fps",
    "decoder_threads",
    "guard",
    "invents_timestamps",
    "negotiate",
    "open_input",
    "open_spec",
    "resumes_after_timeout",
    "translate",
    "upright_size",
]

logger = logging.getLogger("camerapump")

#: PyAV's read timeout on RTSP and capture devices.  It bounds every blocking
#: read (PyAV raises ExitError after about twice this), so the decode thread
#: notices a stop or a stall-abort within about half a second; a quiet stream
#: simply resumes reading on the same container.
READ_POLL = 0.25
#: The read timeout of a stream URL (HTTP, RTMP, HLS, UDP, TCP) unless the pump
#: says otherwise (its stall timeout).  These formats read through FFmpeg's
#: AVIOContext, which an interrupted read leaves at end-of-file for good
#: (measured: a TCP MPEG-TS stream quiet for 1.5 s raised ExitError at once on
#: every read after, 700 000 times in 6 s), so a read timeout there ends the
#: session; it must outlast the quiet moments of a healthy stream: a 1 fps
#: camera, the wait for the next HLS segment.
STREAM_READ_TIMEOUT = 15.0
DEFAULT_TEST_SIZE = (640, 480)
DEFAULT_TEST_FPS = 30.0
# An fps request matches a stream within this relative tolerance (29.97 vs 30);
# a rate measured over a second of frames (arrival jitter, a dropped frame) gets more.
_FPS_TOLERANCE = 0.02
_MEASURED_FPS_TOLERANCE = 0.1

T = TypeVar("T")
# AVFMT_NOTIMESTAMPS (PyAV's stubs type the flag's value as the flag itself).
_NO_TIMESTAMPS = cast(int, av.format.Flags.no_timestamps.value)
_NOFILE = cast(int, av.format.Flags.no_file.value)

#: Open options that cut a network stream's probing short.
FAST_PROBE = {"analyzeduration": "100000", "probesize": "32"}
#: The probe of an FLV (RTMP) stream whose short probe saw no video: read until
#: the video stream shows up (FFmpeg stops once every stream the FLV header
#: announced is there), without waiting for frames to guess a rate from.
FLV_VIDEO_PROBE = {"fpsprobesize": "0", "analyzeduration": "5000000"}
#: RTSP "auto": FFmpeg's own fallback, TCP first and UDP when the server answers
#: "461 Unsupported transport" to the TCP SETUP, on the same RTSP connection.
#: (A second connection over UDP right after a refused TCP SETUP was answered
#: with 5XX by gst-rtsp-server one time in two, measured.)
RTSP_AUTO = {"rtsp_transport": "tcp+udp", "rtsp_flags": "prefer_tcp"}


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
    if isinstance(exc, av.error.ProtocolNotFoundError):
        scheme = label.partition("://")[0]
        return FormatNotSupported(
            f"{label}: the FFmpeg inside PyAV has no {scheme} protocol (PyAV's wheels have "
            "no srt://; a PyAV built on a system FFmpeg with it does)",
            detail=detail,
        )
    if source.kind == "rtsp" and code == errno.EPROTONOSUPPORT:
        # FFmpeg's answer to "461 Unsupported transport".
        return ConnectionFailed(_transport_refused(source), detail=detail)
    # Specific HTTP/RTSP answers first: they are also generic FFmpegErrors.
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        if not source.secrets:
            return AuthenticationFailed(
                f"{label}: the server asks for credentials (none were given)", detail=detail
            )
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


def _transport_refused(source: Source) -> str:
    """The message for an RTSP server that refused the transport asked for."""
    label = source.label
    if source.transport == "tcp":
        return (
            f"{label}: the server does not send RTP over TCP (461 Unsupported transport); "
            "it may offer UDP: use transport='auto' (the default) or 'udp'"
        )
    if source.transport == "udp":
        return (
            f"{label}: the server does not send RTP over UDP (461 Unsupported transport); "
            "it may offer TCP: use transport='auto' (the default) or 'tcp'"
        )
    return f"{label}: the server offers neither RTP over TCP nor over UDP"


def open_spec(
    source: Source,
    config: StreamConfig,
    *,
    probe: dict[str, str] | None = None,
    read_timeout: float | None = None,
) -> OpenSpec:
    """Work out how to open ``source`` with PyAV for ``config``.

    Args:
        source: What to open.
        config: What to ask for.
        probe: For a network stream, probe options instead of the short probe
            (:data:`FAST_PROBE`).
        read_timeout: For a stream URL, how long a read may wait for data
            (:data:`STREAM_READ_TIMEOUT` if ``None``); RTSP and devices poll
            with :data:`READ_POLL`.
    """
    if source.kind in ("rtsp", "stream"):
        url = str(source.target)
        options: dict[str, str] = {}
        if source.kind == "rtsp":
            if source.transport == "auto":
                options.update(RTSP_AUTO)
            else:
                options["rtsp_transport"] = source.transport
            if source.transport != "tcp":
                options["buffer_size"] = str(4 * 1024 * 1024)  # fewer UDP losses at 1080p bursts
        else:
            options.update(_stream_options(url))
        # Probe as little as possible: the SDP or the first packets name the
        # streams, and the first decoded picture tells the size (Worker.open),
        # also where an audio track hides it from the probe.  Measured on
        # loopback (docs/benchmarks.md, tests/SERVERS.md), time to first frame:
        # RTSP H.264 1.0 s -> 0.12 s (with AAC or G.711 the same), MJPEG 0.73 s
        # -> 0.07 s, RTMP 5.2 s -> 0.28 s.  fflags=nobuffer made it slower
        # (1.1 s: it drops the keyframe read while probing).
        options.update(FAST_PROBE if probe is None else probe)
        options.update(dict(source.options))
        read = READ_POLL if source.kind == "rtsp" else (read_timeout or STREAM_READ_TIMEOUT)
        return OpenSpec(url, None, options, (source.open_timeout, read))
    if source.kind == "usb":
        return _usb_spec(source, config)
    if source.kind == "test":
        width, height = (config.width, config.height) if config.width else DEFAULT_TEST_SIZE
        fps = config.fps or DEFAULT_TEST_FPS
        return OpenSpec(f"{source.target}=size={width}x{height}:rate={fps:g}", "lavfi", {}, None)
    return OpenSpec(str(source.target), None, {}, None)


def open_input(
    source: Source, config: StreamConfig, *, read_timeout: float | None = None
) -> tuple[InputContainer, VideoStream]:
    """Open ``source`` and pick its first video stream (on the decode thread).

    ``read_timeout`` is a stream URL's (see :func:`open_spec`).

    One connection per open, with one exception: an FLV stream (RTMP) that
    sends its audio first (nginx-rtmp does) shows the short probe no video
    stream at all, and PyAV cannot pick up a stream that appears later; it is
    opened once more with a probe that waits for the video.  FFmpeg's own
    RTMP server, which serves one client only, sends the video first.

    Raises:
        CameraError: The typed error for whatever went wrong; the container is
            closed again if it was opened.
    """
    try:
        return _open_input(source, config, None, read_timeout)
    except _NoVideoYet:
        logger.debug("%s: the short probe saw only audio; probing for the video", source.label)
        return _open_input(source, config, FLV_VIDEO_PROBE, read_timeout)


class _NoVideoYet(FormatNotSupported):
    """An FLV stream whose short probe saw no video stream (yet)."""


def _open_input(
    source: Source,
    config: StreamConfig,
    probe: dict[str, str] | None,
    read_timeout: float | None,
) -> tuple[InputContainer, VideoStream]:
    if source.kind == "file" and not os.path.exists(str(source.target)):
        raise DeviceNotFound(f"{source.label}: no such file")
    spec = open_spec(source, config, probe=probe, read_timeout=read_timeout)
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
        flv = container.format.name == "flv"
        container.close()
        if flv and probe is None and source.kind == "stream":
            raise _NoVideoYet(f"{source.label}: no video stream yet")
        raise FormatNotSupported(f"{source.label}: the source has no video stream")
    stream = container.streams.video[0]
    cc = stream.codec_context
    # Slice threads, FFmpeg's default, unless a paced source's picture is small
    # enough for the decode thread alone (decoder_threads).  Frame threading
    # ("AUTO") was 16 % slower on 2 cores, where the bgr24 conversion competes for
    # the same cores (docs/benchmarks.md).
    threads = decoder_threads(source, cc.width, cc.height)
    if threads is not None:
        cc.thread_count = threads
    if source.is_live:
        cc.flags |= av.codec.context.Flags.low_delay  # no frame held back for reordering
    return container, stream


#: The most pixels a paced source's picture has to decode on its decode thread alone (1080p).
SINGLE_THREAD_DECODE_PIXELS = 1920 * 1088


def decoder_threads(source: Source, width: int, height: int) -> int | None:
    """The decoder's thread count for ``source``, or None for FFmpeg's choice.

    A paced source (a camera, a stream, a file played at its own rate) whose
    picture has at most 1920x1088 pixels decodes on the decode thread alone.  FFmpeg's
    slice threads (one per core, plus one) only split pictures that were encoded
    in several slices, and for those they cost CPU to wake: measured on 2 cores,
    H.264 with 4 slices took 5 to 8 % more CPU a picture with them (720p 2.06
    against 1.89 ms, 1080p 4.38 against 4.11 ms) for 0.2 to 0.6 ms less wall time,
    and a single-slice stream, as most cameras send, the same either way.  A
    paced decode thread has the time: a 1080p picture takes a few ms of a 33 ms
    frame interval.  Larger pictures, a size not known at open, and files read
    as fast as they decode (``realtime=False``, where wall time is the figure)
    keep FFmpeg's threads.
    """
    if not source.processed and 0 < width * height <= SINGLE_THREAD_DECODE_PIXELS:
        return 1
    return None


def resumes_after_timeout(container: InputContainer) -> bool:
    """Whether ``container`` can be read on after a read timed out (:data:`STREAM_READ_TIMEOUT`).

    Formats that do their own I/O (``AVFMT_NOFILE``: RTSP, v4l2 and the other
    capture devices, lavfi) resume; formats read through an AVIOContext do not.
    """
    return bool(container.format.flags & _NOFILE)


def invents_timestamps(container: InputContainer) -> bool:
    """Whether the container's timestamps are FFmpeg's inventions, not the source's.

    Formats flagged ``AVFMT_NOTIMESTAMPS`` (mpjpeg, raw H.264 or MJPEG) carry
    none; FFmpeg numbers their packets at a guessed rate (25 fps), so a 10 fps
    MJPEG camera would seem to run 2.5 times too slow.
    """
    return bool(container.format.flags & _NO_TIMESTAMPS)


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
    tolerance = _MEASURED_FPS_TOLERANCE if fmt.fps_measured else _FPS_TOLERANCE
    if abs(fmt.fps - config.fps) > tolerance * config.fps:
        raise FormatNotSupported(
            f"{source.label}: asked for {config.fps:g} fps, but the source gives "
            f"{fmt.width}x{fmt.height} at {'about ' if fmt.fps_measured else ''}{fmt.fps:g} fps "
            f"({fmt.codec})"
            + (
                f"; for fewer frames a second, ask for output=cp.Output(max_fps={config.fps:g}) "
                "instead"
                if config.fps < fmt.fps
                else ""
            )
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
        wants = []
        if config.width is not None:
            wants.append(f"width={config.width}, height={config.height}")
        if config.fps is not None and fps is not None and config.fps < fps:
            wants.append(f"max_fps={config.fps:g}")  # a rate limit gives fewer, never more
        if wants:
            hint = (
                "; for resized or fewer frames from this source, leave StreamConfig open and "
                f"ask for output=cp.Output({', '.join(wants)})"
            )
        raise FormatNotSupported(
            f"{source.label}: asked for {' and '.join(problems)}, but the source gives "
            f"{width}x{height} at {fps_text} ({cc.name}){hint}"
        )
    return got
