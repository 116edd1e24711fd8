"""Recording: remuxed packets from the pump, playable files, segments, reconnects."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import pytest

import camerapump as cp
from netfaults import RtspServer

pytestmark = pytest.mark.timeout(60)


def probe(path: Path) -> tuple[str, int, float, bool]:
    """(codec, decoded frames, duration in s, first packet is a keyframe) of a recording."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first_key = next(p for p in container.demux(stream) if p.size).is_keyframe
        container.seek(0)
        frames = sum(1 for _ in container.decode(stream))
        duration = (container.duration or 0) / 1e6
        return stream.codec_context.name, frames, duration, first_key


async def _outage(pump: cp.Pump, server: RtspServer) -> None:
    """Kill the server, see the pump lose it, restart it, wait until the pump is back."""
    server.kill()
    while pump.state == "connected":
        await asyncio.sleep(0.05)
    server.restart()
    async with asyncio.timeout(15):
        while pump.state != "connected":
            await asyncio.sleep(0.05)


async def test_recording_an_rtsp_stream_remuxes_h264_without_reencoding(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """An H.264 stream is written as H.264, starting at a keyframe, about as long as recorded."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
        await anext(aiter(pump))
        async with pump.record(tmp_path / "cam.mp4") as recorder:
            await asyncio.sleep(2.0)
    (path,) = recorder.files
    codec, frames, duration, first_key = probe(path)
    assert (codec, first_key) == ("h264", True)
    assert 1.0 <= duration <= 3.0
    assert 30 <= frames <= 70
    assert recorder.packets_written >= frames


async def test_recording_mjpeg_to_matroska(rtsp_server: RtspServer, tmp_path: Path) -> None:
    """An MJPEG stream is kept as MJPEG in an MKV file."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url("/mjpeg"))) as pump:
        async with pump.record(tmp_path / "cam.mkv") as recorder:
            await asyncio.sleep(1.0)
    codec, frames, _, _ = probe(recorder.files[0])
    assert codec == "mjpeg"
    assert frames >= 15


async def test_recording_the_test_pattern_encodes_h264(tmp_path: Path) -> None:
    """A raw source (the test pattern) is encoded with the documented default, H.264."""
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(320, 240, 30)) as pump:
        async with pump.record(tmp_path / "pattern.ts") as recorder:
            await asyncio.sleep(1.5)
    codec, frames, duration, _ = probe(recorder.files[0])
    assert codec == "h264"
    assert 30 <= frames <= 60
    assert 0.8 <= duration <= 2.5


async def test_segments_roll_over_at_keyframes(rtsp_server: RtspServer, tmp_path: Path) -> None:
    """segment_seconds=1 over about 3.5 s gives several playable files named name-DATE-TIME."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
        async with pump.record(tmp_path / "seg.mkv", segment_seconds=1) as recorder:
            await asyncio.sleep(3.5)
    files = recorder.files
    assert len(files) >= 3
    for path in files:
        assert path.name.startswith("seg-") and path.suffix == ".mkv"
        _, frames, _, first_key = probe(path)
        assert first_key
        assert frames > 0


async def test_recording_continues_across_a_reconnect(
    own_rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """A server restart ends one file and recording resumes in a new one; both play."""
    policy = cp.ReconnectPolicy(initial_backoff=0.2, jitter=0)
    async with cp.open_pump(cp.Source.rtsp(own_rtsp_server.url()), policy=policy) as pump:
        async with pump.record(tmp_path / "across.mp4") as recorder:
            await asyncio.sleep(1.0)
            await _outage(pump, own_rtsp_server)
            await asyncio.sleep(1.5)
    assert len(recorder.files) == 2
    assert recorder.files[0] == tmp_path / "across.mp4"
    for path in recorder.files:
        assert probe(path)[1] > 10


async def test_recording_does_not_hold_up_frame_delivery(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """While recording, frames still reach the consumer fresh."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url())) as pump:
        async with pump.record(tmp_path / "x.mkv"):
            ages = []
            async for frame in pump:
                ages.append(time.monotonic() - frame.captured_at)
                if len(ages) == 30:
                    break
    assert sorted(ages)[15] < 0.05


