"""The pump: a thin async facade over the decode thread, for asyncio and trio alike.

One :class:`Pump` owns one decode thread (:class:`~camerapump._worker.Worker`),
which opens sessions, reads them, watches for stalls and reconnects with
backoff (:mod:`camerapump._supervisor`).  The pump has no background task:
the thread posts what happens to the event loop (through the loop's token,
:mod:`camerapump._handoff`), and the pump turns it into status events, state
changes and frames for its consumers (:mod:`camerapump._delivery`).  So a pump
may be opened in one task and closed in another, and no caller's cancel scope
holds anything of it.

State lives on the event loop and changes in :meth:`Pump._set_state` only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio

from ._config import ReconnectPolicy, StreamConfig, StreamFormat
from ._delivery import (
    Consumer,
    ConsumerStatistics,
    Delivery,
    Mailbox,
    StatusFeed,
    StatusQueue,
    new_status_queue,
)
from ._demand import Demand, Pick
from ._errors import CameraError
from ._frame import Frame
from ._handoff import LoopHandle, current_backend
from ._output import Output
from ._record import Recorder
from ._source import Source
from ._status import Connected, Connecting, FormatChanged, GaveUp, PumpStatus, Reconnecting
from ._usb import UsbTracker
from ._worker import Worker

__all__ = ["Pump", "PumpState", "PumpStatistics", "Subscription", "open_pump"]

logger = logging.getLogger("camerapump")

#: Frames a processed file (``realtime=False``) may decode ahead of its consumer:
#: enough that the decode thread and the consumer overlap instead of taking
#: turns (1 frame ahead cost 15 % of the throughput of a 720p file).
PROCESSING_DEPTH = 8
#: How long ``aclose()`` waits for the decode thread.
CLOSE_TIMEOUT = 0.9


class PumpState(enum.StrEnum):
    """Where a pump is in its life; compares equal to its string value."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
    CLOSED = "closed"


_TERMINAL = frozenset({PumpState.ENDED, PumpState.FAILED, PumpState.CLOSED})


