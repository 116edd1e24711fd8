"""The blocking layer: :func:`open_camera` and :class:`Camera`, for code without an event loop."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Self

from ._config import StreamConfig, StreamFormat
from ._errors import CameraError, StreamTimeout
from ._frame import Frame
from ._source import Source
from ._worker import SessionEnd, Worker

__all__ = ["Camera", "StreamEnded", "open_camera"]


class StreamEnded(CameraError, EOFError):
    """Raised by :meth:`Camera.next_frame` when a finite source (a file) has ended."""


class _ThreadSink:
    """Collects the decode thread's results under a condition variable."""

    def __init__(self, buffer: int) -> None:
        self.cond = threading.Condition()
        self.frames: deque[Frame] = deque(maxlen=buffer)
        self.opened_result: StreamFormat | CameraError | None = None
        self.end: SessionEnd | None = None
        self.done = False

    def opened(self, fmt: StreamFormat) -> None:
        with self.cond:
            self.opened_result = fmt
            self.cond.notify_all()

    def open_failed(self, error: CameraError) -> None:
        with self.cond:
            self.opened_result = error
            self.cond.notify_all()

    def frame(self, frame: Frame, for_stream: bool) -> None:
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def ended(self, end: SessionEnd) -> None:
        with self.cond:
            self.end = end
            self.cond.notify_all()

    def finished(self) -> None:
        with self.cond:
            self.done = True
            if self.end is None:
                self.end = SessionEnd(None, None)
            self.cond.notify_all()


class Camera:
    """An open source read synchronously; created by :func:`open_camera`.

    Frames are decoded on the camera's own thread and the newest ``buffer``
    are kept, so :meth:`next_frame` never returns a backlog.  No reconnection
    at this layer: use :func:`~camerapump.open_pump` for that.
    """

    def __init__(
        self, source: Source, config: StreamConfig | None = None, *, buffer: int = 1
    ) -> None:
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be a whole number >= 1, not {buffer!r}")
        self.source = source
        self.config = config or StreamConfig()
        self._sink = _ThreadSink(buffer)
        processing = source.kind == "file" and not source.realtime
        self._worker = Worker(
            source, self.config, self._sink, backpressure=buffer if processing else None
        )
        self._processing = processing
        self._format: StreamFormat | None = None
        self._closed = False

    def _open(self) -> None:
        self._worker.start()
        self._worker.request_open()
        with self._sink.cond:
            while self._sink.opened_result is None and not self._sink.done:
                self._sink.cond.wait()
            result = self._sink.opened_result
        if isinstance(result, StreamFormat):
            self._format = result
            return
        self.close()
        error = (
            result
            if isinstance(result, CameraError)
            else CameraError(f"{self.source.label}: open failed")
        )
        raise error

    @property
    def format(self) -> StreamFormat:
        """What was negotiated."""
        if self._format is None:
            raise RuntimeError("the camera is not open")
        return self._format

    def next_frame(self, timeout: float | None = 0.5) -> Frame:
        """Return the newest frame not yet returned, waiting up to ``timeout`` seconds.

        Raises:
            StreamTimeout: No frame arrived in time.
            StreamEnded: A finite source ended.
            CameraError: The source failed (the typed error).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._sink.cond:
            while not self._sink.frames:
                end = self._sink.end
                if end is not None or self._closed:
                    if end is not None and end.error is not None:
                        raise end.error
                    raise StreamEnded(f"{self.source.label}: the source has ended")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise StreamTimeout(f"{self.source.label}: no frame within {timeout} s")
                self._sink.cond.wait(remaining)
            frame = self._sink.frames.popleft()
        if self._processing:
            self._worker.release_credit()
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """Yield frames until a finite source ends; raises on errors."""
        while True:
            try:
                yield self.next_frame(timeout=None)
            except StreamEnded:
                return

    def close(self) -> None:
        """Stop decoding and release the source.

        Waits for the decode thread, which is bounded by the source's timeouts.
        """
        if self._closed:
            return
        self._closed = True
        self._worker.stop()
        if self._worker.thread.ident is not None:
            self._worker.thread.join(timeout=self.source.open_timeout + 5)
        with self._sink.cond:
            self._sink.cond.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Camera {self.source.label} {state} frames={self._worker.frames_decoded}>"


def open_camera(source: Source, config: StreamConfig | None = None, *, buffer: int = 1) -> Camera:
    """Open ``source`` for blocking reads: ``with open_camera(src) as cam: cam.next_frame()``.

    Raises:
        CameraError: The typed error if the source cannot be opened.
    """
    camera = Camera(source, config, buffer=buffer)
    camera._open()
    return camera
