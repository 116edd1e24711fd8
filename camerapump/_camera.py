"""The blocking layer: :func:`open_camera` and :class:`Camera`, for code without an event loop.

The same decode thread as the pump's (:class:`~camerapump._worker.Worker`):
the same sessions, outputs, lazy conversion and, with a policy, the same
reconnection.  Results arrive under a condition variable instead of through an
event loop.

Thread ownership: the decode thread calls the ``_ThreadSink`` methods; the
caller's threads call :class:`Camera`'s; both meet under ``_ThreadSink.cond``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Self

from ._config import ReconnectPolicy, StreamConfig, StreamFormat
from ._demand import Demand, Pick
from ._errors import CameraError, StreamTimeout
from ._frame import Frame
from ._output import Output
from ._source import Source
from ._status import Connected, FormatChanged, GaveUp, PumpStatus, Reconnecting
from ._usb import UsbTracker
from ._worker import Worker

__all__ = ["Camera", "StreamEnded", "open_camera"]

_STATUS_SIZE = 64
_KEEPING_UP = 1.5
_STALE_AFTER = 2.5


class _Retrying:
    """The first open failed and is being retried (``retry_initial_open``)."""


_RETRYING = _Retrying()


class StreamEnded(CameraError, EOFError):
    """Raised by :meth:`Camera.next_frame` when a finite source (a file) has ended."""


class _ThreadSink:
    """Collects the decode thread's results under a condition variable."""

    def __init__(self, demand: Demand, output: Output, buffer: int, eager: bool) -> None:
        self.cond = threading.Condition()
        self.demand = demand
        self.output = output
        self.eager = eager
        self.frames: deque[tuple[Frame, bool]] = deque(maxlen=buffer)
        self.status: queue.Queue[PumpStatus] = queue.Queue(maxsize=_STATUS_SIZE)
        self.first: StreamFormat | CameraError | _Retrying | None = None
        self.format: StreamFormat | None = None
        self.ended = False
        self.error: CameraError | None = None
        self.done = False
        self.waiting = 0
        self.ticket: int | None = None
        self.in_session = False

    def _emit(self, event: PumpStatus) -> None:
        if self.status.full():
            with contextlib.suppress(queue.Empty):
                self.status.get_nowait()  # the oldest goes
        with contextlib.suppress(queue.Full):
            self.status.put_nowait(event)

    # -- the Sink protocol (decode thread) --

    def connected(self, fmt: StreamFormat, *, first: bool, reconnects: int) -> None:
        with self.cond:
            self.format = fmt
            self.in_session = True
            if self.first is None:
                self.first = fmt
            self._emit(Connected(fmt))
            self.cond.notify_all()

    def reconnecting(self, attempt: int, delay: float, reason: str, *, attempts: int) -> None:
        with self.cond:
            self.in_session = False
            self._emit(Reconnecting(attempt, delay, reason))
            if self.first is None:
                self.first = _RETRYING  # retry_initial_open: open_camera returns now
            self.cond.notify_all()

    def finished(self, error: CameraError | None, reason: str | None, *, first: bool) -> None:
        if error is not None:
            error.__context__ = None  # never chain anything that might quote a URL
        with self.cond:
            if reason is not None:
                self._emit(GaveUp(reason))
            self.ended = True
            self.error = error
            if self.first is None:
                self.first = error or CameraError("the source ended before it opened")
            self.cond.notify_all()

    def format_changed(self, fmt: StreamFormat) -> None:
        with self.cond:
            self.format = fmt
            self._emit(FormatChanged(fmt))

    def frame(self, pick: Pick, frame: Frame) -> None:
        with self.cond:
            if pick.epoch == self.ticket and pick.output == self.output:
                self.ticket = None
                self.frames.append((frame, self.waiting == 0))
            elif pick.stream and self.eager:
                self.frames.append((frame, False))
            else:
                return
            self.cond.notify_all()

    def alive(self) -> bool:
        return True  # the owner's thread closes the camera; there is no loop to lose

    def exited(self) -> None:
        with self.cond:
            self.done = True
            self.ended = True
            if self.first is None:
                self.first = CameraError("the decode thread stopped")
            self.cond.notify_all()


