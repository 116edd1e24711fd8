"""The decode thread: one per pump, owner of the PyAV container from open to close.

The thread runs sessions on request.  A session opens the source, negotiates,
reads and decodes until the source ends, fails, is aborted (stall watchdog) or
the worker is stopped, and closes the container itself, so no other thread
ever touches it (closing a container from another thread while it is inside
``demux`` is a use-after-free in FFmpeg).  Every blocking read is bounded by
PyAV's read timeout, so stop and abort requests are seen within about half a
second.  Results go to a :class:`Sink`; the asyncio pump's sink hands them to
the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from ._backend import guard, negotiate, open_input, translate
from ._config import StreamConfig, StreamFormat
from ._devices import find_device_by_id, list_devices, negotiate_usb
from ._errors import CameraError, ConnectionFailed, StreamTimeout
from ._frame import Frame
from ._source import Source

__all__ = ["PacketTap", "SessionEnd", "Sink", "Worker"]

logger = logging.getLogger("camerapump")

_thread_ids = itertools.count(1)
# A paced source that falls this far behind its own clock re-anchors instead of
# racing to catch up (after a pause, a seek, a slow machine).
_RESYNC_AFTER = 0.5


class _EndOfPackets:
    """Marks the end of a session's packets."""


_END = _EndOfPackets()
# Transient read errors (EIO) in a row before a live session counts as broken.
_MAX_HICCUPS = 20


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """How a session ended.

    Attributes:
        error: ``None`` for a normal end (a finite source ended, or a stop);
            otherwise the typed error.
        reason: The machine-readable reason for status events, or ``None``.
    """

    error: CameraError | None
    reason: str | None


class Sink(Protocol):
    """Receives what the decode thread produces.  Called on the decode thread."""

    def opened(self, fmt: StreamFormat) -> None: ...
    def open_failed(self, error: CameraError) -> None: ...
    def frame(self, frame: Frame, for_stream: bool) -> None: ...
    def ended(self, end: SessionEnd) -> None: ...
    def finished(self) -> None: ...


class PacketTap(Protocol):
    """Sees the compressed packets and decoded frames of every session (a recorder).

    All methods run on the decode thread, which owns the input container; a
    tap must not raise (one that does is logged and detached) and must not
    block for long.
    """

    def session_started(self, stream: VideoStream) -> None: ...
    def packet(self, packet: Packet[VideoStream]) -> None: ...
    def frame(self, frame: VideoFrame) -> None: ...
    def session_ended(self) -> None: ...
    def close(self) -> None: ...


