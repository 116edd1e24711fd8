"""Delivery on the event loop: consumers, their outputs, and the mailbox from the decode thread.

Every way of taking frames is a :class:`Consumer` with an
:class:`~camerapump.Output`: the pump's own iteration, each subscription, each
pending capture.  A consumer asks the decode thread for a frame (a *ticket* in
the shared :class:`~camerapump._demand.Demand`) only when it will take one:

* while a task waits on it;
* right after a take, when the consumer keeps up with the stream (it came back
  within 1.5 frame intervals): the next frame is then converted ahead and is
  ready when it returns, so a consumer near the camera's rate loses nothing;
* always, for a consumer with a buffer of more than one frame (it asked to
  keep the newest N while it is behind), and for a file processed with
  ``realtime=False`` (every frame, paced by the consumer).

So a frame that nobody takes is never converted, and a slow consumer gets a
frame decoded after it asked, not one that waited for it.

The :class:`Mailbox` is the decode thread's sink: frames wait in it under a
lock, and one wake-up per batch is posted to the loop, so a loop that was
blocked for a while finds a few frames, not a backlog.

Thread ownership: :class:`Mailbox` methods named like the :class:`Sink`
protocol run on the decode thread; everything else here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio

from ._config import StreamFormat
from ._demand import Demand, Pick
from ._errors import CameraError
from ._frame import Frame
from ._handoff import LoopHandle
from ._output import Output
from ._status import PumpStatus

__all__ = [
    "STATUS_QUEUE_SIZE",
    "Consumer",
    "ConsumerStatistics",
    "Delivery",
    "Mailbox",
    "StatusFeed",
    "StatusQueue",
    "new_status_queue",
]

#: Status events kept for a reader that does not keep up; the oldest go first.
STATUS_QUEUE_SIZE = 64
# Frames that may wait in the mailbox for a blocked loop; the oldest eager ones go first.
_MAILBOX_LIMIT = 256
# A consumer that comes back within this many frame intervals keeps up: its next
# frame is converted ahead.
_KEEPING_UP = 1.5
# A frame converted ahead is given up (not served stale) once it is this many
# frame intervals old at the take.
_STALE_AFTER = 2.5

ConsumerKind = Literal["pump", "subscription", "capture"]


@dataclass(frozen=True, slots=True)
class ConsumerStatistics:
    """One consumer's counters (see :meth:`Pump.statistics <camerapump.Pump.statistics>`).

    Attributes:
        kind: ``"pump"`` (iterating the pump) or ``"subscription"``.
        output: What it asks for.
        delivered: Frames it took.
        dropped: Frames converted for it and replaced (or given up as stale)
            before it took them.
    """

    kind: str
    output: Output
    delivered: int
    dropped: int


class Consumer:
    """One taker of frames (loop side)."""

    __slots__ = (
        "buffer",
        "closed",
        "delivered",
        "dropped",
        "eager",
        "frames",
        "kind",
        "last_take",
        "output",
        "prefetch",
        "registered",
        "ticket",
        "timed",
        "waiters",
    )

    def __init__(
        self,
        kind: ConsumerKind,
        output: Output,
        buffer: int | None,
        *,
        eager: bool,
        timed: bool = False,
    ) -> None:
        self.kind: ConsumerKind = kind
        self.output = output
        self.buffer = buffer
        self.eager = eager
        self.timed = timed  # a capture with a timeout: it outlives a lost session
        # (frame, converted ahead?) pairs; the newest ``buffer`` are kept (None: all).
        self.frames: deque[tuple[Frame, bool]] = deque(maxlen=buffer)
        self.waiters: deque[anyio.Event] = deque()
        self.ticket: int | None = None  # the epoch of the frame asked for
        self.prefetch = False
        self.last_take: float | None = None
        self.delivered = 0
        self.dropped = 0
        self.closed = False
        self.registered = False

    def statistics(self) -> ConsumerStatistics:
        """A snapshot of this consumer's counters."""
        return ConsumerStatistics(self.kind, self.output, self.delivered, self.dropped)


