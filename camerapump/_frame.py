"""The unit of delivery: :class:`Frame`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._config import PixelFormat

__all__ = ["Frame"]

_CHANNELS: dict[str, int] = {"bgr24": 3, "rgb24": 3, "gray": 1, "bgra": 4, "rgba": 4}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture.

    Attributes:
        data: ``numpy.uint8`` array, ``(height, width, 3)`` for bgr24/rgb24,
            ``(height, width, 4)`` for bgra/rgba, ``(height, width)`` for gray.
        width: Width in pixels.
        height: Height in pixels.
        pixel_format: The layout of ``data``.
        sequence: Counts every frame this pump decoded, from 0, across
            reconnects; a gap means frames were decoded but not delivered (a
            slow consumer, or a pause).
        pts: Presentation time in seconds as the source stamped it, or ``None``.
        captured_at: ``time.monotonic()`` when decoding finished.
    """

    data: npt.NDArray[np.uint8]
    width: int
    height: int
    pixel_format: PixelFormat
    sequence: int
    pts: float | None
    captured_at: float

    def __post_init__(self) -> None:
        channels = _CHANNELS.get(self.pixel_format)
        if channels is None:
            raise ValueError(f"unknown pixel_format {self.pixel_format!r}")
        expected: tuple[int, ...] = (
            (self.height, self.width) if channels == 1 else (self.height, self.width, channels)
        )
        if self.data.shape != expected or self.data.dtype != np.uint8:
            raise ValueError(
                f"data must be uint8 with shape {expected} for {self.pixel_format}, "
                f"not {self.data.dtype} {self.data.shape}"
            )

    @property
    def age(self) -> float:
        """Seconds since this frame was decoded."""
        return time.monotonic() - self.captured_at

    def __repr__(self) -> str:
        pts = "None" if self.pts is None else f"{self.pts:.3f}"
        return (
            f"<Frame #{self.sequence} {self.width}x{self.height} {self.pixel_format} "
            f"pts={pts} captured_at={self.captured_at:.3f}>"
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        """Let ``numpy.asarray(frame)`` and OpenCV take the frame directly."""
        if dtype is None or np.dtype(dtype) == self.data.dtype:
            return self.data.copy() if copy else self.data
        return self.data.astype(dtype)