async def test_a_recording_needs_a_known_container(tmp_path: Path) -> None:
    """An output name without a known container ending is rejected at once."""
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(64, 48, 10)) as pump:
        with pytest.raises(ValueError, match="container"):
            pump.record(tmp_path / "x.avi")
        recorder = pump.record(tmp_path / "x.avi", container="matroska")
        await asyncio.sleep(0.5)
        assert await recorder.stop() == [tmp_path / "x.avi"]


def test_a_killed_process_leaves_every_finished_segment_playable(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """SIGKILL in the middle of a segmented recording: every finished segment plays."""
    script = textwrap.dedent(
        f"""
        import asyncio, camerapump as cp
        async def main():
            async with cp.open_pump(cp.Source.rtsp({rtsp_server.url()!r})) as pump:
                pump.record({str(tmp_path / "kill.mp4")!r}, segment_seconds=1)
                print("recording", flush=True)
                await asyncio.sleep(60)
        asyncio.run(main())
        """
    )
    command = [sys.executable, "-c", script]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "recording"
            time.sleep(3.5)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    files = sorted(tmp_path.glob("kill-*.mp4"))
    playable = []
    for path in files:
        try:
            playable.append(probe(path)[1] > 0)
        except av.error.FFmpegError:
            playable.append(False)
    # The last file was being written when the process died; all before it are whole.
    assert len(files) >= 3
    assert all(playable[:-1]), list(zip(files, playable, strict=True))


@pytest.mark.rtsp
async def test_recording_a_slow_stream_keeps_every_frame_with_sane_timing(tmp_path: Path) -> None:
    """A 2 fps stream (quiet gaps longer than the read timeout) records every frame, timed right.

    The recording starts at the keyframe of the GOP in progress (gop=2: up to 1 s before).
    """
    with RtspServer(fps=2, gop=2) as server:
        async with cp.open_pump(cp.Source.rtsp(server.url())) as pump:
            await anext(aiter(pump))
            async with pump.record(tmp_path / "slow.mkv") as recorder:
                await asyncio.sleep(4.0)
    codec, frames, duration, first_key = probe(recorder.files[0])
    assert (codec, first_key) == ("h264", True)
    assert 7 <= frames <= 11
    assert 3.0 <= duration <= 5.5


# -- audio ------------------------------------------------------------------------------------


def tracks(path: Path) -> dict[str, tuple[str, int, float, float]]:
    """Per track type: (codec, packets, start s, duration s from the first to the last packet)."""
    found: dict[str, tuple[str, int, float, float]] = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            container.seek(0)
            times = [
                float(p.pts * p.time_base)
                for p in container.demux(stream)
                if p.size and p.pts is not None and p.time_base is not None
            ]
            assert times, f"{stream.type} track of {path.name} has no packets"
            found[stream.type] = (
                stream.codec_context.name,
                len(times),
                min(times),
                max(times) - min(times),
            )
    return found


def decoded_seconds_of_audio(path: Path) -> float:
    """Seconds of sound that decode from the file's audio track."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


def assert_both_tracks(path: Path, video: str, audio: str, seconds: float) -> None:
    """Video and audio of the expected codecs, about ``seconds`` long each, starting together."""
    found = tracks(path)
    assert set(found) == {"video", "audio"}, found
    (v_codec, v_packets, v_start, v_span), (a_codec, a_packets, a_start, a_span) = (
        found["video"],
        found["audio"],
    )
    assert (v_codec, a_codec) == (video, audio), found
    assert v_packets >= 20 and a_packets >= 10, found
    assert abs(v_span - seconds) < 1.2 and abs(a_span - seconds) < 1.2, found
    assert abs(v_span - a_span) < 0.6, found  # about as long as each other
    assert abs(v_start - a_start) < 0.5, found  # and on one clock
    assert decoded_seconds_of_audio(path) == pytest.approx(a_span, abs=0.6)


async def record_for(
    source: cp.Source, path: Path, seconds: float = 2.5, **record: object
) -> cp.Recorder:
    async with cp.open_pump(source) as pump:
        await anext(aiter(pump))
        async with pump.record(path, **record) as recorder:  # type: ignore[arg-type]
            await asyncio.sleep(seconds)
    return recorder


@pytest.mark.rtsp
@pytest.mark.parametrize("ending", [".mp4", ".mkv", ".ts"])
async def test_aac_from_an_ip_camera_is_remuxed_beside_the_video(
    rtsp_server: RtspServer, tmp_path: Path, ending: str
) -> None:
    """RTSP H.264 + AAC: both tracks in MP4, MKV and TS, the AAC as it came, in sync."""
    recorder = await record_for(
        cp.Source.rtsp(rtsp_server.url("/h264-aac")), tmp_path / f"a{ending}"
    )
    (path,) = recorder.files
    assert_both_tracks(path, "h264", "aac", 2.5)


@pytest.mark.rtsp
@pytest.mark.parametrize(
    ("ending", "audio"), [(".mp4", "aac"), (".mkv", "aac"), (".ts", "aac"), (".mov", "pcm_alaw")]
)
async def test_g711_from_an_ip_camera_is_kept_where_it_fits_else_encoded_to_aac(
    rtsp_server: RtspServer,
    tmp_path: Path,
    ending: str,
    audio: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """G.711 A-law: kept in MOV, encoded to AAC for MP4, MKV and TS (said once, at INFO)."""
    caplog.set_level(logging.INFO, logger="camerapump")
    recorder = await record_for(
        cp.Source.rtsp(rtsp_server.url("/h264-alaw")), tmp_path / f"g{ending}"
    )
    (path,) = recorder.files
    assert_both_tracks(path, "h264", audio, 2.5)
    said = [r.getMessage() for r in caplog.records if "encoded to AAC" in r.getMessage()]
    assert len(said) == (0 if audio == "pcm_alaw" else 1), said
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.servers
async def test_adts_aac_from_mpeg_ts_is_recorded_to_mp4(tcp_ts_server, tmp_path: Path) -> None:
    """MPEG-TS AAC (ADTS, several frames a PES, rate unknown to the short probe) plays in MP4."""
    assert tcp_ts_server.wait_ready(10)
    recorder = await record_for(cp.Source.url(tcp_ts_server.url()), tmp_path / "ts.mp4")
    assert_both_tracks(recorder.files[0], "h264", "aac", 2.5)


@pytest.mark.servers
async def test_rtmp_audio_from_nginx_is_recorded(nginx_rtmp, tmp_path: Path) -> None:
    """RTMP (FLV) with its AAC sent before the video: both tracks in the MKV."""
    recorder = await record_for(cp.Source.url(nginx_rtmp.url()), tmp_path / "rtmp.mkv")
    assert_both_tracks(recorder.files[0], "h264", "aac", 2.5)


@pytest.mark.rtsp
async def test_audio_false_records_the_video_alone(rtsp_server: RtspServer, tmp_path: Path) -> None:
    """Recorder(audio=False) leaves the source's audio out, silently."""
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url("/h264-aac"))) as pump:
        await anext(aiter(pump))
        # Pump.record() does not pass audio= yet; the recorder is made as it makes one.
        recorder = cp.Recorder(
            pump._worker, pump.source, pump._handle, tmp_path / "v.mp4", audio=False
        )
        recorder._attach()
        async with recorder:
            await asyncio.sleep(1.5)
    assert set(tracks(recorder.files[0])) == {"video"}


@pytest.mark.rtsp
async def test_audio_goes_on_in_every_segment_and_after_a_reconnect(
    own_rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """Segments and the file after an outage all carry both tracks."""
    policy = cp.ReconnectPolicy(initial_backoff=0.2, jitter=0)
    source = cp.Source.rtsp(own_rtsp_server.url("/h264-aac"))
    async with cp.open_pump(source, policy=policy) as pump:
        async with pump.record(tmp_path / "seg.mkv", segment_seconds=1) as recorder:
            await asyncio.sleep(2.5)
            await _outage(pump, own_rtsp_server)
            await asyncio.sleep(1.5)
    assert len(recorder.files) >= 3
    assert recorder.outages == 1
    for path in recorder.files:
        assert set(tracks(path)) == {"video", "audio"}, path.name
