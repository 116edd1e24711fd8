"""The third-party test servers (tests/servers.py, tests/rtsp_server.py) serve what they say.

Plain PyAV only, no camerapump: open, decode a few frames, check what came.
"""

from __future__ import annotations

import base64
import itertools
import socket
import time
from pathlib import Path

import av
import pytest

import servers
from netfaults import HOST, TcpProxy

pytestmark = [pytest.mark.servers, pytest.mark.usefixtures("no_leftover_processes")]

OPEN_TIMEOUT = (5, 1)  # (open, read) seconds, as in av.open(timeout=...)
SHORT_PROBE = {"probesize": "32", "analyzeduration": "100000"}


def open_av(url: str, **options: str) -> av.container.InputContainer:
    return av.open(url, timeout=OPEN_TIMEOUT, options=options)


def first_frames(container, n: int = 3) -> list[av.VideoFrame]:
    """``n`` decoded video frames, starting at the first keyframe (a live join is mid-GOP)."""
    stream = container.streams.video[0]
    frames: list[av.VideoFrame] = []
    started = False
    for packet in container.demux(stream):
        if not started and not packet.is_keyframe:
            continue
        started = True
        frames.extend(packet.decode())
        if len(frames) >= n:
            return frames[:n]
    return frames


def sizes_seen(container, seconds: float, until: set | None = None) -> list[tuple[int, int]]:
    """The picture sizes decoded in order (runs collapsed) during ``seconds`` of stream.

    Stops early once every size in ``until`` has been seen.
    """
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + seconds
    started = False
    for packet in container.demux(container.streams.video[0]):
        if not started and not packet.is_keyframe:
            continue
        started = True
        for frame in packet.decode():
            if not seen or seen[-1] != (frame.width, frame.height):
                seen.append((frame.width, frame.height))
        if time.monotonic() > deadline or (until and until <= set(seen)):
            break
    return seen


def assert_plays(url: str, codec: str, size: tuple[int, int], audio: list[str] = (), **opts):
    """The URL opens, has the codec and audio streams named, and decodes 3 frames of ``size``."""
    with open_av(url, **opts) as c:
        video = c.streams.video[0]
        assert video.codec_context.name == codec
        assert [s.codec_context.name for s in c.streams.audio] == list(audio)
        frames = first_frames(c, 3)
        assert [(f.width, f.height) for f in frames] == [size] * 3


def reaped(pid: int | None) -> bool:
    return pid is None or not Path(f"/proc/{pid}").exists()


# --------------------------------------------------------------------------- HTTP MJPEG


def test_mjpeg_http_serves_640x480_mjpeg(mjpeg_server):
    """FFmpeg's HTTP server gives an anonymous client 640x480 MJPEG frames."""
    assert_plays(mjpeg_server.url(), "mjpeg", (640, 480))


def test_mjpeg_http_serves_the_next_client_after_one_leaves(mjpeg_server):
    """-listen 1 serves one client; the next one gets a fresh FFmpeg on the same port."""
    for _ in range(2):
        assert mjpeg_server.wait_ready(5.0)
        before = mjpeg_server.spawns
        assert_plays(mjpeg_server.url(), "mjpeg", (640, 480))
        assert mjpeg_server.wait_ready(5.0)
        assert mjpeg_server.spawns == before + 1


def test_mjpeg_http_kill_refuses_and_restart_serves_again():
    """After kill() a client is refused; after restart() on the same port it plays again."""
    with servers.MjpegHttpServer(width=320, height=240) as server:
        port, pid = server.port, server.pid
        server.kill()
        assert not server.alive and reaped(pid)
        with pytest.raises(av.error.ConnectionRefusedError):
            open_av(server.url()).close()
        server.restart()
        assert server.port == port and server.pid != pid
        assert_plays(server.url(), "mjpeg", (320, 240))
        last = server.pid
    assert reaped(last)


@pytest.mark.parametrize("creds", ["", "alice:wrong@", "mallory:secret@"])
def test_mjpeg_basic_auth_refuses_missing_or_wrong_credentials(mjpeg_auth_server, creds):
    """The basic-auth front answers 401 (HTTPUnauthorizedError) to missing or wrong credentials."""
    url = f"http://{creds}{HOST}:{mjpeg_auth_server.port}/cam.mjpg"
    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_av(url).close()


