"""Still images from frames, with PyAV's own encoders (no imaging library needed)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import av.error
from av.video.stream import VideoStream

from ._errors import CameraError
from ._frame import Frame

__all__ = ["IMAGE_CODECS", "save_image"]

#: File endings and the PyAV encoder (and its pixel format) that writes them.
IMAGE_CODECS: dict[str, tuple[str, str]] = {
    ".png": ("png", "rgb24"),
    ".jpg": ("mjpeg", "yuvj420p"),
    ".jpeg": ("mjpeg", "yuvj420p"),
    ".bmp": ("bmp", "bgr24"),
}
_SOURCE_FORMATS = {
    "bgr24": "bgr24",
    "rgb24": "rgb24",
    "gray": "gray",
    "bgra": "bgra",
    "rgba": "rgba",
}


def save_image(frame: Frame, path: str | os.PathLike[str], *, quality: int = 90) -> Path:
    """Write ``frame`` to a PNG, JPEG or BMP file, chosen by the file name.

    Args:
        frame: The frame to write.
        path: ``*.png``, ``*.jpg``/``*.jpeg`` or ``*.bmp``.
        quality: JPEG quality, 1 (smallest) to 100 (best).

    Returns:
        The path written.

    Raises:
        ValueError: An unknown file ending or a quality out of range.
        CameraError: The file could not be written.
    """
    target = Path(path)
    choice = IMAGE_CODECS.get(target.suffix.lower())
    if choice is None:
        raise ValueError(
            f"save images as {', '.join(IMAGE_CODECS)}, not {target.suffix or 'no ending'}"
        )
    if not 1 <= quality <= 100:
        raise ValueError("quality goes from 1 to 100")
    codec, pix_fmt = choice
    picture = av.VideoFrame.from_ndarray(frame.data, format=_SOURCE_FORMATS[frame.pixel_format])
    try:
        with av.open(str(target), "w", format="image2", options={"update": "1"}) as out:
            stream = out.add_stream(codec, rate=1)
            assert isinstance(stream, VideoStream)
            stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, pix_fmt
            stream.codec_context.time_base = Fraction(1, 1)
            if codec == "mjpeg":
                # FFmpeg's qscale runs 2 (best) .. 31 (worst).
                q = round(2 + (100 - quality) * 29 / 99)
                stream.codec_context.qmin = stream.codec_context.qmax = q
            picture = picture.reformat(format=pix_fmt)
            picture.pts = 0
            for packet in stream.encode(picture):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    except (av.error.FFmpegError, OSError) as exc:
        raise CameraError(f"could not write {target}: {type(exc).__name__}") from None
    return target