class Delivery:
    """The consumers of one pump and the frames on their way to them (loop side).

    Args:
        demand: Shared with the decode thread.
        wake: Wakes the decode thread when the demand changed.
        release_credit: Called per frame taken from a processed file.
        interval: The stream's frame interval in seconds, now (for "keeping up").
    """

    def __init__(
        self,
        demand: Demand,
        *,
        wake: Callable[[], None],
        release_credit: Callable[[], None],
        interval: Callable[[], float],
    ) -> None:
        self.demand = demand
        self._wake_thread = wake
        self._release_credit = release_credit
        self._interval = interval
        self.consumers: list[Consumer] = []
        self.active = True
        self.processing = demand.processing
        self.finished = False
        #: Frames converted that no consumer took (it went away, or it was paused).
        self.unclaimed = 0
        #: Frames taken by one-shot captures.
        self.captured = 0
        self._delivered_retired = 0
        self._dropped_retired = 0

    # -- consumers ------------------------------------------------------------------------

    def add(self, consumer: Consumer) -> None:
        """Start serving ``consumer``."""
        self.consumers.append(consumer)
        self.demand.register(consumer.output)
        consumer.registered = True
        if consumer.eager and (self.active or consumer.kind == "capture" or self.processing):
            self.demand.set_eager(consumer.output, +1)
        self.refresh(consumer)
        self._wake_thread()  # skip_nonkey may have changed; a paused file may run again

    def remove(self, consumer: Consumer) -> None:
        """Stop serving ``consumer``; its waiting tasks end."""
        if not consumer.registered:
            return
        consumer.registered = False
        consumer.closed = True
        if consumer.ticket is not None:
            self.demand.revoke(consumer.output, consumer.ticket, capture=consumer.kind == "capture")
            consumer.ticket = None
        if consumer.eager and (self.active or consumer.kind == "capture" or self.processing):
            self.demand.set_eager(consumer.output, -1)
        self.demand.unregister(consumer.output)
        self.consumers.remove(consumer)
        if consumer.kind == "capture":
            self.captured += consumer.delivered
        elif consumer.kind == "subscription":
            self._delivered_retired += consumer.delivered
            self._dropped_retired += consumer.dropped
        consumer.frames.clear()
        self._wake_all(consumer)
        self._wake_thread()

    def set_active(self, active: bool) -> None:
        """Pause (no frames for the stream's consumers) or resume."""
        if active == self.active:
            return
        self.active = active
        for consumer in self.consumers:
            if consumer.eager and consumer.kind != "capture" and not self.processing:
                self.demand.set_eager(consumer.output, +1 if active else -1)
            self.refresh(consumer)
        self._wake_thread()

    def refresh(self, consumer: Consumer) -> None:
        """Ask for a frame for ``consumer``, or take the request back, as its state says."""
        wants = (
            consumer.registered
            and not consumer.closed
            and not self.finished
            and not consumer.eager
            and (self.active or consumer.kind == "capture")
            and not consumer.frames
            and (bool(consumer.waiters) or consumer.prefetch or consumer.kind == "capture")
        )
        capture = consumer.kind == "capture"
        if wants and consumer.ticket is None:
            consumer.ticket = self.demand.grant(consumer.output, capture=capture)
            self._wake_thread()
        elif (
            not wants
            and consumer.ticket is not None
            and self.demand.revoke(consumer.output, consumer.ticket, capture=capture)
        ):
            consumer.ticket = None
        # A ticket that could not be revoked was served: its frame is on the way.

    # -- frames ---------------------------------------------------------------------------

    def on_frame(self, pick: Pick, frame: Frame) -> None:
        """A frame converted for ``pick.output`` arrived from the decode thread."""
        claimed = False
        for consumer in list(self.consumers):
            if consumer.output != pick.output or consumer.closed:
                continue
            if consumer.ticket == pick.epoch:
                consumer.ticket = None
                self._push(consumer, frame, ahead=not consumer.waiters)
                claimed = True
            elif pick.stream and consumer.eager:
                self._push(consumer, frame, ahead=False)
                claimed = True
        if not claimed:
            self.unclaimed += 1

    def _push(self, consumer: Consumer, frame: Frame, *, ahead: bool) -> None:
        if consumer.frames.maxlen is not None and len(consumer.frames) == consumer.frames.maxlen:
            consumer.dropped += 1  # replaced before anyone took it
        consumer.frames.append((frame, ahead))
        if consumer.waiters:
            consumer.waiters.popleft().set()

    def take(self, consumer: Consumer) -> Frame | None:
        """The next frame for ``consumer``, or None if it has none (or only a stale one)."""
        while consumer.frames:
            frame, ahead = consumer.frames.popleft()
            now = time.monotonic()
            interval = max(
                self._interval(), 1.0 / consumer.output.max_fps if consumer.output.max_fps else 0.0
            )
            if ahead and now - frame.captured_at > _STALE_AFTER * interval:
                # Converted ahead for a consumer that then slowed down: do not
                # serve it stale; it waits for a fresh one instead.
                consumer.dropped += 1
                consumer.prefetch = False
                continue
            # Converted ahead only for a consumer seen to keep up (the first take
            # tells nothing yet: it waits for its second frame).
            consumer.prefetch = (
                consumer.last_take is not None
                and now - consumer.last_take <= _KEEPING_UP * interval
            )
            consumer.last_take = now
            consumer.delivered += 1
            if consumer.eager and consumer.kind == "pump":
                self._release_credit()
            self.refresh(consumer)
            return frame
        return None

    async def wait(self, consumer: Consumer) -> None:
        """Wait until ``consumer`` may have a frame, or the pump/consumer ended."""
        event = anyio.Event()
        consumer.waiters.append(event)
        self.refresh(consumer)
        try:
            await event.wait()
        finally:
            if event in consumer.waiters:
                consumer.waiters.remove(event)
            elif event.is_set() and consumer.frames and consumer.waiters:
                # Woken for a frame that this task (cancelled) will not take: pass it on.
                consumer.waiters.popleft().set()
            self.refresh(consumer)

    def drop_captures(self, *, only_untimed: bool) -> None:
        """End waiting captures (the session was lost): those without a timeout, or all."""
        for consumer in list(self.consumers):
            if consumer.kind == "capture" and not (only_untimed and consumer.timed):
                consumer.closed = True
                self._wake_all(consumer)

    def finish(self, *, discard: bool) -> None:
        """The pump ended: wake everything that waits.

        Args:
            discard: Drop the frames still buffered (a close: they would be
                stale); a source that ended keeps them for its consumers.
        """
        self.finished = True
        for consumer in list(self.consumers):
            if discard:
                consumer.frames.clear()
            self._wake_all(consumer)
            self.refresh(consumer)

    def _wake_all(self, consumer: Consumer) -> None:
        while consumer.waiters:
            consumer.waiters.popleft().set()

    # -- figures --------------------------------------------------------------------------

    def counters(self) -> tuple[int, int, list[ConsumerStatistics]]:
        """(delivered, dropped, per-consumer statistics of the current stream consumers)."""
        delivered = self._delivered_retired
        dropped = self._dropped_retired + self.unclaimed
        per: list[ConsumerStatistics] = []
        for consumer in self.consumers:
            if consumer.kind == "capture":
                continue
            delivered += consumer.delivered
            dropped += consumer.dropped
            per.append(consumer.statistics())
        return delivered, dropped, per