def test_mjpeg_basic_auth_serves_with_credentials_after_one_challenge(mjpeg_auth_server):
    """With user:password in the URL FFmpeg is challenged once (401), then gets the stream."""
    proxy = mjpeg_auth_server.proxy
    before = (proxy.connections, proxy.refused, proxy.forwarded)
    assert_plays(mjpeg_auth_server.url(auth=True), "mjpeg", (640, 480))
    after = (proxy.connections, proxy.refused, proxy.forwarded)
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1]


# --------------------------------------------------------------------------- RTMP


@pytest.mark.parametrize("audio", [False, True], ids=["video", "video+aac"])
def test_ffmpeg_rtmp_serves_h264_with_or_without_aac(request, audio):
    """FFmpeg's RTMP server serves 640x480 H.264, plus an AAC stream when asked for."""
    server = request.getfixturevalue("rtmp_audio_server" if audio else "rtmp_server")
    assert server.wait_ready(5.0)
    # analyzeduration=1 s: PyAV's default 5 s probe waits for 5 s on video-only FLV.
    assert_plays(
        server.url(), "h264", (640, 480), ["aac"] if audio else [], analyzeduration="1000000"
    )


def test_nginx_rtmp_serves_h264_and_aac_to_several_players(nginx_rtmp):
    """nginx-rtmp relays the publisher's 640x480 H.264 + AAC to two players at once."""
    with open_av(nginx_rtmp.url(), analyzeduration="1000000") as a:
        with open_av(nginx_rtmp.url(), analyzeduration="1000000") as b:
            for c in (a, b):
                assert c.streams.video[0].codec_context.name == "h264"
                assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
                assert [(f.width, f.height) for f in first_frames(c, 2)] == [(640, 480)] * 2


def test_nginx_rtmp_refuses_a_stream_nobody_publishes(nginx_rtmp):
    """Playing an unpublished name fails at once (idle_streams off): PermissionError (EPERM)."""
    started = time.monotonic()
    with pytest.raises(av.error.PermissionError):
        open_av(nginx_rtmp.url("nobody")).close()
    assert time.monotonic() - started < 2.0


def test_nginx_rtmp_kill_restart_and_republish():
    """kill() ends a player's stream; restart() and restart_publisher() make it playable again."""
    with servers.NginxRtmpServer(width=320, height=240, audio=False, gop=10) as server:
        fast = SHORT_PROBE  # video only: the short probe finds the size
        with open_av(server.url(), **fast) as c:
            assert first_frames(c, 1)[0].width == 320
            pid = server.pid
            server.kill()
            assert reaped(pid)
            started = time.monotonic()
            # FFmpeg's RTMP client reports the lost connection as EIO (av.error.OSError).
            with pytest.raises((StopIteration, av.error.InvalidDataError, av.error.OSError)):
                it = c.decode(video=0)
                while True:
                    next(it)
            assert time.monotonic() - started < 3.0
        server.restart()
        assert_plays(server.url(), "h264", (320, 240), **fast)

        server.kill_publisher()
        assert not server.publishing()
        with pytest.raises(av.error.PermissionError):
            open_av(server.url()).close()
        server.restart_publisher()
        assert_plays(server.url(), "h264", (320, 240), **fast)


# --------------------------------------------------------------------------- MPEG-TS


def test_udp_mpegts_serves_h264_to_a_listening_client(udp_ts_server):
    """A client listening on udp://127.0.0.1:PORT gets FFmpeg's 640x480 H.264 MPEG-TS."""
    assert_plays(udp_ts_server.url(), "h264", (640, 480))


def test_tcp_mpegts_serves_h264_and_aac_then_the_next_client(tcp_ts_server):
    """tcp://...?listen=1 serves H.264 + AAC in MPEG-TS, one client after the other."""
    for _ in range(2):
        assert tcp_ts_server.wait_ready(5.0)
        assert_plays(tcp_ts_server.url(), "h264", (640, 480), ["aac"], analyzeduration="500000")


def test_udp_sender_kill_and_restart():
    """kill() stops the datagrams (the read times out); restart() sends them again."""
    with servers.FfmpegTsServer("udp", width=320, height=240) as server:
        server.kill()
        with pytest.raises((av.error.ExitError, av.error.InvalidDataError, av.error.OSError)):
            av.open(server.url(), timeout=(1, 0.5)).close()
        server.restart()
        assert_plays(server.url(), "h264", (320, 240), analyzeduration="500000")


