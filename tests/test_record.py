"""Recording: remuxed packets from the pump, playable files, segments, reconnects."""

from __future__ import annotations

import asyncio
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
            own_rtsp_server.kill()
            while pump.state == "connected":
                await asyncio.sleep(0.05)
            own_rtsp_server.restart()
            async with asyncio.timeout(15):
                while pump.state != "connected":
                    await asyncio.sleep(0.05)
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
