"""The one place where decoded pictures become arrays.  Runs on the decode thread only.

A :class:`Converter` serves one :class:`~camerapump.Output`.  It keeps one
swscale context (PyAV's ``VideoReformatter``) for its whole life: measured at 8
streams, reusing it instead of a new conversion context per frame cut the CPU
per frame from 1.32x to 0.88x of a plain PyAV thread.  Resizing and the pixel
format are one swscale pass; a crop ("cover") is a window on its result and a
pad ("contain") one copy onto black.  Every array handed out is fresh and
read-only, so consumers that share an output share it safely.

swscale runs single-threaded for a paced source (:func:`sws_threads`): a
camera, a stream, a file played at its own rate.  PyAV's default, one worker per
core, woke threads for every picture and cost a third more CPU for no gain in
wall time up to 1080p (measured on 2 cores, yuv420p: 1280x720 to 640x360 rgb24
1.48 ms of CPU against 0.98 ms, both 1.0 ms of wall time; 1920x1080 to bgr24
0.94 against 0.67 ms of CPU), and a paced decode thread has the time.  A file
read as fast as it decodes (``realtime=False``) keeps the workers: there wall
time is the figure, and they gave 1080p files about a tenth more frames a
second in the benchmarks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

from ._config import PIXEL_CHANNELS
from ._output import Output, Plan, plan

__all__ = ["SWS_THREADS", "Converter", "sws_threads", "upright_rotation"]

#: swscale's threads for a paced conversion (see above); 0 is one per core.
SWS_THREADS = 1


def sws_threads(*, paced: bool) -> int:
    """swscale's threads for the pictures of a source that is ``paced`` or not (see above)."""
    return SWS_THREADS if paced else 0


def upright_rotation(vframe: VideoFrame) -> int:
    """Degrees to turn ``vframe`` clockwise to show it upright: 0, 90, 180 or 270.

    Read from the frame's display matrix (phones and dashcams tag their video
    this way, rather than storing it upright), as the ffmpeg command line does.
    """
    try:
        rotation = vframe.rotation
    except (AttributeError, ValueError):  # pragma: no cover - older PyAV
        return 0
    if not rotation:
        return 0
    # FFmpeg's display-matrix angle is counter-clockwise; the display wants the inverse.
    return round(-float(rotation) / 90.0) % 4 * 90


class Converter:
    """Shapes decoded pictures for one output.

    Args:
        output: The output, with its pixel format resolved.
        autorotate: Turn pictures upright as their display matrix says.
        threads: swscale's threads (:func:`sws_threads`).
    """

    __slots__ = (
        "_autorotate",
        "_channels",
        "_format",
        "_output",
        "_plans",
        "_reformatter",
        "_threads",
    )

    def __init__(
        self, output: Output, *, autorotate: bool = True, threads: int = SWS_THREADS
    ) -> None:
        if output.pixel_format is None:
            raise ValueError("a converter needs an output with a pixel format")
        self._output = output
        self._format: str = output.pixel_format
        self._channels = PIXEL_CHANNELS[output.pixel_format]
        self._autorotate = autorotate
        self._reformatter = VideoReformatter()
        self._threads = threads
        self._plans: dict[tuple[int, int], Plan] = {}

    @property
    def output(self) -> Output:
        """The output this converter serves."""
        return self._output

    def plan_for(self, width: int, height: int) -> Plan:
        """The (cached) plan for an upright source of this size."""
        key = (width, height)
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) > 8:  # sizes change rarely; do not grow without end
                self._plans.clear()
            found = self._plans[key] = plan(self._output, width, height)
        return found

    def convert(self, vframe: VideoFrame) -> tuple[npt.NDArray[np.uint8], Plan]:
        """Return the shaped, read-only array of ``vframe`` and the plan that made it."""
        turn = upright_rotation(vframe) if self._autorotate else 0
        quarter = turn in (90, 270)
        width, height = (vframe.height, vframe.width) if quarter else (vframe.width, vframe.height)
        shape = self.plan_for(width, height)
        # swscale works on the picture as stored; the turn comes after it.
        target_w, target_h = shape.scaled_width, shape.scaled_height
        if quarter:
            target_w, target_h = target_h, target_w
        # Area averaging for a smaller picture (no aliasing, and cheaper than
        # bilinear at a quarter of the size here); bilinear otherwise.
        shrinking = target_w * target_h < vframe.width * vframe.height
        picture = self._reformatter.reformat(
            vframe,
            width=target_w,
            height=target_h,
            format=self._format,
            interpolation=Interpolation.AREA if shrinking else Interpolation.BILINEAR,
            threads=self._threads,
        )
        data: npt.NDArray[np.uint8] = picture.to_ndarray()  # type: ignore[assignment]
        if turn:
            # np.rot90 turns counter-clockwise; k=-1 is a quarter turn clockwise.
            data = np.rot90(data, k=-(turn // 90))
        if shape.needs_window:
            data = self._window(data, shape)
        elif turn or picture is vframe:
            # A rotated view, or the decoder's own buffer (nothing to convert):
            # hand out an array of our own.
            data = np.ascontiguousarray(data) if turn else data.copy()
        data.flags.writeable = False
        return data, shape

    def _window(self, data: npt.NDArray[np.uint8], shape: Plan) -> npt.NDArray[np.uint8]:
        if shape.scaled_width >= shape.width and shape.scaled_height >= shape.height:  # cover
            y, x = shape.crop_y, shape.crop_x
            return np.ascontiguousarray(data[y : y + shape.height, x : x + shape.width])
        dims: tuple[int, ...] = (shape.height, shape.width)
        if self._channels > 1:
            dims = (*dims, self._channels)
        canvas = np.zeros(dims, np.uint8)
        if self._channels == 4:
            canvas[..., 3] = 255  # opaque black bars
        y, x = shape.pad_y, shape.pad_x
        canvas[y : y + shape.scaled_height, x : x + shape.scaled_width] = data
        return canvas
