"""The ASGI application: :func:`app` and its endpoints.

========================================  ===============================================
``/``                                     the live page
``/api/cameras``                          JSON: cameras, redacted labels, formats, figures
``/api/events``                           server-sent events of every camera (the page's)
``/cameras/{i}/snapshot.jpg?width=``      one fresh JPEG
``/cameras/{i}/mjpeg?width=``             ``multipart/x-mixed-replace`` JPEG stream
``/cameras/{i}/events``                   server-sent events: status and statistics
========================================  ===============================================

``{i}`` is the camera's index, or its name when the pumps were given as a mapping.

Nothing that leaves here names a credential: cameras are shown by their
redacted :attr:`Source.label <camerapump.Source.label>`, names are redacted
with their source's secrets, and status events and statistics carry none.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._config import is_positive_number
from .._image import JpegEncoder
from .._output import Output
from .._pump import Pump
from ._auth import TokenGate, check_token
from ._hub import BOUNDARY, JPEG_QUALITY, CameraState, Feed, Hub, Jpeg, TooManySizes
from ._page import CSP, PAGE

__all__ = ["MAX_WIDTH", "MIN_WIDTH", "SNAPSHOT_TIMEOUT", "app"]

#: Picture widths a client may ask for with ``?width=``.
MIN_WIDTH = 16
MAX_WIDTH = 4096
#: Seconds a snapshot waits for a frame (a camera that reconnects has none).
SNAPSHOT_TIMEOUT = 5.0
#: How often event streams look for new status events, and send statistics.
_POLL = 0.2
_STATISTICS_EVERY = 1.0
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def app(
    pumps: Sequence[Pump] | Mapping[str, Pump],
    *,
    token: str | None = None,
    fps: float = 10,
    width: int = 640,
) -> Starlette:
    """The live viewer as an ASGI application, to serve or to mount in your own app.

    ``Mount("/cameras", app=camerapump.serve.app(pumps))`` in Starlette,
    ``api.mount("/cameras", camerapump.serve.app(pumps))`` in FastAPI.  The app
    does not own the pumps: open them on the server's event loop (in your
    lifespan, for example) and close them yourself.

    Viewers of one camera at one size share one subscription and one JPEG
    encoder: each frame is encoded once, whoever watches it, and with nobody
    watching nothing is subscribed, converted or encoded.

    The app reads each pump's :attr:`~camerapump.Pump.status` queue for its
    pages and event streams (while someone watches them); code of your own
    that reads the same queue shares its events with the app.

    A streaming response (MJPEG, events) lasts as long as its client watches;
    serve with a graceful-shutdown timeout (uvicorn's ``timeout_graceful_shutdown``)
    so that a server stops while a browser still shows the page.

    Args:
        pumps: Open pumps, as a list or a mapping of names to pumps.  The app
            reads the collection at every request, so it may be filled after
            the app is made.
        token: When given, every request must carry it: ``Authorization:
            Bearer TOKEN``, ``X-Camerapump-Token: TOKEN`` or ``?token=TOKEN``;
            401 otherwise.
        fps: At most this many pictures a second per stream.
        width: The default picture width (``?width=`` asks for another); the
            height follows the aspect ratio.

    Returns:
        The Starlette application.

    Raises:
        TypeError: ``pumps`` is not a list or a mapping of pumps.
        ValueError: A bad ``token``, ``fps`` or ``width``.
    """
    kind: object = pumps  # a caller's type hints are not checked at run time
    if isinstance(kind, (str, bytes)) or not isinstance(kind, (Sequence, Mapping)):
        raise TypeError(
            f"pumps must be a list of Pumps or a mapping of names to Pumps, "
            f"not {type(pumps).__name__}"
        )
    if not is_positive_number(fps) or fps > 60:
        raise ValueError(f"fps must be a number above 0 and at most 60, not {fps!r}")
    _check_width(width)
    if token is not None:
        check_token(token)
    hub = Hub(pumps, fps=float(fps), width=width)
    hub.cameras()  # what is already there is checked now
    views = _Views(hub)
    routes = [
        Route("/", views.page, methods=["GET"]),
        Route("/api/cameras", views.cameras, methods=["GET"]),
        Route("/api/events", views.all_events, methods=["GET"]),
        Route("/cameras/{camera}/snapshot.jpg", views.snapshot, methods=["GET"]),
        Route("/cameras/{camera}/mjpeg", views.mjpeg, methods=["GET"]),
        Route("/cameras/{camera}/events", views.events, methods=["GET"]),
    ]
    middleware = [] if token is None else [Middleware(TokenGate, token=token)]
    application = Starlette(routes=routes, middleware=middleware)
    application.state.camerapump = hub
    return application


def _check_width(width: object) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"width must be a whole number from {MIN_WIDTH} to {MAX_WIDTH}")
    return width


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_NO_STORE)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _number_header(value: float) -> str:
    return f"{value:.6f}"


class _LiveStream(StreamingResponse):
    """A stream that lasts while its client watches and ends cleanly when it leaves.

    The body generator is always closed before the response returns (so what it
    holds, a place among a feed's viewers, is given back at once, not when the
    garbage collector finds the generator), and a client that hangs up ends it
    whether the server says so through ``receive`` or by failing a ``send``.
    """

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        media_type: str,
        headers: dict[str, str],
        *,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(chunks, media_type=media_type, headers={**_NO_STORE, **headers})
        self._chunks = chunks
        # What the request holds (a viewer's place in a feed), given back here and
        # not in the generator: a generator closed before it ever ran (a client
        # gone before the headers went out) never runs its finally.
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(receive, send)
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

    async def _serve(self, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as tg:

            async def until_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            try:
                async with contextlib.aclosing(self._chunks) as chunks:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": self.status_code,
                            "headers": self.raw_headers,
                        }
                    )
                    async for chunk in chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client is gone (how ASGI 2.4 servers say it)
            tg.cancel_scope.cancel()


class _Views:
    """The endpoints, over one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    # -- helpers ----------------------------------------------------------------------

    def _picture(self, request: Request) -> tuple[CameraState, int] | Response:
        """The camera and width a picture request names, or the error response."""
        camera = self._camera(request)
        if isinstance(camera, Response):
            return camera
        width = self._width(request)
        if isinstance(width, Response):
            return width
        if self.hub.closed:
            return _error(503, "the server is shutting down")
        return camera, width

    def _camera(self, request: Request) -> CameraState | Response:
        camera = self.hub.camera(str(request.path_params["camera"]))
        if camera is None:
            return _error(404, "no such camera")
        return camera

    def _width(self, request: Request) -> int | Response:
        text = request.query_params.get("width")
        if text is None:
            return self.hub.width
        try:
            return _check_width(int(text))
        except ValueError:
            return _error(400, f"width must be a whole number from {MIN_WIDTH} to {MAX_WIDTH}")

    def _describe(self, camera: CameraState, root: str) -> dict[str, Any]:
        pump = camera.pump
        base = f"{root}/cameras/{camera.index}"
        statistics = pump.statistics()
        return {
            "index": camera.index,
            "name": camera.name,
            "label": camera.label,
            "kind": pump.source.kind,
            "state": str(pump.state),
            "status": camera.status(),
            "format": None if pump.format is None else pump.format.as_dict(),
            "statistics": statistics.as_dict(),
            "viewers": camera.viewers(),
            "jpegs_encoded": camera.jpegs_encoded,
            "urls": {
                "snapshot": f"{base}/snapshot.jpg",
                "mjpeg": f"{base}/mjpeg",
                "events": f"{base}/events",
            },
        }

    # -- endpoints --------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        headers = {
            **_NO_STORE,
            "Content-Security-Policy": CSP,
            "Referrer-Policy": "no-referrer",  # the page's URL may hold ?token=
        }
        return HTMLResponse(PAGE, headers=headers)

    async def cameras(self, request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        cameras = [self._describe(camera, root) for camera in self.hub.cameras()]
        body = {"cameras": cameras, "fps": self.hub.fps, "width": self.hub.width}
        return JSONResponse(body, headers=_NO_STORE)

    async def snapshot(self, request: Request) -> Response:
        target = self._picture(request)
        if isinstance(target, Response):
            return target
        camera, width = target
        jpeg: Jpeg | None = None
        with anyio.move_on_after(SNAPSHOT_TIMEOUT):
            if camera.pump.active:
                jpeg = await self._fresh_jpeg(camera, width)
            else:
                jpeg = await self._captured_jpeg(camera, width)
        if jpeg is None:
            return _error(503, f"no frame from this camera now (it is {camera.pump.state})")
        headers = {
            **_NO_STORE,
            "X-Captured-At": _number_header(jpeg.captured_at),
            "X-Frame-Sequence": str(jpeg.sequence),
        }
        return Response(jpeg.data, media_type="image/jpeg", headers=headers)

    async def _fresh_jpeg(self, camera: CameraState, width: int) -> Jpeg | None:
        """A JPEG of a frame decoded after now, shared with the feed's other viewers."""
        try:
            feed = self.hub.join(camera, width)
        except TooManySizes:
            return None
        try:
            seen = 0 if feed.latest is None else feed.latest.number
            return await feed.next(seen)
        finally:
            self.hub.leave(feed)

    async def _captured_jpeg(self, camera: CameraState, width: int) -> Jpeg | None:
        """A paused pump delivers to captures only: one capture, one encode."""
        frame = await camera.pump.capture_frame(
            output=Output(width=width), timeout=SNAPSHOT_TIMEOUT
        )
        if frame is None:
            return None
        encoder = JpegEncoder(JPEG_QUALITY)
        data = await anyio.to_thread.run_sync(
            encoder.encode, frame, limiter=self.hub.encode_limiter()
        )
        camera.jpegs_encoded += 1
        return Jpeg(data, 1, frame.sequence, frame.captured_at, frame.width, frame.height)

    async def mjpeg(self, request: Request) -> Response:
        target = self._picture(request)
        if isinstance(target, Response):
            return target
        camera, width = target
        try:
            feed = self.hub.join(camera, width)
        except TooManySizes as exc:
            return _error(503, str(exc))
        return _LiveStream(
            self._mjpeg_parts(feed),
            f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            {"X-Accel-Buffering": "no"},  # a proxy in front must not hold parts back
            release=lambda: self.hub.leave(feed),
        )

    async def _mjpeg_parts(self, feed: Feed) -> AsyncGenerator[bytes, None]:
        yield f"--{BOUNDARY}\r\n".encode()
        seen = 0
        while True:
            jpeg = await feed.next(seen)
            if jpeg is None:
                return
            seen = jpeg.number
            yield jpeg.part  # the same bytes for every viewer: built once

    async def events(self, request: Request) -> Response:
        camera = self._camera(request)
        if isinstance(camera, Response):
            return camera
        return self._event_stream([camera], tagged=False)

    async def all_events(self, request: Request) -> Response:
        return self._event_stream(self.hub.cameras(), tagged=True)

    def _event_stream(self, cameras: list[CameraState], *, tagged: bool) -> Response:
        if self.hub.closed:
            return _error(503, "the server is shutting down")
        return _LiveStream(
            self._event_messages(cameras, tagged=tagged),
            "text/event-stream",
            {"X-Accel-Buffering": "no"},
        )

    async def _event_messages(
        self, cameras: list[CameraState], *, tagged: bool
    ) -> AsyncGenerator[bytes, None]:
        """``status`` events as they happen (the current one first), ``statistics`` each second."""

        def tag(camera: CameraState, data: dict[str, Any]) -> dict[str, Any]:
            return {"camera": camera.index, **data} if tagged else data

        yield b"retry: 2000\n\n"
        cursors: dict[CameraState, int] = {}
        for camera in cameras:
            yield _sse("status", tag(camera, camera.status()))  # drains the queue first
            cursors[camera] = camera.events_seen
        next_statistics = 0.0
        while not self.hub.closed:
            for camera in cameras:
                camera.drain()
                for number, event in camera.events_after(cursors[camera]):
                    cursors[camera] = number
                    yield _sse("status", tag(camera, event.as_dict()))
            now = time.monotonic()
            if now >= next_statistics:
                for camera in cameras:
                    yield _sse("statistics", tag(camera, _statistics(camera)))
                next_statistics = now + _STATISTICS_EVERY
            await self.hub.sleep(min(_POLL, max(0.0, next_statistics - time.monotonic())))


def _statistics(camera: CameraState) -> dict[str, Any]:
    return camera.pump.statistics().as_dict()