class Camera:
    """An open source read synchronously; created by :func:`open_camera`.

    Frames are decoded on the camera's own thread and converted only when
    :meth:`next_frame` will take them, so it never returns a backlog.  With a
    ``policy`` the camera reconnects like a pump (status events on
    :attr:`status`); without one (the default) the first error ends it.
    """

    def __init__(
        self,
        source: Source,
        config: StreamConfig | None = None,
        *,
        output: Output | None = None,
        policy: ReconnectPolicy | None = None,
        buffer: int = 1,
    ) -> None:
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be a whole number >= 1, not {buffer!r}")
        self.source = source
        self.config = config or StreamConfig()
        self.output = (output or Output()).resolved(self.config.pixel_format)
        processing = source.processed
        self._processing = processing
        eager = processing or buffer > 1
        self._demand = Demand()
        self._demand.processing = processing
        self._sink = _ThreadSink(self._demand, self.output, buffer, eager)
        self._worker = Worker(
            source,
            self.config,
            self._sink,
            self._demand,
            policy=policy,
            processing=buffer if processing else None,
            device=UsbTracker() if source.traits.device else None,
        )
        self._eager = eager
        self._last_take: float | None = None
        self._prefetch = False
        self._closed = False

    def _open(self) -> None:
        self._demand.register(self.output)
        if self._eager:
            self._demand.set_eager(self.output, +1)
        self._worker.start()
        with self._sink.cond:
            while self._sink.first is None:
                self._sink.cond.wait()
            result = self._sink.first
        if isinstance(result, StreamFormat | _Retrying):
            return
        self.close()
        assert isinstance(result, CameraError)
        raise result

    @property
    def format(self) -> StreamFormat:
        """What was negotiated (follows a stream that changed its format)."""
        fmt = self._sink.format
        if fmt is None:
            raise RuntimeError("the camera has not opened a session yet")
        return fmt

    @property
    def status(self) -> queue.Queue[PumpStatus]:
        """Status events (Connected, Reconnecting, FormatChanged, GaveUp); the newest 64."""
        return self._sink.status

    def _interval(self) -> float:
        fmt = self._sink.format
        interval = 1.0 / fmt.fps if fmt is not None and fmt.fps else 1 / 30
        if self.output.max_fps:
            interval = max(interval, 1.0 / self.output.max_fps)
        return interval

    def _want(self) -> None:
        """Ask the decode thread for one frame (under the sink's lock)."""
        sink = self._sink
        if not self._eager and sink.ticket is None and not sink.frames and not self._closed:
            sink.ticket = self._demand.grant(self.output)
            self._worker.wake()

    def next_frame(self, timeout: float | None = 0.5) -> Frame:
        """Return the newest frame not yet returned, waiting up to ``timeout`` seconds.

        Raises:
            StreamTimeout: No frame arrived in time (also while reconnecting).
            StreamEnded: A finite source ended.
            CameraError: The source failed, or gave up reconnecting (the typed error).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        sink = self._sink
        with sink.cond:
            while True:
                while sink.frames:
                    frame, ahead = sink.frames.popleft()
                    now = time.monotonic()
                    interval = self._interval()
                    if ahead and now - frame.captured_at > _STALE_AFTER * interval:
                        self._prefetch = False
                        continue  # converted ahead, then not taken in time: stale
                    self._prefetch = (
                        self._last_take is not None
                        and now - self._last_take <= _KEEPING_UP * interval
                    )
                    self._last_take = now
                    if self._prefetch:
                        self._want()
                    if self._processing:
                        self._worker.release_credit()
                    return frame
                if sink.ended or self._closed:
                    if sink.error is not None:
                        raise sink.error
                    raise StreamEnded(f"{self.source.label}: the source has ended")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise StreamTimeout(f"{self.source.label}: no frame within {timeout} s")
                self._want()
                sink.waiting += 1
                try:
                    sink.cond.wait(remaining)
                finally:
                    sink.waiting -= 1

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


def open_camera(
    source: Source,
    config: StreamConfig | None = None,
    *,
    output: Output | None = None,
    policy: ReconnectPolicy | None = None,
    buffer: int = 1,
) -> Camera:
    """Open ``source`` for blocking reads: ``with open_camera(src) as cam: cam.next_frame()``.

    Args:
        source: What to read.
        config: What the source must deliver.
        output: How frames are shaped (size, fit, rate, pixel format, keyframes).
        policy: Reconnect like a pump; ``None`` (the default): the first error
            ends the camera.
        buffer: Frames kept while the caller is behind.

    Raises:
        CameraError: The typed error if the source cannot be opened.
    """
    camera = Camera(source, config, output=output, policy=policy, buffer=buffer)
    camera._open()
    return camera