@dataclass(frozen=True, slots=True)
class PumpStatistics:
    """A snapshot of a pump's counters (see :meth:`Pump.statistics`); every figure as of now.

    Attributes:
        state: ``connecting``, ``connected``, ``reconnecting``, ``ended``,
            ``failed`` or ``closed``.
        active: False while paused.
        frames_decoded: Pictures the decoder produced, over all sessions.
        frames_converted: Conversions made: one per picture and distinct
            output that some consumer was going to take.  Pictures nobody
            takes are not converted.
        frames_delivered: Frames taken by consumers (iterating the pump, each
            subscription, each capture); a frame taken by two subscribers counts twice.
        frames_dropped: Frames converted and then replaced (or given up as
            stale) before any consumer took them.
        reconnects: Sessions re-established after a loss.
        reconnect_attempts: Reconnect attempts made (successful or not).
        decode_errors: Packets that failed to decode and were skipped.
        last_frame_age: Seconds since the newest decoded picture, now (it grows
            while a stream is frozen), or ``None`` before the first.
        fps: Pictures decoded during the last second, now (0 on a frozen stream).
        format: The negotiated format, or ``None`` before the first session.
        consumers: Per consumer (the pump's own iteration, each subscription):
            its output, frames delivered and dropped.
    """

    state: PumpState
    active: bool
    frames_decoded: int
    frames_converted: int
    frames_delivered: int
    frames_dropped: int
    reconnects: int
    reconnect_attempts: int
    decode_errors: int
    last_frame_age: float | None
    fps: float
    format: StreamFormat | None
    consumers: tuple[ConsumerStatistics, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The statistics as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["state"] = str(self.state)
        data["format"] = None if self.format is None else self.format.as_dict()
        data["consumers"] = [
            {
                "kind": c.kind,
                "output": str(c.output),
                "delivered": c.delivered,
                "dropped": c.dropped,
            }
            for c in self.consumers
        ]
        if self.last_frame_age is not None:
            data["last_frame_age"] = round(self.last_frame_age, 4)
        return data


class Pump:
    """A running source: iterate for the newest frames, capture one, watch its status.

    Create one with :func:`open_pump`.  Use it as ``async with`` (or ``await``
    it and call :meth:`aclose`).  Works under asyncio and trio.

    Args:
        source: What to stream.
        config: What to ask of the source; ``None`` takes it as it is, in bgr24.
        output: How ``async for frame in pump`` wants its frames (size, fit,
            rate, pixel format, keyframes); ``None``: as the source gives them.
        policy: How to recover a live source; ``None`` turns reconnection off
            (the first error ends the pump).
        buffer: Frames kept for a consumer that is behind.  With 1 (the
            default) a frame is converted only when it will be taken; with
            more, every frame is converted and the newest ``buffer`` kept.  A
            file read with ``realtime=False`` delivers every frame instead.
    """

    def __init__(
        self,
        source: Source,
        config: StreamConfig | None = None,
        *,
        output: Output | None = None,
        policy: ReconnectPolicy | None = ReconnectPolicy(),  # noqa: B008 - frozen, shared is fine
        buffer: int = 1,
    ) -> None:
        if not isinstance(source, Source):
            raise TypeError(f"source must be a camerapump.Source, not {type(source).__name__}")
        if output is not None and not isinstance(output, Output):
            raise TypeError(f"output must be a camerapump.Output, not {type(output).__name__}")
        _check_buffer(buffer)
        self._source = source
        self._config = config or StreamConfig()
        self._policy = policy
        self._processing = source.processed
        self._explicit_output = output is not None
        self._output = (output or Output()).resolved(self._config.pixel_format)
        self._buffer = buffer
        self._demand = Demand()
        self._demand.processing = self._processing
        self._state = PumpState.NEW
        self._format: StreamFormat | None = None
        self._error: CameraError | None = None
        self._active = True
        self._reconnects = 0
        self._attempts = 0
        # The queue type follows the event loop; made here when one runs, so that a
        # reference taken before the pump starts is the one that gets the events.
        try:
            self._status_backend: str | None = current_backend()
        except RuntimeError:
            self._status_backend = None
        self._status: asyncio.Queue[PumpStatus] | StatusQueue = new_status_queue(
            self._status_backend or "trio"
        )
        self._handle: LoopHandle | None = None
        self._first: anyio.Event | None = None
        self._first_error: CameraError | None = None
        self._thread_done: anyio.Event | None = None
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._mailbox: Mailbox | None = None
        self._feeds: list[StatusFeed] = []
        self._last_status: PumpStatus | None = None
        self._worker = Worker(source, self._config, _NULL_SINK, self._demand)
        self._delivery = Delivery(
            self._demand,
            wake=self._wake_worker,
            release_credit=self._release_credit,
            interval=self._interval,
        )
        eager = self._processing or buffer > 1
        self._consumer = Consumer(
            "pump", self._output, None if self._processing else buffer, eager=eager
        )
        # The pump's own iteration is served from the first picture on (a file's
        # first frame is not lost to a consumer that starts a moment later).
        self._consumer.prefetch = True

    # -- lifecycle ------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._state is not PumpState.NEW:
            raise RuntimeError("a pump can be started only once")
        handle = LoopHandle()
        self._handle = handle
        if handle.backend != self._status_backend:  # made outside any loop, or on another
            self._status = new_status_queue(handle.backend)
        self._first = anyio.Event()
        self._thread_done = anyio.Event()
        self._mailbox = Mailbox(handle, self, self._nobody_listens)
        self._worker = Worker(
            self._source,
            self._config,
            self._mailbox,
            self._demand,
            policy=self._policy,
            processing=max(self._buffer, PROCESSING_DEPTH) if self._processing else None,
            device=UsbTracker() if self._source.traits.device else None,
        )
        self._worker.set_active(self._active)
        self._delivery.set_active(self._active)
        self._delivery.add(self._consumer)
        self._set_state(PumpState.CONNECTING)
        self._emit(Connecting())
        self._worker.start()
        try:
            await self._first.wait()
        except BaseException:
            await self.aclose()
            raise
        if self._first_error is not None:
            error = self._first_error
            await self.aclose()
            raise error

    async def aclose(self) -> None:
        """Stop the pump and release the source.  Idempotent; returns within about a second.

        Everything a consumer sees happens at once: iteration ends, pending
        captures return ``None``.  Then this waits for the decode thread, which
        closes the container itself (the only safe way), but never more than
        about a second: a thread inside a blocking open (bounded by the
        source's ``open_timeout``), or inside a read of a silent stream URL
        other than RTSP (bounded by the stall timeout), finishes that on its
        own, closes the source and exits.  The
        wait is shielded, so a caller cancelled meanwhile (any kind of
        cancellation, asyncio or trio) gets its cancellation and the pump
        still closes completely.

        Raises:
            RuntimeError: Called on another event loop than the one that started the pump.
        """
        handle = self._handle
        if handle is not None and not handle.in_loop_thread():
            raise RuntimeError("close a pump on the event loop that started it")
        if not self._closing:
            self._closing = True
            self._worker.stop()  # first: even a close cut short leaves the thread ending
            if self._state not in _TERMINAL:
                self._set_state(PumpState.CLOSED)
            self._delivery.finish(discard=True)
            if self._first is not None:
                self._first.set()  # an open_pump() still waiting returns a closed pump
        if handle is None:
            return
        if handle.backend == "asyncio":
            # anyio's shielded scope does not hold against a plain task.cancel()
            # (measured); a task of its own, awaited through asyncio.shield, does.
            if self._close_task is None:
                self._close_task = asyncio.get_running_loop().create_task(
                    self._wait_for_thread(), name=f"camerapump-close {self._source.label}"
                )
            await asyncio.shield(self._close_task)
        else:
            with anyio.CancelScope(shield=True):
                await self._wait_for_thread()

    async def _wait_for_thread(self) -> None:
        thread = self._worker.thread
        if self._thread_done is None or thread.ident is None:
            return
        deadline = time.monotonic() + CLOSE_TIMEOUT
        with anyio.move_on_after(CLOSE_TIMEOUT):
            await self._thread_done.wait()
        # The thread posted its last word; let it return from run().
        while thread.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread
            await anyio.sleep(0.002)
        if thread.is_alive():
            logger.warning(
                "%s: the decode thread is still inside a blocking FFmpeg call (an open, or a "
                "read of a silent stream URL); it closes the source and exits by itself within "
                "that call's timeout (open_timeout, or stall_timeout for a stream URL's read)",
                self._source.label,
            )
        else:
            thread.join()  # already finished: returns at once

    async def __aenter__(self) -> Self:
        if self._state is PumpState.NEW:
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
        """What was asked of the source."""
        return self._config

    @property
    def output(self) -> Output:
        """How ``async for frame in pump`` shapes its frames (pixel format resolved)."""
        return self._output

    @property
    def format(self) -> StreamFormat | None:
        """What was negotiated (``None`` until a session has opened); follows FormatChanged."""
        return self._format

    @property
    def state(self) -> PumpState:
        """``connecting``, ``connected``, ``reconnecting``, ``ended``, ``failed`` or ``closed``."""
        return self._state

    @property
    def status(self) -> asyncio.Queue[PumpStatus] | StatusQueue:
        """Status events: :class:`Connecting`, then :class:`Connected`, ...

        Under asyncio an ``asyncio.Queue``; under trio a queue with the same
        reading surface (``get()``, ``get_nowait()``, ``qsize()``, ``empty()``).
        It holds the newest 64 events; the pump never waits for it.
        """
        return self._status

    @property
    def last_status(self) -> PumpStatus | None:
        """The newest status event the pump published (whoever read the queue), or ``None``."""
        return self._last_status

    def status_feed(self, maxsize: int = 64) -> StatusFeed:
        """A status reader of your own: every event published from now on, for you alone.

        ``pump.status`` is one queue: two readers share its events.  A feed is a
        copy for one reader (a monitor, a web viewer) beside ``pump.status``.

        Args:
            maxsize: Events kept while you do not read; the oldest go first.

        Returns:
            The feed: ``async for event in feed`` (ends when the pump has ended),
            or ``await feed.get()``; ``feed.close()`` when done.
        """
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a whole number >= 1, not {maxsize!r}")
        self._feeds = [f for f in self._feeds if not f.closed]
        feed = StatusFeed(maxsize, finished=lambda: self._state in _TERMINAL or self._closing)
        self._feeds.append(feed)
        return feed

    @property
    def active(self) -> bool:
        """False while paused with :meth:`set_active`."""
        return self._active

    @property
    def error(self) -> CameraError | None:
        """The error that ended the pump, if one did."""
        return self._error

    def set_active(self, active: bool) -> None:
        """Pause (``False``) or resume (``True``) delivery to the stream's consumers.

        While paused the source stays open and no per-frame Python work is
        done (no conversion, no delivery); :meth:`capture_frame` and
        recordings still work.  Pause means "no per-frame work", not "let the
        camera die": a paused pump whose live source is lost reconnects under
        its policy like an active one, and the stall watchdog keeps counting
        (a paused live source still decodes, so only a real stall trips it).
        A paused file or test pattern stands still until resumed, captured or
        recorded.
        """
        active = bool(active)
        if active == self._active:
            return
        self._active = active
        self._worker.set_active(active)
        self._delivery.set_active(active)

    async def capture_frame(
        self, *, output: Output | None = None, timeout: float | None = None
    ) -> Frame | None:
        """Return one frame decoded after this call, whether streaming or paused.

        Args:
            output: How to shape it (size, fit, pixel format; a rate does not
                apply to one frame; ``keyframes_only`` waits for a keyframe);
                ``None`` takes the pump's output.
            timeout: Seconds to wait at most.  With a timeout, a capture during
                a reconnect backoff or attempt waits for the session to come
                back; ``None`` waits as long as the current session lives.

        For a file read with ``realtime=False`` (processed, not watched) it is
        the file's next frame.

        Returns:
            The frame, or ``None`` if none can be had in time: the pump is
            closed, ended or failed; it is reconnecting and no timeout was
            given; the session was lost while waiting without a timeout; or
            the timeout passed.
        """
        if output is not None and not isinstance(output, Output):
            raise TypeError(f"output must be a camerapump.Output, not {type(output).__name__}")
        if self._state in _TERMINAL or self._closing or self._state is PumpState.NEW:
            return None
        if timeout is None and self._state is not PumpState.CONNECTED:
            return None
        shaped = (output or self._output).resolved(self._config.pixel_format)
        if shaped.max_fps is not None:
            shaped = dataclasses.replace(shaped, max_fps=None)
        consumer = Consumer("capture", shaped, 1, eager=False, timed=timeout is not None)
        self._delivery.add(consumer)
        try:
            with anyio.move_on_after(timeout):
                while True:
                    frame = self._delivery.take(consumer)
                    if frame is not None:
                        return frame
                    if consumer.closed or self._state in _TERMINAL or self._closing:
                        return None
                    await self._delivery.wait(consumer)
            return None
        finally:
            self._delivery.remove(consumer)

    def record(
        self,
        path: str | os.PathLike[str],
        *,
        segment_seconds: float | None = None,
        container: str | None = None,
        audio: bool = True,
    ) -> Recorder:
        """Record the stream to a file without re-encoding; see :class:`Recorder`.

        The recording starts at the current GOP's keyframe (up to one GOP
        before the call), keeps going across pauses and reconnects (each
        session a new file) and stops with :meth:`Recorder.stop`.

        Args:
            path: The output file (``.mp4``, ``.mkv``, ``.ts``); with
                ``segment_seconds``, the base name of the segments.
            segment_seconds: Roll over to a new file at the first keyframe after
                this many seconds; ``None`` writes one file (a new one per session).
            container: The container format; ``None`` goes by the file name.
            audio: Keep the source's audio track (remuxed where the container
                holds its codec, else encoded to AAC; see :class:`Recorder`);
                ``False`` records the video only.

        Returns:
            The recorder: ``await recorder.stop()``, or use it as ``async with``.
        """
        if self._state is PumpState.NEW or self._closing or self._handle is None:
            raise RuntimeError("record() needs a started, open pump")
        recorder = Recorder(
            self._worker,
            self._source,
            self._handle,
            path,
            segment_seconds=segment_seconds,
            container=container,
            audio=audio,
        )
        recorder._attach()
        return recorder

    def subscribe(self, *, output: Output | None = None, buffer: int = 1) -> Subscription:
        """Open an independent view of the stream: every subscriber gets every frame it can take.

        Iterating the pump itself shares frames among the iterating tasks (each
        frame goes to one of them); subscriptions fan out instead, each with its
        own output, newest-``buffer`` frames and counters, so a slow subscriber
        never holds up a fast one.  Subscribers that ask for equal outputs share
        one conversion per frame.  (A file read with ``realtime=False`` has no
        subscriptions: its single consumer sets the pace.)

        Args:
            output: How this subscriber wants its frames; ``None``: the pump's output.
            buffer: Frames this subscriber keeps while it is behind (see :class:`Pump`).

        Returns:
            The subscription: ``async for frame in sub``; ``sub.close()`` (or
            ``with``) to unsubscribe.

        Raises:
            ValueError: A bad ``buffer``, or a file read with ``realtime=False``.
        """
        _check_buffer(buffer)
        if output is not None and not isinstance(output, Output):
            raise TypeError(f"output must be a camerapump.Output, not {type(output).__name__}")
        if self._processing:
            raise ValueError(
                "a file read with realtime=False is processed by one consumer, frame by frame "
                "(its pace is the consumer's); iterate the pump itself, or open the file with "
                "realtime=True to fan out"
            )
        shaped = (output or self._output).resolved(self._config.pixel_format)
        own = self._consumer
        if own.registered and not own.delivered and not own.waiters and not self._explicit_output:
            # Nobody iterates the pump itself: it stops counting as a consumer
            # (so keyframes-only subscribers may let the decoder skip frames)
            # until someone does.
            self._delivery.remove(own)
            own.closed = False
        consumer = Consumer("subscription", shaped, buffer, eager=buffer > 1)
        subscription = Subscription(self, consumer)
        self._delivery.add(consumer)
        return subscription

    def statistics(self) -> PumpStatistics:
        """A snapshot of the pump's counters, computed now (see :class:`PumpStatistics`)."""
        worker = self._worker
        delivered, dropped, consumers = self._delivery.counters()
        if self._mailbox is not None:
            dropped += self._mailbox.dropped
        last = worker.last_frame_at
        now = time.monotonic()
        return PumpStatistics(
            state=self._state,
            active=self._active,
            frames_decoded=worker.frames_decoded,
            frames_converted=worker.frames_converted,
            frames_delivered=delivered + self._captured,
            frames_dropped=dropped,
            reconnects=self._reconnects,
            reconnect_attempts=self._attempts,
            decode_errors=worker.decode_errors,
            last_frame_age=None if not last else now - last,
            fps=worker.measured_fps(now),
            format=self._format,
            consumers=tuple(consumers),
        )

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        """The newest frame not yet taken, shaped by the pump's output; waits for one.

        Raises:
            StopAsyncIteration: The source ended (a file) or the pump was closed.
            CameraError: The pump stopped on an error or gave up reconnecting.
        """
        if self._state is PumpState.NEW:
            raise RuntimeError("start the pump first: 'async with open_pump(...)'")
        consumer = self._consumer
        if not consumer.registered and not self._closing and self._state not in _TERMINAL:
            self._delivery.add(consumer)
        while True:
            frame = self._delivery.take(consumer)
            if frame is not None:
                return frame
            if self._state in _TERMINAL or self._closing:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._delivery.wait(consumer)

    def __repr__(self) -> str:
        return (
            f"<Pump {self._source.label} state={self._state} frames={self._worker.frames_decoded}>"
        )

    # -- from the decode thread, through the mailbox (on the loop; must not raise) --------

    def on_connected(self, fmt: StreamFormat, first: bool, reconnects: int) -> None:
        self._format = fmt
        self._reconnects = reconnects
        if self._closing:
            return
        self._set_state(PumpState.CONNECTED)
        self._emit(Connected(fmt))
        if self._first is not None:
            self._first.set()

    def on_reconnecting(self, attempt: int, delay: float, reason: str, attempts: int) -> None:
        self._attempts = attempts
        if self._closing:
            return
        self._set_state(PumpState.RECONNECTING)
        self._emit(Reconnecting(attempt, delay, reason))
        logger.info("%s: %s; reconnecting in %.1f s", self._source.label, reason, delay)
        # A capture without a timeout belongs to the session that is gone.
        self._delivery.drop_captures(only_untimed=True)
        if self._first is not None:
            self._first.set()  # retry_initial_open: open_pump returns and keeps trying

    def on_format_changed(self, fmt: StreamFormat) -> None:
        self._format = fmt
        if not self._closing:
            self._emit(FormatChanged(fmt))

    def on_finished(self, error: CameraError | None, reason: str | None, first: bool) -> None:
        if error is not None:
            error.__context__ = None  # never chain anything that might quote a URL
        if self._closing:
            return
        if reason is not None:
            self._emit(GaveUp(reason))
        if error is None:
            self._set_state(PumpState.ENDED)
        else:
            self._error = error
            self._set_state(PumpState.FAILED)
            if first and self._first is not None and not self._first.is_set():
                self._first_error = error
        self._delivery.finish(discard=False)
        if self._first is not None:
            self._first.set()

    def on_exited(self) -> None:
        if self._thread_done is not None:
            self._thread_done.set()
        if not self._closing and self._state not in _TERMINAL:
            self.on_finished(
                CameraError(f"{self._source.label}: the decode thread stopped"),
                "decode_thread_stopped",
                self._format is None,
            )

    def on_frame(self, pick: Pick, frame: Frame) -> None:
        self._delivery.on_frame(pick, frame)

    # -- internals ------------------------------------------------------------------------

    @property
    def _captured(self) -> int:
        return self._delivery.captured

    def _set_state(self, state: PumpState) -> None:
        """The one place where the state changes."""
        if self._state is state:
            return
        logger.debug("%s: %s -> %s", self._source.label, self._state, state)
        self._state = state
        if state in _TERMINAL:
            for feed in self._feeds:
                feed.end()

    def _emit(self, event: PumpStatus) -> None:
        logger.debug("%s: %s", self._source.label, event)
        self._last_status = event
        if self._status.full():
            self._status.get_nowait()  # the oldest goes: the pump never waits for a reader
        self._status.put_nowait(event)
        for feed in self._feeds:
            feed.publish(event)

    def _nobody_listens(self) -> None:
        # On the decode thread: the event loop is gone (the program is ending
        # without aclose()), so stop producing.
        self._worker.stop()

    def _wake_worker(self) -> None:
        self._worker.wake()

    def _release_credit(self) -> None:
        self._worker.release_credit()

    def _interval(self) -> float:
        fmt = self._format
        if fmt is not None and fmt.fps:
            return 1.0 / fmt.fps
        return 1.0 / 30


class Subscription:
    """One consumer's own view of a pump's frames; made by :meth:`Pump.subscribe`.

    Attributes:
        output: How this subscriber's frames are shaped.
    """

    def __init__(self, pump: Pump, consumer: Consumer) -> None:
        self._pump = pump
        self._consumer = consumer
        self.output = consumer.output

    @property
    def dropped(self) -> int:
        """Frames converted for this subscriber and replaced before it took them."""
        return self._consumer.dropped

    @property
    def delivered(self) -> int:
        """Frames this subscriber took."""
        return self._consumer.delivered

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        """The newest frame this subscriber has not seen; ends or raises like the pump."""
        pump, consumer = self._pump, self._consumer
        delivery = pump._delivery
        while True:
            frame = delivery.take(consumer)
            if frame is not None:
                return frame
            if consumer.closed:
                raise StopAsyncIteration
            if pump.state in _TERMINAL or pump._closing:
                if pump.error is not None:
                    raise pump.error
                raise StopAsyncIteration
            await delivery.wait(consumer)

    def close(self) -> None:
        """Unsubscribe; a waiting ``async for`` ends."""
        self._pump._delivery.remove(self._consumer)

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
        state = "closed" if self._consumer.closed else "open"
        return (
            f"<Subscription {self._pump.source.label} {self.output} {state} "
            f"delivered={self.delivered} dropped={self.dropped}>"
        )


class _NullSink:
    """Stands in before the pump starts."""

    def connected(self, fmt: StreamFormat, *, first: bool, reconnects: int) -> None: ...
    def reconnecting(self, attempt: int, delay: float, reason: str, *, attempts: int) -> None: ...
    def finished(self, error: CameraError | None, reason: str | None, *, first: bool) -> None: ...
    def format_changed(self, fmt: StreamFormat) -> None: ...
    def frame(self, pick: Pick, frame: Frame) -> None: ...
    def exited(self) -> None: ...
    def alive(self) -> bool:
        return True


_NULL_SINK = _NullSink()


def _check_buffer(buffer: int) -> None:
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ValueError(f"buffer must be a whole number >= 1, not {buffer!r}")


def open_pump(
    source: Source,
    config: StreamConfig | None = None,
    *,
    output: Output | None = None,
    policy: ReconnectPolicy | None = ReconnectPolicy(),  # noqa: B008 - frozen, shared is fine
    buffer: int = 1,
) -> Pump:
    """Open a pump on ``source``: ``async with open_pump(src) as pump: async for frame in pump``.

    Entering (or awaiting) the pump starts its decode thread and waits for the
    first session: on return ``pump.format`` is known.  Runs under asyncio or trio.

    Args:
        source: What to stream (:class:`Source`).
        config: What the source must deliver (negotiated and checked); ``None``
            takes it as it is, in bgr24.
        output: How ``async for`` wants its frames: ``Output(640, 640,
            fit="contain", max_fps=5)`` resizes and decimates on the decode
            thread, converting only the frames taken.
        policy: Reconnection for live sources; ``None`` turns it off.
        buffer: How many of the newest frames to keep for a consumer that is behind.

    Raises:
        CameraError: (on entering) the typed error of a failing first open,
            unless ``policy.retry_initial_open`` is set.
    """
    return Pump(source, config, output=output, policy=policy, buffer=buffer)
