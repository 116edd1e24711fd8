"""What the viewer shares between requests: each camera's status, and its JPEG feeds.

A :class:`Feed` is one camera at one width: a single ``pump.subscribe(output=
Output(width=W, max_fps=FPS))`` and a single :class:`~camerapump._image.JpegEncoder`,
however many viewers watch it.  The first viewer of a size opens it, the last
one to leave closes it, so with nobody watching nothing is subscribed, converted
or encoded.

The feed has no task of its own.  Viewers pull: the first viewer that wants a
JPEG newer than the newest one becomes the producer (it takes the next frame
from the subscription and encodes it), the others wait for it to publish.  A
producer that leaves (its client hung up) wakes the others, and one of them
takes over.  So nothing outlives the requests that use it, which also holds
when the app is mounted inside someone else's application, whose lifespan
never reaches a mounted app.

Encoding takes a few milliseconds a frame (640x360: about 3-5 ms here), too
long for the event loop, so it runs on a worker thread
(``anyio.to_thread.run_sync``) under a capacity limiter of the hub's own: a busy
encoder never takes the threads that the rest of an application uses for its
blocking calls, and the other way round.  One feed never encodes on two threads
at once (there is one producer at a time), which is what the encoder needs: it is
not thread-safe, but it may move from thread to thread.

Everything here runs on the event loop, except the body of an encode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._errors import CameraError
from .._frame import Frame
from .._image import JpegEncoder
from .._output import Output
from .._pump import Pump, PumpState, Subscription
from .._redact import redact_text
from .._status import Connected, PumpStatus

__all__ = [
    "BOUNDARY",
    "ENCODE_THREADS",
    "JPEG_QUALITY",
    "MAX_FEEDS",
    "CameraState",
    "Feed",
    "Hub",
    "Jpeg",
    "Pumps",
    "TooManySizes",
    "mjpeg_part",
]

logger = logging.getLogger("camerapump.serve")

Pumps = Sequence[Pump] | Mapping[str, Pump]

#: Threads that may encode at once, over all cameras and sizes of one app.
ENCODE_THREADS = max(1, min(4, os.cpu_count() or 1))
#: JPEG quality of every picture served (1..100).
JPEG_QUALITY = 80
#: Distinct widths one camera serves at once; another one gets 503 (each costs a
#: conversion and an encode per frame, so a client must not be able to open hundreds).
MAX_FEEDS = 4
#: Status events a camera remembers for its event streams.
_HISTORY = 64

# Which pump state each status event stands for (to notice an event that is out of
# date because someone else read the pump's status queue meanwhile).
_STATE_OF_EVENT = {
    "connecting": PumpState.CONNECTING,
    "connected": PumpState.CONNECTED,
    "format_changed": PumpState.CONNECTED,
    "reconnecting": PumpState.RECONNECTING,
    "gave_up": PumpState.FAILED,
}


class TooManySizes(Exception):
    """A camera already serves :data:`MAX_FEEDS` widths."""


@dataclass(frozen=True, slots=True)
class Jpeg:
    """One encoded picture of a feed.

    Attributes:
        data: The JPEG file's bytes.
        number: Counts the feed's JPEGs from 1 (viewers use it as their cursor).
        sequence: The frame's :attr:`~camerapump.Frame.sequence`.
        captured_at: The frame's ``time.monotonic()`` at decode.
        width: Picture width.
        height: Picture height.
        part: The picture as one part of the MJPEG stream, built once for every viewer.
    """

    data: bytes
    number: int
    sequence: int
    captured_at: float
    width: int
    height: int
    part: bytes = field(default=b"", repr=False)


#: The boundary between the parts of an MJPEG stream.
BOUNDARY = "camerapump"


def mjpeg_part(data: bytes, captured_at: float, sequence: int) -> bytes:
    """One part of the MJPEG stream: its headers, the JPEG, and the boundary after it.

    A browser shows a part when it sees the boundary after it: sent with the
    picture, the picture shows when it arrives, not one frame later.
    """
    head = (
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"X-Captured-At: {captured_at:.6f}\r\n"
        f"X-Frame-Sequence: {sequence}\r\n\r\n"
    )
    return b"".join((head.encode(), data, f"\r\n--{BOUNDARY}\r\n".encode()))


class Feed:
    """One camera at one width, shared by all its viewers (see the module docstring).

    Args:
        camera: The camera.
        width: The picture width; the height follows the aspect ratio.
        fps: At most this many JPEGs a second.
        limiter: The hub's encoding threads.
    """

    def __init__(
        self, camera: CameraState, width: int, fps: float, limiter: anyio.CapacityLimiter
    ) -> None:
        self.camera = camera
        self.width = width
        self.viewers = 0
        self.latest: Jpeg | None = None
        self.closed = False
        self.error: CameraError | None = None
        self._limiter = limiter
        self._encoder: JpegEncoder | None = JpegEncoder(JPEG_QUALITY)
        self._subscription: Subscription | None = camera.pump.subscribe(
            output=Output(width=width, max_fps=fps)
        )
        self._producing = False
        self._published = anyio.Event()
        self._failures = 0

    @property
    def open(self) -> bool:
        """True while the feed holds its subscription and encoder."""
        return self._subscription is not None

    async def next(self, after: int) -> Jpeg | None:
        """The newest JPEG numbered above ``after``; waits for one.

        Returns:
            The JPEG, or ``None`` once the feed is closed or its camera ended
            (:attr:`error` says why, if it failed).
        """
        while True:
            latest = self.latest
            if latest is not None and latest.number > after:
                return latest
            if self.closed:
                return None
            if self._producing:
                await self._published.wait()
                continue
            self._producing = True
            try:
                await self._produce()
            finally:
                self._producing = False
                published, self._published = self._published, anyio.Event()
                published.set()  # also when this producer was cancelled: another takes over

    async def _produce(self) -> None:
        subscription, encoder = self._subscription, self._encoder
        if subscription is None or encoder is None:
            self.closed = True
            return
        try:
            frame = await subscription.__anext__()
        except StopAsyncIteration:
            self.closed = True
            return
        except CameraError as exc:
            self.error, self.closed = exc, True
            return
        # Shielded: a producer whose client hangs up during the encode still
        # publishes the JPEG it paid for (and the encoder is never left mid-frame).
        with anyio.CancelScope(shield=True):
            try:
                data = await anyio.to_thread.run_sync(encoder.encode, frame, limiter=self._limiter)
            except CameraError as exc:
                self._failures += 1
                if self._failures == 1:
                    logger.warning("%s: %s", self.camera.label, exc)
                return
            self._publish(frame, data)

    def _publish(self, frame: Frame, data: bytes) -> None:
        number = 1 if self.latest is None else self.latest.number + 1
        part = mjpeg_part(data, frame.captured_at, frame.sequence)
        self.latest = Jpeg(
            data, number, frame.sequence, frame.captured_at, frame.width, frame.height, part
        )
        self.camera.jpegs_encoded += 1

    def close(self) -> None:
        """Give back the subscription and the encoder; waiting viewers get ``None``."""
        self.closed = True
        if self._subscription is not None:
            self._subscription.close()  # a producer waiting on it wakes up and ends
            self._subscription = None
        self._encoder = None
        self._published.set()

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        return f"<Feed {self.camera.label} width={self.width} viewers={self.viewers} {state}>"


class CameraState:
    """What the hub knows of one pump: its name, its status events, its feeds.

    Args:
        pump: The pump (owned by the application, not by the hub).
        name: The name it was given, or ``None`` (then its label is its name).
    """

    def __init__(self, pump: Pump, name: str | None) -> None:
        self.pump = pump
        self.index = 0
        self.label = pump.source.label
        # A name is the user's text: it might quote a URL with its password.
        self.name = self.label if name is None else redact_text(name, pump.source.secrets)
        self.feeds: dict[int, Feed] = {}
        self.jpegs_encoded = 0
        self.events: deque[tuple[int, PumpStatus]] = deque(maxlen=_HISTORY)
        self.events_seen = 0
        # A feed of its own: the application may read pump.status too, and each
        # reader of that queue would see only some of the events.
        self.feed = pump.status_feed(_HISTORY)
        self.last_event: PumpStatus | None = pump.last_status

    def drain(self) -> None:
        """Take the events published since the last look into the camera's history."""
        while True:
            try:
                event = self.feed.get_nowait()
            except asyncio.QueueEmpty:
                return
            self.events_seen += 1
            self.events.append((self.events_seen, event))
            self.last_event = event

    def events_after(self, cursor: int) -> list[tuple[int, PumpStatus]]:
        """The remembered events numbered above ``cursor``, oldest first."""
        return [(n, e) for n, e in self.events if n > cursor]

    def status(self) -> dict[str, Any]:
        """The current status as an event's JSON (the last event, or one made from the state)."""
        self.drain()
        state = self.pump.state
        event = self.last_event
        if event is not None and _STATE_OF_EVENT.get(event.name) is state:
            return event.as_dict()
        fmt = self.pump.format
        if state is PumpState.CONNECTED and fmt is not None:
            return Connected(fmt).as_dict()
        # No event yet for this state (the pump is closed, say): what the state says.
        return {"event": str(state), "at": round(time.time(), 3)}

    def viewers(self) -> dict[str, int]:
        """Viewers per width being served (``{"640": 2}``)."""
        return {str(width): feed.viewers for width, feed in sorted(self.feeds.items())}

    def __repr__(self) -> str:
        return f"<CameraState {self.name!r} {self.label} feeds={sorted(self.feeds)}>"


