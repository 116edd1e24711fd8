"""The decode thread: one per pump, owner of the PyAV container from open to close.

The thread runs the supervisor (:func:`camerapump._supervisor.supervise`): it
opens a session, reads and decodes it until it ends, fails, stalls or is
stopped, waits out the backoff, and opens the next.  It closes every container
itself, so no other thread ever touches one (closing a container from another
thread while it is inside ``demux`` is a use-after-free in FFmpeg).  Every
blocking read is bounded by PyAV's read timeout, so stops and stalls are seen
within about half a second.

For each decoded picture the thread asks the consumers' :class:`Demand` which
outputs want it, converts it once per output (:mod:`camerapump._convert`) and
hands the frames to its :class:`Sink`; a picture nobody takes costs the decode
and nothing more.

On Linux 6.12 and newer the thread first takes a long scheduler slice
(:mod:`camerapump._sched`), so that the event loop gets a core first when it
wakes; elsewhere it runs as any thread.

Thread ownership: the container, stream, converters, taps and GOP buffer
belong to the decode thread.  The flags under ``_cond`` (stop, active, tap
changes) are written by any thread.  ``_consumed`` has one writer, the
consumer's side, behind ``_credit_lock``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple, Protocol, TypeAlias

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from . import _logfilter, _memory, _sched
from ._backend import (
    check_fps,
    guard,
    invents_timestamps,
    negotiate,
    open_input,
    resumes_after_timeout,
    translate,
    upright_size,
)
from ._config import ReconnectPolicy, StreamConfig, StreamFormat
from ._convert import Converter, sws_threads
from ._demand import Demand, Pick
from ._errors import CameraError, ConnectionFailed, FormatNotSupported, StreamTimeout
from ._frame import Frame
from ._output import Output
from ._source import Source
from ._supervisor import SessionEnd, stalled, supervise

__all__ = ["DeviceTracker", "PacketTap", "SessionEnd", "Sink", "Worker"]

logger = logging.getLogger("camerapump")

_thread_ids = itertools.count(1)
# A paced source that falls this far behind its own clock re-anchors instead of
# racing to catch up (after a pause, a seek, a slow machine).
_RESYNC_AFTER = 0.5
# Transient read errors (EIO) in a row before a live session counts as broken.
_MAX_HICCUPS = 20
# The packets of the current GOP are kept (a recording that starts now starts at
# its keyframe, not at the next one); a stream with no keyframe for this many
# packets is not worth keeping.
_MAX_GOP_PACKETS = 600
# How often a backoff looks whether an unplugged USB camera is back.
_REPLUG_POLL = 0.25
# How often the thread asks whether its event loop still runs.  A pump whose
# consumers want nothing posts nothing, so without asking it would decode on
# after a program ended its event loop without closing the pump.
_HEARTBEAT = 1.0


class _EndOfPackets:
    """Marks the end of a session's packets."""


# Packet is generic in PyAV's stubs only.
_Packet: TypeAlias = "Packet[VideoStream] | Packet[AudioStream]"


_END = _EndOfPackets()


