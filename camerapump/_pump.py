"""The asyncio pump: delivery, one-shot capture, pause, status events, reconnection.

One :class:`Pump` owns one decode thread (:class:`~camerapump._worker.Worker`)
and two tasks: the supervisor, which opens sessions and reconnects with
backoff, and the stall watchdog.  Frames cross from the thread with
``loop.call_soon_threadsafe`` into a bounded buffer that keeps the newest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from ._config import ReconnectPolicy, StreamConfig, StreamFormat, backoff_delay
from ._errors import CameraError
from ._frame import Frame
from ._hotplug import DeviceAdded, watch_devices
from ._record import Recorder
from ._source import Source
from ._status import Connected, Connecting, GaveUp, PumpStatus, Reconnecting
from ._worker import SessionEnd, Worker

__all__ = ["Pump", "PumpState", "PumpStatistics", "Subscription", "open_pump"]

logger = logging.getLogger("camerapump")

PumpState = Literal["new", "connecting", "connected", "reconnecting", "ended", "failed", "closed"]
#: Status events kept for a reader that does not keep up; the oldest go first.
STATUS_QUEUE_SIZE = 64
#: Frames a processed file (``realtime=False``) may decode ahead of its consumer:
#: enough that the decode thread and the consumer overlap instead of taking
#: turns (1 frame ahead cost 15 % of the throughput of a 720p file).
PROCESSING_DEPTH = 8
#: How long ``aclose()`` waits for the decode thread.
CLOSE_TIMEOUT = 0.9


@dataclass(frozen=True, slots=True)
class PumpStatistics:
    """A snapshot of a pump's counters (see :meth:`Pump.statistics`).

    Attributes:
        state: ``connecting``, ``connected``, ``reconnecting``, ``ended``,
            ``failed`` or ``closed``.
        active: False while paused.
        frames_decoded: Frames decoded, over all sessions.
        frames_delivered: Frames handed to consumers (iteration and captures).
        frames_dropped: Frames replaced in the buffer before a consumer took them.
        reconnects: Sessions re-opened after a loss.
        decode_errors: Packets that failed to decode and were skipped.
        last_frame_age: Seconds since the last decoded frame, or ``None``.
        format: The negotiated format, or ``None`` before the first session.
    """

    state: PumpState
    active: bool
    frames_decoded: int
    frames_delivered: int
    frames_dropped: int
    reconnects: int
    decode_errors: int
    last_frame_age: float | None
    format: StreamFormat | None


class _LoopSink:
    """Hands the decode thread's results to the event loop.

    Frames wait in a small mailbox that keeps the newest ``buffer`` of them
    (and the newest frame meant only for a capture); one wake-up is posted
    per batch.  So a loop that is blocked for a while (a model loading, a
    slow callback) finds the newest frames when it wakes, not a backlog of
    every frame decoded meanwhile.  A file processed with ``realtime=False``
    needs no bound here: its thread waits for credits.
    """

    __slots__ = ("_capture", "_frames", "_lock", "_loop", "_pump", "_scheduled", "dropped")

    def __init__(self, pump: Pump, loop: asyncio.AbstractEventLoop, buffer: int | None) -> None:
        self._pump = pump
        self._loop = loop
        self._lock = threading.Lock()
        self._frames: deque[Frame] = deque(maxlen=buffer)
        self._capture: Frame | None = None
        self._scheduled = False
        #: Frames replaced in the mailbox before the loop took them.
        self.dropped = 0

    def _post(self, callback: Any, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop is closed (the program is ending without aclose()): nobody
            # is listening any more, so stop producing.
            self._pump._worker.stop()

    def opened(self, fmt: StreamFormat) -> None:
        self._post(self._pump._on_opened, fmt)

    def open_failed(self, error: CameraError) -> None:
        self._post(self._pump._on_opened, error)

    def frame(self, frame: Frame, for_stream: bool) -> None:
        with self._lock:
            if for_stream:
                if len(self._frames) == self._frames.maxlen:
                    self.dropped += 1
                self._frames.append(frame)
            else:
                self._capture = frame
            if self._scheduled:
                return
            self._scheduled = True
        self._post(self._drain)

    def _drain(self) -> None:
        """On the loop: hand over what the mailbox holds."""
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
            capture, self._capture = self._capture, None
            self._scheduled = False
        for frame in frames:
            self._pump._on_frame(frame, True)
        if capture is not None:
            self._pump._on_frame(capture, False)

    def ended(self, end: SessionEnd) -> None:
        self._post(self._pump._on_ended, end)

    def finished(self) -> None:
        self._post(self._pump._on_thread_finished)


class Pump:
    """A running source: iterate for the newest frames, capture one, watch its status.

    Create one with :func:`open_pump`.  Use it as ``async with`` (or ``await``
    it and call :meth:`aclose`).

    Args:
        source: What to stream.
        config: What to ask of it; ``None`` takes the source as it is, in bgr24.
        policy: How to recover a live source; ``None`` turns reconnection off
            (the first error ends the pump).
        buffer: Frames kept for a consumer that is behind; the oldest are
            dropped (a file read with ``realtime=False`` waits instead).
    """

    def __init__(
        self,
        source: Source,
        config: StreamConfig | None = None,
        *,
        policy: ReconnectPolicy | None = ReconnectPolicy(),  # noqa: B008 - frozen, shared is fine
        buffer: int = 1,
    ) -> None:
        if not isinstance(source, Source):
            raise TypeError(f"source must be a camerapump.Source, not {type(source).__name__}")
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be a whole number >= 1, not {buffer!r}")
        self._source = source
        self._config = config or StreamConfig()
        self._policy = policy
        self._stall_timeout = (policy or ReconnectPolicy()).stall_timeout
        self._processing = source.kind == "file" and not source.realtime
        # A processed file delivers every frame: its buffer is bounded by the
        # decode thread's credits, not by dropping.
        self._frames: deque[Frame] = deque(maxlen=None if self._processing else buffer)
        self._buffer = buffer
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._captures: list[tuple[float, asyncio.Future[Frame | None]]] = []
        self._status: asyncio.Queue[PumpStatus] = asyncio.Queue(maxsize=STATUS_QUEUE_SIZE)
        self._state: PumpState = "new"
        self._format: StreamFormat | None = None
        self._error: CameraError | None = None
        self._active = True
        self._resumed_at = 0.0
        self._delivered = 0
        self._dropped = 0
        self._reconnects = 0
        self._opened: asyncio.Future[StreamFormat | CameraError] | None = None
        self._ended: asyncio.Future[SessionEnd] | None = None
        self._thread_done: asyncio.Event | None = None
        self._active_event: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[Subscription] = []
        self._worker: Worker = Worker(source, self._config, _NullSink())
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._capture_since: float | None = None  # when the oldest pending capture began

    # -- lifecycle ------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._state != "new":
            raise RuntimeError("a pump can be started only once")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._state = "connecting"
        self._thread_done = asyncio.Event()
        self._active_event = asyncio.Event()
        self._active_event.set()
        self._worker = Worker(
            self._source,
            self._config,
            _LoopSink(self, loop, None if self._processing else self._buffer),
            backpressure=max(self._buffer, PROCESSING_DEPTH) if self._processing else None,
        )
        self._worker.set_active(self._active)
        self._worker.start()
        self._emit(Connecting())
        first: asyncio.Future[None] = loop.create_future()
        name = self._source.label
        self._tasks.append(
            loop.create_task(self._supervise(first), name=f"camerapump-supervisor {name}")
        )
        if self._source.is_live:
            self._tasks.append(
                loop.create_task(self._watchdog(), name=f"camerapump-watchdog {name}")
            )
        try:
            await first
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop the pump and release the source.  Idempotent; returns within about a second.

        The decode thread closes the container itself (the only safe way), so
        this waits for it, but never more than about a second: a thread that
        is inside a blocking open (bounded by the source's ``open_timeout``)
        finishes that on its own and exits.  The closing runs in a task of its
        own, shielded: a caller that is cancelled meanwhile gets its
        ``CancelledError``, and the pump still closes completely.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise RuntimeError("close a pump on the event loop that started it")
        if self._close_task is None:
            self._closing = True
            self._close_task = loop.create_task(
                self._close(), name=f"camerapump-close {self._source.label}"
            )
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        try:
            self._worker.stop()  # first: even a close cut short leaves the thread ending
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks)  # they end at their next await
            thread = self._worker.thread
            if self._thread_done is not None and thread.is_alive():
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await self._thread_done.wait()
                        # The thread posted its last word; let it return from run().
                        while thread.is_alive():  # noqa: ASYNC110 - a thread, not a task
                            await asyncio.sleep(0.001)
                except TimeoutError:
                    logger.warning(
                        "%s: the decode thread is still in a blocking open; it exits by "
                        "itself within the open timeout",
                        self._source.label,
                    )
            if not thread.is_alive() and thread.ident is not None:
                thread.join()  # already finished: returns at once
        finally:
            if self._state not in ("failed", "ended"):
                self._state = "closed"
            self._frames.clear()  # what is left would be stale; iteration ends here
            self._finish_waiters()

    async def __aenter__(self) -> Self:
        if self._state == "new":
            await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __await__(self) -> Generator[Any, None, Self]:
        return self.__aenter__().__await__()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_closing", True) or getattr(self, "_state", "new") in ("new", "closed"):
            return  # closed properly, never started, or __init__ did not finish
        _warn(f"unclosed {self!r}; use 'async with' or aclose()", ResourceWarning, stacklevel=1)
        self._worker.stop()

    # -- public surface -------------------------------------------------------------------

    @property
    def source(self) -> Source:
        """The source this pump streams."""
        return self._source

    @property
    def config(self) -> StreamConfig:
        """What was asked for."""
        return self._config

    @property
    def format(self) -> StreamFormat | None:
        """What was negotiated (``None`` until a session has opened)."""
        return self._format

    @property
    def state(self) -> PumpState:
        """``connecting``, ``connected``, ``reconnecting``, ``ended``, ``failed`` or ``closed``."""
        return self._state

    @property
    def status(self) -> asyncio.Queue[PumpStatus]:
        """Status events: first :class:`Connecting`, then :class:`Connected`, ...

        The queue holds the newest 64 events; the pump never waits for it.
        """
        return self._status

    @property
    def active(self) -> bool:
        """False while paused with :meth:`set_active`."""
        return self._active

    @property
    def error(self) -> CameraError | None:
        """The error that ended the pump, if one did."""
        return self._error

    def set_active(self, active: bool) -> None:
        """Pause (``False``) or resume (``True``) delivery.

        While paused the source stays open and no per-frame Python work is done
        (no conversion, no delivery); :meth:`capture_frame` still works; the
        stall watchdog does not count the pause; reconnect attempts wait.
        """
        active = bool(active)
        if active == self._active:
            return
        self._active = active
        self._worker.set_active(active)
        if active:
            self._resumed_at = time.monotonic()
        if self._active_event is not None:
            if active:
                self._active_event.set()
            else:
                self._active_event.clear()

    async def capture_frame(self, timeout: float | None = None) -> Frame | None:
        """Return one frame decoded after this call, whether streaming or paused.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as the
                session lives.

        For a file read with ``realtime=False`` (processed, not watched) it is
        the file's next frame.

        Returns:
            The frame, or ``None`` if none can be had: the pump is not
            connected (closed, ended, failed, reconnecting), the session was
            lost while waiting, or the timeout passed.
        """
        if self._state != "connected" or self._closing:
            return None
        fut: asyncio.Future[Frame | None] = asyncio.get_running_loop().create_future()
        entry = (time.monotonic(), fut)
        self._captures.append(entry)
        self._capture_since = self._captures[0][0]
        self._worker.add_capture(+1)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            return None
        finally:
            self._worker.add_capture(-1)
            if entry in self._captures:
                self._captures.remove(entry)
            self._capture_since = self._captures[0][0] if self._captures else None

    def record(
        self,
        path: str | os.PathLike[str],
        *,
        segment_seconds: float | None = None,
        container: str | None = None,
    ) -> Recorder:
        """Record the stream to a file without re-encoding; see :class:`Recorder`.

        Args:
            path: The output file (``.mp4``, ``.mkv``, ``.ts``); with
                ``segment_seconds``, the base name of the segments.
            segment_seconds: Roll over to a new file at the first keyframe after
                this many seconds; ``None`` writes one file.
            container: The container format; ``None`` goes by the file name.

        Returns:
            The recorder: ``await recorder.stop()``, or use it as ``async with``.
        """
        if self._state == "new" or self._closing:
            raise RuntimeError("record() needs a started, open pump")
        recorder = Recorder(
            self._worker, self._source, path, segment_seconds=segment_seconds, container=container
        )
        recorder._attach()
        return recorder

    def subscribe(self, buffer: int = 1) -> Subscription:
        """Open an independent view of the stream: every subscriber gets every frame.

        Iterating the pump itself shares frames among the iterating tasks (each
        frame goes to one of them); subscriptions fan out instead, each with its
        own newest-``buffer`` frames and its own drop count, so a slow subscriber
        never holds up a fast one.  (A file read with ``realtime=False`` has no
        subscriptions: its single consumer sets the pace.)

        Args:
            buffer: Frames this subscriber keeps while it is behind.

        Returns:
            The subscription: ``async for frame in sub``; ``sub.close()`` (or
            ``with``) to unsubscribe.

        Raises:
            ValueError: A bad ``buffer``, or a file read with ``realtime=False``.
        """
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be a whole number >= 1, not {buffer!r}")
        if self._processing:
            raise ValueError(
                "a file read with realtime=False is processed by one consumer, frame by frame "
                "(its pace is the consumer's); iterate the pump itself, or open the file with "
                "realtime=True to fan out"
            )
        subscription = Subscription(self, buffer)
        self._subscriptions.append(subscription)
        return subscription

    def statistics(self) -> PumpStatistics:
        """Return a snapshot of the pump's counters."""
        last = self._worker.last_frame_at
        return PumpStatistics(
            state=self._state,
            active=self._active,
            frames_decoded=self._worker.frames_decoded,
            frames_delivered=self._delivered,
            frames_dropped=self._dropped + getattr(self._worker.sink, "dropped", 0),
            reconnects=self._reconnects,
            decode_errors=self._worker.decode_errors,
            last_frame_age=None if not last else time.monotonic() - last,
            format=self._format,
        )

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        """The newest frame not yet taken; waits for one.

        Raises:
            StopAsyncIteration: The source ended (a file) or the pump was closed.
            CameraError: The pump stopped on an error or gave up reconnecting.
        """
        while True:
            if self._frames:
                frame = self._frames.popleft()
                if self._processing:
                    self._worker.release_credit()
                return frame
            if self._state in ("ended", "failed", "closed") or self._closing:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            if self._state == "new":
                raise RuntimeError("start the pump first: 'async with open_pump(...)'")
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and self._frames:
                    self._wake_one()  # we were woken for a frame we will not take: pass it on
                raise
            finally:
                if not fut.done():
                    fut.cancel()

    def __repr__(self) -> str:
        return (
            f"<Pump {self._source.label} state={self._state} frames={self._worker.frames_decoded}>"
        )

    # -- callbacks from the decode thread (run on the loop) -------------------------------

    def _on_opened(self, result: StreamFormat | CameraError) -> None:
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(result)

    def _on_ended(self, end: SessionEnd) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(end)

    def _on_thread_finished(self) -> None:
        if self._thread_done is not None:
            self._thread_done.set()
        if not self._closing and self._state not in ("ended", "failed", "closed"):
            # The thread died outside a close (a bug, or a fatal error in FFmpeg):
            # nothing can be opened any more, so the pump fails instead of waiting.
            logger.error("%s: the decode thread stopped unexpectedly", self._source.label)
            for task in self._tasks:
                task.cancel()
            self._emit(GaveUp("decode_thread_stopped"))
            self._fail(CameraError(f"{self._source.label}: the decode thread stopped unexpectedly"))
        # A thread that died outside a session leaves nothing to wait for.
        self._on_opened(CameraError(f"{self._source.label}: the decode thread stopped"))
        self._on_ended(SessionEnd(None, None))

    def _on_frame(self, frame: Frame, for_stream: bool) -> None:
        if self._captures:
            taken = False
            for requested_at, fut in self._captures:
                # A processed file has no "now": its next frame is the fresh one.
                fresh = self._processing or requested_at <= frame.captured_at
                if fresh and not fut.done():
                    fut.set_result(frame)
                    taken = True
            if taken:
                self._delivered += 1
        if not for_stream or self._closing:
            return
        for subscription in self._subscriptions:
            subscription._push(frame)
        if len(self._frames) == self._frames.maxlen:
            self._dropped += 1
        self._frames.append(frame)
        self._delivered += 1
        self._wake_one()

    # -- internals ------------------------------------------------------------------------

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _finish_waiters(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
        for subscription in self._subscriptions:
            subscription._wake()
        self._drop_captures()

    @property
    def _finished(self) -> bool:
        return self._state in ("ended", "failed", "closed") or self._closing

    def _drop_captures(self) -> None:
        for _, fut in self._captures:
            if not fut.done():
                fut.set_result(None)

    def _emit(self, event: PumpStatus) -> None:
        logger.debug("%s: %s", self._source.label, event)
        if self._status.full():
            self._status.get_nowait()  # the oldest goes: the pump never waits for a reader
        self._status.put_nowait(event)

    def _fail(self, error: CameraError) -> None:
        error.__context__ = None  # never chain anything that might quote a URL
        self._error = error
        self._state = "failed"
        self._finish_waiters()

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        """Open sessions, and reopen them with backoff while the policy allows."""
        loop = asyncio.get_running_loop()
        policy = self._policy
        attempt = 0
        initial = True
        try:
            while True:
                self._opened = loop.create_future()
                self._ended = loop.create_future()
                self._worker.request_open()
                result = await self._opened
                if isinstance(result, CameraError):
                    error, reason = result, f"open_failed:{result.code}"
                    retry_first = (
                        policy is not None and policy.retry_initial_open and self._source.is_live
                    )
                    if initial and not retry_first:
                        self._fail(error)
                        if not first.done():
                            first.set_exception(error)
                        return
                else:
                    self._format = result
                    self._state = "connected"
                    self._resumed_at = time.monotonic()
                    self._emit(Connected(result))
                    attempt = 0
                    if not first.done():
                        first.set_result(None)
                    initial = False
                    end = await self._ended
                    self._drop_captures()
                    if end.error is None:
                        self._state = "ended"
                        self._finish_waiters()
                        return
                    error, reason = end.error, end.reason or f"read_error:{end.error.code}"
                if initial and not first.done():
                    first.set_result(None)
                initial = False
                if policy is None or not self._source.is_live:
                    self._emit(GaveUp(reason))
                    self._fail(error)
                    return
                if policy.max_attempts is not None and attempt >= policy.max_attempts:
                    self._emit(GaveUp(f"max_attempts_reached:{reason}"))
                    self._fail(error)
                    return
                delay = backoff_delay(attempt, policy)
                attempt += 1
                self._state = "reconnecting"
                self._emit(Reconnecting(attempt, delay, reason))
                logger.info("%s: %s; reconnecting in %.1f s", self._source.label, reason, delay)
                assert self._active_event is not None
                await self._active_event.wait()  # a paused pump suspends its attempts
                await self._backoff(delay)
                await self._active_event.wait()  # paused during the wait: still no attempt
                self._reconnects += 1
        finally:
            if not first.done():
                if self._error is not None:
                    first.set_exception(self._error)  # e.g. the thread died in the first open
                else:
                    first.set_result(None)

    async def _backoff(self, delay: float) -> None:
        """Wait ``delay`` seconds; a USB camera that is plugged back in ends the wait early."""
        device_id = self._worker.device_id
        if self._source.kind != "usb" or device_id is None:
            await asyncio.sleep(delay)
            return

        async def replugged() -> None:
            async with watch_devices() as watcher:
                async for event in watcher:
                    if isinstance(event, DeviceAdded) and event.info.id == device_id:
                        logger.info("%s: the camera is back", self._source.label)
                        return
            await asyncio.Event().wait()  # the watcher ended: wait out the delay

        deadline = time.monotonic() + delay
        try:
            async with asyncio.timeout(delay):
                await replugged()
        except TimeoutError:
            return
        except (CameraError, OSError) as exc:  # hotplug is a shortcut; the delay still works
            logger.debug("%s: hotplug watch failed (%s)", self._source.label, exc)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def _watchdog(self) -> None:
        """Tear a live session down when no frame came for ``stall_timeout`` while active."""
        stall = self._stall_timeout
        period = min(1.0, stall / 4)
        while True:
            await asyncio.sleep(period)
            capture_since = self._capture_since
            if self._state != "connected" or not (self._active or capture_since is not None):
                continue  # a paused pump is not stalled, unless someone waits for a capture
            since = max(
                self._worker.last_frame_at,
                self._resumed_at if self._active else (capture_since or 0.0),
            )
            if time.monotonic() - since > stall:
                logger.info(
                    "%s: no frame for %.1f s; restarting the session", self._source.label, stall
                )
                self._worker.abort_session("stall_timeout_exceeded")
                self._resumed_at = time.monotonic()  # one abort per stall period


class Subscription:
    """One consumer's own view of a pump's frames; made by :meth:`Pump.subscribe`.

    Attributes:
        dropped: Frames that this subscriber missed because it was behind.
    """

    def __init__(self, pump: Pump, buffer: int) -> None:
        self._pump = pump
        self._frames: deque[Frame] = deque(maxlen=buffer)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self.dropped = 0

    def _push(self, frame: Frame) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        """The newest frame this subscriber has not seen; ends or raises like the pump."""
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._closed:
                raise StopAsyncIteration
            if self._pump._finished:
                if self._pump.error is not None:
                    raise self._pump.error
                raise StopAsyncIteration
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()

    def close(self) -> None:
        """Unsubscribe; a waiting ``async for`` ends."""
        self._closed = True
        self._frames.clear()
        if self in self._pump._subscriptions:
            self._pump._subscriptions.remove(self)
        self._wake()

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
        return f"<Subscription {self._pump.source.label} {state} dropped={self.dropped}>"


class _NullSink:
    """Stands in before the pump starts."""

    def opened(self, fmt: StreamFormat) -> None: ...
    def open_failed(self, error: CameraError) -> None: ...
    def frame(self, frame: Frame, for_stream: bool) -> None: ...
    def ended(self, end: SessionEnd) -> None: ...
    def finished(self) -> None: ...


def open_pump(
    source: Source,
    config: StreamConfig | None = None,
    *,
    policy: ReconnectPolicy | None = ReconnectPolicy(),  # noqa: B008 - frozen, shared is fine
    buffer: int = 1,
) -> Pump:
    """Open a pump on ``source``: ``async with open_pump(src) as pump: async for frame in pump``.

    Entering (or awaiting) the pump starts its decode thread and waits for the
    first session: on return ``pump.format`` is known.

    Args:
        source: What to stream (:class:`Source`).
        config: What to ask of it; ``None`` takes it as it is, in bgr24.
        policy: Reconnection for live sources; ``None`` turns it off.
        buffer: How many of the newest frames to keep for a consumer that is behind.

    Raises:
        CameraError: (on entering) the typed error of a failing first open,
            unless ``policy.retry_initial_open`` is set.
    """
    return Pump(source, config, policy=policy, buffer=buffer)