# --------------------------------------------------------------------------- HLS


def test_hls_serves_a_live_playlist_of_h264_segments(hls_server):
    """The HLS playlist is live (a new segment within 3 s) and its segments decode."""

    def newest_segment() -> str:
        return [x for x in hls_server.playlist.read_text().splitlines() if x.endswith(".ts")][-1]

    first = newest_segment()
    assert_plays(hls_server.url(), "h264", (640, 480))
    deadline = time.monotonic() + 3.0
    while newest_segment() == first and time.monotonic() < deadline:
        time.sleep(0.1)
    assert newest_segment() != first
    assert len(list(hls_server.dir.glob("*.ts"))) <= hls_server.list_size + 2  # old ones deleted


# --------------------------------------------------------------------------- gst-rtsp-server


def open_rtsp(url: str, transport: str = "tcp") -> av.container.InputContainer:
    return av.open(url, timeout=OPEN_TIMEOUT, options={"rtsp_transport": transport})


@pytest.mark.rtsp
@pytest.mark.parametrize(
    ("path", "codecs"),
    [("/h264-aac", ["aac", "h264"]), ("/h264-alaw", ["pcm_alaw", "h264"]), ("/h265", ["hevc"])],
)
def test_rtsp_new_mounts_serve_their_codecs_audio_first(rtsp_server, path, codecs):
    """/h264-aac and /h264-alaw list the audio first, then H.264; /h265 serves H.265."""
    with open_rtsp(rtsp_server.url(path)) as c:
        assert [s.codec_context.name for s in c.streams] == codecs
        assert [(f.width, f.height) for f in first_frames(c, 3)] == [(640, 480)] * 3


