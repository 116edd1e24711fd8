"""Measure what plain PyAV sees of each test server; print Markdown tables for SERVERS.md.

    /work/venv/bin/python tests/servers_report.py

For each server: its start time (until ready), then one open with PyAV's
default probe and one with the short probe (probesize=32,
analyzeduration=100000): time to open and to the first decoded frame, the
video codec and size the container reports, average_rate / base_rate /
guessed_rate, and the audio streams. Loopback only; every server is stopped
before the script ends.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from netfaults import RtspServer

SHORT = {"probesize": "32", "analyzeduration": "100000"}


def rate(r: object) -> str:
    return "-" if r is None else str(r)


def measure(url: str, options: dict[str, str]) -> str:
    started = time.monotonic()
    try:
        c = av.open(url, timeout=(5, 1), options=options)
    except av.error.FFmpegError as e:
        return f"| open failed: {type(e).__name__} |"
    with c:
        opened = time.monotonic() - started
        names = [s.codec_context.name for s in c.streams]
        if not c.streams.video:
            return f"| {opened:.2f} s | no video stream; streams {names} |"
        v = c.streams.video[0]
        cc = v.codec_context
        first = "-"
        started_at_key = False
        for packet in c.demux(v):
            if not started_at_key and not packet.is_keyframe:
                continue
            started_at_key = True
            with contextlib.suppress(av.error.InvalidDataError):
                if packet.decode():
                    first = f"{time.monotonic() - started:.2f} s"
                    break
        audio = ", ".join(s.codec_context.name for s in c.streams.audio) or "none"
        return (
            f"| {opened:.2f} s / {first} | {cc.name} {cc.width}x{cc.height} | "
            f"{rate(v.average_rate)} / {rate(v.base_rate)} / {rate(v.guessed_rate)} | "
            f"{audio} | order {names} |"
        )


Case = tuple[str, Callable[[], contextlib.AbstractContextManager], Callable[[object], str]]


@contextlib.contextmanager
def replay_case(tmp: Path) -> Iterator[servers.TsReplay]:
    path = servers.make_ts(tmp / "plain.ts")
    with servers.TsReplay(path, seconds=4.0) as replay:
        yield replay


def cases(tmp: Path) -> list[Case]:
    rtsp = "rtsp_transport"
    return [
        ("ffmpeg mjpeg http", servers.MjpegHttpServer, lambda s: s.url()),
        (
            "ffmpeg mjpeg http + basic auth",
            lambda: servers.MjpegHttpServer(user="alice", password="secret"),
            lambda s: s.url(auth=True),
        ),
        ("ffmpeg rtmp", servers.RtmpListenServer, lambda s: s.url()),
        ("ffmpeg rtmp + aac", lambda: servers.RtmpListenServer(audio=True), lambda s: s.url()),
        ("nginx-rtmp + aac", servers.NginxRtmpServer, lambda s: s.url()),
        ("nginx-rtmp video only", lambda: servers.NginxRtmpServer(audio=False), lambda s: s.url()),
        ("ffmpeg mpegts udp", lambda: servers.FfmpegTsServer("udp"), lambda s: s.url()),
        (
            "ffmpeg mpegts udp + aac",
            lambda: servers.FfmpegTsServer("udp", audio=True),
            lambda s: s.url(),
        ),
        ("ffmpeg mpegts tcp", lambda: servers.FfmpegTsServer("tcp"), lambda s: s.url()),
        (
            "ffmpeg mpegts tcp + aac",
            lambda: servers.FfmpegTsServer("tcp", audio=True),
            lambda s: s.url(),
        ),
        ("ffmpeg mpegts http", lambda: servers.FfmpegTsServer("http"), lambda s: s.url()),
        ("hls (ffmpeg + http.server)", servers.HlsServer, lambda s: s.url()),
        ("TsReplay tcp (PyAV file)", lambda: replay_case(tmp), lambda s: s.url()),
        *[
            (
                f"gst-rtsp-server {path}",
                lambda: RtspServer(gop=10),
                lambda s, path=path: (s.url(path, auth=path == "/digest"), {rtsp: "tcp"}),
            )
            for path in ("/h264", "/mjpeg", "/h264-aac", "/h264-alaw", "/h265", "/digest")
        ],
    ]


def main() -> None:
    import tempfile

    print("| server | start | probe | open / first frame | video | avg / base / guessed | audio |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, url_of in cases(Path(tmp)):
            started = time.monotonic()
            with make() as server:
                start = time.monotonic() - started
                target = url_of(server)
                url, extra = target if isinstance(target, tuple) else (target, {})
                for probe, options in (("default", {}), ("short", SHORT)):
                    if hasattr(server, "wait_ready"):
                        server.wait_ready(5.0)
                    row = measure(url, {**extra, **options})
                    print(f"| {name} | {start:.2f} s | {probe} {row}", flush=True)


if __name__ == "__main__":
    main()
