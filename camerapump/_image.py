"""Still images from frames, with PyAV's own encoders (no imaging library needed)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import av.error
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from ._convert import SWS_THREADS
from ._errors import CameraError
from ._frame import Frame

__all__ = ["IMAGE_CODECS", "JpegEncoder", "save_image"]

#: File endings and the PyAV encoder (and its pixel format) that writes them.
IMAGE_CODECS: dict[str, tuple[str, str]] = {
    ".png": ("png", "rgb24"),
    ".jpg": ("mjpeg", "yuvj420p"),
    ".jpeg": ("mjpeg", "yuvj420p"),
    ".bmp": ("bmp", "bgr24"),
}


def _qscale(quality: int) -> int:
    """FFmpeg's MJPEG qscale for a quality of 1..100 (qscale runs 2, best, to 31, worst)."""
    return round(2 + (100 - quality) * 29 / 99)


class JpegEncoder:
    """Encodes frames to JPEG bytes with PyAV's own MJPEG encoder (no imaging library).

    One encoder context is kept per picture size and reused, so a stream of
    frames costs one encode each.  Not thread-safe: one encoder per thread.

    Args:
        quality: JPEG quality, 1 (smallest) to 100 (best).
    """

    def __init__(self, quality: int = 80) -> None:
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError("quality goes from 1 to 100")
        self.quality = quality
        self._context: av.VideoCodecContext | None = None
        self._reformatter = VideoReformatter()
        self._size: tuple[int, int] | None = None
        self._pts = 0

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        context = av.CodecContext.create("mjpeg", "w")
        assert isinstance(context, av.VideoCodecContext)
        context.width, context.height, context.pix_fmt = width, height, "yuvj420p"
        context.time_base = Fraction(1, 30)
        q = _qscale(self.quality)
        context.qmin = context.qmax = q
        context.open()
        self._context, self._size = context, (width, height)
        return context

    def encode(self, frame: Frame) -> bytes:
        """Return ``frame`` as a JPEG file's bytes.

        Raises:
            CameraError: The encoder failed.
        """
        context = self._context
        if context is None or self._size != (frame.width, frame.height):
            context = self._open(frame.width, frame.height)
        picture = av.VideoFrame.from_ndarray(frame.data, format=frame.pixel_format)
        picture = self._reformatter.reformat(picture, format="yuvj420p", threads=SWS_THREADS)
        picture.pts = self._pts
        self._pts += 1
        try:
            packets = context.encode(picture)
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraError(f"JPEG encoding failed: {type(exc).__name__}") from None
        return b"".join(bytes(p) for p in packets)


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
    picture = av.VideoFrame.from_ndarray(frame.data, format=frame.pixel_format)
    try:
        with av.open(str(target), "w", format="image2", options={"update": "1"}) as out:
            stream = out.add_stream(codec, rate=1)
            assert isinstance(stream, VideoStream)
            stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, pix_fmt
            stream.codec_context.time_base = Fraction(1, 1)
            if codec == "mjpeg":
                q = _qscale(quality)
                stream.codec_context.qmin = stream.codec_context.qmax = q
            picture = picture.reformat(format=pix_fmt, threads=SWS_THREADS)
            picture.pts = 0
            for packet in stream.encode(picture):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    except (av.error.FFmpegError, OSError) as exc:
        raise CameraError(f"could not write {target}: {type(exc).__name__}") from None
    return target