def rtsp_describe(port: int, path: str, authorization: str | None = None) -> str:
    """The status line and headers of the server's answer to one raw DESCRIBE."""
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    with socket.create_connection((HOST, port), timeout=3) as s:
        s.sendall(f"DESCRIBE rtsp://{HOST}:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n{auth}\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode().split("\r\n\r\n")[0]


@pytest.mark.rtsp
def test_rtsp_digest_mount_refuses_without_credentials_and_serves_with(rtsp_server):
    """/digest answers 401 without or with wrong credentials and plays with the right ones."""
    for url in (rtsp_server.url("/digest"), f"rtsp://alice:wrong@{HOST}:{rtsp_server.port}/digest"):
        with pytest.raises(av.error.HTTPUnauthorizedError):
            open_rtsp(url).close()
    with open_rtsp(rtsp_server.url("/digest", auth=True)) as c:
        assert first_frames(c, 1)[0].width == 640


@pytest.mark.rtsp
def test_rtsp_digest_mount_challenges_with_digest_and_refuses_basic(rtsp_server):
    """/digest challenges with Digest only and refuses valid Basic credentials; /secure is Basic."""
    basic = "Basic " + base64.b64encode(b"alice:secret").decode()
    for authorization in (None, basic):
        answer = rtsp_describe(rtsp_server.port, "/digest", authorization)
        assert answer.startswith("RTSP/1.0 401")
        assert "WWW-Authenticate: Digest realm=" in answer and "Basic realm" not in answer
    answer = rtsp_describe(rtsp_server.port, "/secure")
    assert answer.startswith("RTSP/1.0 401")
    assert "WWW-Authenticate: Basic realm=" in answer and "Digest" not in answer
    assert rtsp_describe(rtsp_server.port, "/secure", basic).startswith("RTSP/1.0 200")


@pytest.mark.rtsp
def test_rtsp_udp_only_refuses_tcp_and_serves_udp(rtsp_udp_only):
    """--udp-only: UDP plays, and a client that asks for RTP over TCP is refused (errno 93)."""
    # UDP first: a new session within ~50 ms of a refused TCP SETUP gets a 5XX
    # (HTTPServerError) from gst-rtsp-server 1.22 while it drops the shared media.
    with open_rtsp(rtsp_udp_only.url(), "udp") as c:
        assert [(f.width, f.height) for f in first_frames(c, 3)] == [(320, 240)] * 3
    with pytest.raises(av.error.OSError) as err:
        open_rtsp(rtsp_udp_only.url(), "tcp").close()
    assert err.value.errno == 93  # EPROTONOSUPPORT, from "461 Unsupported transport"


@pytest.mark.rtsp
def test_rtsp_resize_mount_changes_size_mid_stream(rtsp_server):
    """/resize flips between 640x480 and 320x240 every second on one RTSP session."""
    with open_rtsp(rtsp_server.url("/resize")) as c:
        seen = sizes_seen(c, 2.5, until={(640, 480), (320, 240)})
    assert {(640, 480), (320, 240)} <= set(seen)
    assert len(seen) >= 2


# --------------------------------------------------------------------------- size changes


def test_size_change_file_has_both_sizes(size_change_ts):
    """The size-change MPEG-TS file decodes as 320x240 for 1 s, then 640x480 for 1 s."""
    with av.open(str(size_change_ts)) as c:
        frames = [(f.width, f.height) for f in c.decode(video=0)]
    assert frames == [(320, 240)] * 25 + [(640, 480)] * 25


@pytest.mark.parametrize("transport", ["tcp", "http"])
def test_size_change_stream_served_live_shows_both_sizes(size_change_ts, transport):
    """FFmpeg -re -c copy serves the file live; a client sees 320x240, then 640x480."""
    with servers.FfmpegTsServer(transport, file=size_change_ts) as server:
        with open_av(server.url(), analyzeduration="500000") as c:
            seen = sizes_seen(c, 1.6, until={(320, 240), (640, 480)})
    assert seen[:2] == [(320, 240), (640, 480)]


# --------------------------------------------------------------------------- broken timestamps


def pyav_timestamps(url: str, **kwargs) -> tuple[list[int | None], int]:
    """(video packet pts as PyAV reports them, number of frames decoded)."""
    pts, decoded = [], 0
    with av.open(url, **kwargs) as c:
        for packet in c.demux(c.streams.video[0]):
            if packet.size:
                pts.append(packet.pts)
                decoded += len(packet.decode())
    return pts, decoded


def check_broken(kind: str, raw: list[int | None], pts: list[int | None]) -> None:
    """``raw``: the 33-bit PTS in the bytes; ``pts``: what PyAV made of them."""
    steps = [b - a for a, b in itertools.pairwise(raw) if a is not None and b is not None]
    if kind == "missing":
        assert raw.count(None) == 25 and pts.count(None) == 25  # PyAV does not make them up
    elif kind == "nonmonotonic":
        assert sum(1 for s in steps if s < 0) == 10
        assert sum(1 for a, b in itertools.pairwise(pts) if b < a) == 10
    elif kind == "jump":
        assert max(steps) >= servers.HOUR
        assert max(b - a for a, b in itertools.pairwise(pts)) >= servers.HOUR
    elif kind == "wrap":
        assert raw[49] > (1 << 33) - 10_000 and raw[50] == 0  # wraps to 0 at the middle
        assert all(b > a for a, b in itertools.pairwise(pts))  # PyAV unwraps it
    elif kind == "bad_first":
        assert raw[0] - raw[1] >= servers.HOUR - 3600
        # FFmpeg takes the wild first value as its reference: the rest look 2**33 later.
        assert all(p > (1 << 33) for p in pts[1:])


@pytest.mark.parametrize("kind", servers.BROKEN_KINDS)
def test_broken_timestamp_file_is_broken_as_described(broken_ts, kind):
    """Each broken file carries its defect in the bytes, PyAV sees it, all 100 frames decode."""
    raw = [p for p, _ in servers.read_ts_timestamps(broken_ts[kind].read_bytes())]
    assert len(raw) == 100
    pts, decoded = pyav_timestamps(str(broken_ts[kind]))
    assert len(pts) == 100 and decoded == 100
    check_broken(kind, raw, pts)


@pytest.mark.parametrize("kind", servers.BROKEN_KINDS)
def test_broken_timestamp_replay_over_tcp_keeps_the_defect(broken_ts, kind):
    """TsReplay sends the file byte for byte: a live client sees the same broken pts."""
    with servers.TsReplay(broken_ts[kind], seconds=0.8) as replay:
        started = time.monotonic()
        live, decoded = pyav_timestamps(replay.url(), timeout=OPEN_TIMEOUT)
        assert 0.6 < time.monotonic() - started < 5.0  # paced, not dumped
        assert replay.connections == 1
    file_pts, _ = pyav_timestamps(str(broken_ts[kind]))
    assert live == file_pts and decoded == 100


def test_broken_timestamp_replay_over_udp_waits_for_the_listener(broken_ts):
    """Over UDP TsReplay starts once the client listens, so the first packet arrives too."""
    with servers.TsReplay(broken_ts["bad_first"], seconds=1.0, transport="udp") as replay:
        with av.open(replay.url(), timeout=(5, 1.5)) as c:
            pts = []
            for packet in c.demux(c.streams.video[0]):
                if packet.size:
                    pts.append(packet.pts)
                if len(pts) == 10:
                    break
    raw = [p for p, _ in servers.read_ts_timestamps(broken_ts["bad_first"].read_bytes())]
    check_broken("bad_first", raw[:10], pts)


def test_ffmpeg_remux_repairs_missing_timestamps(broken_ts):
    """FFmpeg's -re -c copy fills in missing PTS: a live copy of 'missing' is no longer broken."""
    raw = [p for p, _ in servers.read_ts_timestamps(broken_ts["missing"].read_bytes())]
    assert raw[:40].count(None) == 10
    with servers.FfmpegTsServer("tcp", file=broken_ts["missing"], loop=False) as server:
        with open_av(server.url(), analyzeduration="500000") as c:
            pts = [p.pts for p, _ in zip(c.demux(video=0), range(40), strict=False)]
    assert None not in pts


# --------------------------------------------------------------------------- connections


@pytest.mark.parametrize(
    ("fixture", "url_of", "expected"),
    [
        ("mjpeg_server", lambda s, port: f"http://{HOST}:{port}/cam.mjpg", 1),
        ("mjpeg_auth_server", lambda s, port: f"http://alice:secret@{HOST}:{port}/cam.mjpg", 2),
        ("rtmp_audio_server", lambda s, port: f"rtmp://{HOST}:{port}/live/stream", 1),
        ("tcp_ts_server", lambda s, port: f"tcp://{HOST}:{port}", 1),
        ("nginx_rtmp", lambda s, port: f"rtmp://{HOST}:{port}/live/stream", 1),
    ],
    ids=["mjpeg", "mjpeg-auth", "rtmp", "tcp-ts", "nginx-rtmp"],
)
def test_tcp_proxy_counts_the_connections_of_one_open(request, fixture, url_of, expected):
    """Through a TcpProxy one open + 3 frames makes 1 connection (2 with an HTTP 401 first)."""
    server = request.getfixturevalue(fixture)
    if hasattr(server, "wait_ready"):
        assert server.wait_ready(5.0)
    with TcpProxy((HOST, server.port)) as proxy:
        with open_av(url_of(server, proxy.port), analyzeduration="1000000") as c:
            assert len(first_frames(c, 3)) == 3
            assert proxy.active == 1
        assert proxy.connections == expected
        deadline = time.monotonic() + 2.0
        while proxy.active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proxy.active == 0


@pytest.mark.rtsp
def test_tcp_proxy_counts_one_connection_for_rtsp_over_tcp(rtsp_server):
    """RTSP with interleaved TCP: one open is one connection; HLS by contrast opens many."""
    with TcpProxy((HOST, rtsp_server.port)) as proxy:
        with open_rtsp(f"rtsp://{HOST}:{proxy.port}/h264") as c:
            assert len(first_frames(c, 3)) == 3
        assert proxy.connections == 1


def test_tcp_proxy_counts_a_connection_per_hls_request(hls_server):
    """HLS over HTTP/1.0 (stdlib server): the playlist and each segment are connections."""
    with TcpProxy((HOST, hls_server.port)) as proxy:
        with open_av(f"http://{HOST}:{proxy.port}/stream.m3u8") as c:
            assert len(first_frames(c, 3)) == 3
        assert proxy.connections >= 2


# --------------------------------------------------------------------------- hygiene


def test_helpers_leave_no_process_behind():
    """Each helper's __exit__ reaps its children; none is left for the test process."""
    pids = []
    for helper in (
        servers.MjpegHttpServer(user="a", password="b"),
        servers.RtmpListenServer(),
        servers.FfmpegTsServer("udp"),
        servers.FfmpegTsServer("tcp"),
    ):
        with helper:
            pids.append(helper.pid)
            assert servers.tracked_pids() & servers.child_pids() >= {helper.pid}
    assert all(reaped(pid) for pid in pids)
    assert not servers.child_pids() - servers.tracked_pids()
