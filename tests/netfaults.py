"""Network fault helpers for camerapump's tests and benchmarks (loopback only).

* ``RtspServer``: runs ``tests/rtsp_server.py`` (gst-rtsp-server) under Debian's
  ``/usr/bin/python3`` as a child process; can be killed and restarted on the
  same port.
* ``TcpProxy``: a TCP forwarder that can be frozen (nothing moves, nothing is
  closed), so a client's reads stall as on a dead network path.
* ``GarbageResponder`` / ``SilentResponder``: servers that answer junk, or
  accept and never answer.

Every helper is a context manager, binds 127.0.0.1 only, and has bounded
waits; child processes are also killed at interpreter exit. This module must
not import pytest: benchmarks import it too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
SYSTEM_PYTHON = "/usr/bin/python3"  # has PyGObject + GStreamer; pyenv's python does not
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- RTSP server

_children: set[subprocess.Popen[bytes]] = set()  # started and not yet reaped


@atexit.register
def _kill_children() -> None:
    for proc in list(_children):
        proc.kill()
        proc.wait(5.0)


class RtspServer:
    """``tests/rtsp_server.py`` as a child process on 127.0.0.1:``port``.

    Mount points: ``/h264``, ``/mjpeg`` (anonymous) and ``/secure`` (basic auth
    with ``user``/``password``); ``/h264-aac`` and ``/h264-alaw`` (an audio
    track first in the SDP, then H.264), ``/h265``, ``/digest`` (Digest auth,
    same credentials) and ``/resize`` (H.264 whose size flips between
    width x height and half of it every ``resize_every`` s), all anonymous
    unless said otherwise. ``udp_only``: every mount refuses RTP over the
    RTSP TCP connection (PyAV's ``rtsp_transport=tcp`` fails with errno 93).
    ``picture``: ``"ball"`` (a ball on black, x264 ultrafast: the cheapest H.264
    to decode) or ``"camera"`` (a scrolling, textured picture, x264 veryfast with
    CABAC and the deblocking filter, as cameras encode): the picture of every mount,
    the encoder settings of the H.264 ones.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        gop: int = 30,
        user: str = "alice",
        password: str = "secret",
        udp_only: bool = False,
        resize_every: float = 1.0,
        picture: str = "ball",
    ) -> None:
        self.port = port if port is not None else free_port()
        self.width, self.height, self.fps, self.gop = width, height, fps, gop
        self.user, self.password = user, password
        self.udp_only, self.resize_every = udp_only, resize_every
        self.picture = picture
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    # -- lifecycle
    def start(self, timeout: float = 15.0) -> RtspServer:
        """Start the server and wait (at most ``timeout`` s) for its READY line."""
        self._launch(time.monotonic() + timeout, retry_busy_port=False)
        return self

    def restart(self, timeout: float = 15.0) -> RtspServer:
        """Stop the server if running, then start it again on the same port.

        A port still held for a moment (e.g. by the old process) is retried
        until ``timeout``.
        """
        self.stop()
        self._launch(time.monotonic() + timeout, retry_busy_port=True)
        return self

    def kill(self) -> None:
        """SIGKILL the server (an abrupt death, clients get no teardown) and reap it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap(timeout=5.0)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server and wait; SIGKILL it if it does not exit in ``timeout`` s."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap(timeout=5.0)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, path: str = "/h264", *, auth: bool = False) -> str:
        """``rtsp://127.0.0.1:PORT/path``, with ``user:password@`` if ``auth``."""
        cred = f"{self.user}:{self.password}@" if auth else ""
        return f"rtsp://{cred}{HOST}:{self.port}{path}"

    def __enter__(self) -> RtspServer:
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals
    def _launch(self, deadline: float, *, retry_busy_port: bool) -> None:
        if self.alive:
            raise RuntimeError(f"RTSP server already running (pid {self.pid})")
        while True:
            error = self._spawn_and_wait_ready(deadline)
            if error is None:
                return
            busy = "Address already in use" in error
            if not (retry_busy_port and busy and time.monotonic() + 0.2 < deadline):
                raise RuntimeError(f"RTSP server on port {self.port} did not start: {error}")
            time.sleep(0.2)

    def _spawn_and_wait_ready(self, deadline: float) -> str | None:
        """Spawn the script; None once READY, else an error text (child reaped)."""
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the child)
        options = {
            "port": self.port,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "gop": self.gop,
            "user": self.user,
            "password": self.password,
            "resize-every": self.resize_every,
            "picture": self.picture,
        }
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT)]
        for name, value in options.items():
            cmd += [f"--{name}", str(value)]
        if self.udp_only:
            cmd.append("--udp-only")
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
        )
        _children.add(self._proc)
        out = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while b"\n" not in out:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if sel.select(min(remaining, 0.5)):
                    chunk = os.read(self._proc.stdout.fileno(), 4096)
                    if not chunk:  # the child exited
                        break
                    out += chunk
        if out.startswith(f"READY {self.port}\n".encode()):
            return None
        reason = "timed out waiting for READY" if self._proc.poll() is None else "exited"
        self._proc.kill()
        self._proc.wait(5.0)
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace").strip()
        self._reap(timeout=5.0)
        return f"{reason} (status {self._proc.returncode}); stdout={out!r}; stderr={stderr!r}"

    def _reap(self, timeout: float) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            _children.discard(self._proc)
        if self._stderr is not None:
            self._stderr.close()


# --------------------------------------------------------------------------- TCP proxy