class Worker:
    """The decode thread of one pump and the thread-safe controls of it.

    Args:
        source: What to open.
        config: What to ask for.
        sink: Where results go.
        backpressure: Number of frame credits: the thread waits for a credit
            before it delivers a frame to the stream (files read with
            ``realtime=False``, where every frame counts); ``None`` for live
            delivery, where the sink keeps the newest frames instead.
    """

    def __init__(
        self, source: Source, config: StreamConfig, sink: Sink, *, backpressure: int | None = None
    ) -> None:
        self.source = source
        self.config = config
        self._sink = sink
        self._cond = threading.Condition()
        self._stop = False
        self._open_requested = False
        self._abort_reason: str | None = None
        self._active = True
        self._captures = 0
        self._capture_requests = 0  # every capture ever asked for (to serve each one)
        # Backpressure for processed files, kept cheap on the hot path: two
        # counters with one writer each (this thread; the consumer), and an
        # event that is only set when this thread actually waits.
        self._depth = backpressure or None
        self._produced = 0
        self._consumed = 0
        self._space = threading.Event()
        self._waiting_for_space = False
        self._taps: list[PacketTap] = []  # touched by the decode thread only
        self._tap_changes: list[tuple[bool, PacketTap]] = []  # (add?, tap), under _cond
        self._stream: VideoStream | None = None  # the open session's stream (thread only)
        self._device_id: str | None = None  # a USB camera's stable id, once known
        self._sequence = 0
        #: ``time.monotonic()`` of the last decoded frame (read by the watchdog).
        self.last_frame_at = 0.0
        #: Frames that failed to decode and were skipped (corrupt or lost packets).
        self.decode_errors = 0
        self._thread = threading.Thread(
            target=self._run, name=f"camerapump-decode-{next(_thread_ids)}", daemon=True
        )

    # -- controls, called from any thread -------------------------------------------------

    @property
    def sink(self) -> Sink:
        """Where this worker's results go."""
        return self._sink

    @property
    def thread(self) -> threading.Thread:
        """The decode thread."""
        return self._thread

    @property
    def device_id(self) -> str | None:
        """The stable id of the USB camera this worker opened, once known."""
        return self._device_id

    @property
    def frames_decoded(self) -> int:
        """Frames decoded so far, over all sessions."""
        return self._sequence

    def start(self) -> None:
        """Start the thread (it waits for :meth:`request_open`)."""
        self._thread.start()

    def request_open(self) -> None:
        """Ask for a new session; the sink hears ``opened`` or ``open_failed``."""
        with self._cond:
            self._open_requested = True
            self._abort_reason = None
            self._cond.notify_all()

    def abort_session(self, reason: str) -> None:
        """End the current session (the sink hears ``ended`` with a StreamTimeout)."""
        with self._cond:
            self._abort_reason = reason
            self._cond.notify_all()

    def stop(self) -> None:
        """Ask the thread to close its session and exit; returns at once."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._space.set()  # wake a thread waiting for the consumer

    def set_active(self, active: bool) -> None:
        """Pause (no conversion, no delivery) or resume."""
        with self._cond:
            self._active = active
            self._cond.notify_all()

    def add_capture(self, delta: int) -> None:
        """Count a pending one-shot capture in (+1) or out (-1)."""
        with self._cond:
            self._captures = max(0, self._captures + delta)
            if delta > 0:
                self._capture_requests += 1
            self._cond.notify_all()

    def add_tap(self, tap: PacketTap) -> None:
        """Attach a packet tap; it starts with the next packet (of the next session if none)."""
        with self._cond:
            self._tap_changes.append((True, tap))
            self._cond.notify_all()

    def remove_tap(self, tap: PacketTap) -> None:
        """Detach a tap; the decode thread calls its ``close()`` soon (at once if idle)."""
        with self._cond:
            self._tap_changes.append((False, tap))
            self._cond.notify_all()

    def release_credit(self) -> None:
        """The consumer took a frame: the thread may deliver one more."""
        if self._depth is not None:
            self._consumed += 1
            if self._waiting_for_space:
                self._space.set()

    # -- the thread -----------------------------------------------------------------------

    # Read through methods: other threads change these flags under us, and a
    # type checker would otherwise "narrow" them after the first test.
    def _stopping(self) -> bool:
        return self._stop

    def _aborting(self) -> bool:
        return self._abort_reason is not None

    def _halted(self) -> bool:
        return self._stop or self._abort_reason is not None

    def _apply_tap_changes(self) -> None:
        with self._cond:
            changes, self._tap_changes = self._tap_changes, []
        for add, tap in changes:
            if add:
                self._taps.append(tap)
                if self._stream is not None:
                    self._call_tap(tap, "session_started", self._stream)
            elif tap in self._taps:
                self._taps.remove(tap)
                self._call_tap(tap, "close")
            else:
                self._call_tap(tap, "close")

    def _call_tap(self, tap: PacketTap, method: str, *args: object) -> None:
        try:
            getattr(tap, method)(*args)
        except Exception:
            logger.exception("%s: a tap failed in %s; detaching it", self.source.label, method)
            if tap in self._taps:
                self._taps.remove(tap)
                with contextlib.suppress(Exception):
                    tap.close()

    def _each_tap(self, method: str, *args: object) -> None:
        for tap in list(self._taps):
            self._call_tap(tap, method, *args)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._stop or self._open_requested or self._tap_changes):
                        self._cond.wait()
                    if self._stop:
                        return
                    start = self._open_requested
                    self._open_requested = False
                self._apply_tap_changes()
                if start:
                    self._session()
        except BaseException:  # pragma: no cover - a bug; keep the loop informed
            logger.exception("decode thread of %s crashed", self.source.label)
            self._sink.ended(
                SessionEnd(
                    CameraError(f"{self.source.label}: internal error in the decode thread"),
                    "crash",
                )
            )
        finally:
            self._apply_tap_changes()
            for tap in self._taps:
                self._call_tap(tap, "close")
            self._taps.clear()
            self._sink.finished()

    def _usb_target(self) -> Source:
        """The USB source to open now: a replugged camera may have a new /dev/videoN."""
        source = self.source
        if self._device_id is None:
            return source
        info = find_device_by_id(self._device_id)
        if info is None or info.path == source.target:
            return source
        logger.info("%s: found the camera again at %s", source.label, info.path)
        return dataclasses.replace(source, target=info.path)

    def _remember_device(self, source: Source) -> None:
        """Note the stable id of the camera just opened (Linux), to find it after a replug."""
        if self._device_id is not None or source.backend != "v4l2":
            return
        target = source.target if isinstance(source.target, str) else f"/dev/video{source.target}"
        real = os.path.realpath(target)
        for info in list_devices():
            if os.path.realpath(info.path) == real:
                self._device_id = info.id
                return

    def _session(self) -> None:
        source, config = self.source, self.config
        try:
            if source.kind == "usb":
                source = self._usb_target()
                # Checked against the camera's modes before opening (and filled
                # in for "nearest"); then what it delivered is checked again.
                config = negotiate_usb(source, config, mode=config.negotiation)
            container, stream = open_input(source, config)
        except CameraError as error:
            logger.debug("open of %s failed: %s", self.source.label, error)
            self._sink.open_failed(error)
            return
        end = SessionEnd(None, None)
        try:
            try:
                fmt = negotiate(source, config, stream)
                if source.kind == "usb":
                    self._remember_device(source)
            except CameraError as error:
                self._sink.open_failed(error)
                return
            logger.debug("%s open: %s", self.source.label, fmt)
            self.last_frame_at = time.monotonic()
            self._sink.opened(fmt)
            self._stream = stream
            self._each_tap("session_started", stream)
            end = self._read(container, stream)
        finally:
            if self._stream is not None:
                self._stream = None
                self._each_tap("session_ended")
            # The owner closes: never another thread, never while inside demux.
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:  # pragma: no cover - defensive
                logger.debug("close of %s: %s", self.source.label, type(exc).__name__)
        self._sink.ended(end)

    def _packets(
        self, container: InputContainer, stream: VideoStream
    ) -> Iterator[Packet[VideoStream] | None]:
        """Demux packets, resuming after read timeouts, until the source ends or we must stop.

        Raises:
            CameraError: A read error (translated), or an abort.
        """
        live = self.source.is_live
        hiccups = 0  # transient read errors in a row, without a packet between them
        while True:
            error: CameraError | None = None
            try:
                for packet in container.demux(stream):
                    hiccups = 0
                    yield packet
                    if self._halted():
                        return
            except av.error.ExitError:
                # PyAV's read timeout: nothing arrived for a moment.  Check our
                # flags and read on; the stall watchdog decides when quiet is dead.
                if self._halted() or not live:
                    return
                yield None  # let the reader look at its controls, then read on
                continue
            except av.error.OSError as exc:
                # A slow RTSP stream read with a short timeout sometimes reports EIO
                # between packets (measured: every few seconds at 1-2 fps); the next
                # read carries on.  Many in a row mean the connection is gone.
                hiccups += 1
                if (
                    live
                    and exc.errno == errno.EIO
                    and hiccups <= _MAX_HICCUPS
                    and not self._halted()
                ):
                    yield None
                    continue
                error = translate(exc, self.source, "read")
            except (av.error.FFmpegError, OSError) as exc:
                error = translate(exc, self.source, "read")
            else:
                return  # end of stream
            raise error

    def _read(self, container: InputContainer, stream: VideoStream) -> SessionEnd:
        source, cc = self.source, stream.codec_context
        pixel_format = self.config.pixel_format
        paced = not source.is_live and source.realtime
        idle_when_paused = not source.is_live
        anchor: tuple[float, float] | None = None  # (monotonic, pts) that pacing counts from
        pts_offset = 0.0
        last_pts = 0.0
        frame_step = 1.0 / float(stream.average_rate) if stream.average_rate else 1 / 30
        packets = self._packets(container, stream)
        while True:
            with self._cond:
                while (
                    idle_when_paused
                    and not self._active
                    and not self._captures
                    and not self._taps  # a recording keeps a paused file or pattern going
                    and not self._halted()
                    and not self._tap_changes
                ):
                    self._cond.wait()
                    anchor = None  # paused: the clock starts again on resume
                changed = bool(self._tap_changes)
            if changed:
                self._apply_tap_changes()
            if self._stopping():
                return SessionEnd(None, None)
            if self._abort_reason is not None:
                reason = self._abort_reason
                return SessionEnd(StreamTimeout(f"{source.label}: {reason}"), reason)
            try:
                packet = next(packets, _END)
            except CameraError as error:
                return SessionEnd(error, f"read_error:{error.code}")
            if packet is _END:
                if self._stopping():
                    return SessionEnd(None, None)
                if self._aborting():
                    continue  # handled at the top of the loop
                if source.kind == "file" and source.loop:
                    try:
                        guard(source, "read", lambda: container.seek(0))
                    except CameraError as error:
                        return SessionEnd(error, f"read_error:{error.code}")
                    packets = self._packets(container, stream)
                    pts_offset = last_pts + frame_step
                    continue
                if source.is_live:
                    return SessionEnd(
                        ConnectionFailed(f"{source.label}: the stream ended (disconnected)"),
                        "end_of_stream",
                    )
                return SessionEnd(None, None)
            assert not isinstance(packet, _EndOfPackets)
            if packet is None:
                continue  # a quiet moment on a live source
            frames: list[VideoFrame]
            try:
                frames = cc.decode(packet)
            except av.error.FFmpegError:
                # A corrupt or partial packet (UDP loss, a cut-off GOP): skip it;
                # the decoder recovers at the next keyframe.
                self.decode_errors += 1
                frames = []
            if self._taps:
                # After decode: the decoder holds its own reference, so a tap may
                # retime and mux this packet object without copying it.
                self._each_tap("packet", packet)
            for vframe in frames:
                if self._taps:
                    self._each_tap("frame", vframe)
                pts = None if vframe.time is None else vframe.time + pts_offset
                if pts is not None:
                    last_pts = pts
                if paced and pts is not None:
                    anchor = self._pace(anchor, pts)
                    if self._halted():
                        break
                self._deliver(vframe, pts, pixel_format)

    def _pace(self, anchor: tuple[float, float] | None, pts: float) -> tuple[float, float] | None:
        """Wait until ``pts`` is due on the wall clock; return the (new) anchor."""
        now = time.monotonic()
        if anchor is None:
            return (now, pts)
        due = anchor[0] + (pts - anchor[1])
        if due - now < -_RESYNC_AFTER or due - now > 2.0:
            return (now, pts)  # fell behind, or pts jumped: start the clock again here
        with self._cond:
            while not self._halted():
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        return anchor

    def _deliver(self, vframe: VideoFrame, pts: float | None, pixel_format: str) -> None:
        now = time.monotonic()
        self.last_frame_at = now
        sequence = self._sequence
        self._sequence += 1
        active, wanted = self._active, self._captures > 0
        if not (active or wanted):
            return  # paused: no per-frame Python work beyond the decode itself
        data: npt.NDArray[np.uint8] = vframe.to_ndarray(format=pixel_format)  # type: ignore[assignment]
        frame = Frame(
            data, vframe.width, vframe.height, self.config.pixel_format, sequence, pts, now
        )
        if active and self._depth is not None:
            # Processing a file: wait for the consumer rather than drop; a frame
            # decoded while active goes to the stream even if a pause comes
            # meanwhile.  A pending capture is served at once, without waiting.
            served = -1  # the capture request this frame last served
            while self._produced - self._consumed >= self._depth:
                self._space.clear()
                self._waiting_for_space = True
                # Checked again after raising the flag: a consumer that took a
                # frame just before saw no flag and set no event.
                if self._produced - self._consumed < self._depth:
                    break
                self._space.wait(0.05)
                if self._halted():
                    self._waiting_for_space = False
                    return
                if self._captures and served != self._capture_requests:
                    served = self._capture_requests
                    self._sink.frame(frame, False)
            self._waiting_for_space = False
            self._produced += 1
        self._sink.frame(frame, active)