class Hub:
    """The shared state of one app: its cameras, their feeds, the encoding threads.

    Args:
        pumps: A list of pumps, or a mapping of names to pumps.  Read at every
            request, so it may be filled later (in an application's lifespan).
        fps: JPEGs a second per feed.
        width: The default picture width.
    """

    def __init__(self, pumps: Pumps, *, fps: float, width: int) -> None:
        self._pumps = pumps
        self.fps = fps
        self.width = width
        self.closed = False
        self._states: dict[Pump, CameraState] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        self._closing: anyio.Event | None = None

    # -- cameras ----------------------------------------------------------------------

    def cameras(self) -> list[CameraState]:
        """The cameras now, in order (the pumps' collection may have changed)."""
        pumps = self._pumps
        if isinstance(pumps, Mapping):
            items: list[tuple[str | None, Pump]] = [(str(k), p) for k, p in pumps.items()]
        else:
            items = [(None, p) for p in pumps]
        states: list[CameraState] = []
        for index, (name, pump) in enumerate(items):
            if not isinstance(pump, Pump):
                raise TypeError(f"camerapump.serve serves Pumps, not {type(pump).__name__}")
            state = self._states.get(pump)
            if state is None:
                state = self._states[pump] = CameraState(pump, name)
            state.index = index
            states.append(state)
        if len(self._states) > len(states):
            # Pumps taken out of the collection: forget them once nobody watches.
            present = {s.pump for s in states}
            for pump, state in list(self._states.items()):
                if pump not in present and not state.feeds:
                    state.feed.close()  # and its status feed: the pump keeps no copy for it
                    del self._states[pump]
        return states

    def camera(self, key: str) -> CameraState | None:
        """The camera with this name (pumps given as a mapping) or this index."""
        cameras = self.cameras()
        if isinstance(self._pumps, Mapping):
            for state in cameras:
                if state.name == key:
                    return state
        if key.isdigit() and int(key) < len(cameras):
            return cameras[int(key)]
        return None

    # -- feeds ------------------------------------------------------------------------

    def join(self, camera: CameraState, width: int) -> Feed:
        """Become a viewer of ``camera`` at ``width``, opening its feed if it has none.

        Raises:
            TooManySizes: The camera already serves :data:`MAX_FEEDS` other widths.
        """
        feed = camera.feeds.get(width)
        if feed is None or feed.closed:
            if feed is not None:
                self._close_feed(feed)
            if len(camera.feeds) >= MAX_FEEDS:
                raise TooManySizes(f"a camera serves at most {MAX_FEEDS} sizes at once")
            feed = camera.feeds[width] = Feed(camera, width, self.fps, self.encode_limiter())
        feed.viewers += 1
        return feed

    def leave(self, feed: Feed) -> None:
        """Stop being a viewer of ``feed``; the last viewer closes it."""
        feed.viewers -= 1
        if feed.viewers <= 0:
            self._close_feed(feed)

    def _close_feed(self, feed: Feed) -> None:
        feed.close()
        if feed.camera.feeds.get(feed.width) is feed:
            del feed.camera.feeds[feed.width]

    def feeds(self) -> list[Feed]:
        """Every open feed (for figures and tests)."""
        return [feed for state in self._states.values() for feed in state.feeds.values()]

    def encode_limiter(self) -> anyio.CapacityLimiter:
        """The threads this app encodes on (made on first use, on the event loop)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(ENCODE_THREADS)
        return self._limiter

    # -- shutdown ---------------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the hub closes."""
        if self._closing is None:
            self._closing = anyio.Event()
        if self.closed:
            return
        with anyio.move_on_after(seconds):
            await self._closing.wait()

    def close(self) -> None:
        """End every stream: the feeds close, event streams end (a server that shuts down)."""
        self.closed = True
        if self._closing is not None:
            self._closing.set()
        for feed in self.feeds():
            self._close_feed(feed)
        for camera in self._states.values():
            camera.feed.close()