class _ListenerThread:
    """A background thread with start()/close(), listening on 127.0.0.1:``port``."""

    def __init__(self, listen_port: int = 0) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, listen_port))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0  # accepted so far
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run_and_cleanup, daemon=True, name=f"{type(self).__name__}:{self.port}"
        )

    def start(self):
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread, close every socket, join the thread (within about 1 s)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        else:
            self._listener.close()

    def __enter__(self):
        if not self._thread.is_alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run_and_cleanup(self) -> None:
        try:
            self._run()
        finally:
            self._listener.close()
            self._cleanup()

    def _run(self) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        pass


class TcpProxy(_ListenerThread):
    """Forwards 127.0.0.1:``listen_port`` (0: any free port) to ``target``.

    One selector thread moves the bytes of every connection. ``freeze()``
    stops reading and writing in both directions without closing anything:
    unread data waits in the kernel buffers, so the client's reads stall.
    ``drop()`` closes the current connections (the listener stays).
    ``connections`` counts the client connections accepted so far (one per
    TCP connect, even if the target then refuses); ``active`` is the number
    of client connections open now. A test can prove "one open = one
    connection" with them.
    """

    _CHUNK = 65536
    _MAX_BUFFERED = 1 << 20  # per direction, then stop reading from the source

    def __init__(self, target: tuple[str, int], listen_port: int = 0) -> None:
        super().__init__(listen_port)
        self.target = target
        self._frozen = threading.Event()
        self._drop = threading.Event()
        self._peer: dict[socket.socket, socket.socket] = {}
        self._outbox: dict[socket.socket, bytearray] = {}  # bytes waiting to be sent to the key
        self._eof: set[socket.socket] = set()  # sockets that sent EOF
        self._clients: set[socket.socket] = set()  # the client side of each open pair

    def freeze(self) -> None:
        self._frozen.set()

    def unfreeze(self) -> None:
        self._frozen.clear()

    @property
    def frozen(self) -> bool:
        return self._frozen.is_set()

    @property
    def active(self) -> int:
        """Client connections open now (accepted, forwarded, not yet closed)."""
        return len(self._clients)

    def drop(self) -> None:
        """Close every current connection (both sides); keep accepting new ones."""
        self._drop.set()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if self._drop.is_set():
                    self._drop.clear()
                    for s in list(self._peer):
                        self._close_pair(sel, s)
                self._update_interest(sel)
                for key, events in sel.select(0.05):
                    s = key.fileobj
                    if s is self._listener:
                        self._accept(sel)
                    elif s in self._peer:
                        self._pump(sel, s, events)
            for s in list(self._peer):
                self._close_pair(sel, s)

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.connections += 1
        try:
            upstream = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            a.setblocking(False)
            self._peer[a] = b
            self._outbox[a] = bytearray()
        self._clients.add(client)

    def _update_interest(self, sel: selectors.BaseSelector) -> None:
        """(Un)register each socket for what it can do now; nothing while frozen."""
        frozen = self._frozen.is_set()
        for s, peer in self._peer.items():
            events = 0
            if not frozen:
                if s not in self._eof and len(self._outbox[peer]) < self._MAX_BUFFERED:
                    events |= selectors.EVENT_READ
                if self._outbox[s]:
                    events |= selectors.EVENT_WRITE
            key = sel.get_map().get(s)
            if not events:
                if key is not None:
                    sel.unregister(s)
            elif key is None:
                sel.register(s, events)
            elif key.events != events:
                sel.modify(s, events)

    def _pump(self, sel: selectors.BaseSelector, s: socket.socket, events: int) -> None:
        if self._frozen.is_set():  # froze after the select: leave the data where it is
            return
        peer = self._peer[s]
        try:
            if events & selectors.EVENT_READ and s not in self._eof:
                data = s.recv(self._CHUNK)
                if data:
                    self._outbox[peer] += data
                else:
                    self._eof.add(s)
            if events & selectors.EVENT_WRITE and self._outbox[s]:
                sent = s.send(self._outbox[s])
                del self._outbox[s][:sent]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close_pair(sel, s)
            return
        # One side hung up and everything it sent has been delivered: end the pair.
        s_done = s in self._eof and not self._outbox[peer]
        peer_done = peer in self._eof and not self._outbox[s]
        if s_done or peer_done:
            self._close_pair(sel, s)

    def _close_pair(self, sel: selectors.BaseSelector, s: socket.socket) -> None:
        for x in (s, self._peer.get(s)):
            if x is None or x not in self._peer:
                continue
            del self._peer[x]
            del self._outbox[x]
            self._eof.discard(x)
            self._clients.discard(x)
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(x)
            x.close()


# --------------------------------------------------------------------------- bad servers


class _Responder(_ListenerThread):
    """Accepts connections on 127.0.0.1 and hands each to ``_on_connect``."""

    def __init__(self, listen_port: int = 0) -> None:
        super().__init__(listen_port)
        self._conns: list[socket.socket] = []

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(0.05):
                    continue
                try:
                    conn, _ = self._listener.accept()
                except BlockingIOError:
                    continue
                self.connections += 1
                self._on_connect(conn)

    def _on_connect(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()


class GarbageResponder(_Responder):
    """Answers every connection with ``size`` bytes of binary junk, then closes it."""

    def __init__(self, listen_port: int = 0, *, size: int = 4096, seed: int = 0) -> None:
        super().__init__(listen_port)
        self.payload = random.Random(seed).randbytes(size)

    def _on_connect(self, conn: socket.socket) -> None:
        conn.settimeout(1.0)
        with contextlib.suppress(OSError):
            conn.sendall(self.payload)
        conn.close()


class SilentResponder(_Responder):
    """Accepts every connection and never sends a byte; keeps it open until close()."""

    def _on_connect(self, conn: socket.socket) -> None:
        self._conns.append(conn)
