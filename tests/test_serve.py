"""camerapump.serve: the live viewer's endpoints, its efficiency, its safety, the CLI, a browser.

Most endpoint tests talk to the app in-process (httpx's ASGITransport).  The
streaming endpoints never end by themselves, which ASGITransport cannot carry,
so those tests run the app in real uvicorn on a free loopback port.  The CLI
runs as a child process, as a user starts it; the browser is Debian's
headless Chromium, driven over the DevTools protocol on a pipe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import hashlib
import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import types
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import av
import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

import camerapump as cp
from netfaults import RtspServer

if TYPE_CHECKING:
    from camerapump.serve._hub import Hub

pytestmark = pytest.mark.timeout(40)

ROOT = Path(__file__).resolve().parent.parent
SMALL = cp.StreamConfig(320, 240, 30)
FAST = cp.ReconnectPolicy(initial_backoff=0.2, max_backoff=1.0, jitter=0.0, stall_timeout=2.0)
CHROMIUM = "/usr/bin/chromium"
TOKEN = "s3cret-t0ken"


@functools.cache
def sv() -> Any:
    """camerapump.serve and the parts of it the tests use, imported on first use.

    Not at collection: importing a subpackage makes it an attribute of
    ``camerapump``, and tests/test_api.py (collected, and run, before this
    module) checks that the package's public names are exactly its __all__.
    """
    import camerapump.serve
    from camerapump.serve._app import MAX_WIDTH
    from camerapump.serve._auth import LoopbackHostsOnly
    from camerapump.serve._cli import add_arguments, run
    from camerapump.serve._hub import MAX_FEEDS, Hub, TooManySizes
    from camerapump.serve._page import CSP, DEAD_COLOUR, STALE_COLOUR

    return types.SimpleNamespace(
        app=camerapump.serve.app,
        MAX_WIDTH=MAX_WIDTH,
        LoopbackHostsOnly=LoopbackHostsOnly,
        add_arguments=add_arguments,
        run=run,
        MAX_FEEDS=MAX_FEEDS,
        Hub=Hub,
        TooManySizes=TooManySizes,
        CSP=CSP,
        DEAD_COLOUR=DEAD_COLOUR,
        STALE_COLOUR=STALE_COLOUR,
    )


# -- helpers ---------------------------------------------------------------------------


def decode_jpeg(data: bytes) -> np.ndarray[Any, Any]:
    """A JPEG's pixels (RGB), decoded by PyAV; fails on anything that is not a JPEG."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    frames = av.CodecContext.create("mjpeg", "r").decode(av.Packet(data))
    assert len(frames) == 1
    return frames[0].to_ndarray(format="rgb24")


def decode_png(data: bytes) -> np.ndarray[Any, Any]:
    frames = av.CodecContext.create("png", "r").decode(av.Packet(data))
    return frames[0].to_ndarray(format="rgb24")


def asgi_client(application: Any, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1", **kwargs
    )


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner keeps its own Ctrl-C


