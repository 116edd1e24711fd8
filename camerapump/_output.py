"""What a consumer asks for: :class:`Output` (size, fit, rate, pixel format, keyframes).

Also the geometry of shaping, as pure functions: how a source picture becomes an
output picture (:func:`plan`), and how a point maps between the two
(:class:`Geometry`).  Nothing here touches PyAV; :mod:`camerapump._convert` does
the pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ._config import PIXEL_FORMATS, PixelFormat, is_positive_number

__all__ = ["FITS", "MAX_SIZE", "Fit", "Geometry", "Output", "Plan", "plan"]

Fit = Literal["stretch", "contain", "cover"]
#: How an output of both width and height treats a source of another aspect ratio.
FITS: tuple[str, ...] = ("stretch", "contain", "cover")
#: The largest width or height an output may ask for (FFmpeg's own limit is 16384).
MAX_SIZE = 16384


def _check_side(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise ValueError(
            f"{name} must be a whole number from 1 to {MAX_SIZE}, or None, not {value!r}"
        )


@dataclass(frozen=True, slots=True)
class Output:
    """How one consumer wants its frames: shaped on the decode thread, only when taken.

    ``Output()`` is the source's own picture in the pump's pixel format.  Equal
    outputs are converted once per frame, however many consumers share them.

    Attributes:
        width: Output width in pixels; with only ``width`` given, the height
            follows the source's aspect ratio.
        height: Output height in pixels; with only ``height`` given, the width
            follows the source's aspect ratio.
        fit: With both ``width`` and ``height``: ``"stretch"`` gives exactly that
            size (the picture is distorted if the aspect ratio differs);
            ``"contain"`` keeps the aspect ratio and pads with black bars
            (letterbox, what YOLO-style models want); ``"cover"`` keeps the
            aspect ratio and crops the centre.
        max_fps: At most this many frames a second, chosen on the stream's own
            clock and spaced at least ``1 / max_fps`` apart (not "every Nth
            frame", which drifts when the rate varies).  ``None``: every frame.
        pixel_format: ``bgr24``, ``rgb24``, ``gray``, ``bgra`` or ``rgba``;
            ``None`` takes the pump's :attr:`StreamConfig.pixel_format
            <camerapump.StreamConfig.pixel_format>`.
        keyframes_only: Deliver keyframes only.  When every consumer of a pump
            asks for this, the decoder skips the other frames altogether (the
            big CPU saving for low-rate analytics); recordings keep every packet.
    """

    width: int | None = None
    height: int | None = None
    fit: Fit = "stretch"
    max_fps: float | None = None
    pixel_format: PixelFormat | None = None
    keyframes_only: bool = False

    def __post_init__(self) -> None:
        _check_side("width", self.width)
        _check_side("height", self.height)
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, not {self.fit!r}")
        if self.max_fps is not None and not (
            is_positive_number(self.max_fps) and self.max_fps <= 1000
        ):
            raise ValueError(
                f"max_fps must be a number above 0 and at most 1000, or None, not {self.max_fps!r}"
            )
        if self.pixel_format is not None and self.pixel_format not in PIXEL_FORMATS:
            raise ValueError(
                f"pixel_format must be one of {', '.join(PIXEL_FORMATS)} or None, "
                f"not {self.pixel_format!r}"
            )
        if not isinstance(self.keyframes_only, bool):
            # ValueError, like every other bad field of plain data here.
            raise ValueError(f"keyframes_only must be True or False, not {self.keyframes_only!r}")  # noqa: TRY004

    def resolved(self, pixel_format: PixelFormat) -> Output:
        """This output with its pixel format filled in (``pixel_format`` if it has none)."""
        if self.pixel_format is not None:
            return self
        return dataclasses.replace(self, pixel_format=pixel_format)

    def __str__(self) -> str:
        size = f"{self.width or '-'}x{self.height or '-'}"
        parts = [size if (self.width or self.height) else "source size"]
        if self.width and self.height and self.fit != "stretch":
            parts.append(self.fit)
        if self.max_fps is not None:
            parts.append(f"<={self.max_fps:g} fps")
        if self.pixel_format is not None:
            parts.append(self.pixel_format)
        if self.keyframes_only:
            parts.append("keyframes")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Geometry:
    """How a delivered picture relates to the source picture.

    A point ``(x, y)`` of the source lands at ``(x * scale_x + offset_x,
    y * scale_y + offset_y)`` in the delivered picture; :meth:`to_source` goes
    back.  Coordinates are in pixels, continuous (the top-left corner of the
    picture is ``(0, 0)``, the bottom-right corner ``(width, height)``), so a box
    maps by its corners.  The source picture is the upright one: a rotation that
    the stream declares is applied first.

    Attributes:
        source_width: Width of the (upright) source picture.
        source_height: Height of the (upright) source picture.
        width: Width of the delivered picture.
        height: Height of the delivered picture.
        scale_x: Delivered pixels per source pixel, horizontally.
        scale_y: Delivered pixels per source pixel, vertically.
        offset_x: Where the source's left edge lands (positive: a letterbox
            bar; negative: cropped away).
        offset_y: Where the source's top edge lands.
    """

    source_width: int
    source_height: int
    width: int
    height: int
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    @classmethod
    def identity(cls, width: int, height: int) -> Geometry:
        """The geometry of a picture delivered as the source gave it."""
        return cls(width, height, width, height, 1.0, 1.0, 0.0, 0.0)

    def to_source(self, x: float, y: float) -> tuple[float, float]:
        """Map a point of the delivered picture to the source picture."""
        return ((x - self.offset_x) / self.scale_x, (y - self.offset_y) / self.scale_y)

    def from_source(self, x: float, y: float) -> tuple[float, float]:
        """Map a point of the source picture to the delivered picture."""
        return (x * self.scale_x + self.offset_x, y * self.scale_y + self.offset_y)

    def box_to_source(
        self, x0: float, y0: float, x1: float, y1: float
    ) -> tuple[float, float, float, float]:
        """Map a box (corners) of the delivered picture to the source, clipped to it.

        A box drawn on a letterbox bar is clipped to the picture's edge.
        """
        sx0, sy0 = self.to_source(x0, y0)
        sx1, sy1 = self.to_source(x1, y1)

        def clip(value: float, top: int) -> float:
            return min(max(value, 0.0), float(top))

        return (
            clip(sx0, self.source_width),
            clip(sy0, self.source_height),
            clip(sx1, self.source_width),
            clip(sy1, self.source_height),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """How to shape a source picture for one output (in upright coordinates).

    Scale the source to ``scaled_width`` x ``scaled_height`` (one swscale pass,
    together with the pixel format), then cut the window at ``crop_x, crop_y``
    ("cover") or place it at ``pad_x, pad_y`` on black ("contain").
    """

    scaled_width: int
    scaled_height: int
    crop_x: int
    crop_y: int
    pad_x: int
    pad_y: int
    width: int
    height: int
    geometry: Geometry

    @property
    def needs_window(self) -> bool:
        """True when scaling alone does not give the output (a crop or a pad follows)."""
        return (self.scaled_width, self.scaled_height) != (self.width, self.height)


def _follow(side: int, source_side: int, source_other: int) -> int:
    """The other side of an output whose one side is given, keeping the aspect ratio."""
    return max(1, min(MAX_SIZE, round(side * source_other / source_side)))


def plan(output: Output, source_width: int, source_height: int) -> Plan:
    """Work out how ``output`` shapes a ``source_width`` x ``source_height`` picture."""
    sw, sh = source_width, source_height
    w, h = output.width, output.height
    if w is None and h is None:
        w, h = sw, sh
    elif h is None:
        assert w is not None
        h = _follow(w, sw, sh)
    elif w is None:
        w = _follow(h, sh, sw)
    if output.fit == "stretch" or (w * sh == h * sw):
        geometry = Geometry(sw, sh, w, h, w / sw, h / sh, 0.0, 0.0)
        return Plan(w, h, 0, 0, 0, 0, w, h, geometry)
    if output.fit == "contain":
        scale = min(w / sw, h / sh)
        scaled_w = max(1, min(w, round(sw * scale)))
        scaled_h = max(1, min(h, round(sh * scale)))
        pad_x, pad_y = (w - scaled_w) // 2, (h - scaled_h) // 2
        geometry = Geometry(sw, sh, w, h, scaled_w / sw, scaled_h / sh, float(pad_x), float(pad_y))
        return Plan(scaled_w, scaled_h, 0, 0, pad_x, pad_y, w, h, geometry)
    scale = max(w / sw, h / sh)  # cover
    scaled_w = max(w, round(sw * scale))
    scaled_h = max(h, round(sh * scale))
    crop_x, crop_y = (scaled_w - w) // 2, (scaled_h - h) // 2
    geometry = Geometry(sw, sh, w, h, scaled_w / sw, scaled_h / sh, -float(crop_x), -float(crop_y))
    return Plan(scaled_w, scaled_h, crop_x, crop_y, 0, 0, w, h, geometry)
