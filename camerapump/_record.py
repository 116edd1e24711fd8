"""Recording: the packets a pump already demuxes, written to files as they are.

A :class:`Recorder` attaches a packet tap to the pump's decode thread (the
owner of the input container), so recording costs a remux, not a decode and
an encode: packets go to MP4/MKV/MPEG-TS unchanged, starting at a keyframe.
Only a source that gives raw pictures (the test pattern, raw USB modes) is
encoded, with H.264 (libx264, ultrafast) by default.  Output containers are
opened, written and closed on the decode thread too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import av
import av.error
from av.container import OutputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from ._config import is_positive_number
from ._errors import CameraError
from ._handoff import LoopHandle
from ._redact import redact_text
from ._source import Source
from ._worker import Worker

__all__ = ["RAW_CODECS", "RECORD_ENCODER", "Recorder", "RecordingFailed"]

logger = logging.getLogger("camerapump")

#: Codecs that carry pictures rather than compressed video: these are encoded.
RAW_CODECS = frozenset({"rawvideo", "wrapped_avframe"})
#: The encoder used for raw sources, and its options.
RECORD_ENCODER = ("libx264", {"preset": "ultrafast", "tune": "zerolatency", "crf": "23"})
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}


class RecordingFailed(CameraError, OSError):
    """Raised by :meth:`Recorder.stop` when the recording could not be written."""


class Recorder:
    """A recording of a pump's stream; made by :meth:`Pump.record <camerapump.Pump.record>`.

    ``await recorder.stop()`` (or leaving ``async with``) finishes the current
    file.  The recording starts at the keyframe of the GOP in progress (so it
    begins up to one GOP before :meth:`Pump.record <camerapump.Pump.record>`
    was called, not at the next keyframe), and runs until stopped: while the
    pump is paused (a paused live source still reads its packets) and across
    outages, where the session that comes back starts a new file (stream
    parameters may have changed), logged as a warning and counted in
    :attr:`outages`.

    Attributes:
        path: The requested path.
        segment_seconds: Roll over to a new file at the first keyframe after this long.
    """

    def __init__(
        self,
        worker: Worker,
        source: Source,
        handle: LoopHandle,
        path: str | os.PathLike[str],
        *,
        segment_seconds: float | None = None,
        container: str | None = None,
    ) -> None:
        if segment_seconds is not None and not is_positive_number(segment_seconds):
            raise ValueError("segment_seconds must be a positive number of seconds, or None")
        self.path = Path(path)
        fmt = container or _CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            raise ValueError(
                f"cannot tell the container from {self.path.name!r}: use a .mp4, .mkv or .ts "
                "name, or pass container='mp4' | 'matroska' | 'mpegts'"
            )
        self.segment_seconds = segment_seconds
        self._format = fmt
        self._worker = worker
        self._source = source
        self._lock = threading.Lock()
        self._files: list[Path] = []
        self._error: RecordingFailed | None = None
        self._packets = 0
        self._handle = handle
        self._done = anyio.Event()
        self._stopping = False
        self._footage = 0.0  # seconds in the files finished so far
        self._outages = 0
        # Decode-thread state (the tap's):
        self._out: OutputContainer | None = None
        self._out_stream: VideoStream | None = None
        self._out_path: Path | None = None
        self._template: VideoStream | None = None
        self._encode = False
        self._offset: int | None = None  # source pts minus file pts
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        self._last_arrival = 0.0
        self._segment_start: float | None = None
        self._frame_index = 0
        self._sessions = 0
        self._file_seconds = 0.0  # the current file's end so far, in seconds

    # -- the loop's side ------------------------------------------------------------------

    def _attach(self) -> None:
        self._worker.add_tap(self)
        if not self._worker.thread.is_alive():
            self._done.set()

    @property
    def files(self) -> list[Path]:
        """The files finished so far (each one playable)."""
        with self._lock:
            return list(self._files)

    @property
    def packets_written(self) -> int:
        """Packets written (or frames encoded) so far."""
        return self._packets

    @property
    def footage_seconds(self) -> float:
        """Seconds of stream recorded so far, over every file (the current one included)."""
        return self._footage + self._current_footage()

    @property
    def outages(self) -> int:
        """Times the stream was lost while recording (each one started a new file)."""
        return self._outages

    def _current_footage(self) -> float:
        return self._file_seconds if self._out is not None else 0.0

    @property
    def error(self) -> RecordingFailed | None:
        """What stopped the recording, if it failed."""
        return self._error

    async def stop(self) -> list[Path]:
        """Finish the current file and stop recording.  Idempotent.

        Returns:
            Every file written, in order.

        Raises:
            RecordingFailed: A file could not be written.
        """
        if not self._stopping:
            self._stopping = True
            self._worker.remove_tap(self)
            if not self._worker.thread.is_alive():
                self._done.set()
        # The decode thread finishes the file; it answers within a read timeout,
        # unless it is inside a blocking open, where no file is open anyway.
        with anyio.move_on_after(5.0) as scope:
            await self._done.wait()
        if scope.cancelled_caught:
            logger.warning("%s: the recorder is detached but not yet confirmed", self._source.label)
        if self._error is not None:
            raise self._error
        return self.files

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<Recorder {self.path} files={len(self._files)} packets={self._packets}>"

    # -- the tap: runs on the decode thread -----------------------------------------------

    def _tap_session_started(self, stream: VideoStream) -> None:
        self._finish_file()
        if self._sessions and self._files:
            self._outages += 1
            logger.warning(
                "%s: the stream came back after an outage; recording continues in a new file",
                self._source.label,
            )
        self._template = stream
        self._encode = (stream.codec_context.name or "") in RAW_CODECS
        self._sessions += 1

    def _tap_session_ended(self) -> None:
        self._finish_file()
        self._template = None

    def _tap_packet(self, shared: Packet[VideoStream]) -> None:
        if self._encode or self._template is None or self._error is not None:
            return
        if shared.size == 0:
            return  # a flush packet
        keyframe = shared.is_keyframe
        if self._out is None:
            if not keyframe:
                return  # a file starts at a keyframe, or it would not play
            self._open_file(self._template)
        elif keyframe and self._segment_due():
            self._finish_file()
            self._open_file(self._template)
        if self._out is None or self._out_stream is None:
            return  # opening failed; the error is recorded
        # The decode thread shares its packets (with the GOP buffer, other
        # taps): mux a copy, since retiming and muxing change a packet.
        packet: Packet[VideoStream] = av.Packet(shared)  # type: ignore[arg-type, assignment]
        packet.pts, packet.dts = shared.pts, shared.dts
        time_base = shared.time_base or self._template.time_base
        if time_base is not None:
            packet.time_base = time_base
        packet.is_keyframe = keyframe
        packet.duration = shared.duration
        self._retime(packet)
        packet.stream = self._out_stream
        self._mux(packet)

    def _retime(self, packet: Packet[VideoStream]) -> None:
        """Give ``packet`` timestamps that start at 0 in this file and always increase.

        The source's own timestamps are kept (shifted) where it has them.  Where
        it has none (the first packets of an RTSP session, and every packet of a
        slow stream after PyAV's read timeout fired), or where they jump by more
        than a second against the arrival clock (a looped file starting again,
        an RTP clock reset), the arrival time stands in and the source's clock
        is followed again from there.
        """
        now = time.monotonic()
        tb = packet.time_base or (self._template.time_base if self._template else None)
        ticks_per_s = float(1 / tb) if tb else 90_000.0
        last_dts = self._last_dts
        by_arrival = (self._last_pts or 0) + max(1, round((now - self._last_arrival) * ticks_per_s))
        if last_dts is None:  # the first packet of a file
            pts = 0
            self._offset = packet.pts
        elif (
            packet.pts is not None
            and self._offset is not None
            # Decode time going backwards, or presentation time running ahead of
            # the arrival clock by over a second, is a discontinuity.  (A file
            # processed faster than real time runs ahead of arrival by one frame
            # at a time, never a second.)
            and (packet.pts if packet.dts is None else packet.dts) - self._offset
            >= last_dts - ticks_per_s / 20
            and packet.pts - self._offset <= by_arrival + ticks_per_s
        ):
            pts = packet.pts - self._offset
        else:
            pts = by_arrival
            # Back on the source's clock from here, continuing from this point.
            self._offset = None if packet.pts is None else packet.pts - pts
        if packet.dts is not None and self._offset is not None and packet.pts is not None:
            dts = packet.dts - self._offset
        else:
            dts = pts
        if last_dts is not None and dts <= last_dts:
            dts = last_dts + 1  # the muxer needs strictly increasing dts
        packet.pts, packet.dts = max(pts, dts), dts
        self._last_pts, self._last_dts, self._last_arrival = packet.pts, dts, now

    def _tap_frame(self, frame: VideoFrame) -> None:
        if not self._encode or self._template is None or self._error is not None:
            return
        if self._out is None or self._segment_due():
            self._finish_file()
            self._open_file(self._template)
        assert self._out is not None
        assert self._out_stream is not None
        picture = frame.reformat(format="yuv420p")
        picture.pts = self._frame_index
        picture.time_base = self._out_stream.codec_context.time_base
        self._frame_index += 1
        try:
            packets = self._out_stream.encode(picture)
        except av.error.FFmpegError as exc:
            self._fail(exc)
            return
        for packet in packets:
            self._mux(packet)

    def _tap_close(self) -> None:
        self._finish_file()
        self._loop_call(self._done.set)

    # -- decode-thread helpers ------------------------------------------------------------

    def _segment_due(self) -> bool:
        if self.segment_seconds is None or self._segment_start is None:
            return False
        return time.monotonic() - self._segment_start >= self.segment_seconds

    def _next_path(self) -> Path:
        if self.segment_seconds is None and not self._files and self._sessions <= 1:
            return self.path
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        n = 1
        while candidate.exists() or candidate in self._files:
            candidate = self.path.with_name(f"{self.path.stem}-{stamp}-{n}{self.path.suffix}")
            n += 1
        return candidate

    def _open_file(self, template: VideoStream) -> None:
        path = self._next_path()
        try:
            out = av.open(str(path), "w", format=self._format)
        except (av.error.FFmpegError, OSError) as exc:
            self._fail(exc)
            return
        try:
            if self._encode:
                codec, options = RECORD_ENCODER
                rate = template.average_rate or template.base_rate or Fraction(30)
                stream = out.add_stream(codec, rate=Fraction(rate).limit_denominator(1001))
                assert isinstance(stream, VideoStream)
                stream.width = template.codec_context.width
                stream.height = template.codec_context.height
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = 1 / Fraction(rate).limit_denominator(1001)
                stream.options = dict(options)
                self._frame_index = 0
            else:
                stream = out.add_stream_from_template(template)
                assert isinstance(stream, VideoStream)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            out.close()
            self._fail(exc)
            return
        self._out, self._out_stream, self._out_path = out, stream, path
        self._file_seconds = 0.0
        self._segment_start = time.monotonic()
        self._offset = self._last_pts = self._last_dts = None
        logger.debug("recording %s to %s", self._source.label, path)

    def _mux(self, packet: Packet[Any]) -> None:
        assert self._out is not None
        tb = packet.time_base
        # Read before muxing: the muxer rebases the packet, then empties it.
        end = (
            None
            if packet.pts is None or tb is None
            else float((packet.pts + (packet.duration or 0)) * tb)
        )
        try:
            self._out.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            self._fail(exc)
            return
        self._packets += 1
        if end is not None:
            self._file_seconds = max(self._file_seconds, end)

    def _finish_file(self) -> None:
        out, path = self._out, self._out_path
        if out is None or path is None:
            return
        self._footage += self._current_footage()
        self._out = self._out_stream = self._out_path = None
        try:
            if self._encode:
                stream = out.streams.video[0]
                for packet in stream.encode(None):
                    out.mux(packet)
            out.close()
        except (av.error.FFmpegError, OSError) as exc:
            self._fail(exc)
            return
        with self._lock:
            self._files.append(path)

    def _fail(self, exc: BaseException) -> None:
        detail = redact_text(f"{type(exc).__name__}: {exc}", self._source.secrets)
        self._error = RecordingFailed(f"recording to {self.path} failed", detail=detail)
        logger.warning("%s: %s (%s)", self._source.label, self._error, detail)
        if self._out is not None:
            out, self._out = self._out, None
            with contextlib.suppress(av.error.FFmpegError, OSError):
                out.close()
        self._loop_call(self._done.set)

    def _loop_call(self, callback: Any) -> None:
        self._handle.post(callback)  # False: the loop is gone; nobody waits any more
