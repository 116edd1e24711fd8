"""Every URL kind as a first-class source, against servers nobody here wrote.

RTSP with audio (gst-rtsp-server), RTMP (FFmpeg's own server and nginx-rtmp),
HTTP MJPEG with and without basic auth, MPEG-TS over UDP and TCP, HLS: frames
flow, formats tell the truth (sizes from the first picture, rates declared or
measured, size changes followed), timestamps from broken streams stay sane,
servers killed and restarted are reconnected to, and no credential shows.
Files: a rotated clip comes out upright.  The servers are in tests/servers.py
and tests/netfaults.py; tests/SERVERS.md says what each one serves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import av.logging
import numpy as np
import pytest

import camerapump as cp
import servers
from netfaults import HOST, RtspServer, TcpProxy, free_port

pytestmark = [
    pytest.mark.servers,
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("no_leftover_processes"),
]

FAST_RETRY = cp.ReconnectPolicy(initial_backoff=0.2, max_backoff=1.0, jitter=0, stall_timeout=4.0)


# --------------------------------------------------------------------------- helpers


async def frames_of(pump: cp.Pump, n: int, timeout: float = 10.0) -> list[cp.Frame]:
    """The next ``n`` frames of ``pump`` (TimeoutError if they do not come in time)."""
    got: list[cp.Frame] = []
    async with asyncio.timeout(timeout):
        async for frame in pump:
            got.append(frame)
            if len(got) == n:
                break
    return got


async def frames_during(pump: cp.Pump, seconds: float) -> list[cp.Frame]:
    """Every frame ``pump`` gives during ``seconds`` (fewer if it ends or fails)."""
    got: list[cp.Frame] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            async for frame in pump:
                got.append(frame)  # noqa: PERF401 (a comprehension would lose them at the timeout)
    return got


async def next_event(pump: cp.Pump, kind: type[cp.PumpStatus], timeout: float) -> cp.PumpStatus:
    """Read status events until one of ``kind`` (the others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await pump.status.get()
            if isinstance(event, kind):
                return event


def drain(pump: cp.Pump) -> list[cp.PumpStatus]:
    """The status events queued so far."""
    events = []
    while not pump.status.empty():
        events.append(pump.status.get_nowait())
    return events


def ready(server: Any) -> Any:
    """A ``-listen 1`` server (one client per FFmpeg) once it takes a client again."""
    if hasattr(server, "wait_ready"):
        assert server.wait_ready(10), f"{type(server).__name__} did not get ready"
    return server


async def first_frame_time(source: cp.Source) -> float:
    """Seconds from open_pump to the first frame."""
    started = time.monotonic()
    async with cp.open_pump(source) as pump:
        await frames_of(pump, 1)
        return time.monotonic() - started


# --------------------------------------------------------------------------- §0 IP cameras


@pytest.mark.rtsp
@pytest.mark.parametrize("path", ["/h264-aac", "/h264-alaw"])
async def test_rtsp_with_audio_opens_on_one_connection_as_fast_as_without(
    rtsp_server: RtspServer, path: str
) -> None:
    """H.264 with AAC or G.711 (listed first): one RTSP connection, first frame as fast as plain.

    The format comes from the first decoded picture, so the audio that hides the
    size from the short probe costs no second, fully probed connection.
    """
    times: dict[str, list[float]] = {"/h264": [], path: []}
    for _ in range(3):
        for mount, took in times.items():
            with TcpProxy((HOST, rtsp_server.port)) as proxy:
                source = cp.Source.rtsp(f"rtsp://{HOST}:{proxy.port}{mount}")
                took.append(await first_frame_time(source))
                assert proxy.connections == 1, f"{mount}: {proxy.connections} connections"
    plain, with_audio = statistics.median(times["/h264"]), statistics.median(times[path])
    print(f"time to first frame: /h264 {plain:.3f} s, {path} {with_audio:.3f} s")
    assert with_audio <= max(0.6, 2 * plain)
    async with cp.open_pump(cp.Source.rtsp(rtsp_server.url(path))) as pump:
        (frame,) = await frames_of(pump, 1)
    assert pump.format == cp.StreamFormat(640, 480, 30.0, "bgr24", "h264")
    assert frame.data.shape == (480, 640, 3)


async def test_rtmp_with_audio_first_from_nginx_opens_and_streams(
    nginx_rtmp: servers.NginxRtmpServer,
) -> None:
    """nginx-rtmp sends AAC before H.264 (the short probe sees no video): the pump still streams."""
    async with cp.open_pump(cp.Source.url(nginx_rtmp.url())) as pump:
        frames = await frames_of(pump, 10)
    assert pump.format == cp.StreamFormat(640, 480, 25.0, "bgr24", "h264")
    assert all(f.data.shape == (480, 640, 3) for f in frames)


@pytest.mark.parametrize("audio", [False, True], ids=["video", "video+aac"])
async def test_rtmp_from_ffmpegs_one_client_server_opens_fast_on_one_connection(
    audio: bool,
) -> None:
    """FFmpeg's RTMP server (one client, then it exits) opens on one connection, in well under 2 s.

    Video-only FLV used to wait FFmpeg's 5 s probe for an audio stream that never came.
    """
    with servers.RtmpListenServer(audio=audio) as server:
        with TcpProxy((HOST, server.port)) as proxy:
            url = server.url().replace(f":{server.port}/", f":{proxy.port}/")
            took = await first_frame_time(cp.Source.url(url))
            assert proxy.connections == 1
    print(f"RTMP (audio={audio}) first frame after {took:.2f} s")
    assert took < 2.0


@pytest.mark.rtsp
async def test_udp_only_rtsp_server_works_with_the_default_transport(
    rtsp_udp_only: RtspServer,
) -> None:
    """transport='auto' (the default): TCP is refused (461), UDP is used, on one RTSP connection.

    Five opens in a row: a second RTSP session right after the refused SETUP
    got 5XX from gst-rtsp-server one time in two, which FFmpeg's own fallback avoids.
    """
    for _ in range(5):
        with TcpProxy((HOST, rtsp_udp_only.port)) as proxy:
            source = cp.Source.rtsp(f"rtsp://{HOST}:{proxy.port}/h264")
            assert source.transport == "auto"
            async with cp.open_pump(source) as pump:
                (frame,) = await frames_of(pump, 1)
            assert proxy.connections == 1
        assert frame.data.shape == (240, 320, 3)


@pytest.mark.rtsp
async def test_explicit_tcp_on_a_udp_only_server_says_udp_may_work(
    rtsp_udp_only: RtspServer,
) -> None:
    """transport='tcp' against a UDP-only server fails with a message naming the way out."""
    with pytest.raises(cp.ConnectionFailed) as info:
        async with cp.open_pump(cp.Source.rtsp(rtsp_udp_only.url(), transport="tcp")):
            pass
    message = str(info.value)
    assert "461" in message and "transport='auto'" in message and "'udp'" in message
    # gst-rtsp-server answers 5XX to a session within about 50 ms of a refused SETUP.
    await asyncio.sleep(0.3)
    async with cp.open_pump(cp.Source.rtsp(rtsp_udp_only.url(), transport="udp")) as pump:
        assert len(await frames_of(pump, 2)) == 2


def make_rotated(path: Path, degrees: float, width: int = 640, height: int = 480) -> Path:
    """An H.264 MP4 of ``width`` x ``height`` pictures tagged with a display rotation.

    The picture is asymmetric: a red block at the top left, a green one at the
    bottom right, the left half darker than the right.
    """
    image = np.full((height, width, 3), 90, np.uint8)
    image[:, : width // 2] = 30
    image[:80, :120] = (255, 0, 0)
    image[-60:, -60:] = (0, 255, 0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(degrees)
        for i in range(15):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def ffmpeg_first_picture(path: Path, png: Path) -> np.ndarray:
    """What the ffmpeg command line (which autorotates) makes of the first picture, as RGB."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(path), "-frames:v", "1", str(png)],
        check=True,
        timeout=30,
    )
    with av.open(str(png)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.mark.parametrize("degrees", [90, -90, 180])
async def test_a_rotated_file_is_delivered_upright_like_ffmpeg_shows_it(
    tmp_path: Path, degrees: int
) -> None:
    """A 640x480 clip tagged 90, -90 or 180 degrees comes out as ffmpeg shows it.

    With ``StreamConfig(autorotate=False)`` it comes out as stored.
    """
    clip = make_rotated(tmp_path / "clip.mp4", degrees)
    reference = ffmpeg_first_picture(clip, tmp_path / "ref.png")
    quarter = degrees % 180 != 0
    assert reference.shape == ((640, 480, 3) if quarter else (480, 640, 3))
    config = cp.StreamConfig(pixel_format="rgb24")
    async with cp.open_pump(cp.Source.file(clip), config) as pump:
        (upright,) = await frames_of(pump, 1)
        assert (pump.format.width, pump.format.height) == (480, 640) if quarter else (640, 480)
    stored_config = cp.StreamConfig(pixel_format="rgb24", autorotate=False)
    async with cp.open_pump(cp.Source.file(clip), stored_config) as pump:
        (stored,) = await frames_of(pump, 1)
        assert (pump.format.width, pump.format.height) == (640, 480)

    def difference(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(int) - b.astype(int)).mean())

    assert upright.data.shape == reference.shape
    assert difference(upright.data, reference) < 3
    # The test can fail: the picture turned the other way differs a lot.
    assert difference(np.rot90(upright.data, 2), reference) > 20
    assert stored.data.shape == (480, 640, 3)
    assert tuple(stored.data[10, 10]) == pytest.approx((255, 0, 0), abs=40)  # red top left


def make_raw_h264(path: Path, seconds: int = 2) -> Path:
    """An H.264 elementary stream (no container, no timestamps) of 25 fps, by FFmpeg's CLI."""
    source = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", str(seconds)]
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-f", "h264", str(path)]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *encode], check=True, timeout=30)
    return path


async def test_a_raw_h264_file_without_timestamps_is_paced_at_its_rate(tmp_path: Path) -> None:
    """An elementary .h264 stream has no timestamps: realtime playback goes at its 25 fps anyway."""
    clip = make_raw_h264(tmp_path / "clip.h264")
    started = time.monotonic()
    async with cp.open_pump(cp.Source.file(clip), buffer=64) as pump:
        frames = [frame async for frame in pump]
    took = time.monotonic() - started
    assert len(frames) == 50
    assert all(frame.pts is None for frame in frames)
    assert 1.5 < took < 4.0


# --------------------------------------------------------------------------- §1 every URL kind

# (fixture name, URL of the server, credentials given apart, expected codec, size)
KINDS = {
    "http-mjpeg": ("mjpeg_server", lambda s: s.url(), None, "mjpeg"),
    "http-mjpeg-basic-auth-in-url": (
        "mjpeg_auth_server",
        lambda s: s.url(auth=True),
        None,
        "mjpeg",
    ),
    "http-mjpeg-basic-auth-apart": (
        "mjpeg_auth_server",
        lambda s: s.url(),
        ("alice", "secret"),
        "mjpeg",
    ),
    "rtmp-ffmpeg": ("rtmp_server", lambda s: s.url(), None, "h264"),
    "rtmp-ffmpeg-aac": ("rtmp_audio_server", lambda s: s.url(), None, "h264"),
    "rtmp-nginx-aac": ("nginx_rtmp", lambda s: s.url(), None, "h264"),
    "udp-mpegts": ("udp_ts_server", lambda s: s.url(), None, "h264"),
    "tcp-mpegts-aac": ("tcp_ts_server", lambda s: s.url(), None, "h264"),
    "hls": ("hls_server", lambda s: s.url(), None, "h264"),
}


@pytest.mark.parametrize("kind", KINDS)
async def test_every_stream_url_kind_streams_with_an_honest_repr(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """Each URL kind opens as kind 'stream' and streams 640x480; its repr has no RTSP bits."""
    fixture, url_of, credentials, codec = KINDS[kind]
    server = ready(request.getfixturevalue(fixture))
    if credentials is None:
        source = cp.Source.url(url_of(server))
    else:
        user, password = credentials
        source = cp.Source.url(url_of(server), username=user, password=password)
    assert source.kind == "stream"
    assert cp.Source.parse(url_of(server)).kind == "stream"
    assert "transport" not in repr(source)
    assert repr(source) == f"<Source {source.label}>"
    if credentials is not None or "@" in url_of(server):
        assert source.label.startswith("http://***@127.0.0.1:")
        assert "secret" not in repr(source) + str(source)
    async with cp.open_pump(source) as pump:
        frames = await frames_of(pump, 5)
    assert pump.format.codec == codec
    assert (pump.format.width, pump.format.height) == (640, 480)
    assert all(f.data.shape == (480, 640, 3) for f in frames)
    assert "secret" not in repr(pump)


@asynccontextmanager
async def killable(kind: str) -> AsyncIterator[tuple[Any, cp.Source, Callable[[], None]]]:
    """A server of ``kind`` of this test's own, its source, and how to restart it."""
    if kind == "http-mjpeg":
        server: Any = servers.MjpegHttpServer()
        source = lambda: cp.Source.url(server.url())  # noqa: E731
    elif kind == "http-mjpeg-basic-auth":
        server = servers.MjpegHttpServer(user="alice", password="secret")
        source = lambda: cp.Source.url(server.url(), username="alice", password="secret")  # noqa: E731
    elif kind == "rtmp-ffmpeg-aac":
        server = servers.RtmpListenServer(audio=True)
        source = lambda: cp.Source.url(server.url())  # noqa: E731
    elif kind == "rtmp-nginx-aac":
        server = servers.NginxRtmpServer()
        source = lambda: cp.Source.url(server.url())  # noqa: E731
    elif kind == "udp-mpegts":
        server = servers.FfmpegTsServer("udp")
        source = lambda: cp.Source.url(server.url(), open_timeout=3.0)  # noqa: E731
    elif kind == "tcp-mpegts":
        server = servers.FfmpegTsServer("tcp", audio=True)
        source = lambda: cp.Source.url(server.url())  # noqa: E731
    elif kind == "http-mpegts":
        server = servers.FfmpegTsServer("http")
        source = lambda: cp.Source.url(server.url())  # noqa: E731
    else:
        assert kind == "hls"
        server = servers.HlsServer()
        source = lambda: cp.Source.url(server.url())  # noqa: E731
    with server:
        yield server, source(), server.restart


@pytest.mark.parametrize(
    "kind",
    [
        "http-mjpeg",
        "http-mjpeg-basic-auth",
        "rtmp-ffmpeg-aac",
        "rtmp-nginx-aac",
        "udp-mpegts",
        "tcp-mpegts",
        "http-mpegts",
        "hls",
    ],
)
async def test_a_server_killed_mid_stream_and_restarted_is_reconnected_to(kind: str) -> None:
    """Killing the server mid-stream gives Reconnecting; once it is back, Connected and frames."""
    async with killable(kind) as (server, source, restart):
        async with cp.open_pump(source, policy=FAST_RETRY) as pump:
            await frames_of(pump, 3)
            await next_event(pump, cp.Connected, 1)
            server.kill()
            lost = await next_event(pump, cp.Reconnecting, 15)
            assert isinstance(lost, cp.Reconnecting)
            assert lost.reason in (
                "end_of_stream",
                "stall_timeout_exceeded",
            ) or lost.reason.startswith("read_error:"), lost.reason
            restart()
            back = await next_event(pump, cp.Connected, 20)
            assert isinstance(back, cp.Connected)
            frames = await frames_of(pump, 3)
            assert pump.statistics().reconnects >= 1
    assert all(f.data.shape == (480, 640, 3) for f in frames)


# --------------------------------------------------------------------------- redaction


def secret_forms(*secrets: str) -> list[str]:
    """The secrets, and base64 of user:password pairs among them."""
    return [*secrets, base64.b64encode(b"alice:secret").decode()]


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]


def assert_no_secret_in_error(error: BaseException, *secrets: str) -> None:
    for link in exception_chain(error):
        text = f"{link!s} {link!r} {getattr(link, 'detail', '')} {link.args!r}"
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {type(link).__name__}: {text}"


def test_http_credentials_and_query_tokens_are_masked_in_repr_and_label() -> None:
    """User info and token-like query parameters of stream URLs never show."""
    cases = {
        "http://alice:s3cr3t@cam.local/video.mjpg": "http://***@cam.local/video.mjpg",
        "https://cdn.example/live.m3u8?token=t0k3n&quality=hd": (
            "https://cdn.example/live.m3u8?token=***&quality=hd"
        ),
        "rtmp://live.example/app/stream?user=bob&pass=hunter22": (
            "rtmp://live.example/app/stream?user=***&pass=***"
        ),
        "http://cam.local/cgi-bin/mjpg?usr=admin&pwd=letmein9": (
            "http://cam.local/cgi-bin/mjpg?usr=***&pwd=***"
        ),
    }
    for url, label in cases.items():
        source = cp.Source.url(url)
        assert source.label == label
        assert repr(source) == f"<Source {label}>"
        for secret in ("s3cr3t", "t0k3n", "hunter22", "letmein9", "admin"):
            assert secret not in repr(source) + str(source)
        assert cp.Source.parse(url).label == label
    apart = cp.Source.url("http://cam.local/v.mjpg", username="ad@min", password="p:w/d?x#1")
    assert apart.label == "http://***@cam.local/v.mjpg"
    assert str(apart.target) == "http://ad%40min:p%3Aw%2Fd%3Fx%231@cam.local/v.mjpg"


async def test_a_wrong_http_password_fails_without_a_secret_anywhere_in_the_error(
    mjpeg_auth_server: servers.MjpegHttpServer,
) -> None:
    """401 from the basic-auth camera: AuthenticationFailed; no password or token in the chain."""
    url = mjpeg_auth_server.url().replace("http://", "http://alice:wr0ngpass@") + "?token=t0k3n42"
    ready(mjpeg_auth_server)
    with pytest.raises(cp.AuthenticationFailed) as info:
        async with cp.open_pump(cp.Source.url(url)):
            pass
    assert info.value.detail  # PyAV's answer, redacted, is kept for the user
    assert_no_secret_in_error(info.value, "wr0ngpass", "t0k3n42")


async def test_a_refused_stream_url_fails_without_a_secret_anywhere_in_the_error() -> None:
    """Nothing listening: ConnectionFailed; the URL's password and token appear nowhere."""
    port = free_port()
    url = f"rtmp://bob:hunter22@{HOST}:{port}/live/x?token=t0k3n42"
    with pytest.raises(cp.ConnectionFailed) as info:
        async with cp.open_pump(cp.Source.url(url)):
            pass
    assert "***" in str(info.value)
    assert_no_secret_in_error(info.value, "hunter22", "t0k3n42")


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, PyAV's libav loggers at everything and FFmpeg's log at TRACE."""
    previous = av.logging.get_level()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(1, logger="libav")
    av.logging.set_level(av.logging.TRACE)
    try:
        yield caplog
    finally:
        av.logging.set_level(previous)


@pytest.mark.rtsp
async def test_ffmpegs_own_log_of_pumps_with_passwords_carries_no_credentials(
    rtsp_server: RtspServer,
    mjpeg_auth_server: servers.MjpegHttpServer,
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    """RTSP /secure and basic-auth MJPEG stream with everything logged: no password, no base64."""
    ready(mjpeg_auth_server)
    sources = [
        cp.Source.rtsp(rtsp_server.url("/secure", auth=True)),
        cp.Source.url(mjpeg_auth_server.url(auth=True)),
    ]
    for source in sources:
        async with cp.open_pump(source) as pump:
            await frames_of(pump, 3)
    messages = [record.getMessage() for record in everything_logged.records]
    libav = [m for m in messages if "Authorization: Basic" in m]
    assert len(libav) >= 2, "FFmpeg no longer logs its requests: the test proves nothing"
    assert any("Opening 'http://***@" in m for m in messages)
    for message in messages:
        for secret in secret_forms("secret", "alice:secret"):
            assert secret not in message, message


# --------------------------------------------------------------------------- §2 truthful formats


async def test_a_ts_stream_without_a_declared_rate_is_measured_at_25_not_50(
    udp_ts_server: servers.FfmpegTsServer,
) -> None:
    """25 fps H.264 in MPEG-TS declares no rate: the pump measures about 25 and says so.

    FFmpeg's other rate fields read 50 or 90000 for this stream.
    """
    async with cp.open_pump(cp.Source.url(udp_ts_server.url())) as pump:
        connected = await next_event(pump, cp.Connected, 10)
        assert isinstance(connected, cp.Connected)
        if connected.format.fps is not None:
            # The brief probe saw enough frames to average: declared, and right.
            assert not connected.format.fps_measured
            assert connected.format.fps == pytest.approx(25, abs=0.5)
        else:
            changed = await next_event(pump, cp.FormatChanged, 5)
            assert isinstance(changed, cp.FormatChanged)
            assert changed.format.fps_measured
            assert changed.format.fps == pytest.approx(25, abs=1)
            assert pump.format == changed.format
            assert str(pump.format).startswith("640x480@~25")
        await frames_during(pump, 1.2)
        fps = pump.statistics().fps  # decoded during the last second
    assert fps == pytest.approx(25, abs=8)  # loose: a busy machine decodes unevenly


async def test_a_10_fps_mjpeg_camera_is_measured_at_10_not_25(
    mjpeg_server: servers.MjpegHttpServer,
) -> None:
    """FFmpeg's mpjpeg demuxer numbers pictures at 25 fps; the pump measures the real 10."""
    ready(mjpeg_server)
    async with cp.open_pump(cp.Source.url(mjpeg_server.url())) as pump:
        changed = await next_event(pump, cp.FormatChanged, 5)
        assert isinstance(changed, cp.FormatChanged)
        frames = await frames_of(pump, 5)
    assert changed.format.fps_measured
    assert changed.format.fps == pytest.approx(10, rel=0.1)
    # mpjpeg has no timestamps: FFmpeg's made-up ones (0.04 s apart) are not passed on.
    assert all(f.pts is None for f in frames)


async def test_an_fps_request_matching_the_measured_rate_is_accepted(
    udp_ts_server: servers.FfmpegTsServer,
) -> None:
    """StreamConfig(fps=25) on the 25 fps TS stream streams on; fps=50 ends the session."""
    async with cp.open_pump(cp.Source.url(udp_ts_server.url()), cp.StreamConfig(fps=25)) as pump:
        frames = await frames_during(pump, 2.5)
        assert not [e for e in drain(pump) if isinstance(e, cp.Reconnecting)]
    assert len(frames) >= 40
    with pytest.raises(cp.FormatNotSupported, match="50 fps"):
        async with cp.open_pump(
            cp.Source.url(udp_ts_server.url()), cp.StreamConfig(fps=50), policy=None
        ) as pump:
            await frames_during(pump, 3)
            raise AssertionError("the 50 fps request was not refused")


def size_change_server(size_change_ts: Path) -> servers.FfmpegTsServer:
    """The 320x240-then-640x480 clip, looped live over TCP (one client per FFmpeg)."""
    return servers.FfmpegTsServer("tcp", file=size_change_ts)


@pytest.mark.parametrize("via", ["tcp-mpegts", "rtsp-resize"])
async def test_a_size_change_mid_stream_is_followed(
    size_change_ts: Path, rtsp_server: RtspServer, via: str
) -> None:
    """New size mid-session: FormatChanged, pump.format follows, frames go on at the new size.

    A subscriber with an explicit output size keeps its size throughout.
    """
    with contextlib.ExitStack() as stack:
        if via == "tcp-mpegts":
            ts = stack.enter_context(size_change_server(size_change_ts))
            source = cp.Source.url(ts.url())
        else:
            source = cp.Source.rtsp(rtsp_server.url("/resize"))
        async with cp.open_pump(source) as pump:
            with pump.subscribe(output=cp.Output(200, 100)) as fixed:
                sized: list[tuple[int, int]] = []

                async def watch_fixed() -> None:
                    async for frame in fixed:
                        sized.append((frame.width, frame.height))  # noqa: PERF401 (cancelled)

                task = asyncio.create_task(watch_fixed())
                # (frame size, pump.format's size when the frame came), runs collapsed
                seen: list[tuple[tuple[int, int], tuple[int, int]]] = []
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(3.5):
                        async for frame in pump:
                            fmt = pump.format
                            assert fmt is not None
                            pair = ((frame.width, frame.height), (fmt.width, fmt.height))
                            if not seen or seen[-1] != pair:
                                seen.append(pair)
                task.cancel()
            changes = [e for e in drain(pump) if isinstance(e, cp.FormatChanged)]
    sizes = [size for size, _ in seen]
    assert {(320, 240), (640, 480)} <= set(sizes), seen
    assert len(set(itertools.pairwise(sizes))) >= 2, seen  # changed, and changed back
    # pump.format follows: by the last frame of each size, it says that size.
    runs = [pair for i, pair in enumerate(seen) if i + 1 == len(seen) or seen[i + 1][0] != pair[0]]
    assert all(frame == fmt for frame, fmt in runs), seen
    assert {(e.format.width, e.format.height) for e in changes} >= {(320, 240), (640, 480)}
    assert sized and set(sized) == {(200, 100)}


@pytest.mark.parametrize("via", ["tcp-mpegts", "rtsp-resize"])
async def test_a_size_change_an_explicit_config_forbids_ends_the_session(
    size_change_ts: Path, rtsp_server: RtspServer, via: str
) -> None:
    """Under StreamConfig(first size) a new size ends the session with FormatNotSupported.

    With a policy the pump reconnects (reason format_changed) and frames of the
    asked size come again; without one it fails with the typed error.
    """
    with contextlib.ExitStack() as stack:
        ts = (
            stack.enter_context(size_change_server(size_change_ts)) if via == "tcp-mpegts" else None
        )

        def source() -> cp.Source:
            if ts is not None:
                return cp.Source.url(ready(ts).url())
            return cp.Source.rtsp(rtsp_server.url("/resize"))

        asked = cp.StreamConfig(320, 240) if via == "tcp-mpegts" else cp.StreamConfig(640, 480)
        async with cp.open_pump(source(), asked, policy=FAST_RETRY) as pump:
            frames = await frames_during(pump, 3.5)
            reasons = [e.reason for e in drain(pump) if isinstance(e, cp.Reconnecting)]
        assert "format_changed" in reasons
        assert {(f.width, f.height) for f in frames} == {(asked.width, asked.height)}
        with pytest.raises(cp.FormatNotSupported, match="changed to"):
            async with cp.open_pump(source(), asked, policy=None) as pump:
                await frames_during(pump, 4)


@pytest.mark.parametrize("kind", servers.BROKEN_KINDS)
async def test_broken_timestamps_neither_crash_nor_stall_and_pts_stays_monotonic(
    broken_ts: dict[str, Path], kind: str
) -> None:
    """Missing, backward, jumping, wrapping or bad-first timestamps: every frame, sane pts.

    The clip (100 frames at 25 fps) is replayed byte for byte over TCP; the pump
    reads it to its end (a disconnect) without stalling, and ``Frame.pts`` is
    None or never goes back within the session.
    """
    with servers.TsReplay(broken_ts[kind], 4.0) as replay:
        started = time.monotonic()
        frames: list[cp.Frame] = []
        with pytest.raises(cp.ConnectionFailed, match="ended"):
            # A buffer for every frame: none is dropped on a busy machine.
            source = cp.Source.url(replay.url())
            async with cp.open_pump(source, policy=None, buffer=128) as pump:
                async with asyncio.timeout(10):
                    async for frame in pump:
                        frames.append(frame)  # noqa: PERF401 (the pump fails at the end)
        took = time.monotonic() - started
    assert len(frames) == pump.statistics().frames_decoded >= 95
    assert took < 8
    timed = [f.pts for f in frames if f.pts is not None]
    assert timed == sorted(timed)
    if kind == "missing":
        assert len(timed) < len(frames)
    else:
        assert len(timed) == len(frames)
    assert pump.format.fps == pytest.approx(25, abs=1)


def make_silent_audio_ts(path: Path) -> Path:
    """MPEG-TS that declares an AAC track but carries video only (some cameras do this)."""
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.options = {"g": "25", "preset": "ultrafast", "tune": "zerolatency", "bf": "0"}
        out.add_stream("aac", rate=44100, layout="mono")
        image = np.zeros((240, 320, 3), np.uint8)
        for i in range(100):
            image[:] = i * 2
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path


async def test_a_declared_audio_track_that_never_comes_is_left_out_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The recording waits a second for the declared audio, then writes video alone; one warning."""
    clip = make_silent_audio_ts(tmp_path / "silent.ts")
    with servers.TsReplay(clip, 4.0) as replay:
        async with cp.open_pump(cp.Source.url(replay.url()), policy=None) as pump:
            assert pump._worker._audio is not None  # the track is declared
            async with pump.record(tmp_path / "rec.mp4") as recorder:
                await asyncio.sleep(2.5)
    warnings = [r for r in caplog.records if "without audio" in r.getMessage()]
    assert len(warnings) == 1
    assert "sent no audio" in warnings[0].getMessage()
    with av.open(str(recorder.files[0])) as container:
        assert [s.type for s in container.streams] == ["video"]
        assert sum(1 for _ in container.decode(video=0)) >= 40


# --------------------------------------------------------------------------- §4 Source checks


@pytest.mark.parametrize("value", [None, 5, 5.0, b"rtsp://h/x", ["rtsp://h/x"]])
def test_parse_wants_a_string(value: object) -> None:
    """Source.parse of a non-string raises TypeError naming the type."""
    with pytest.raises(TypeError, match=type(value).__name__):
        cp.Source.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["x" * 9000, "rtsp://h/" + "a" * 9000, "/tmp/" + "b" * 300])
def test_parse_refuses_overlong_text_with_value_error(text: str) -> None:
    """9000 characters (or a file name past NAME_MAX) is a ValueError, never an OSError."""
    with pytest.raises(ValueError, match="long"):
        cp.Source.parse(text)


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\x1b", "\t"])
@pytest.mark.parametrize(
    "make",
    [
        lambda c: cp.Source.parse(f"rtsp://alice:pw123456@cam/live{c}x"),
        lambda c: cp.Source.rtsp(f"rtsp://alice:pw123456@cam/live{c}x"),
        lambda c: cp.Source.url(f"http://alice:pw123456@cam/v.mjpg{c}x"),
        lambda c: cp.Source.parse(f"/tmp/clip{c}.mp4"),
    ],
    ids=["parse-url", "rtsp", "url", "parse-path"],
)
def test_control_characters_are_refused_without_echoing_the_password(
    make: Callable[[str], cp.Source], char: str
) -> None:
    """CR, LF, NUL and other C0 characters are a ValueError whose message hides the password."""
    with pytest.raises(ValueError, match="control character") as info:
        make(char)
    assert "pw123456" not in str(info.value)


@pytest.mark.parametrize("url", ["ftp://host/x.mp4", "gopher://h/", "rtp://239.0.0.1:5004"])
def test_an_unsupported_scheme_names_the_supported_ones(url: str) -> None:
    """parse() and url() refuse other schemes with a message listing rtsp://, http://, ..."""
    for make in (cp.Source.parse, cp.Source.url):
        with pytest.raises(ValueError, match="unsupported URL scheme") as info:
            make(url)
        for scheme in ("rtsp://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://"):
            assert scheme in str(info.value)


def test_stream_url_kinds_parse_to_the_right_source() -> None:
    """rtsp(s):// is RTSP with a transport; every other stream scheme is kind 'stream'."""
    assert cp.Source.parse("rtsps://cam/live").kind == "rtsp"
    assert cp.Source.url("rtsp://cam/live") == cp.Source.rtsp("rtsp://cam/live")
    for url in (
        "http://cam/video.mjpg",
        "https://host/live.m3u8",
        "rtmp://host/live/key",
        "rtmps://host/live/key",
        "srt://host:9000",
        "udp://@:5000",
        "tcp://host:9000",
    ):
        source = cp.Source.parse(url)
        assert source.kind == "stream" and source.is_live and source.traits.network
        assert "transport" not in repr(source)
        assert cp.Source.parse(source.label) == source


@pytest.mark.parametrize("scheme", ["https", "rtmps"])
def test_tls_stream_urls_reach_the_network(scheme: str) -> None:
    """https:// and rtmps:// exist in PyAV's FFmpeg: a closed port is refused, not unknown."""
    with pytest.raises(cp.ConnectionFailed, match="connection failed"):
        with cp.open_camera(cp.Source.url(f"{scheme}://{HOST}:{free_port()}/live/x")):
            pass


def test_srt_without_the_protocol_in_pyav_is_a_clear_error() -> None:
    """PyAV's wheels have no srt://: FormatNotSupported saying so, not a vague failure."""
    with pytest.raises(cp.FormatNotSupported, match="no srt protocol"):
        with cp.open_camera(cp.Source.url(f"srt://{HOST}:9")):
            pass
