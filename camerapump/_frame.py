"""The unit of delivery: :class:`Frame`."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from ._config import PIXEL_CHANNELS, PixelFormat
from ._output import Geometry

__all__ = ["Frame", "Quality"]

Quality = Literal["intact", "recovering"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture, shaped as its consumer asked (see :class:`~camerapump.Output`).

    ``data`` is read-only: consumers that share an output share the array, so
    drawing on it must not change what another consumer sees.  Draw on
    :meth:`copy` (or ``frame.data.copy()``).

    Attributes:
        data: ``numpy.uint8`` array, ``(height, width, 3)`` for bgr24/rgb24,
            ``(height, width, 4)`` for bgra/rgba, ``(height, width)`` for gray.
        width: Width in pixels.
        height: Height in pixels.
        pixel_format: The layout of ``data``.
        sequence: Counts every frame this pump decoded, from 0, across
            reconnects; a gap means frames were decoded but not delivered (a
            slow consumer, a rate limit, or a pause).
        pts: Presentation time in seconds on the source's clock, or ``None``.
            Within a session it never goes backwards.
        captured_at: ``time.monotonic()`` when decoding finished.
        keyframe: True for a keyframe (a picture that decodes on its own).
        quality: ``"intact"``, or ``"recovering"`` when a decode error or lost
            data happened since the last keyframe (the picture may show
            smearing until the next keyframe).
        geometry: How this picture maps to the source picture (scale and
            offset); see :meth:`to_source`.
    """

    data: npt.NDArray[np.uint8]
    width: int
    height: int
    pixel_format: PixelFormat
    sequence: int
    pts: float | None
    captured_at: float
    keyframe: bool = False
    quality: Quality = "intact"
    geometry: Geometry = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        channels = PIXEL_CHANNELS.get(self.pixel_format)
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
        if self.quality not in ("intact", "recovering"):
            raise ValueError(f"quality must be 'intact' or 'recovering', not {self.quality!r}")
        if cast("object", self.geometry) is None:
            object.__setattr__(self, "geometry", Geometry.identity(self.width, self.height))

    @property
    def age(self) -> float:
        """Seconds since this frame was decoded."""
        return time.monotonic() - self.captured_at

    def to_source(self, x: float, y: float) -> tuple[float, float]:
        """Map a point of this picture to the source picture (undo resize, pad and crop).

        ``frame.to_source(*frame.geometry.from_source(x, y)) == (x, y)``; for a
        box, see :meth:`Geometry.box_to_source <camerapump.Geometry.box_to_source>`.
        """
        return self.geometry.to_source(x, y)

    def copy(self) -> Frame:
        """The same frame with a writable copy of ``data`` (to draw on)."""
        return dataclasses.replace(self, data=self.data.copy())

    def __repr__(self) -> str:
        pts = "None" if self.pts is None else f"{self.pts:.3f}"
        flags = " key" if self.keyframe else ""
        if self.quality != "intact":
            flags += f" {self.quality}"
        return (
            f"<Frame #{self.sequence} {self.width}x{self.height} {self.pixel_format} "
            f"pts={pts} captured_at={self.captured_at:.3f}{flags}>"
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        """Let ``numpy.asarray(frame)`` and OpenCV take the frame directly."""
        if dtype is None or np.dtype(dtype) == self.data.dtype:
            return self.data.copy() if copy else self.data
        return self.data.astype(dtype)