class _RateMeter:
    """Measures the frame rate of a stream that declares none, over its first second.

    By the frames' timestamps where they have them (the first frames of an HLS
    or TCP stream come in a burst, faster than real time), else by their
    arrival.  Steps that are not forward or longer than a second (a missing,
    repeated or jumping timestamp: real cameras have all of them) are left out,
    so one bad timestamp cannot make 25 fps read as 0.02.
    """

    __slots__ = ("_first", "_frames", "_last", "_steps", "fps")

    def __init__(self) -> None:
        self._first: float | None = None  # arrival of the first frame
        self._frames = 0  # frames since the first
        self._last: tuple[float, int] | None = None  # (pts, frame number) of the last timed one
        self._steps: list[float] = []  # per-frame pts steps
        self.fps: float | None = None

    def add(self, now: float, pts: float | None) -> float | None:
        """Count a frame; return the rate once a second of frames has been seen."""
        if self._first is None:
            self._first = now
        else:
            self._frames += 1
        if pts is not None:
            if self._last is not None:
                last_pts, last_frame = self._last
                frames = self._frames - last_frame
                step = (pts - last_pts) / frames if frames else 0.0
                if 0 < step <= 1.0:
                    self._steps.append(step)
            self._last = (pts, self._frames)
        elapsed = now - self._first
        if elapsed < 1.0 or self._frames < 5:
            return None
        if len(self._steps) >= 5:
            steps = sorted(self._steps)
            median = steps[len(steps) // 2]
            kept = [step for step in steps if step <= 4 * median]  # a pause is not a rate
            self.fps = round(len(kept) / sum(kept), 2)
        else:
            self.fps = round(self._frames / elapsed, 2)
        return self.fps


class _Meta(NamedTuple):
    """What a decoded picture's frames carry besides the pixels."""

    pts: float | None
    key: bool
    sequence: int
    now: float


class Sink(Protocol):
    """Receives what the decode thread produces; every method is called on the decode thread."""

    def connected(self, fmt: StreamFormat, *, first: bool, reconnects: int) -> None: ...
    def reconnecting(self, attempt: int, delay: float, reason: str, *, attempts: int) -> None: ...
    def finished(self, error: CameraError | None, reason: str | None, *, first: bool) -> None: ...
    def format_changed(self, fmt: StreamFormat) -> None: ...
    def frame(self, pick: Pick, frame: Frame) -> None: ...
    def exited(self) -> None: ...
    def alive(self) -> bool:
        """Whether anyone still listens (False once the event loop's run is over)."""
        ...


class PacketTap(Protocol):
    """Sees the compressed packets and decoded pictures of every session (a recorder).

    Every method runs on the decode thread, which owns the input container; a
    tap must not raise (one that does is logged and detached) and must not
    block for long.  Packets are shared: a tap copies what it keeps or changes.
    While a tap is attached the thread demuxes the first audio stream too
    (``audio``), whose packets go to the taps only; ``_tap_packet`` gets
    both, told apart by ``packet.stream``.
    """

    def _tap_session_started(self, stream: VideoStream, audio: AudioStream | None) -> None: ...
    def _tap_packet(self, packet: Packet[VideoStream] | Packet[AudioStream]) -> None: ...
    def _tap_frame(self, frame: VideoFrame) -> None: ...
    def _tap_session_ended(self) -> None: ...
    def _tap_close(self) -> None: ...


class DeviceTracker(Protocol):
    """Follows a local capture device across sessions (see :mod:`camerapump._usb`)."""

    def prepare(self, source: Source, config: StreamConfig) -> tuple[Source, StreamConfig]: ...
    def remember(self, source: Source) -> None: ...
    def present(self) -> bool | None: ...


class Worker:
    """The decode thread of one pump and the thread-safe controls of it.

    Args:
        source: What to open.
        config: What to ask for.
        sink: Where results go.
        demand: What the consumers want.
        policy: How to recover a live source; ``None``: the first error is final.
        processing: Frames a processed file (``realtime=False``) may decode
            ahead of its consumer; the thread waits for credit beyond that.
            ``None`` for live delivery.
        device: Follows a USB camera across replugs (``None`` for other kinds).
        rng: Random source for the backoff jitter.
    """

    def __init__(
        self,
        source: Source,
        config: StreamConfig,
        sink: Sink,
        demand: Demand,
        *,
        policy: ReconnectPolicy | None = None,
        processing: int | None = None,
        device: DeviceTracker | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.demand = demand
        self._sink = sink
        self._policy = policy
        self._device = device
        self._rng = rng
        self._cond = threading.Condition()
        self._stop = False
        self._active = True
        # Backpressure for processed files, cheap on the hot path: two counters
        # with one writer each, and an event set only when this thread waits.
        self._depth = processing
        self._produced = 0
        self._consumed = 0
        self._credit_lock = threading.Lock()
        self._space = threading.Event()
        self._waiting_for_space = False
        self._taps: list[PacketTap] = []
        self._tap_changes: list[tuple[bool, PacketTap]] = []  # (add?, tap), under _cond
        self._gop: list[Packet[VideoStream] | Packet[AudioStream]] = []
        self._container: InputContainer | None = None
        self._stream: VideoStream | None = None
        # The session's first audio stream: demuxed only while a tap records it.
        self._audio: AudioStream | None = None
        self._format: StreamFormat | None = None
        self._converters: dict[Output, Converter] = {}
        self._session_packets: Iterator[_Packet | None] | None = None
        self._prelude: list[tuple[_Packet, list[VideoFrame]]] = []
        self._sequence = 0
        self._damaged = False  # a decode error or lost data since the last keyframe
        self._clock_offset: float | None = None  # monotonic minus stream clock, this session
        #: ``time.monotonic()`` of the last decoded frame.
        self.last_frame_at = 0.0
        # What the stall watchdog counts from: the last picture, or the last video
        # packet while the decoder skips all but keyframes.
        self._alive_at = 0.0
        #: Frames that failed to decode and were skipped (corrupt or lost packets).
        self.decode_errors = 0
        #: Conversions made (one per frame and distinct output).
        self.frames_converted = 0
        self._recent: deque[float] = deque(maxlen=1024)  # decode times, for the measured rate
        self._log_token: _logfilter.Token | None = None
        self._next_heartbeat = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"camerapump-decode-{next(_thread_ids)}", daemon=True
        )

    # -- controls, called from any thread -------------------------------------------------

    @property
    def thread(self) -> threading.Thread:
        """The decode thread."""
        return self._thread

    @property
    def frames_decoded(self) -> int:
        """Frames decoded so far, over all sessions."""
        return self._sequence

    def measured_fps(self, now: float | None = None) -> float:
        """Frames decoded during the last second."""
        now = time.monotonic() if now is None else now
        recent = list(self._recent)
        return float(sum(1 for t in recent if now - t <= 1.0))

    def start(self) -> None:
        """Start the thread: it opens the first session at once.

        While the thread lives, the source's secrets are masked in FFmpeg's own
        log records (PyAV's ``libav`` loggers quote RTSP requests, with their
        ``Authorization`` headers, at debug level).
        """
        secrets = self.source.secrets
        self._log_token = _logfilter.register(secrets) if secrets else None
        _memory.keep_freed_pictures()  # once per process (see _memory)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to close its session and exit; returns at once."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._space.set()  # wake a thread waiting for the consumer

    def set_active(self, active: bool) -> None:
        """Pause (``False``) or resume the stream's delivery."""
        with self._cond:
            self._active = active
            self.demand.active = active
            self._cond.notify_all()

    def wake(self) -> None:
        """The demand changed: wake a thread that idles (a paused file, a processed one)."""
        with self._cond:
            self._cond.notify_all()
        if self._waiting_for_space:
            self._space.set()

    def add_tap(self, tap: PacketTap) -> None:
        """Attach a tap; it starts with the current GOP (or the next session's)."""
        with self._cond:
            self._tap_changes.append((True, tap))
            self._cond.notify_all()
        self._space.set()  # a processed file's thread may be waiting for its consumer

    def remove_tap(self, tap: PacketTap) -> None:
        """Detach a tap; the decode thread calls its ``_tap_close()`` soon."""
        with self._cond:
            self._tap_changes.append((False, tap))
            self._cond.notify_all()
        self._space.set()

    def release_credit(self) -> None:
        """The consumer took a frame: the thread may deliver one more (processed files)."""
        if self._depth is not None:
            with self._credit_lock:
                self._consumed += 1
            if self._waiting_for_space:
                self._space.set()

    # -- supervise() drives these, on the decode thread -----------------------------------

    def stopping(self) -> bool:
        """True once :meth:`stop` was called (or nobody listens any more)."""
        self._heartbeat()
        return self._stop

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + _HEARTBEAT
        if not self._sink.alive():
            logger.debug("%s: the event loop is gone; stopping", self.source.label)
            self.stop()

    def open(self) -> StreamFormat | CameraError:
        """Open a session: negotiate (USB), open, read up to the first picture, check the format.

        The format comes from the first decoded picture, not from probing: a
        short probe finds the stream, and its first keyframe tells the size
        (with an audio track, the probe alone does not), so one connection
        is enough.
        """
        self._apply_tap_changes()
        source, config = self.source, self.config
        try:
            if self._device is not None:
                source, config = self._device.prepare(source, config)
            if source.kind == "stream":
                # Its reads cannot resume after a timeout: they wait out quiet
                # moments up to the stall timeout instead of polling.
                stall = (self._policy or ReconnectPolicy()).stall_timeout
                container, stream = open_input(source, config, read_timeout=stall)
            else:
                container, stream = open_input(source, config)
        except CameraError as error:
            logger.debug("open of %s failed: %s", self.source.label, error)
            return error
        self._audio = container.streams.audio[0] if container.streams.audio else None
        try:
            packets = self._packets(container, stream)
            prelude, first = self._prime(packets, stream)
            fmt = negotiate(source, config, stream, first)
        except CameraError as error:
            self._audio = None
            self._close(container)
            return error
        if self._device is not None:
            self._device.remember(source)
        self._container, self._stream, self._format = container, stream, fmt
        self._session_packets, self._prelude = packets, prelude
        self.last_frame_at = self._alive_at = time.monotonic()
        logger.debug("%s open: %s", self.source.label, fmt)
        return fmt

    def _prime(
        self, packets: Iterator[_Packet | None], stream: VideoStream
    ) -> tuple[list[tuple[_Packet, list[VideoFrame]]], VideoFrame]:
        """Read and decode up to the first picture; return what was read, and that picture.

        Raises:
            CameraError: Nothing decodable within the open timeout, or the
                stream ended first.
        """
        source = self.source
        limit = source.open_timeout if source.traits.network else max(source.open_timeout, 10.0)
        deadline = time.monotonic() + limit
        cc = stream.codec_context
        video = stream.index
        prelude: list[tuple[_Packet, list[VideoFrame]]] = []
        while True:
            if self._stop:
                raise CameraError(f"{source.label}: stopped while opening")
            if time.monotonic() > deadline:
                raise StreamTimeout(
                    f"{source.label}: no picture within the open timeout ({limit:g} s)"
                )
            packet = next(packets, _END)
            if packet is None:
                continue
            if isinstance(packet, _EndOfPackets):
                if source.is_live:
                    raise ConnectionFailed(
                        f"{source.label}: the stream ended before its first picture"
                    )
                raise FormatNotSupported(f"{source.label}: no video frames in the source")
            if packet.stream_index != video:
                prelude.append((packet, []))  # audio, for a tap attached before the open
                continue
            try:
                frames = cc.decode(packet)
            except av.error.FFmpegError:
                self.decode_errors += 1
                frames = []
            prelude.append((packet, frames))
            if frames:
                return prelude, frames[0]

    def read(self, stall_timeout: float) -> SessionEnd:
        """Read the open session until it ends; the container is closed on return."""
        container, stream = self._container, self._stream
        assert container is not None
        assert stream is not None
        try:
            self._each_tap("_tap_session_started", stream, self._audio)
            return self._read(container, stream, stall_timeout)
        finally:
            self._each_tap("_tap_session_ended")
            self._gop.clear()
            self._prelude = []
            self._container = self._stream = self._session_packets = self._audio = None
            self._close(container)

    def wait(self, delay: float) -> bool:
        """Wait out a backoff; a USB camera that comes back ends it early."""
        deadline = time.monotonic() + delay
        device = self._device
        absent = device is not None and device.present() is False
        while True:
            remaining = deadline - time.monotonic()
            with self._cond:
                if self._stop:
                    return False
                if remaining <= 0:
                    return True
                if not self._tap_changes:
                    self._cond.wait(min(remaining, _REPLUG_POLL if absent else _HEARTBEAT))
            self._apply_tap_changes()
            self._heartbeat()
            if absent and device is not None and device.present():
                logger.info("%s: the camera is back", self.source.label)
                return not self._stop

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        # Before FFmpeg starts the decoder's threads, which inherit it (see _sched).
        _sched.yield_to_latency_work()
        try:
            supervise(self, self._sink, self._policy, live=self.source.is_live, rng=self._rng)
        except BaseException:
            # A bug, or a fatal error in FFmpeg: nothing can be opened any more,
            # so the pump fails instead of waiting.
            logger.exception("decode thread of %s crashed", self.source.label)
            if self._container is not None:
                self._close(self._container)
            self._sink.finished(
                CameraError(f"{self.source.label}: the decode thread stopped unexpectedly"),
                "decode_thread_stopped",
                first=self._format is None,
            )
        finally:
            self._apply_tap_changes()
            for tap in self._taps:
                self._call_tap(tap, "_tap_close")
            self._taps.clear()
            if self._log_token is not None:
                _logfilter.unregister(self._log_token)  # nothing of FFmpeg's runs here any more
            self._sink.exited()

    def _close(self, container: InputContainer) -> None:
        # The owner closes: never another thread, never while inside demux.
        try:
            container.close()
        except (av.error.FFmpegError, OSError) as exc:  # pragma: no cover - defensive
            logger.debug("close of %s: %s", self.source.label, type(exc).__name__)

    def _apply_tap_changes(self) -> None:
        with self._cond:
            changes, self._tap_changes = self._tap_changes, []
        for add, tap in changes:
            if add:
                self._taps.append(tap)
                if self._stream is not None:
                    self._call_tap(tap, "_tap_session_started", self._stream, self._audio)
                    # The GOP so far: the recording starts at its keyframe.
                    for packet in self._gop:
                        self._call_tap(tap, "_tap_packet", packet)
            else:
                if tap in self._taps:
                    self._taps.remove(tap)
                self._call_tap(tap, "_tap_close")

    def _call_tap(self, tap: PacketTap, method: str, *args: object) -> None:
        try:
            getattr(tap, method)(*args)
        except Exception:
            logger.exception("%s: a tap failed in %s; detaching it", self.source.label, method)
            if tap in self._taps:
                self._taps.remove(tap)
                with contextlib.suppress(Exception):
                    tap._tap_close()

    def _each_tap(self, method: str, *args: object) -> None:
        for tap in list(self._taps):
            self._call_tap(tap, method, *args)

    def _packets(self, container: InputContainer, stream: VideoStream) -> Iterator[_Packet | None]:
        """Demux packets, resuming after read timeouts, until the source ends or we must stop.

        The session's audio stream is demuxed as well while a tap is attached
        (FFmpeg reads every stream's packets anyway; leaving audio out when
        nobody records it only saves wrapping them).  A live container whose
        timestamps FFmpeg makes up (:func:`invents_timestamps`) has them
        removed, so nothing downstream mistakes them for the source's.

        Yields ``None`` for a quiet moment (a read timeout) on a live source.

        Raises:
            CameraError: A read error (translated).
        """
        live = self.source.is_live
        # A raw .h264 or .mjpeg file keeps FFmpeg's made-up clock: it is what paces it.
        untimed = live and invents_timestamps(container)
        resumes = resumes_after_timeout(container)
        hiccups = 0  # transient read errors in a row, without a packet between them
        while True:
            error: CameraError | None = None
            audio = self._audio if self._taps else None
            try:
                for packet in container.demux((stream, audio) if audio else stream):
                    hiccups = 0
                    if untimed:
                        packet.pts = packet.dts = None
                    yield packet  # type: ignore[misc]
                    if self._stop:
                        return
                    if (self._audio if self._taps else None) is not audio:
                        break  # a recording started or ended: demux audio, or no longer
                else:
                    return  # end of stream
                continue
            except av.error.ExitError:
                # PyAV's read timeout: nothing arrived for a moment.  Look at the
                # controls and read on; the stall watchdog decides when quiet is dead.
                if self._stop or not live:
                    return
                if not resumes:
                    # A stream URL waits for data up to the stall timeout, and its
                    # container cannot read on after that: the stream stalled.
                    # (Raised below, outside this block: PyAV's error quotes the
                    # URL with its password, and must not ride along as context.)
                    error = StreamTimeout(
                        f"{self.source.label}: no data for {container.read_timeout:g} s (stalled)"
                    )
                else:
                    yield None
                    continue
            except av.error.OSError as exc:
                # A slow RTSP stream read with a short timeout sometimes reports EIO
                # between packets (measured: every few seconds at 1-2 fps); the next
                # read carries on.  Many in a row mean the connection is gone.
                hiccups += 1
                if live and exc.errno == errno.EIO and hiccups <= _MAX_HICCUPS and not self._stop:
                    yield None
                    continue
                error = translate(exc, self.source, "read")
            except (av.error.FFmpegError, OSError) as exc:
                error = translate(exc, self.source, "read")
            raise error

    def _idle(self) -> bool:
        """A paused file or pattern waits here until someone wants its frames again.

        Returns:
            Whether it waited (the stream's clock then starts again).
        """
        waited = False
        with self._cond:
            while (
                not self._active
                and not self._taps  # a recording keeps a paused file or pattern going
                and not self._stop
                and not self._tap_changes
                and not self.demand.captures_pending()
            ):
                waited = True
                self._cond.wait(0.5)
                self._heartbeat()  # the condition's lock is re-entrant: stop() may take it
        return waited

    def _read(self, container: InputContainer, stream: VideoStream, stall: float) -> SessionEnd:
        source, cc = self.source, stream.codec_context
        live = source.is_live
        paced = not live and source.realtime
        demand = self.demand
        demand.new_session()
        self._clock_offset = None
        self._damaged = False
        anchor: tuple[float, float] | None = None  # (monotonic, pts) that pacing counts from
        pts_offset = 0.0  # a looping file's frames keep counting up
        last_pts: float | None = None
        clock: float | None = None  # what pacing goes by
        frame_step = 1.0 / float(stream.average_rate) if stream.average_rate else 1 / 30
        rate = _RateMeter() if self._format is not None and self._format.fps is None else None
        skipping = False
        await_key = False  # after skipping non-key frames: the next ones lack references
        gop = self._gop
        gop_full = False
        prelude = self._prelude
        video = stream.index
        packets = self._session_packets or self._packets(container, stream)
        while True:
            if not live and not self._active and self._idle():
                # It stood still: the clock starts again on resume.  (A paused file
                # that is recorded or captured from does not stand still, and stays
                # paced like a camera.)
                anchor = None
            if self._tap_changes:
                self._apply_tap_changes()
            if self.stopping():
                return SessionEnd(None, None)
            if live and stalled(time.monotonic(), self._alive_at, stall):
                logger.info("%s: no frame for %.1f s; restarting the session", source.label, stall)
                return SessionEnd(
                    StreamTimeout(f"{source.label}: no frame for {stall:g} s (stalled)"),
                    "stall_timeout_exceeded",
                )
            if demand.skip_nonkey != skipping:
                skipping = demand.skip_nonkey
                cc.skip_frame = "NONKEY" if skipping else "DEFAULT"
                await_key = not skipping
            frames: list[VideoFrame]
            if prelude:
                packet, frames = prelude.pop(0)  # read and decoded while opening
            else:
                try:
                    item = next(packets, _END)
                except StreamTimeout as error:
                    return SessionEnd(error, "stall_timeout_exceeded")
                except CameraError as error:
                    return SessionEnd(error, f"read_error:{error.code}")
                if isinstance(item, _EndOfPackets):
                    if self.stopping():
                        return SessionEnd(None, None)
                    if source.kind == "file" and source.loop:
                        try:
                            guard(source, "read", lambda: container.seek(0))
                        except CameraError as error:
                            return SessionEnd(error, f"read_error:{error.code}")
                        packets = self._packets(container, stream)
                        pts_offset = (last_pts or 0.0) + frame_step
                        continue
                    if live:
                        return SessionEnd(
                            ConnectionFailed(f"{source.label}: the stream ended (disconnected)"),
                            "end_of_stream",
                        )
                    return SessionEnd(None, None)
                if item is None:
                    continue  # a quiet moment on a live source
                packet = item
                if packet.stream_index == video:
                    try:
                        frames = cc.decode(packet)
                    except av.error.FFmpegError:
                        # A corrupt or partial packet (UDP loss, a cut-off GOP): skip
                        # it; the decoder recovers at the next keyframe.
                        self.decode_errors += 1
                        self._damaged = True
                        frames = []
            if packet.stream_index != video:
                # Audio, demuxed for the taps: kept with the GOP, never decoded.
                if gop and not gop_full and len(gop) < _MAX_GOP_PACKETS:
                    gop.append(packet)
                if self._taps:
                    self._each_tap("_tap_packet", packet)
                continue
            if packet.is_corrupt:
                self._damaged = True
            if skipping or await_key:
                # The decoder gives a picture a GOP only: the video packets are
                # what says the stream is alive (a GOP may outlast stall_timeout).
                self._alive_at = time.monotonic()
            if packet.is_keyframe:
                gop.clear()
                gop_full = False
            if not gop_full and (gop or packet.is_keyframe):
                if len(gop) < _MAX_GOP_PACKETS:
                    gop.append(packet)
                else:
                    # A GOP too long to keep: a recording that starts now starts at
                    # the next keyframe, not with a hole after the first 600 packets.
                    gop.clear()
                    gop_full = True
            if self._taps:
                self._each_tap("_tap_packet", packet)
            for vframe in frames:
                if self._taps:
                    self._each_tap("_tap_frame", vframe)
                key = bool(vframe.key_frame)
                if key:
                    await_key = False
                    self._damaged = bool(vframe.is_corrupt)
                elif await_key:
                    continue
                elif vframe.is_corrupt:
                    self._damaged = True
                pts = None if vframe.time is None else vframe.time + pts_offset
                if pts is not None:
                    if last_pts is not None and pts <= last_pts - 1.0 and live:
                        # A clock that jumped back (a camera reset, a 32-bit
                        # wrap): keep Frame.pts monotonic within the session.
                        pts_offset += last_pts - pts + frame_step
                        pts = last_pts + frame_step
                    elif last_pts is not None and pts < last_pts:
                        pts = last_pts  # small reorder jitter: never backwards
                    last_pts = pts
                if paced:
                    # A raw .h264 or .mjpeg file has no timestamps: it is paced at
                    # its nominal rate instead of racing through.
                    clock = pts if pts is not None else (clock or 0.0) + frame_step
                    anchor = self._pace(anchor, clock)
                    if self.stopping():
                        break
                end = self._check_size(vframe)
                if end is None and rate is not None:
                    # The stream's own timestamps, not the ones made monotonic above.
                    end = self._measure(rate, vframe.time)
                    if rate.fps is not None:
                        rate = None
                if end is not None:
                    return end
                self._deliver(vframe, pts, key)

    def _measure(self, rate: _RateMeter, pts: float | None) -> SessionEnd | None:
        """Measure the rate of a stream that declares none; check it once known."""
        if rate.add(time.monotonic(), pts) is None or self._format is None:
            return None
        new = dataclasses.replace(self._format, fps=rate.fps, fps_measured=True)
        try:
            check_fps(self.source, self.config, new)
        except FormatNotSupported as error:
            return SessionEnd(error, "format_changed")
        self._format = new
        self._sink.format_changed(new)
        return None

    def _check_size(self, vframe: VideoFrame) -> SessionEnd | None:
        """Follow a stream that changed its size mid-session, or end the session if not allowed."""
        fmt = self._format
        if fmt is None:
            return None
        width, height = upright_size(vframe, self.config.autorotate)
        if (width, height) == (fmt.width, fmt.height):
            return None
        new = dataclasses.replace(fmt, width=width, height=height)
        config = self.config
        if config.width is not None and (width, height) != (config.width, config.height):
            return SessionEnd(
                FormatNotSupported(
                    f"{self.source.label}: the stream changed to {width}x{height}, but "
                    f"{config.width}x{config.height} was asked for; for resized frames, "
                    "ask for output=cp.Output(width, height) instead"
                ),
                "format_changed",
            )
        logger.info("%s: the stream changed its format to %s", self.source.label, new)
        self._format = new
        self._sink.format_changed(new)
        return None

    def _pace(self, anchor: tuple[float, float] | None, pts: float) -> tuple[float, float] | None:
        """Wait until ``pts`` is due on the wall clock; return the (new) anchor."""
        now = time.monotonic()
        if anchor is None:
            return (now, pts)
        due = anchor[0] + (pts - anchor[1])
        if due - now < -_RESYNC_AFTER or due - now > 2.0:
            return (now, pts)  # fell behind, or pts jumped: start the clock again here
        with self._cond:
            while not self._stop:
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        return anchor

    def _deliver(self, vframe: VideoFrame, pts: float | None, key: bool) -> None:
        now = time.monotonic()
        self.last_frame_at = self._alive_at = now
        self._recent.append(now)
        sequence = self._sequence
        self._sequence += 1
        # The rate limits run on the stream's clock, moved into the monotonic
        # domain at the session's first timestamp, so a frame without one (the
        # first of an RTSP session often has none) falls in with its arrival.
        if pts is None:
            clock = now
        else:
            if self._clock_offset is None:
                self._clock_offset = now - pts
            clock = pts + self._clock_offset
        if self._depth is not None:
            self._deliver_processed(vframe, _Meta(pts, key, sequence, now), clock)
            return
        meta = _Meta(pts, key, sequence, now)
        for pick in self.demand.pick(keyframe=key, clock=clock):
            self._sink.frame(pick, self._convert(pick.output, vframe, meta))

    def _deliver_processed(self, vframe: VideoFrame, meta: _Meta, clock: float) -> None:
        """A file read with ``realtime=False``: wait for the consumer rather than drop.

        Captures are served meanwhile, from this frame, without waiting.
        """
        assert self._depth is not None
        # A frame decoded while active goes to the consumer even if a pause
        # came meanwhile (every frame of a processed file counts).
        while self._produced - self._consumed >= self._depth:
            self._space.clear()
            self._waiting_for_space = True
            # Checked again after raising the flag: a consumer that took a frame
            # just before saw no flag and set no event.
            if self._produced - self._consumed < self._depth:
                break
            self._space.wait(0.05)
            if self.stopping():
                self._waiting_for_space = False
                return
            if self._tap_changes:
                self._apply_tap_changes()  # a recorder that stops must not wait for the consumer
            for pick in self.demand.pick(keyframe=meta.key, clock=clock, eager=False):
                self._sink.frame(pick, self._convert(pick.output, vframe, meta))
        self._waiting_for_space = False
        picks = self.demand.pick(keyframe=meta.key, clock=clock)
        if any(p.stream for p in picks):
            self._produced += 1
        for pick in picks:
            self._sink.frame(pick, self._convert(pick.output, vframe, meta))

    def _convert(self, output: Output, vframe: VideoFrame, meta: _Meta) -> Frame:
        converter = self._converters.get(output)
        if converter is None:
            if len(self._converters) > 32:  # outputs come and go; keep the live ones
                self._converters.clear()
            paced = not self.demand.processing  # a file read as fast as it decodes is not
            converter = Converter(
                output, autorotate=self.config.autorotate, threads=sws_threads(paced=paced)
            )
            self._converters[output] = converter
        data, shape = converter.convert(vframe)
        self.frames_converted += 1
        assert output.pixel_format is not None
        return Frame(
            data,
            shape.width,
            shape.height,
            output.pixel_format,
            meta.sequence,
            meta.pts,
            meta.now,
            keyframe=meta.key,
            quality="recovering" if self._damaged else "intact",
            geometry=shape.geometry,
        )