@contextlib.asynccontextmanager
async def serving(asgi: Any, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve ``asgi`` with uvicorn on a free loopback port; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = _QuietServer(
        uvicorn.Config(asgi, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=1)
    )
    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True


class MjpegReader:
    """Parts of a ``multipart/x-mixed-replace`` stream: (headers, JPEG bytes)."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes = b"camerapump") -> None:
        self._chunks = chunks
        self._boundary = b"--" + boundary + b"\r\n"
        self._buffer = b""

    async def _fill(self) -> None:
        self._buffer += await anext(self._chunks)

    async def part(self) -> tuple[dict[str, str], bytes]:
        while not self._buffer.startswith(self._boundary) or b"\r\n\r\n" not in self._buffer:
            await self._fill()
        head, _, rest = self._buffer[len(self._boundary) :].partition(b"\r\n\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, v in (line.split(":", 1) for line in head.decode().split("\r\n"))
        }
        size = int(headers["content-length"])
        while len(rest) < size + 2:
            self._buffer = self._buffer[: len(self._boundary)] + head + b"\r\n\r\n" + rest
            await self._fill()
            head, _, rest = self._buffer[len(self._boundary) :].partition(b"\r\n\r\n")
        data, self._buffer = rest[:size], rest[size + 2 :]
        return headers, data


async def sse_messages(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) of a server-sent event stream."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in block.decode().split("\n") if ": " in line
            )
            if "data" in fields:
                yield fields.get("event", "message"), json.loads(fields["data"])


async def next_message(
    messages: AsyncIterator[tuple[str, dict[str, Any]]],
    kind: str,
    event: str | None,
    timeout: float,
) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        async for name, data in messages:
            if name == kind and (event is None or data.get("event") == event):
                return data
    raise AssertionError(f"the stream ended before a {kind} {event or ''}")


async def until(condition: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await anyio.sleep(0.05)


async def raw_read(
    port: int, path: str, marker: bytes, count: int, *, hub: Hub | None = None
) -> tuple[bytes, bytes]:
    """GET ``path`` on a raw connection until ``marker`` came ``count`` times, then hang up.

    Returns the response head and what came of the body; with ``hub``, checks
    that a feed is open while the client reads.
    """
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        with anyio.fail_after(10):
            while data.count(marker) < count:
                data += await stream.receive()
        if hub is not None:
            assert len(hub.feeds()) == 1
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def subscriptions(pump: cp.Pump) -> int:
    return sum(c.kind == "subscription" for c in pump.statistics().consumers)


def hub_of(application: Starlette) -> Hub:
    hub = application.state.camerapump
    assert isinstance(hub, sv().Hub)
    return hub


# -- the package and the page ----------------------------------------------------------


def test_the_serve_package_says_what_is_missing_without_its_extra() -> None:
    """Without Starlette, camerapump.serve fails to import, naming the extra; camerapump imports."""
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "import camerapump\n"
        "try:\n"
        "    import camerapump.serve\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ImportError:" in done.stdout
    assert "pip install 'camerapump[serve]'" in done.stdout
    assert "starlette" in done.stdout


async def test_page_and_api_describe_the_test_source() -> None:
    """/ is the page (its script allowed by its CSP); /api/cameras lists label, format, figures."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        async with asgi_client(sv().app([pump])) as client:
            page = await client.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"] == sv().CSP
            script = re.search(r"<script>(.*)</script>", page.text, re.S)
            assert script is not None and "EventSource" in script.group(1)
            digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
            assert f"'sha256-{digest}'" in sv().CSP  # else the browser would not run it
            await until(lambda: pump.statistics().frames_decoded > 0, 5, "no frame decoded")
            listing = await client.get("/api/cameras")
    assert listing.status_code == 200
    (camera,) = listing.json()["cameras"]
    assert camera["label"] == camera["name"] == "test:testsrc2"
    assert camera["state"] == "connected" and camera["status"]["event"] == "connected"
    assert camera["format"]["width"] == 320 and camera["format"]["height"] == 240
    assert camera["statistics"]["frames_decoded"] > 0
    assert camera["urls"]["mjpeg"] == "/cameras/0/mjpeg"
    assert camera["viewers"] == {} and camera["jpegs_encoded"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("query", "size"), [("", (640, 480)), ("?width=160", (160, 120))])
async def test_snapshot_is_a_fresh_jpeg_of_the_asked_width(
    anyio_backend: str, query: str, size: tuple[int, int]
) -> None:
    """snapshot.jpg decodes (PyAV) at the app's width or ?width=, from a frame decoded after."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        async with asgi_client(sv().app([pump])) as client:
            asked = time.monotonic()
            response = await client.get(f"/cameras/0/snapshot.jpg{query}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "no-store"
    assert float(response.headers["x-captured-at"]) >= asked
    picture = decode_jpeg(response.content)
    assert picture.shape == (size[1], size[0], 3)
    assert picture.std() > 10  # a pattern, not a blank picture


async def test_snapshot_of_a_paused_pump_and_bad_requests() -> None:
    """A paused pump still gives a snapshot; a bad width is 400, an unknown camera 404."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        pump.set_active(False)
        async with asgi_client(sv().app({"door": pump})) as client:
            shot = await client.get("/cameras/door/snapshot.jpg?width=100")
            assert shot.status_code == 200
            assert decode_jpeg(shot.content).shape == (75, 100, 3)
            for query in ("?width=0", "?width=abc", f"?width={sv().MAX_WIDTH + 1}"):
                assert (await client.get(f"/cameras/0/snapshot.jpg{query}")).status_code == 400
            for path in ("/cameras/1/snapshot.jpg", "/cameras/kitchen/mjpeg", "/cameras/x/events"):
                response = await client.get(path)
                assert response.status_code == 404
                assert response.json() == {"error": "no such camera"}


def test_app_refuses_bad_arguments() -> None:
    """app() checks its arguments when it is made."""
    with pytest.raises(TypeError):
        sv().app("rtsp://camera")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sv().app([object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="fps"):
        sv().app([], fps=0)
    with pytest.raises(ValueError, match="width"):
        sv().app([], width=8)
    with pytest.raises(ValueError, match="token"):
        sv().app([], token="two words")


# -- tokens and hosts ------------------------------------------------------------------


async def test_a_token_is_needed_on_every_request_when_one_is_set() -> None:
    """Without the token or with a wrong one: 401; as Bearer, X-Camerapump-Token or ?token=: 200."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        async with asgi_client(sv().app([pump], token=TOKEN)) as client:
            refused = [
                await client.get("/api/cameras"),
                await client.get("/"),
                await client.get("/cameras/0/snapshot.jpg"),
                await client.get("/cameras/0/mjpeg"),
                await client.get("/cameras/0/events"),
                await client.get("/api/cameras", headers={"Authorization": "Bearer wrong"}),
                await client.get("/api/cameras", headers={"Authorization": f"Basic {TOKEN}"}),
                await client.get("/api/cameras", headers={"X-Camerapump-Token": TOKEN[:-1]}),
                await client.get("/api/cameras?token=" + TOKEN + "x"),
                await client.get("/api/cameras?token="),
            ]
            for response in refused:
                assert response.status_code == 401
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert TOKEN not in response.text
            allowed = [
                await client.get("/api/cameras", headers={"Authorization": f"Bearer {TOKEN}"}),
                await client.get("/api/cameras", headers={"X-Camerapump-Token": TOKEN}),
                await client.get(f"/api/cameras?token={TOKEN}"),
                await client.get(f"/?token={TOKEN}"),
                await client.get(f"/cameras/0/snapshot.jpg?width=64&token={TOKEN}"),
            ]
            assert [r.status_code for r in allowed] == [200] * 5
            assert TOKEN not in allowed[3].text  # the page takes it from its URL, not its body
        async with asgi_client(sv().app([pump])) as client:
            assert (await client.get("/api/cameras")).status_code == 200  # no token set: open


async def test_without_a_token_the_cli_answers_loopback_names_only() -> None:
    """The CLI's gate (no token): Host 127.0.0.1/localhost/[::1] pass; another name gets 403."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        gate = sv().LoopbackHostsOnly(sv().app([pump]))
        async with asgi_client(gate) as client:
            for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2"):
                response = await client.get("/api/cameras", headers={"Host": host})
                assert response.status_code == 200, host
            for host in ("evil.example:8080", "192.0.2.1", "", "127.0.0.1.evil.example"):
                response = await client.get("/api/cameras", headers={"Host": host})
                assert response.status_code == 403, host


def _serve_args(*argv: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    sv().add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_needs_a_token_for_any_address_but_loopback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--host 0.0.0.0 (or ::, or a LAN address) without --token: usage error 2, nothing served."""
    monkeypatch.delenv("CAMERAPUMP_TOKEN", raising=False)
    for host in ("0.0.0.0", "::", "192.0.2.7"):
        assert sv().run(_serve_args("test:", "--host", host)) == 2
        assert "--token" in capsys.readouterr().err
    assert sv().run(_serve_args("test:", "--token", "has space")) == 2
    assert "token" in capsys.readouterr().err
    assert sv().run(_serve_args("nonsense-source-name")) == 2
    assert "not a source" in capsys.readouterr().err


# -- efficiency: shared encodes, nothing without viewers, nothing left behind ------------


async def test_nothing_is_converted_without_viewers_and_viewers_share_each_encode() -> None:
    """No viewer: frames_converted stays flat; 3 viewers of one size: one conversion and one
    encode per frame, the same JPEG bytes for all; after they leave: no feed, no subscription,
    no encoder, no task, and frames_converted flat again."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        application = sv().app([pump], fps=10, width=320)
        hub = hub_of(application)
        async with serving(application) as url:
            tasks_before = len(asyncio.all_tasks())
            idle = pump.statistics()
            await anyio.sleep(1.0)
            still = pump.statistics()
            assert still.frames_decoded - idle.frames_decoded >= 15  # the camera runs...
            assert still.frames_converted == idle.frames_converted  # ...and nothing is converted
            assert hub.feeds() == [] and subscriptions(pump) == 0

            seen: list[dict[int, bytes]] = [{}, {}, {}]
            async with contextlib.AsyncExitStack() as stack:
                readers = []
                for _ in seen:
                    client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
                    response = await stack.enter_async_context(
                        client.stream("GET", f"{url}/cameras/0/mjpeg")
                    )
                    assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
                    readers.append(MjpegReader(response.aiter_bytes()))

                async def watch(reader: MjpegReader, into: dict[int, bytes], parts: int) -> None:
                    for _ in range(parts):
                        headers, data = await reader.part()
                        into[int(headers["x-frame-sequence"])] = data

                async with anyio.create_task_group() as tg:
                    for reader, into in zip(readers, seen, strict=True):
                        tg.start_soon(watch, reader, into, 3)  # all three are watching now
                (feed,) = hub.feeds()
                assert feed.viewers == 3 and subscriptions(pump) == 1
                before, encoded_before = pump.statistics(), hub.cameras()[0].jpegs_encoded
                started = time.monotonic()
                async with anyio.create_task_group() as tg:
                    for reader, into in zip(readers, seen, strict=True):
                        tg.start_soon(watch, reader, into, 10)
                elapsed = time.monotonic() - started
                after, encoded_after = pump.statistics(), hub.cameras()[0].jpegs_encoded
                feed_ref = weakref.ref(feed)
                del feed
            converted = after.frames_converted - before.frames_converted
            encoded = encoded_after - encoded_before
            received = sum(len(s) for s in seen)
            assert 8 <= encoded <= 10 * elapsed + 3, (encoded, elapsed)  # max_fps held: ~10/s
            assert abs(converted - encoded) <= 2, (converted, encoded)  # one conversion each
            assert received >= 2.5 * encoded - 6, (received, encoded)  # each encode, 3 viewers
            common = set(seen[0]) & set(seen[1]) & set(seen[2])
            assert len(common) >= 8
            for sequence in common:  # the same bytes: one encode, shared
                assert seen[0][sequence] == seen[1][sequence] == seen[2][sequence]
            assert all(
                decode_jpeg(data).shape == (240, 320, 3) for data in list(seen[0].values())[:2]
            )

            await until(lambda: not hub.feeds(), 3, "a feed outlived its viewers")
            assert subscriptions(pump) == 0  # the subscription is closed
            gc.collect()
            assert feed_ref() is None, "the feed (and its encoder) is still referenced"
            await until(
                lambda: len(asyncio.all_tasks()) <= tasks_before, 3, "a request task lives on"
            )
            idle = pump.statistics()
            await anyio.sleep(0.6)
            assert pump.statistics().frames_converted == idle.frames_converted


async def test_clients_that_hang_up_mid_stream_leave_nothing_behind() -> None:
    """MJPEG and event clients that reset their connection mid-stream: no task, feed,
    subscription or encoder is left; a snapshot cut short leaves nothing either."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        application = sv().app([pump], width=160)
        hub = hub_of(application)
        async with serving(application) as url:
            port = int(url.rsplit(":", 1)[1])
            tasks_before = len(asyncio.all_tasks())
            for path, marker, count in (
                ("/cameras/0/mjpeg", b"\xff\xd8", 3),
                ("/cameras/0/events", b"event: statistics", 2),
                ("/api/events", b"event: statistics", 2),
                ("/cameras/0/snapshot.jpg?width=200", b"", 0),
            ):
                stream = await anyio.connect_tcp("127.0.0.1", port)
                await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                data = b""
                with anyio.fail_after(10):
                    while data.count(marker) < count:
                        data += await stream.receive()
                if count:
                    assert len(hub.feeds()) == (1 if "mjpeg" in path else 0), path
                raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                await stream.aclose()  # linger 0: a reset, as when a browser tab dies
                await until(lambda: not hub.feeds(), 3, f"{path}: a feed outlived its client")
                await until(
                    lambda: len(asyncio.all_tasks()) <= tasks_before,
                    3,
                    f"{path}: a task outlived its client",
                )
                assert subscriptions(pump) == 0, path


async def test_a_camera_serves_a_bounded_number_of_sizes() -> None:
    """The hub opens at most MAX_FEEDS widths per camera at once (each costs an encode a frame)."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        hub = sv().Hub([pump], fps=10, width=320)
        camera = hub.cameras()[0]
        feeds = [hub.join(camera, 100 + i) for i in range(sv().MAX_FEEDS)]
        assert hub.join(camera, 100) is feeds[0]  # the same size shares its feed
        with pytest.raises(sv().TooManySizes):
            hub.join(camera, 999)
        for feed in [feeds[0], *feeds]:
            hub.leave(feed)
        assert hub.feeds() == [] and subscriptions(pump) == 0


# -- streams ---------------------------------------------------------------------------


async def test_mjpeg_stream_yields_distinct_jpegs_at_the_asked_rate_and_width() -> None:
    """/cameras/0/mjpeg?width=200: distinct JPEGs of 200x150, newer frames each, at most ~fps."""
    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        async with serving(sv().app([pump], fps=10)) as url:
            async with httpx.AsyncClient(timeout=10) as client:
                async with client.stream("GET", f"{url}/cameras/0/mjpeg?width=200") as response:
                    assert response.status_code == 200
                    assert response.headers["cache-control"] == "no-store"
                    reader = MjpegReader(response.aiter_bytes())
                    started = time.monotonic()
                    parts = [await reader.part() for _ in range(6)]
                    elapsed = time.monotonic() - started
    assert len({data for _, data in parts}) == 6
    sequences = [int(headers["x-frame-sequence"]) for headers, _ in parts]
    captured = [float(headers["x-captured-at"]) for headers, _ in parts]
    assert sequences == sorted(set(sequences)) and captured == sorted(captured)
    assert min(b - a for a, b in itertools.pairwise(sequences)) >= 2  # 30 -> 10 fps
    assert elapsed >= 0.35  # 6 parts at 10 fps take half a second, not a fifth
    for headers, data in parts:
        assert headers["content-type"] == "image/jpeg"
        assert decode_jpeg(data).shape == (150, 200, 3)


@pytest.mark.rtsp
async def test_rtsp_camera_with_credentials_every_endpoint_and_no_password_anywhere(
    rtsp_server: RtspServer,
) -> None:
    """A camera behind basic auth: page, JSON, snapshot, MJPEG and both event streams work,
    and no body says the user name or the password (also not a name that quotes the URL)."""
    url = rtsp_server.url("/secure", auth=True)
    assert rtsp_server.password in url and rtsp_server.user in url
    async with cp.open_pump(cp.Source.rtsp(url)) as pump:
        application = sv().app({url: pump}, width=320)
        bodies: list[bytes] = []
        async with serving(application) as base:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                for path in ("/", "/api/cameras", "/cameras/0/snapshot.jpg"):
                    response = await client.get(path)
                    assert response.status_code == 200, path
                    bodies.append(response.content)
                assert decode_jpeg(bodies[-1]).shape == (240, 320, 3)
                listing = json.loads(bodies[1])["cameras"][0]
                assert listing["label"].startswith("rtsp://***@127.0.0.1")
                assert listing["name"] == listing["label"]
                assert listing["format"]["width"] == 640 and listing["kind"] == "rtsp"
                async with client.stream("GET", "/cameras/0/mjpeg") as response:
                    reader = MjpegReader(response.aiter_bytes())
                    for _ in range(3):
                        headers, data = await reader.part()
                        assert decode_jpeg(data).shape == (240, 320, 3)
                        bodies.append(json.dumps(headers).encode() + data)
                for path in ("/cameras/0/events", "/api/events"):
                    async with client.stream("GET", path) as response:
                        assert response.headers["content-type"].startswith("text/event-stream")
                        messages = sse_messages(response.aiter_bytes())
                        status = await next_message(messages, "status", None, 5)
                        statistics = await next_message(messages, "statistics", None, 5)
                        assert status["event"] == "connected"
                        assert statistics["format"]["codec"] == "h264"
                        assert ("camera" in status) == (path == "/api/events")
                        bodies.append(json.dumps([status, statistics]).encode())
    for body in bodies:
        assert rtsp_server.password.encode() not in body
        assert rtsp_server.user.encode() not in body


@pytest.mark.rtsp
async def test_events_show_reconnecting_then_connected_across_a_server_restart(
    own_rtsp_server: RtspServer,
) -> None:
    """/cameras/0/events: the RTSP server killed gives Reconnecting (attempt 0, a delay, a
    reason), restarted gives Connected, and the statistics count the reconnect."""
    source = cp.Source.rtsp(own_rtsp_server.url())
    async with cp.open_pump(source, policy=FAST) as pump:
        async with serving(sv().app([pump])) as base:
            async with httpx.AsyncClient(timeout=30) as client:
                async with client.stream("GET", f"{base}/cameras/0/events") as response:
                    messages = sse_messages(response.aiter_bytes())
                    first = await next_message(messages, "status", None, 5)
                    assert first["event"] == "connected"
                    own_rtsp_server.kill()
                    lost = await next_message(messages, "status", "reconnecting", 10)
                    assert lost["attempt"] == 0 and lost["delay"] >= 0 and lost["reason"]
                    own_rtsp_server.restart()
                    back = await next_message(messages, "status", "connected", 20)
                    assert back["format"]["width"] == 640
                    with anyio.fail_after(5):
                        while True:
                            statistics = await next_message(messages, "statistics", None, 5)
                            if statistics["reconnects"] == 1 and statistics["state"] == "connected":
                                break


async def test_mounted_in_an_app_whose_lifespan_opens_the_pumps() -> None:
    """Mount('/cams', app(pumps)) in a Starlette app that opens its pumps in its lifespan:
    the page, the listing (with /cams URLs), names as keys, snapshots and tagged events."""
    pumps: dict[str, cp.Pump] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for name, pattern in (("door", "testsrc2"), ("yard", "smptebars")):
                source = cp.Source.test(pattern)
                pumps[name] = await stack.enter_async_context(cp.open_pump(source, SMALL))
            yield

    outer = Starlette(routes=[Mount("/cams", app=sv().app(pumps, width=160))], lifespan=lifespan)
    async with serving(outer, lifespan="on") as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/cams/")).status_code == 200
            cameras = (await client.get("/cams/api/cameras")).json()["cameras"]
            assert [c["name"] for c in cameras] == ["door", "yard"]
            assert cameras[1]["urls"]["snapshot"] == "/cams/cameras/1/snapshot.jpg"
            by_index = await client.get(cameras[1]["urls"]["snapshot"])
            by_name = await client.get("/cams/cameras/yard/snapshot.jpg")
            assert decode_jpeg(by_index.content).shape == decode_jpeg(by_name.content).shape
            async with client.stream("GET", "/cams/api/events") as response:
                messages = sse_messages(response.aiter_bytes())
                tagged = {(await next_message(messages, "status", None, 5))["camera"]}
                tagged.add((await next_message(messages, "status", None, 5))["camera"])
                assert tagged == {0, 1}
    assert not pumps or all(p.state == "closed" for p in pumps.values())


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_under_trio_with_hypercorn_streams_work_and_hang_ups_leave_nothing(
    anyio_backend: str,
) -> None:
    """Hypercorn on trio serves MJPEG and events; after the clients leave no feed is left."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    async with cp.open_pump(cp.Source.test(), SMALL) as pump:
        application = sv().app([pump], width=160)
        hub = hub_of(application)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.graceful_timeout = 1
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: serve(application, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                with anyio.fail_after(10):
                    while True:
                        with contextlib.suppress(httpx.TransportError):
                            if (await client.get("/api/cameras")).status_code == 200:
                                break
                        await anyio.sleep(0.05)
            # Raw connections: httpx's half-read streams leave generators for trio to collect.
            head, _ = await raw_read(port, "/cameras/0/mjpeg", b"\xff\xd8", 3, hub=hub)
            assert b"multipart/x-mixed-replace" in head
            head, body = await raw_read(port, "/cameras/0/events", b"event: statistics", 1)
            assert b"text/event-stream" in head and b'"event":"connected"' in body
            await until(lambda: not hub.feeds(), 3, "a feed outlived its client under trio")
            assert subscriptions(pump) == 0
            stop.set()


# -- the command line, as a user runs it ---------------------------------------------------


class ServeProcess:
    """``python -m camerapump.serve ARGS --port 0`` as a child process."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camerapump.serve", *args, "--port", "0"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"serving .* at (http://127\.0\.0\.1:\d+)/", line)
            if found:
                self.url = found.group(1)
                return
        self.proc.kill()
        raise AssertionError("the server did not start: " + "".join(self.lines))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode, "".join(self.lines) + err.decode()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_python_m_camerapump_serve_shows_the_pattern_moving_and_stops_on_ctrl_c() -> None:
    """`python -m camerapump.serve test:`: the page, two snapshots that differ (the pattern
    moves), a Host of another name refused; Ctrl-C with an MJPEG client connected ends the
    stream and the process at once, status 0, no traceback."""
    with ServeProcess("test:") as served:
        with httpx.Client(base_url=served.url, timeout=10) as client:
            assert "EventSource" in client.get("/").text
            first = decode_jpeg(client.get("/cameras/0/snapshot.jpg").content)
            time.sleep(0.5)
            second = decode_jpeg(client.get("/cameras/0/snapshot.jpg").content)
            assert first.shape == second.shape == (480, 640, 3)
            assert np.abs(first.astype(int) - second.astype(int)).mean() > 1  # it moves
            evil = client.get("/api/cameras", headers={"Host": "evil.example"})
            assert evil.status_code == 403
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as viewer:
            viewer.sendall(b"GET /cameras/0/mjpeg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while data.count(b"\xff\xd8") < 2:
                data += viewer.recv(65536)
            started = time.monotonic()
            status, err = served.stop(signal.SIGINT)
            took = time.monotonic() - started
            viewer.settimeout(5)
            while viewer.recv(65536):  # the server ended the stream: EOF, not a hang
                pass
    assert status == 0, err
    assert "Traceback" not in err, err
    assert took < 4, f"Ctrl-C took {took:.1f} s"
    assert "stopping" in err


# -- a real browser ------------------------------------------------------------------------


class Chromium:
    """Headless Chromium, driven by the DevTools protocol over a pipe (no WebSocket, no driver).

    ``--remote-debugging-pipe`` makes Chromium read commands from fd 3 and write
    replies to fd 4, each message a JSON text ending in a NUL byte.
    """

    FLAGS = (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--remote-debugging-pipe",
    )

    def __init__(self, profile: Path) -> None:
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()
        # bash, not sh: dash's redirections take one-digit descriptors only.
        shell = f'exec "$0" "$@" 3<&{commands_r} 4>&{replies_w}'
        self.proc = subprocess.Popen(
            [
                "/bin/bash",
                "-c",
                shell,
                CHROMIUM,
                *self.FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(commands_r, replies_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._id = 0
        self._session: str | None = None
        self.shots: list[bytes] = []  # PNGs, for a person to look at when the test fails

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 15) -> Any:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self._session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium did not answer {method}")
            if select.select([self._replies], [], [], left)[0]:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its pipe")
                self._buffer += chunk

    def open(self, url: str, width: int = 900, height: int = 640) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def screenshot(self) -> np.ndarray[Any, Any]:
        png = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        self.shots = [*self.shots[-7:], png]
        return decode_png(png)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=3)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._commands)
        os.close(self._replies)


def colour_pixels(picture: np.ndarray[Any, Any], colour: str, tolerance: int = 10) -> int:
    """How many pixels of ``picture`` are ``colour`` (#rrggbb), give or take ``tolerance``."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(picture.astype(int) - rgb).max(axis=2) <= tolerance).sum())


def changed(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> int:
    """How many pixels differ clearly between two pictures of the same size."""
    return int((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 40).sum())


@pytest.mark.rtsp
@pytest.mark.timeout(60)
def test_a_browser_shows_the_camera_live_then_reconnecting_then_live_again(
    own_rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """Headless Chromium on `camerapump serve rtsp://...`: two screenshots a second apart
    differ where the picture is (live) and show no banner; with the RTSP server killed the
    tile gets the amber banner (reconnecting) and the picture is greyed; restarted, the
    banner goes and the picture moves again."""
    with ServeProcess(own_rtsp_server.url()) as served:
        browser = Chromium(tmp_path / "profile")
        try:
            browser.open(served.url + "/")
            deadline = time.monotonic() + 15
            while not browser.evaluate(
                "(() => { const i = document.querySelector('.tile img');"
                " return !!i && i.naturalWidth > 0 && !document.querySelector('.tile.stale'); })()"
            ):
                assert time.monotonic() < deadline, "the picture never showed"
                time.sleep(0.2)
            box = browser.evaluate(
                "(() => { const r = document.querySelector('.tile .view').getBoundingClientRect();"
                " return [r.left, r.top, r.width, r.height].map(Math.round); })()"
            )
            left, top, width, height = box
            assert width > 200 and height > 100

            def tile(picture: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
                return picture[top : top + height, left : left + width]

            a = tile(browser.screenshot())
            time.sleep(1.0)
            b = tile(browser.screenshot())
            assert changed(a, b) > 100, "the picture is frozen"
            assert a.std() > 10  # a picture, not an empty box
            assert (
                colour_pixels(b, sv().STALE_COLOUR) == 0 and colour_pixels(b, sv().DEAD_COLOUR) == 0
            )

            own_rtsp_server.kill()
            deadline = time.monotonic() + 10
            while colour_pixels(tile(browser.screenshot()), sv().STALE_COLOUR) < 5000:
                assert time.monotonic() < deadline, "no reconnecting banner"
                time.sleep(0.25)
            banner = browser.evaluate("document.querySelector('.tile .banner').textContent")
            assert "reconnecting" in banner and "last frame" in banner
            below = tile(browser.screenshot())[height // 2 :]  # under the banner
            assert below.max() <= 140, "the picture of a camera that is gone is not dimmed"

            own_rtsp_server.restart()
            deadline = time.monotonic() + 20
            while colour_pixels(tile(browser.screenshot()), sv().STALE_COLOUR) > 0:
                assert time.monotonic() < deadline, "the banner stayed after the camera came back"
                time.sleep(0.25)
            time.sleep(0.3)
            c = tile(browser.screenshot())
            time.sleep(1.0)
            d = tile(browser.screenshot())
            assert changed(c, d) > 100, "not live again"
        except BaseException:
            for index, png in enumerate(browser.shots):  # in pytest's tmp, never in the repo
                (tmp_path / f"shot-{index}.png").write_bytes(png)
            raise
        finally:
            browser.close()
        status, err = served.stop()
    assert status == 0, err
