"""Recording: the packets a pump already demuxes, written to files as they are.

A :class:`Recorder` attaches a packet tap to the pump's decode thread (the
owner of the input container), so recording costs a remux, not a decode and
an encode: packets go to MP4/MKV/MPEG-TS unchanged, starting at a keyframe.
Only a source that gives raw pictures (the test pattern, raw USB modes) is
encoded, with H.264 (libx264, ultrafast) by default.  Output containers are
opened, written and closed on the decode thread too.

The source's first audio track goes along (the decode thread demuxes it while
a recorder is attached): remuxed where the container holds its codec
(:data:`AUDIO_REMUX`: AAC everywhere; G.711 only in MOV), otherwise decoded and
encoded to AAC (G.711 from IP cameras into MP4, MKV or TS: cheap at 8 kHz),
and left out with one warning when neither works.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import av
import av.error
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.codec.context import CodecContext
from av.container import OutputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from ._config import is_positive_number
from ._convert import SWS_THREADS
from ._errors import CameraError
from ._handoff import LoopHandle
from ._redact import redact_text
from ._source import Source
from ._worker import Worker

__all__ = [
    "AUDIO_ENCODER",
    "AUDIO_REMUX",
    "RAW_CODECS",
    "RECORD_ENCODER",
    "Recorder",
    "RecordingFailed",
]

logger = logging.getLogger("camerapump")

#: Codecs that carry pictures rather than compressed video: these are encoded.
RAW_CODECS = frozenset({"rawvideo", "wrapped_avframe"})
#: The encoder used for raw sources, and its options.
RECORD_ENCODER = ("libx264", {"preset": "ultrafast", "tune": "zerolatency", "crf": "23"})
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
#: The audio codecs each container takes as they are.  Others are encoded to AAC
#: (:data:`AUDIO_ENCODER`), and so is a track the container refuses after all.
#: G.711 (``pcm_alaw``, ``pcm_mulaw``) has no MP4 or MPEG-TS mapping, and PyAV
#: refuses it for Matroska, whose muxer would take it only as a non-standard ACM
#: track; QuickTime (MOV) has it.  MOV refused Opus (measured).
AUDIO_REMUX: dict[str, frozenset[str]] = {
    "mp4": frozenset({"aac", "mp3", "opus", "ac3", "eac3", "alac"}),
    "mov": frozenset({"aac", "mp3", "ac3", "alac", "pcm_alaw", "pcm_mulaw", "pcm_s16be"}),
    "matroska": frozenset(
        {"aac", "mp3", "opus", "vorbis", "flac", "ac3", "eac3", "pcm_s16le", "pcm_s16be"}
    ),
    "mpegts": frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus"}),
}
#: The encoder for audio that the container cannot take as it is (FFmpeg's own AAC).
AUDIO_ENCODER = "aac"
# A stream that declares an audio track may never send it (some cameras; Home
# Assistant's stream worker knows them too): the first file waits this long for
# an audio packet, holding its video, before it is written without audio.
_AUDIO_WAIT = 1.0
_PENDING_LIMIT = 2000  # packets held meanwhile, at most


class _AudioRefused(Exception):
    """A file could not be started with its audio track (the message says why)."""


@dataclass(frozen=True, slots=True)
class _AudioParams:
    """What a track needs that a short probe may not have found: the rate and channels."""

    rate: int
    layout: str
    channels: int


def _decoder_for(template: AudioStream) -> av.AudioCodecContext:
    """A decoder of the recorder's own for ``template``'s codec (the input's stays untouched)."""
    source = template.codec_context
    decoder = CodecContext.create(source.name, "r")
    assert isinstance(decoder, av.AudioCodecContext)
    if source.sample_rate:
        decoder.sample_rate = source.sample_rate
    if source.layout and source.layout.nb_channels:
        decoder.layout = source.layout
    if source.extradata:
        decoder.extradata = source.extradata
    return decoder


def _audio_params(template: AudioStream, first: Packet[AudioStream]) -> _AudioParams | None:
    """The rate and channels of ``template``, from its parameters or by decoding ``first``."""
    source = template.codec_context
    if source.sample_rate and source.layout and source.layout.nb_channels:
        return _AudioParams(source.sample_rate, source.layout.name, source.layout.nb_channels)
    try:
        frames = _decoder_for(template).decode(first)
    except (av.error.FFmpegError, ValueError):
        return None
    for frame in frames:
        if isinstance(frame, AudioFrame) and frame.sample_rate and frame.layout.nb_channels:
            return _AudioParams(frame.sample_rate, frame.layout.name, frame.layout.nb_channels)
    return None


def _audio_duration(
    packet: Packet[AudioStream], tb: Fraction, codec: str, params: _AudioParams
) -> float | None:
    """Seconds of sound in ``packet``, from its duration or else from its codec."""
    if packet.duration:
        return float(packet.duration * tb)
    if codec == "aac":
        samples = 1024  # AAC-LC; a short probe of ADTS AAC leaves the durations out
    elif codec in ("pcm_alaw", "pcm_mulaw"):
        samples = packet.size // max(1, params.channels)
    elif codec.startswith("pcm_s16"):
        samples = packet.size // (2 * max(1, params.channels))
    else:
        return None
    return samples / params.rate


@dataclass(slots=True)
class _Pending:
    """Video packets (and their arrival times) held while a file waits for its audio."""

    since: float
    packets: list[tuple[Packet[VideoStream], float]]


class _AudioOut:
    """The audio track of one output file: packets remuxed, or decoded and encoded to AAC.

    Timestamps come in as seconds of the file (the recorder puts audio on the
    video's clock) and go out in the track's time base, strictly increasing.
    """

    def __init__(
        self, out: OutputContainer, template: AudioStream, params: _AudioParams, *, transcode: bool
    ) -> None:
        self._template = template
        self._last_dts: int | None = None
        self._decoder: av.AudioCodecContext | None = None
        self._resampler: AudioResampler | None = None
        if not transcode:
            remuxed = out.add_stream_from_template(template)
            assert isinstance(remuxed, AudioStream)
            if not remuxed.codec_context.sample_rate:
                # The short probe of MPEG-TS leaves ADTS AAC's rate and channels out.
                remuxed.codec_context.sample_rate = params.rate
                remuxed.codec_context.layout = params.layout
            self.stream = remuxed
            return
        decoder = _decoder_for(template)
        stream = out.add_stream(AUDIO_ENCODER, rate=params.rate, layout=params.layout)
        assert isinstance(stream, AudioStream)
        stream.codec_context.time_base = Fraction(1, params.rate)
        self.stream = stream
        self._decoder = decoder
        self._resampler = AudioResampler(
            format="fltp", layout=params.layout, rate=params.rate, frame_size=1024
        )

    def packets(self, shared: Packet[AudioStream], seconds: float) -> list[Packet[Any]]:
        """What to mux for ``shared``, which starts ``seconds`` into the file."""
        if self._decoder is None:
            tb = shared.time_base or self._template.time_base
            assert tb is not None
            dts = round(seconds / tb)
            if self._last_dts is not None and dts <= self._last_dts:
                return []  # not after the last one: the muxer would refuse it
            packet: Packet[AudioStream] = av.Packet(shared)  # type: ignore[arg-type, assignment]
            shift = 0 if shared.pts is None or shared.dts is None else shared.pts - shared.dts
            packet.dts, packet.pts, packet.time_base = dts, dts + shift, tb
            packet.duration = shared.duration
            packet.stream = self.stream
            self._last_dts = dts
            return [packet]
        assert self._resampler is not None
        rate = self.stream.codec_context.sample_rate
        start = round(seconds * rate)
        if self._last_dts is not None and start <= self._last_dts:
            return []
        self._last_dts = start
        out: list[Packet[Any]] = []
        for frame in self._decoder.decode(shared):
            assert isinstance(frame, AudioFrame)
            frame.pts, frame.time_base = start, Fraction(1, rate)
            start += frame.samples
            self._last_dts = start - 1
            for chunk in self._resampler.resample(frame):
                out.extend(self.stream.encode(chunk))
        return out

    def flush(self) -> list[Packet[Any]]:
        """The packets still inside the encoder (at the end of the file)."""
        if self._resampler is None:
            return []
        out: list[Packet[Any]] = []
        for chunk in self._resampler.resample(None):
            out.extend(self.stream.encode(chunk))
        out.extend(self.stream.encode(None))
        return out


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

    The source's first audio track is recorded too (``audio=False``: not): as
    it is where the container holds its codec (:data:`AUDIO_REMUX`), else
    encoded to AAC; where neither works, the file has no audio and one warning
    says why.  Audio starts with the first audio packet after the call, so up
    to one GOP after the video; a file whose source declares audio but sends
    none within a second is written without it.

    Attributes:
        path: The requested path.
        segment_seconds: Roll over to a new file at the first keyframe after this long.
        audio: Whether the source's audio is recorded.
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
        audio: bool = True,
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
        self.audio = bool(audio)
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
        self._audio_template: AudioStream | None = None  # the session's, if recorded
        self._audio_seen = False  # an audio packet came this session
        self._audio_params: _AudioParams | None = None
        self._audio_next: float | None = None  # source seconds where the last audio packet ended
        self._audio_out: _AudioOut | None = None  # the current file's audio track
        self._audio_warned = False  # one warning per recording
        self._transcode_said = False  # and one notice that the audio is encoded
        self._origin: float | None = None  # source seconds at the current file's time 0
        self._pending: _Pending | None = None
        self._encode = False
        self._offset: int | None = None  # source pts minus file pts
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        self._last_arrival = 0.0
        self._segment_start: float | None = None
        self._frame_index = 0
        self._reformatter = VideoReformatter()  # one swscale context for the recording
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
        with self._lock:
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

    def _tap_session_started(self, stream: VideoStream, audio: AudioStream | None) -> None:
        self._finish_file()
        if self._sessions and self._files:
            self._outages += 1
            logger.warning(
                "%s: the stream came back after an outage; recording continues in a new file",
                self._source.label,
            )
        self._template = stream
        self._encode = (stream.codec_context.name or "") in RAW_CODECS
        # Raw pictures are encoded with a clock of their own: no audio beside them.
        self._audio_template = audio if self.audio and not self._encode else None
        self._audio_seen = False
        self._audio_params = None
        self._audio_next = None
        self._sessions += 1

    def _tap_session_ended(self) -> None:
        self._finish_file()
        self._template = self._audio_template = None

    def _tap_packet(self, shared: Packet[VideoStream] | Packet[AudioStream]) -> None:
        template = self._template
        if template is None or self._error is not None or shared.size == 0:
            return  # no session, a failed recording, or a flush packet
        if shared.stream_index != template.index:
            self._tap_audio(shared)  # type: ignore[arg-type]
            return
        if self._encode:
            return
        video: Packet[VideoStream] = shared  # type: ignore[assignment]
        now = time.monotonic()
        if self._out is None and self._pending is None:
            if not video.is_keyframe:
                return  # a file starts at a keyframe, or it would not play
            if self._audio_template is not None and not self._audio_seen:
                self._pending = _Pending(now, [])
            else:
                self._open_file(template)
        elif self._pending is None and video.is_keyframe and self._segment_due():
            self._finish_file()
            self._open_file(template)
        if self._pending is not None:
            pending = self._pending
            pending.packets.append((video, now))
            if now - pending.since >= _AUDIO_WAIT or len(pending.packets) >= _PENDING_LIMIT:
                self._leave_out_audio("the source declares an audio track but sent no audio")
                self._write_pending()
            return
        self._write_video(video, now)

    def _tap_audio(self, shared: Packet[AudioStream]) -> None:
        template = self._audio_template
        if template is None or shared.stream_index != template.index:
            return
        if not self._audio_seen:
            self._audio_seen = True
            self._audio_params = _audio_params(template, shared)
            if self._audio_params is None:
                self._leave_out_audio(
                    f"its {template.codec_context.name} rate and channels are unknown"
                )
        if self._pending is not None:
            self._write_pending()
        audio, origin, params = self._audio_out, self._origin, self._audio_params
        tb = shared.time_base or template.time_base
        if tb is None or params is None:
            return
        # MPEG-TS carries a timestamp per PES, which may hold several AAC frames;
        # after a short probe FFmpeg's parser gives the frames after the first
        # neither timestamp nor duration: they follow on from the last one.
        start = float(shared.pts * tb) if shared.pts is not None else self._audio_next
        duration = _audio_duration(shared, tb, template.codec_context.name or "", params)
        self._audio_next = None if start is None or duration is None else start + duration
        if self._out is None or audio is None or origin is None or start is None:
            return  # no file, no audio track, or nothing to put it on the video's clock
        seconds = start - origin
        if seconds < 0:
            return  # from before the file's first keyframe
        try:
            packets = audio.packets(shared, seconds)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._drop_audio(exc)
            return
        for packet in packets:
            self._mux(packet)

    def _write_pending(self) -> None:
        """Open the file held for its audio and write the video packets held meanwhile."""
        pending, self._pending = self._pending, None
        if pending is None or self._template is None:
            return
        self._open_file(self._template)
        for packet, arrival in pending.packets:
            if self._out is None:
                return  # the open or a write failed; the error is recorded
            self._write_video(packet, arrival)

    def _write_video(self, shared: Packet[VideoStream], arrival: float) -> None:
        if self._out is None or self._out_stream is None or self._template is None:
            return  # opening failed; the error is recorded
        # The decode thread shares its packets (with the GOP buffer, other
        # taps): mux a copy, since retiming and muxing change a packet.
        packet: Packet[VideoStream] = av.Packet(shared)  # type: ignore[arg-type, assignment]
        packet.pts, packet.dts = shared.pts, shared.dts
        time_base = shared.time_base or self._template.time_base
        if time_base is not None:
            packet.time_base = time_base
        packet.is_keyframe = shared.is_keyframe
        packet.duration = shared.duration
        self._retime(packet, arrival)
        if self._offset is not None and time_base is not None:
            self._origin = float(self._offset * time_base)  # where audio goes on this clock
        packet.stream = self._out_stream
        self._mux(packet)

    def _retime(self, packet: Packet[VideoStream], now: float) -> None:
        """Give ``packet`` timestamps that start at 0 in this file and always increase.

        The source's own timestamps are kept (shifted) where it has them.  Where
        it has none (the first packets of an RTSP session, and every packet of a
        slow stream after PyAV's read timeout fired), or where they jump by more
        than a second against the arrival clock (a looped file starting again,
        an RTP clock reset), the arrival time stands in and the source's clock
        is followed again from there.  ``now`` is the packet's arrival.
        """
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
        picture = self._reformatter.reformat(frame, format="yuv420p", threads=SWS_THREADS)
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

    # -- audio ----------------------------------------------------------------------------

    def _audio_plan(self) -> bool | None:
        """For a new file: False to remux the session's audio, True to encode it, None: none."""
        template = self._audio_template
        if template is None or not self._audio_seen:
            return None
        codec = template.codec_context.name or ""
        return codec not in AUDIO_REMUX.get(self._format, frozenset())

    def _leave_out_audio(self, why: str) -> None:
        """Record this session without audio; warn once per recording."""
        self._audio_template = None
        if not self._audio_warned:
            self._audio_warned = True
            logger.warning("%s: recording without audio: %s", self._source.label, why)

    def _drop_audio(self, exc: BaseException) -> None:
        """The audio track failed mid-file: the video goes on without it."""
        detail = redact_text(f"{type(exc).__name__}: {exc}", self._source.secrets)
        self._audio_out = None
        self._leave_out_audio(f"writing it failed ({detail})")

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
        plan = self._audio_plan()
        # Remux the audio if the container holds it, else encode it to AAC, else
        # leave it out: the first of these whose header the muxer writes.
        plans: list[bool | None] = [None]
        if plan is not None:
            plans = [False, True, None] if plan is False else [True, None]
        refusals: list[str] = []
        for attempt in plans:
            try:
                out, stream, audio = self._create(path, template, attempt)
            except _AudioRefused as refused:
                refusals.append(str(refused))
                continue
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                self._fail(exc)
                return
            break
        if refusals and audio is None:
            self._leave_out_audio("; ".join(refusals))
        elif attempt and not self._transcode_said:
            self._transcode_said = True
            codec = self._audio_template.codec_context.name if self._audio_template else "?"
            logger.info(
                "%s: its %s audio is encoded to AAC (%s)",
                self._source.label,
                codec,
                "; ".join(refusals) or f"{self._format} does not hold {codec}",
            )
        self._out, self._out_stream, self._out_path, self._audio_out = out, stream, path, audio
        self._file_seconds = 0.0
        self._segment_start = time.monotonic()
        self._offset = self._last_pts = self._last_dts = None
        self._origin = None
        logger.debug("recording %s to %s", self._source.label, path)

    def _create(
        self, path: Path, template: VideoStream, transcode: bool | None
    ) -> tuple[OutputContainer, VideoStream, _AudioOut | None]:
        """Open ``path`` with its tracks and write its header (so a track it refuses shows now).

        Args:
            path: The file.
            template: The session's video stream.
            transcode: The audio track: remuxed (False), encoded to AAC (True), none (None).

        Raises:
            _AudioRefused: The audio track could not be made, or the header written with it.
        """
        out = av.open(str(path), "w", format=self._format)
        track: _AudioOut | None = None
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
                if not stream.width:
                    # A short probe with an audio track beside leaves the size out of
                    # the stream's parameters; the decoder has it by now.
                    stream.width = template.codec_context.width
                    stream.height = template.codec_context.height
            track = None if transcode is None else self._add_audio(out, transcode)
            out.start_encoding()
        except BaseException as exc:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                out.close()
            if track is None or isinstance(exc, _AudioRefused):
                if isinstance(exc, _AudioRefused):
                    with contextlib.suppress(OSError):
                        path.unlink()
                raise
            with contextlib.suppress(OSError):
                path.unlink()
            detail = redact_text(f"{type(exc).__name__}: {exc}", self._source.secrets)
            raise _AudioRefused(f"{self._format} refused its audio track ({detail})") from None
        return out, stream, track

    def _add_audio(self, out: OutputContainer, transcode: bool) -> _AudioOut:
        """The audio track of a new file.

        Raises:
            _AudioRefused: It cannot be made (the container refuses the codec, no encoder).
        """
        template, params = self._audio_template, self._audio_params
        assert template is not None
        assert params is not None
        try:
            return _AudioOut(out, template, params, transcode=transcode)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            detail = redact_text(f"{type(exc).__name__}: {exc}", self._source.secrets)
            how = "encoded to AAC" if transcode else "as it is"
            raise _AudioRefused(
                f"{template.codec_context.name} {how} cannot go into {self._format} ({detail})"
            ) from None

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
        if self._out is None and self._pending is None:
            return
        self._write_pending()  # a file still waiting for its audio is written without it
        out, path = self._out, self._out_path
        if out is None or path is None:
            return
        audio, self._audio_out = self._audio_out, None
        if audio is not None:
            try:
                for packet in audio.flush():
                    self._mux(packet)
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                self._drop_audio(exc)
        # One step for a reader on the event loop: never this file twice, nor not at all.
        with self._lock:
            self._footage, self._out = self._footage + self._current_footage(), None
        self._out_stream = self._out_path = None
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
