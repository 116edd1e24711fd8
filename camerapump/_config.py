"""Plain data that configures a pump: what to ask for, what was got, how to recover."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PIXEL_CHANNELS",
    "PIXEL_FORMATS",
    "PixelFormat",
    "ReconnectPolicy",
    "StreamConfig",
    "StreamFormat",
    "backoff_delay",
]

PixelFormat = Literal["bgr24", "rgb24", "gray", "bgra", "rgba"]
#: The one table of delivered pixel formats: name -> channels per pixel.  The
#: names are FFmpeg's, so they go to swscale (and PyAV's encoders) as they are.
PIXEL_CHANNELS: dict[str, int] = {"bgr24": 3, "rgb24": 3, "gray": 1, "bgra": 4, "rgba": 4}
#: The pixel formats a delivered :class:`~camerapump.Frame` can have.
PIXEL_FORMATS: tuple[str, ...] = tuple(PIXEL_CHANNELS)


def is_positive_number(value: object) -> bool:
    """True for a finite int or float above 0 (not a bool): a duration, a rate."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{name} must be a positive whole number of pixels or None, not {value!r}")


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """What the caller asks of a source.  ``None`` means "whatever the source gives".

    Requests are explicit: a source that cannot honour one fails with
    :class:`~camerapump.FormatNotSupported` naming what it really gives; nothing is
    silently substituted.

    Attributes:
        width: Frame width in pixels (together with ``height``).
        height: Frame height in pixels (together with ``width``).
        fps: Frames per second.
        pixel_format: Layout of the delivered array: ``bgr24`` (the default, as
            OpenCV), ``rgb24``, ``gray``, ``bgra`` or ``rgba``.
        input_format: What a USB camera sends on the wire (``"mjpeg"``,
            ``"yuyv422"``, ``"h264"``); ``None`` leaves it to the driver.
        negotiation: How a USB request meets the camera's modes: ``"exact"``
            (the default) fails with :class:`~camerapump.FormatNotSupported`
            listing the closest modes; ``"nearest"`` takes the closest mode
            (see :func:`~camerapump.best_format`).  Other sources ignore it.
        autorotate: Turn pictures upright where the stream says it is rotated
            (a display matrix, as phones and dashcams write), as the ffmpeg
            command line does; ``False`` delivers them as stored.
    """

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    pixel_format: PixelFormat = "bgr24"
    input_format: str | None = None
    negotiation: Literal["exact", "nearest"] = "exact"
    autorotate: bool = True

    def __post_init__(self) -> None:
        _check_size("width", self.width)
        _check_size("height", self.height)
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together: give both or neither")
        if self.fps is not None and not (is_positive_number(self.fps) and self.fps <= 1000):
            raise ValueError(
                f"fps must be a number above 0 and at most 1000, or None, not {self.fps!r}"
            )
        if self.pixel_format not in PIXEL_FORMATS:
            raise ValueError(
                f"pixel_format must be one of {', '.join(PIXEL_FORMATS)}, not {self.pixel_format!r}"
            )
        if self.input_format is not None and (
            not isinstance(self.input_format, str) or not self.input_format.strip()
        ):
            raise ValueError("input_format must be a non-empty FFmpeg format name or None")
        if self.negotiation not in ("exact", "nearest"):
            raise ValueError(f"negotiation must be 'exact' or 'nearest', not {self.negotiation!r}")
        if not isinstance(self.autorotate, bool):
            # ValueError, like every other bad field of plain data here.
            raise ValueError(f"autorotate must be True or False, not {self.autorotate!r}")  # noqa: TRY004


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """What was actually negotiated with a source.

    Attributes:
        width: Frame width in pixels (of the upright picture, where the stream
            declares a rotation).
        height: Frame height in pixels.
        fps: Frames per second: the stream's own average rate where the
            container knows it, else the rate measured over the first second
            of frames (see ``fps_measured``), else ``None``.
        pixel_format: Layout of the delivered arrays (see :class:`StreamConfig`).
        codec: The source's codec (``"h264"``, ``"mjpeg"``, ``"rawvideo"``, ...).
        fps_measured: True when ``fps`` was measured, not declared.
    """

    width: int
    height: int
    fps: float | None
    pixel_format: PixelFormat
    codec: str
    fps_measured: bool = False

    def as_dict(self) -> dict[str, object]:
        """The format as JSON-ready data."""
        return {
            "width": self.width,
            "height": self.height,
            "fps": None if self.fps is None else round(self.fps, 3),
            "fps_measured": self.fps_measured,
            "pixel_format": self.pixel_format,
            "codec": self.codec,
        }

    def __str__(self) -> str:
        fps = "?" if self.fps is None else f"{self.fps:g}"
        if self.fps_measured:
            fps = "~" + fps
        return f"{self.width}x{self.height}@{fps} {self.codec}->{self.pixel_format}"


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How a pump recovers a live source (RTSP or USB) that failed or stalled.

    Attributes:
        initial_backoff: Seconds before the first reconnect attempt.
        max_backoff: The most seconds between two attempts.
        max_attempts: Attempts in a row before giving up; ``None`` never gives up.
        jitter: Spread each delay by up to this fraction of itself (0..1), so
            that many cameras do not reconnect in lock-step.
        stall_timeout: Seconds without a frame (while active) before the
            session is torn down and re-opened.
        retry_initial_open: Retry a failing first open too, instead of raising
            from :func:`~camerapump.open_pump` (a service that starts before its cameras).
    """

    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    max_attempts: int | None = None
    jitter: float = 0.2
    stall_timeout: float = 15.0
    retry_initial_open: bool = False

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "max_backoff"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 0
        ):
            raise ValueError("max_attempts must be a whole number >= 0, or None for no limit")
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter!r}")
        if not is_positive_number(self.stall_timeout):
            raise ValueError(
                f"stall_timeout must be a positive number of seconds, not {self.stall_timeout!r}"
            )


def backoff_delay(attempt: int, policy: ReconnectPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (zero-based, like ``Reconnecting``).

    ``min(max_backoff, initial_backoff * 2**attempt)``, then spread uniformly by
    ``± jitter`` of itself.  Safe for any attempt number: the exponent is capped
    before it can overflow a float.

    Args:
        attempt: The attempt's number: 0 for the first retry after a failure,
            which waits ``initial_backoff``.
        policy: The policy that gives the numbers.
        rng: The random source for the jitter (a seeded one in tests).
    """
    if attempt < 0:
        raise ValueError("attempt counts from 0")
    # 2**62 * any sane initial_backoff is far past max_backoff; capping keeps it finite.
    base = min(policy.max_backoff, policy.initial_backoff * float(2 ** min(attempt, 62)))
    if policy.jitter == 0 or base == 0:
        return base
    spread = (rng or random).uniform(-policy.jitter, policy.jitter)
    return max(0.0, base * (1.0 + spread))