class Mailbox:
    """The decode thread's sink: hands frames and events to the event loop.

    Args:
        handle: The loop to post to.
        target: The loop-side receiver (the pump).
        on_gone: Called on the decode thread when the loop is gone (nobody listens).
    """

    __slots__ = ("_frames", "_gone", "_handle", "_lock", "_scheduled", "_target", "dropped")

    def __init__(
        self, handle: LoopHandle, target: MailboxTarget, on_gone: Callable[[], None]
    ) -> None:
        self._handle = handle
        self._target = target
        self._gone = on_gone
        self._lock = threading.Lock()
        # Frames, and format changes in their place among them (None, format):
        # a consumer must hear of a new size before it gets frames of that size.
        self._frames: deque[tuple[Pick, Frame] | tuple[None, StreamFormat]] = deque()
        self._scheduled = False
        #: Frames given up in the mailbox while the loop did not take them.
        self.dropped = 0

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        if not self._handle.post(callback, *args):
            self._gone()

    # -- the Sink protocol (decode thread) --

    def connected(self, fmt: StreamFormat, *, first: bool, reconnects: int) -> None:
        self._post(self._target.on_connected, fmt, first, reconnects)

    def reconnecting(self, attempt: int, delay: float, reason: str, *, attempts: int) -> None:
        self._post(self._target.on_reconnecting, attempt, delay, reason, attempts)

    def finished(self, error: CameraError | None, reason: str | None, *, first: bool) -> None:
        self._post(self._target.on_finished, error, reason, first)

    def format_changed(self, fmt: StreamFormat) -> None:
        self._enqueue((None, fmt))

    def exited(self) -> None:
        self._post(self._target.on_exited)

    def alive(self) -> bool:
        return self._handle.post(_nothing)

    def frame(self, pick: Pick, frame: Frame) -> None:
        self._enqueue((pick, frame))

    def _enqueue(self, item: tuple[Pick, Frame] | tuple[None, StreamFormat]) -> None:
        with self._lock:
            if len(self._frames) >= _MAILBOX_LIMIT:
                # The loop is blocked: the oldest frame for eager consumers goes
                # (their buffers would replace it anyway).  A frame that serves a
                # waiting consumer's ticket stays, or that consumer would wait for
                # good; so does a format change.  Tickets bound those.
                for index, (pick, _) in enumerate(self._frames):
                    if pick is not None and not pick.serves:
                        del self._frames[index]
                        self.dropped += 1
                        break
            self._frames.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        self._post(self._drain)

    def _drain(self) -> None:
        """On the loop: hand over what the mailbox holds, in order."""
        with self._lock:
            items = list(self._frames)
            self._frames.clear()
            self._scheduled = False
        for pick, payload in items:
            if pick is None:
                assert isinstance(payload, StreamFormat)
                self._target.on_format_changed(payload)
            else:
                assert isinstance(payload, Frame)
                self._target.on_frame(pick, payload)


def _nothing() -> None:
    """Posted now and then: the post failing is how the thread learns the loop is gone."""


class MailboxTarget(Protocol):
    """What the mailbox calls on the loop (implemented by the pump)."""

    def on_connected(self, fmt: StreamFormat, first: bool, reconnects: int) -> None: ...
    def on_reconnecting(self, attempt: int, delay: float, reason: str, attempts: int) -> None: ...
    def on_finished(self, error: CameraError | None, reason: str | None, first: bool) -> None: ...
    def on_format_changed(self, fmt: StreamFormat) -> None: ...
    def on_exited(self) -> None: ...
    def on_frame(self, pick: Pick, frame: Frame) -> None: ...


class StatusQueue:
    """``pump.status`` under trio: the surface of ``asyncio.Queue`` a reader needs.

    ``get()``, ``get_nowait()``, ``qsize()``, ``empty()`` and ``full()``; the
    pump puts with ``put_nowait()`` and never waits (the oldest event goes
    when it is full).
    """

    def __init__(self, maxsize: int = STATUS_QUEUE_SIZE) -> None:
        self.maxsize = maxsize
        self._items: deque[PumpStatus] = deque()
        self._waiters: deque[anyio.Event] = deque()

    def qsize(self) -> int:
        """Events waiting."""
        return len(self._items)

    def empty(self) -> bool:
        """True when no event waits."""
        return not self._items

    def full(self) -> bool:
        """True when the queue holds ``maxsize`` events."""
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: PumpStatus) -> None:
        """Add an event (the pump does this)."""
        self._items.append(item)
        while self._waiters:
            self._waiters.popleft().set()

    def get_nowait(self) -> PumpStatus:
        """The oldest event.

        Raises:
            asyncio.QueueEmpty: No event waits (the same error as asyncio's queue).
        """
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> PumpStatus:
        """Wait for, and return, the oldest event."""
        while not self._items:
            await self._wait()
        return self._items.popleft()

    async def _wait(self) -> None:
        """Wait until an event is put in (or the readers are woken for another reason)."""
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        finally:
            if event in self._waiters:
                self._waiters.remove(event)

    def _wake_readers(self) -> None:
        while self._waiters:
            self._waiters.popleft().set()

    def __repr__(self) -> str:
        return f"<StatusQueue size={len(self._items)}>"


class StatusFeed(StatusQueue):
    """A reader's own copy of a pump's status events; made by :meth:`Pump.status_feed`.

    Every event the pump publishes after the feed was made is put here too, so
    several readers (your code, a web viewer, a monitor) each see every event,
    where readers of ``pump.status`` share one queue.  ``async for event in
    feed`` ends once the pump has ended and the events are read; ``close()``
    (or ``with``) stops the feed.  The newest ``maxsize`` events are kept.
    """

    def __init__(self, maxsize: int, *, finished: Callable[[], bool]) -> None:
        super().__init__(maxsize)
        self._finished = finished
        self.closed = False
        #: Events given up because the reader was behind (the oldest go first).
        self.dropped = 0

    def publish(self, event: PumpStatus) -> None:
        """Put ``event`` in (the pump does this; never waits)."""
        if self.closed:
            return
        if self.full():
            self._items.popleft()
            self.dropped += 1
        self.put_nowait(event)

    def end(self) -> None:
        """The pump ended: a waiting ``async for`` takes what is left, then stops."""
        self._wake_readers()

    def close(self) -> None:
        """Stop receiving events; a waiting ``async for`` ends."""
        self.closed = True
        self._items.clear()
        self._wake_readers()

    def __aiter__(self) -> StatusFeed:
        return self

    async def __anext__(self) -> PumpStatus:
        while not self._items:
            if self.closed or self._finished():
                raise StopAsyncIteration
            await self._wait()
        return self._items.popleft()

    def __enter__(self) -> StatusFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<StatusFeed {state} size={len(self._items)} dropped={self.dropped}>"


def new_status_queue(backend: str) -> asyncio.Queue[PumpStatus] | StatusQueue:
    """An ``asyncio.Queue`` under asyncio (the documented contract), a StatusQueue under trio."""
    if backend == "asyncio":
        return asyncio.Queue(maxsize=STATUS_QUEUE_SIZE)
    return StatusQueue(STATUS_QUEUE_SIZE)
