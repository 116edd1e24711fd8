"""Third-party media servers on loopback, for camerapump's tests and benchmarks.

Every server here is a program nobody on the team wrote (FFmpeg 5.1, nginx
with its RTMP module), run as a child process on 127.0.0.1 with a config of
its own; our code only starts, watches and stops it:

* ``MjpegHttpServer``: FFmpeg's HTTP server (``-f mpjpeg -listen 1``), with an
  optional ``BasicAuthProxy`` in front (FFmpeg's server has no auth).
* ``RtmpListenServer``: FFmpeg's RTMP server (``-f flv -listen 1``), H.264 with
  or without AAC audio.
* ``NginxRtmpServer``: nginx + ``libnginx-mod-rtmp``, fed by an FFmpeg
  publisher; players get ``rtmp://127.0.0.1:PORT/live/NAME``.
* ``FfmpegTsServer``: MPEG-TS from FFmpeg over UDP (FFmpeg sends, the client
  listens), TCP or HTTP (``-listen 1``); a test picture or a file played with
  ``-re -c copy``.
* ``HlsServer``: FFmpeg's live HLS muxer writing into a temp dir, served by a
  stdlib HTTP server.
* ``TsReplay``: the exact bytes of an MPEG-TS file, paced, over TCP or UDP. It
  is the one server of ours: FFmpeg's command line repairs broken
  timestamps when it re-muxes, so broken files must be sent byte for byte.

FFmpeg's ``-listen 1`` serves one client, then exits: those servers are
restarted for each new client by a supervisor thread (``respawns`` counts
them), so reconnection tests work. Each server has ``start()``, ``stop()``,
``kill()`` (SIGKILL, clients get no goodbye), ``restart()`` (same port) and is
a context manager. Children are killed when their supervisor thread ends
(``setpriv --pdeathsig KILL``) and at interpreter exit, so a crashed test run
leaves none behind.

Files made with PyAV: ``make_ts`` (H.264 in MPEG-TS, one or more picture sizes
in a row), ``make_broken_ts`` (timestamps missing, going backwards, jumping,
wrapping at 2**33, a wild first one) and ``edit_ts_timestamps`` (rewrites the
PES timestamps of an MPEG-TS byte string).

This module must not import pytest: benchmarks import it too.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import hmac
import http.server
import io
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import IO, Literal

from netfaults import HOST, free_port

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# Where Debian 12's libnginx-mod-rtmp installs the module (dpkg -L libnginx-mod-rtmp).
NGINX_RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
_SETPRIV = shutil.which("setpriv")
# The child gets SIGKILL when the thread that started it ends: every child is
# started by its server's supervisor thread, which lives exactly as long as
# the server, and dies with the test process.
_DIE_WITH_PARENT = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []

FFMPEG_QUIET = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _proc_net(table: str, port: int, state: str | tuple[str, ...] | None) -> bool:
    """True if /proc/net/``table`` has a socket bound to 127.0.0.1 or 0.0.0.0:``port``."""
    states = (state,) if isinstance(state, str) else state
    suffix = f":{port:04X}"
    try:
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        local, st = fields[1], fields[3]
        if local in (f"0100007F{suffix}", f"00000000{suffix}") and (states is None or st in states):
            return True
    return False


def tcp_listening(port: int) -> bool:
    """True if something listens on TCP 127.0.0.1:``port`` (read from /proc, no connect).

    A connect would be the one client that an FFmpeg ``-listen 1`` server serves.
    """
    return _proc_net("tcp", port, "0A")  # 0A: TCP_LISTEN


def tcp_serving(port: int) -> bool:
    """True if something listens on, or already serves a client from, TCP 127.0.0.1:``port``.

    A ``-listen 1`` server stops listening the moment its client connects; a
    client that reconnects at once (a pump) can make the LISTEN state too brief
    to be seen.
    """
    return _proc_net("tcp", port, ("0A", "01"))  # 01: TCP_ESTABLISHED


def udp_bound(port: int) -> bool:
    """True if a socket is bound to UDP 127.0.0.1:``port`` (a client waiting for datagrams)."""
    return _proc_net("udp", port, None)


# --------------------------------------------------------------------------- child processes

_children: set[subprocess.Popen[bytes]] = set()  # started and not yet reaped
_children_lock = threading.Lock()


@atexit.register
def _kill_children() -> None:
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        proc.kill()
        proc.wait(5.0)


def tracked_pids() -> set[int]:
    """Pids of the children that a helper here or in ``netfaults`` owns right now."""
    import netfaults

    with _children_lock:
        pids = {p.pid for p in _children}
    return pids | {p.pid for p in list(netfaults._children)}


def child_pids() -> set[int]:
    """Pids of every process whose parent is this one (zombies included), read from /proc."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.add(int(entry.name))
    return found


class _Service:
    """One child process, run by a supervisor thread of its own.

    The thread spawns the child, polls ``ready`` until it holds (or the child
    exits, or the start deadline passes), then waits for the child to exit.
    With ``respawn`` it then starts a new one (after ``respawn_delay`` s), for
    ever: that is how a one-client ``-listen 1`` server serves many clients
    and a publisher reconnects. The thread kills and reaps its child before it
    ends.
    """

    def __init__(
        self,
        name: str,
        argv: Callable[[], list[str]],
        ready: Callable[[], bool] | None = None,
        *,
        serving: Callable[[], bool] | None = None,
        respawn: bool = False,
        respawn_delay: float = 0.0,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self._argv = argv
        self._ready_check = ready or (lambda: True)
        # For the first start only: a -listen 1 server whose client connected in the
        # 20 ms between two looks never showed LISTEN, yet it is up and serving.
        self._serving_check = serving or (lambda: False)
        self.respawn = respawn
        self.respawn_delay = respawn_delay
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._quit = threading.Event()  # kill the child and end
        self._stopping = threading.Event()  # let the child exit, then end
        self._ready = threading.Event()  # the current child is ready
        self._first = threading.Event()  # the first child is ready, or start failed
        self._failed: str | None = None
        self._started = False  # the first child got ready
        self.spawns = 0  # children started since this object was made
        self.last_stderr = ""  # the stderr of the last child that ended

    # -- lifecycle
    def start(self, timeout: float = 15.0) -> _Service:
        if self.running:
            raise RuntimeError(f"{self.name} already running (pid {self.pid})")
        for event in (self._quit, self._stopping, self._ready, self._first):
            event.clear()
        self._failed, self._started = None, False
        self._thread = threading.Thread(
            target=self._supervise,
            args=(time.monotonic() + timeout,),
            daemon=True,
            name=f"servers-{self.name}",
        )
        self._thread.start()
        self._first.wait(timeout + 5.0)
        if not self._started:
            self.kill()
            raise RuntimeError(f"{self.name} did not start: {self._failed or 'timed out'}")
        return self

    def kill(self) -> None:
        """SIGKILL the child, no respawn; return once it is reaped."""
        self._quit.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self._join()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the child, no respawn; SIGKILL it if it is not gone in ``timeout`` s."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if self._thread is not None:
            self._thread.join(timeout)
        self.kill()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until a child is ready (e.g. listening again after the last client left)."""
        return self._ready.wait(timeout)

    @property
    def running(self) -> bool:
        """The supervisor is up: a child runs, or is about to be respawned."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # -- internals
    def _join(self) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10.0)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.name}: supervisor thread did not end")

    def _supervise(self, deadline: float) -> None:
        first = True
        try:
            while not (self._quit.is_set() or self._stopping.is_set()):
                proc = self._spawn()
                error = self._wait_until_ready(
                    proc, deadline if first else time.monotonic() + 10, first=first
                )
                if error is None:
                    self._ready.set()
                    if first:
                        first, self._started = False, True
                        self._first.set()
                    # Ready means "would take a client now": a -listen 1 server stops
                    # listening once its client is accepted.
                    while proc.poll() is None and not self._quit.wait(0.02):
                        if self._ready_check():
                            self._ready.set()
                        else:
                            self._ready.clear()
                self._ready.clear()
                self._end(proc)
                if error is not None and first:
                    busy = "Address already in use" in self.last_stderr
                    if not busy or time.monotonic() + 0.2 >= deadline:
                        self._failed = f"{error}; stderr={self.last_stderr[-800:]!r}"
                        return
                    time.sleep(0.2)
                    continue
                if not self.respawn:
                    return
                self._quit.wait(self.respawn_delay)
        finally:
            self._ready.clear()
            self._first.set()

    def _spawn(self) -> subprocess.Popen[bytes]:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the child)
        try:
            proc = subprocess.Popen(
                [*_DIE_WITH_PARENT, *self._argv()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=self._cwd,
            )
        except BaseException:
            stderr.close()
            raise
        proc._servers_stderr = stderr  # type: ignore[attr-defined]
        with _children_lock:
            _children.add(proc)
        self._proc = proc
        self.spawns += 1
        return proc

    def _wait_until_ready(
        self, proc: subprocess.Popen[bytes], deadline: float, *, first: bool
    ) -> str | None:
        while True:
            if proc.poll() is not None:
                return f"exited with status {proc.returncode}"
            if self._ready_check() or (first and self._serving_check()):
                return None
            if self._quit.is_set() or self._stopping.is_set():
                return "stopped"
            if time.monotonic() > deadline:
                return "timed out waiting until ready"
            time.sleep(0.02)

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(5.0)
        finally:
            with _children_lock:
                _children.discard(proc)
            stderr: IO[bytes] = proc._servers_stderr  # type: ignore[attr-defined]
            stderr.seek(0)
            self.last_stderr = stderr.read().decode(errors="replace").strip()
            stderr.close()


class _OneService:
    """The lifecycle of a server that is one ``_Service`` (``self._service``)."""

    _service: _Service

    def start(self, timeout: float = 15.0):
        """Start the server and wait (at most ``timeout`` s) until it is ready."""
        self._service.start(timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server (SIGKILL after ``timeout`` s); no respawn."""
        self._service.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the server (clients get no teardown) and reap it; no respawn."""
        self._service.kill()

    def restart(self, timeout: float = 15.0):
        """Stop the server if running, then start it again on the same port."""
        self.stop()
        return self.start(timeout)

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait until the server accepts a client again (``-listen 1`` respawns between clients)."""
        return self._service.wait_ready(timeout)

    @property
    def alive(self) -> bool:
        """The server is up (for ``-listen 1`` servers: serving or about to respawn)."""
        return self._service.running

    @property
    def pid(self) -> int | None:
        """The pid of the current FFmpeg process, if one runs."""
        return self._service.pid

    @property
    def spawns(self) -> int:
        """FFmpeg processes started so far (``-listen 1``: one per client, plus one waiting)."""
        return self._service.spawns

    @property
    def stderr(self) -> str:
        """What the last FFmpeg process that ended wrote to stderr."""
        return self._service.last_stderr

    def __enter__(self):
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- FFmpeg arguments


def _lavfi_video(width: int, height: int, fps: int) -> list[str]:
    return ["-re", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]


def _lavfi_audio(sample_rate: int = 44100) -> list[str]:
    return ["-re", "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}"]


def _h264(gop: int) -> list[str]:
    return [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
        "-pix_fmt", "yuv420p",
    ]  # fmt: skip


_AAC = ["-c:a", "aac", "-b:a", "64k", "-ac", "1"]


# --------------------------------------------------------------------------- HTTP MJPEG


class MjpegHttpServer(_OneService):
    """FFmpeg's HTTP server with a live MJPEG camera: ``http://127.0.0.1:PORT/cam.mjpg``.

    ``ffmpeg -re -f lavfi -i testsrc2 -c:v mjpeg -f mpjpeg -listen 1 http://...``:
    one client per FFmpeg process; the next one is started as soon as a
    client leaves. With ``user`` and ``password``, FFmpeg listens on a private
    port and a ``BasicAuthProxy`` on ``port`` answers 401 to requests without
    the right ``Authorization: Basic`` header (FFmpeg's server has no auth).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 10,
        quality: int = 5,
        user: str | None = None,
        password: str | None = None,
        path: str = "/cam.mjpg",
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.port = port if port is not None else free_port()
        self.width, self.height, self.fps, self.quality = width, height, fps, quality
        self.user, self.password, self.path = user, password, path
        self.backend_port = free_port() if user is not None else self.port
        self.proxy: BasicAuthProxy | None = None
        self._service = _Service(
            "ffmpeg-mjpeg",
            self._argv,
            ready=lambda: tcp_listening(self.backend_port),
            serving=lambda: tcp_serving(self.backend_port),
            respawn=True,
        )

    def _argv(self) -> list[str]:
        return [
            *FFMPEG_QUIET,
            *_lavfi_video(self.width, self.height, self.fps),
            "-c:v", "mjpeg", "-q:v", str(self.quality), "-pix_fmt", "yuvj420p",
            "-f", "mpjpeg", "-listen", "1", f"http://{HOST}:{self.backend_port}{self.path}",
        ]  # fmt: skip

    def url(self, *, auth: bool = False) -> str:
        """``http://127.0.0.1:PORT/cam.mjpg``, with ``user:password@`` if ``auth``."""
        cred = f"{self.user}:{self.password}@" if auth else ""
        return f"http://{cred}{HOST}:{self.port}{self.path}"

    def start(self, timeout: float = 15.0) -> MjpegHttpServer:
        super().start(timeout)
        if self.user is not None and self.password is not None:
            self.proxy = BasicAuthProxy(
                self.backend_port, self.user, self.password, listen_port=self.port
            ).start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._close_proxy()
        super().stop(timeout)

    def kill(self) -> None:
        self._close_proxy()
        super().kill()

    def _close_proxy(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None


class BasicAuthProxy:
    """An HTTP front on 127.0.0.1:``listen_port`` that checks basic auth, then forwards.

    A request without ``Authorization: Basic base64(user:password)`` gets
    ``401`` with ``WWW-Authenticate: Basic`` and ``Connection: close`` (FFmpeg
    then retries on a new connection with the credentials from its URL). A
    good one is forwarded, headers included, to 127.0.0.1:``target_port``;
    the connection to the target is retried for ``connect_timeout`` s, which
    covers the gap while a ``-listen 1`` FFmpeg restarts. Counters:
    ``connections`` (accepted), ``refused`` (answered 401), ``forwarded``.
    """

    def __init__(
        self,
        target_port: int,
        user: str,
        password: str,
        *,
        listen_port: int = 0,
        realm: str = "camerapump-test",
        connect_timeout: float = 5.0,
    ) -> None:
        self.target_port = target_port
        self.realm = realm
        self.connect_timeout = connect_timeout
        self._expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, listen_port))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.connections = self.refused = self.forwarded = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._thread = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"BasicAuthProxy:{self.port}"
        )

    def start(self) -> BasicAuthProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        """Close the listener and every connection; join the threads (about 1 s at most)."""
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(1.0)
        else:
            self._listener.close()
        for t in list(self._handlers):
            t.join(1.0)

    def __enter__(self) -> BasicAuthProxy:
        if not self._thread.is_alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        try:
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
                    t = threading.Thread(target=self._handle, args=(conn,), daemon=True)
                    self._handlers = [h for h in self._handlers if h.is_alive()] + [t]
                    t.start()
        finally:
            self._listener.close()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.add(s)

    def _untrack_and_close(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.discard(s)
        s.close()

    def _handle(self, conn: socket.socket) -> None:
        self._track(conn)
        upstream = None
        try:
            conn.settimeout(3.0)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            if not self._authorized(head):
                self.refused += 1
                conn.sendall(
                    b"HTTP/1.1 401 Unauthorized\r\n"
                    + f'WWW-Authenticate: Basic realm="{self.realm}"\r\n'.encode()
                    + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            upstream = self._connect_upstream()
            if upstream is None:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self._track(upstream)
            self.forwarded += 1
            upstream.sendall(head)
            self._forward(conn, upstream)
        except OSError:
            pass
        finally:
            if upstream is not None:
                self._untrack_and_close(upstream)
            self._untrack_and_close(conn)

    def _authorized(self, head: bytes) -> bool:
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authorization":
                return hmac.compare_digest(value.strip(), self._expected.encode())
        return False

    def _connect_upstream(self) -> socket.socket | None:
        deadline = time.monotonic() + self.connect_timeout
        while not self._stop.is_set():
            try:
                return socket.create_connection((HOST, self.target_port), timeout=1.0)
            except OSError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.02)
        return None

    def _forward(self, a: socket.socket, b: socket.socket) -> None:
        """Move bytes both ways until one side closes or the proxy is closed."""
        for s in (a, b):
            s.settimeout(5.0)  # a sendall to a reader that stopped reading gives up
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self._stop.is_set():
                for key, _ in sel.select(0.1):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)


# --------------------------------------------------------------------------- RTMP


class RtmpListenServer(_OneService):
    """FFmpeg's own RTMP server: ``rtmp://127.0.0.1:PORT/live/stream``.

    ``ffmpeg -re ... -c:v libx264 [-c:a aac] -f flv -listen 1 rtmp://...``
    (H.264, and AAC audio if ``audio``). One client per FFmpeg process, the
    next one started as soon as a client leaves.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 25,
        gop: int = 25,
        audio: bool = False,
        app: str = "live",
        stream: str = "stream",
    ) -> None:
        self.port = port if port is not None else free_port()
        self.width, self.height, self.fps, self.gop = width, height, fps, gop
        self.audio, self.app, self.stream = audio, app, stream
        self._service = _Service(
            "ffmpeg-rtmp",
            self._argv,
            ready=lambda: tcp_listening(self.port),
            serving=lambda: tcp_serving(self.port),
            respawn=True,
        )

    def _argv(self) -> list[str]:
        audio_in = _lavfi_audio() if self.audio else []
        audio_out = _AAC if self.audio else []
        return [
            *FFMPEG_QUIET,
            *_lavfi_video(self.width, self.height, self.fps),
            *audio_in,
            *_h264(self.gop),
            *audio_out,
            "-f", "flv", "-listen", "1", self.url(),
        ]  # fmt: skip

    def url(self) -> str:
        """``rtmp://127.0.0.1:PORT/live/stream``."""
        return f"rtmp://{HOST}:{self.port}/{self.app}/{self.stream}"


_NGINX_CONF = """\
# camerapump test server: nginx + libnginx-mod-rtmp on 127.0.0.1 only.
load_module {module};
daemon off;
master_process off;  # one process: SIGKILL leaves no orphaned worker behind
worker_processes 1;
error_log {dir}/logs/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen {host}:{port};
        application {app} {{
            live on;
            record off;
            idle_streams off;  # a player of a stream nobody publishes is refused, not parked
            allow publish {host};
            deny publish all;
            allow play all;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen {host}:{stat_port};
        location /stat {{ rtmp_stat all; }}
    }}
}}
"""


class NginxRtmpServer:
    """nginx with the RTMP module, fed by an FFmpeg publisher.

    Players get ``url(name)`` = ``rtmp://127.0.0.1:PORT/live/NAME``; the
    publisher pushes H.264 (+ AAC if ``audio``) to ``live/<stream>``. nginx
    runs as ``nginx -p DIR -c DIR/nginx.conf`` (never the system service) in a
    temp dir, one process (``master_process off``), with ``rtmp_stat`` on
    ``http://127.0.0.1:STAT_PORT/stat``, which ``publishing()`` reads.
    ``start()`` returns once the stream is playable. The publisher reconnects
    by itself (every ``republish_delay`` s) while nginx is down, like a camera
    pushing RTMP.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 25,
        gop: int = 25,
        audio: bool = True,
        app: str = "live",
        stream: str = "stream",
        republish_delay: float = 0.3,
    ) -> None:
        if not NGINX_RTMP_MODULE.exists():
            raise RuntimeError(f"{NGINX_RTMP_MODULE} missing: apt-get install libnginx-mod-rtmp")
        self.port = port if port is not None else free_port()
        self.stat_port = free_port()
        self.width, self.height, self.fps, self.gop = width, height, fps, gop
        self.audio, self.app, self.stream = audio, app, stream
        self._tmp = tempfile.TemporaryDirectory(prefix="nginx-rtmp-")
        self.dir = Path(self._tmp.name)
        for sub in ("logs", "tmp"):
            (self.dir / sub).mkdir()
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(
            _NGINX_CONF.format(
                module=NGINX_RTMP_MODULE,
                dir=self.dir,
                host=HOST,
                port=self.port,
                stat_port=self.stat_port,
                app=app,
            )
        )
        self.nginx = _Service(
            "nginx",
            lambda: [NGINX, "-p", f"{self.dir}/", "-c", str(self.conf), "-e", self.error_log],
            ready=lambda: tcp_listening(self.port) and tcp_listening(self.stat_port),
        )
        self.publisher = _Service(
            "ffmpeg-publisher", self._publisher_argv, respawn=True, respawn_delay=republish_delay
        )

    @property
    def error_log(self) -> str:
        return str(self.dir / "logs" / "error.log")

    def _publisher_argv(self) -> list[str]:
        audio_in = _lavfi_audio() if self.audio else []
        audio_out = _AAC if self.audio else []
        return [
            *FFMPEG_QUIET,
            *_lavfi_video(self.width, self.height, self.fps),
            *audio_in,
            *_h264(self.gop),
            *audio_out,
            "-f", "flv", f"rtmp://{HOST}:{self.port}/{self.app}/{self.stream}",
        ]  # fmt: skip

    def url(self, name: str | None = None) -> str:
        """``rtmp://127.0.0.1:PORT/live/NAME`` (NAME: the published stream by default)."""
        return f"rtmp://{HOST}:{self.port}/{self.app}/{name or self.stream}"

    # -- lifecycle
    def start(self, timeout: float = 15.0) -> NginxRtmpServer:
        """Start nginx and the publisher; return once the stream is playable."""
        deadline = time.monotonic() + timeout
        self.nginx.start(timeout)
        if not self.publisher.running:
            self.publisher.start(max(deadline - time.monotonic(), 1.0))
        self.wait_playable(max(deadline - time.monotonic(), 1.0))
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the publisher, then nginx (SIGTERM, SIGKILL after ``timeout`` s)."""
        self.publisher.stop(timeout)
        self.nginx.stop(timeout)

    def close(self) -> None:
        """Stop everything and remove the temp dir."""
        self.stop()
        self._tmp.cleanup()

    def kill(self) -> None:
        """SIGKILL nginx (players and the publisher lose their connections at once)."""
        self.nginx.kill()

    def restart(self, timeout: float = 15.0) -> NginxRtmpServer:
        """Restart nginx on the same port; the publisher reconnects; wait until playable."""
        self.nginx.stop()
        return self.start(timeout)

    def kill_publisher(self) -> None:
        """SIGKILL the publisher, no reconnect: players see the stream end."""
        self.publisher.kill()

    def restart_publisher(self, timeout: float = 10.0) -> None:
        """Start the publisher again and wait until the stream is playable."""
        self.publisher.kill()
        self.publisher.start(timeout)
        self.wait_playable(timeout)

    @property
    def alive(self) -> bool:
        return self.nginx.running

    @property
    def pid(self) -> int | None:
        return self.nginx.pid

    def stat(self) -> ET.Element:
        """nginx-rtmp's ``/stat`` XML, parsed."""
        with urllib.request.urlopen(f"http://{HOST}:{self.stat_port}/stat", timeout=1.0) as r:
            return ET.fromstring(r.read())

    def publishing(self, name: str | None = None) -> bool:
        """True if ``name`` is being published and nginx has its video metadata."""
        try:
            root = self.stat()
        except OSError:
            return False
        for stream in root.iter("stream"):
            if stream.findtext("name") == (name or self.stream):
                return stream.find("publishing") is not None and (
                    stream.find("meta/video") is not None
                )
        return False

    def wait_playable(self, timeout: float = 10.0) -> None:
        """Wait until the stream is published (nginx has its metadata); TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while not self.publishing():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nginx-rtmp: {self.stream} not published after {timeout} s; "
                    f"publisher stderr={self.publisher.last_stderr[-400:]!r}"
                )
            time.sleep(0.05)

    def __enter__(self) -> NginxRtmpServer:
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- MPEG-TS

Transport = Literal["udp", "tcp", "http"]


class FfmpegTsServer(_OneService):
    """MPEG-TS from FFmpeg, live: over UDP, TCP or HTTP.

    The source is a moving test picture encoded to H.264 (+ AAC if ``audio``),
    or ``file`` played in real time with ``-re -c copy`` (looped unless
    ``loop=False``; ``copyts`` keeps the file's timestamps, which FFmpeg
    otherwise makes continuous).

    * ``udp``: FFmpeg sends datagrams to 127.0.0.1:PORT whether or not anyone
      listens; the client opens ``udp://127.0.0.1:PORT`` and so listens.
    * ``tcp``: ``tcp://127.0.0.1:PORT?listen=1``; ``http``: FFmpeg's HTTP
      server with ``-listen 1``. One client per FFmpeg process, the next one
      started as soon as a client leaves (a file starts from its beginning).
    """

    def __init__(
        self,
        transport: Transport = "udp",
        port: int | None = None,
        *,
        file: Path | str | None = None,
        copyts: bool = False,
        loop: bool = True,
        width: int = 640,
        height: int = 480,
        fps: int = 25,
        gop: int = 25,
        audio: bool = False,
    ) -> None:
        if transport not in ("udp", "tcp", "http"):
            raise ValueError(f"transport must be udp, tcp or http, not {transport!r}")
        self.transport = transport
        if port is None:
            port = free_udp_port() if transport == "udp" else free_port()
        self.port = port
        self.file = Path(file) if file is not None else None
        self.copyts, self.loop = copyts, loop
        self.width, self.height, self.fps, self.gop, self.audio = width, height, fps, gop, audio
        listen = transport != "udp"
        self._service = _Service(
            f"ffmpeg-ts-{transport}",
            self._argv,
            ready=(lambda: tcp_listening(self.port)) if listen else None,
            serving=(lambda: tcp_serving(self.port)) if listen else None,
            respawn=listen,
        )

    def _argv(self) -> list[str]:
        if self.file is not None:
            loop = ["-stream_loop", "-1"] if self.loop else []
            copyts = ["-copyts"] if self.copyts else []
            source = [*loop, "-re", "-i", str(self.file), *copyts, "-map", "0", "-c", "copy"]
        else:
            audio_in = _lavfi_audio() if self.audio else []
            audio_out = _AAC if self.audio else []
            source = [
                *_lavfi_video(self.width, self.height, self.fps),
                *audio_in,
                *_h264(self.gop),
                *audio_out,
            ]
        if self.transport == "udp":
            dest = ["-f", "mpegts", f"udp://{HOST}:{self.port}?pkt_size=1316"]
        elif self.transport == "tcp":
            dest = ["-f", "mpegts", f"tcp://{HOST}:{self.port}?listen=1"]
        else:
            dest = ["-f", "mpegts", "-listen", "1", f"http://{HOST}:{self.port}/stream.ts"]
        return [*FFMPEG_QUIET, *source, *dest]

    def url(self) -> str:
        """What a client opens: ``udp://127.0.0.1:PORT``, ``tcp://...`` or ``http://.../stream.ts``."""
        if self.transport == "http":
            return f"http://{HOST}:{self.port}/stream.ts"
        return f"{self.transport}://{HOST}:{self.port}"


class TsReplay:
    """The exact bytes of an MPEG-TS file, paced to last ``seconds``, over TCP or UDP.

    FFmpeg's command line cannot pass broken timestamps through: re-muxing
    fills missing ones, bumps backward DTS to the previous one + 1, and (without
    ``-copyts``) removes jumps and wraps; with ``-copyts -re`` it would sleep
    through a jump. This sender changes nothing: 1316-byte chunks (7 TS
    packets) at an even pace.

    * ``tcp``: every client gets the file from its start, then EOF (or the
      file again, if ``loop``): ``tcp://127.0.0.1:PORT``.
    * ``udp``: one sender, which waits until a socket is bound to the port
      (a client listening on ``udp://127.0.0.1:PORT``), then sends.
    ``connections`` counts TCP clients; ``sent`` the files sent in full.
    """

    CHUNK = 7 * 188

    def __init__(
        self,
        file: Path | str | bytes,
        seconds: float,
        *,
        transport: Literal["tcp", "udp"] = "tcp",
        port: int | None = None,
        loop: bool = False,
    ) -> None:
        self.data = file if isinstance(file, bytes) else Path(file).read_bytes()
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        self.seconds, self.transport, self.loop = seconds, transport, loop
        self.connections = self.sent = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        if transport == "tcp":
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((HOST, port or 0))
            self._listener.listen(8)
            self._listener.settimeout(0.05)
            self.port = self._listener.getsockname()[1]
        elif transport == "udp":
            self.port = port or free_udp_port()
        else:
            raise ValueError(f"transport must be tcp or udp, not {transport!r}")

    def url(self) -> str:
        return f"{self.transport}://{HOST}:{self.port}"

    def start(self) -> TsReplay:
        target = self._accept_loop if self.transport == "tcp" else self._udp_loop
        t = threading.Thread(target=target, daemon=True, name=f"TsReplay:{self.port}")
        self._threads.append(t)
        t.start()
        return self

    def close(self) -> None:
        """Stop sending, close every socket, join the threads (about 1 s at most)."""
        self._stop.set()
        for t in list(self._threads):
            t.join(1.0)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> TsReplay:
        if not self._threads:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _chunks(self) -> Iterable[tuple[float, bytes]]:
        """(send time offset, chunk) for one pass over the file."""
        n = max(1, -(-len(self.data) // self.CHUNK))
        step = self.seconds / n
        for i in range(n):
            yield i * step, self.data[i * self.CHUNK : (i + 1) * self.CHUNK]

    def _send_paced(self, send: Callable[[bytes], object]) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            for offset, chunk in self._chunks():
                delay = t0 + offset - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                send(chunk)
            self.sent += 1
            if not self.loop:
                return

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5.0)
            self._send_paced(conn.sendall)
            conn.shutdown(socket.SHUT_WR)

    def _udp_loop(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not udp_bound(self.port):
                if self._stop.wait(0.01):
                    return
            with contextlib.suppress(OSError):
                self._send_paced(lambda chunk: s.sendto(chunk, (HOST, self.port)))


# --------------------------------------------------------------------------- HLS


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 (the stdlib's own class attribute)
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".m3u8": "application/vnd.apple.mpegurl",
        ".ts": "video/mp2t",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietHttpServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-file is no news


class HlsServer:
    """A live HLS stream: FFmpeg's HLS muxer writing into a temp dir, served over HTTP.

    ``ffmpeg -re -f lavfi -i testsrc2 -c:v libx264 -f hls -hls_time 1
    -hls_list_size 5 -hls_flags delete_segments+temp_file`` writes
    ``stream.m3u8`` and 1 s segments; a stdlib ``ThreadingHTTPServer`` on
    127.0.0.1:PORT serves the dir: ``http://127.0.0.1:PORT/stream.m3u8``.
    ``start()`` returns once the playlist lists ``min_segments`` segments.
    ``kill()`` ends both; ``restart()`` empties the dir and starts both again
    on the same port (the media sequence starts again at 0).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 25,
        segment: float = 1.0,
        list_size: int = 5,
        min_segments: int = 2,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.width, self.height, self.fps = width, height, fps
        self.segment, self.list_size, self.min_segments = segment, list_size, min_segments
        self._tmp = tempfile.TemporaryDirectory(prefix="hls-")
        self.dir = Path(self._tmp.name)
        self.playlist = self.dir / "stream.m3u8"
        self._http: _QuietHttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self.encoder = _Service("ffmpeg-hls", self._argv, ready=self._enough_segments, cwd=self.dir)

    def _argv(self) -> list[str]:
        gop = max(1, round(self.fps * self.segment))
        return [
            *FFMPEG_QUIET,
            *_lavfi_video(self.width, self.height, self.fps),
            *_h264(gop),
            "-f", "hls", "-hls_time", str(self.segment), "-hls_list_size", str(self.list_size),
            "-hls_flags", "delete_segments+temp_file", str(self.playlist),
        ]  # fmt: skip

    def _enough_segments(self) -> bool:
        try:
            text = self.playlist.read_text()
        except OSError:
            return False
        return sum(1 for line in text.splitlines() if line.endswith(".ts")) >= self.min_segments

    def url(self) -> str:
        return f"http://{HOST}:{self.port}/stream.m3u8"

    def start(self, timeout: float = 15.0) -> HlsServer:
        handler = functools.partial(_QuietFiles, directory=str(self.dir))
        self._http = _QuietHttpServer((HOST, self.port), handler)
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._http_thread.start()
        try:
            self.encoder.start(timeout)
        except BaseException:
            self._stop_http()
            raise
        return self

    def _stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(2.0)
            self._http_thread = None

    def stop(self, timeout: float = 5.0) -> None:
        self.encoder.stop(timeout)
        self._stop_http()

    def kill(self) -> None:
        """SIGKILL the encoder and close the HTTP server."""
        self.encoder.kill()
        self._stop_http()

    def restart(self, timeout: float = 15.0) -> HlsServer:
        self.stop()
        for f in self.dir.iterdir():
            f.unlink()
        return self.start(timeout)

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    @property
    def alive(self) -> bool:
        return self.encoder.running and self._http is not None

    def __enter__(self) -> HlsServer:
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- MPEG-TS files


def encode_ts(
    segments: Iterable[tuple[int, int, int]],
    *,
    fps: int = 25,
    gop: int = 25,
    start_pts: int = 0,
) -> bytes:
    """H.264 in MPEG-TS (PyAV, libx264, no B-frames) made of ``(width, height, frames)`` parts.

    Each part is a stream of its own (a new encoder, SPS and keyframe); the
    parts are concatenated byte by byte with timestamps that go on from one
    part to the next, as from a camera whose resolution was changed. The
    picture is a moving gradient with the frame number in the first pixel.
    """
    import av
    import numpy as np

    out_bytes = bytearray()
    pts = start_pts
    for width, height, frames in segments:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mpegts") as out:
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = Fraction(1, fps)
            stream.options = {
                "g": str(gop), "preset": "ultrafast", "tune": "zerolatency", "bf": "0",
            }  # fmt: skip
            x = np.arange(width, dtype=np.uint16)
            for i in range(frames):
                img = np.empty((height, width, 3), np.uint8)
                img[:] = ((x + (pts + i) * 4) % 256).astype(np.uint8)[None, :, None]
                img[0, 0] = (pts + i) % 256
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = pts + i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        out_bytes += buf.getvalue()
        pts += frames
    return bytes(out_bytes)


@functools.lru_cache(maxsize=4)
def _encode_ts_cached(segments: tuple[tuple[int, int, int], ...], fps: int, gop: int) -> bytes:
    return encode_ts(segments, fps=fps, gop=gop)  # the broken kinds share one clip


def make_ts(
    path: Path,
    segments: Iterable[tuple[int, int, int]] = ((320, 240, 100),),
    *,
    fps: int = 25,
    gop: int = 25,
) -> Path:
    """Write ``encode_ts(segments)`` to ``path``; return ``path``."""
    path.write_bytes(encode_ts(segments, fps=fps, gop=gop))
    return path


def make_size_change_ts(
    path: Path,
    first: tuple[int, int] = (320, 240),
    second: tuple[int, int] = (640, 480),
    *,
    seconds_each: float = 2.0,
    fps: int = 25,
) -> Path:
    """An MPEG-TS file that shows ``first`` for ``seconds_each`` s, then ``second``."""
    n = round(seconds_each * fps)
    return make_ts(path, [(*first, n), (*second, n)], fps=fps, gop=fps)


_PTS_MASK = (1 << 33) - 1


def _read_timestamp(b: bytes | memoryview) -> int:
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _timestamp_bytes(prefix: int, value: int) -> bytes:
    v = value & _PTS_MASK  # MPEG-TS timestamps are 33 bits: this is where they wrap
    return bytes(
        [
            (prefix << 4) | ((v >> 30) & 7) << 1 | 1,
            (v >> 22) & 0xFF,
            ((v >> 15) & 0x7F) << 1 | 1,
            (v >> 7) & 0xFF,
            (v & 0x7F) << 1 | 1,
        ]
    )


Edit = Callable[[int, int, int], "tuple[int, int] | None"]


def _video_pes_headers(view: memoryview) -> Iterable[tuple[memoryview, int, int]]:
    """(TS packet, offset of its PES header, PTS_DTS_flags) for each video PES start."""
    for off in range(0, len(view) - 187, 188):
        p = view[off : off + 188]
        if p[0] != 0x47 or not p[1] & 0x40:  # not a packet that starts a PES
            continue
        afc = (p[3] >> 4) & 3
        if not afc & 1:  # no payload
            continue
        pl = 4 + (1 + p[4] if afc & 2 else 0)
        if pl + 19 > 188 or bytes(p[pl : pl + 3]) != b"\0\0\1" or not 0xE0 <= p[pl + 3] <= 0xEF:
            continue
        yield p, pl, p[pl + 7] >> 6


def read_ts_timestamps(data: bytes) -> list[tuple[int | None, int | None]]:
    """The raw (33-bit, 90 kHz) PTS and DTS of each video PES, as written in the bytes.

    None where the PES has no such field; dts is None when the PES has only a PTS.
    """
    found: list[tuple[int | None, int | None]] = []
    with memoryview(data) as view:
        for p, pl, flags in _video_pes_headers(view):
            pts = _read_timestamp(p[pl + 9 : pl + 14]) if flags & 2 else None
            dts = _read_timestamp(p[pl + 14 : pl + 19]) if flags == 3 else None
            found.append((pts, dts))
            p.release()
    return found


def edit_ts_timestamps(data: bytes, edit: Edit) -> bytes:
    """Rewrite the PTS/DTS of each video PES in an MPEG-TS byte string.

    ``edit(index, pts, dts)`` is called for the index-th video PES that has
    timestamps (90 kHz ticks; dts == pts when the PES has no DTS) and returns
    the new ``(pts, dts)``, taken modulo 2**33, or None to remove both (the
    flags are cleared and the 5 or 10 bytes become 0xFF stuffing, which keeps
    the header length). Only the timestamps change: not the PCR, not the
    payload, not the size.
    """
    out = bytearray(data)
    index = 0
    with memoryview(out) as view:
        for p, pl, flags in _video_pes_headers(view):
            if flags & 2:
                pts = _read_timestamp(p[pl + 9 : pl + 14])
                dts = _read_timestamp(p[pl + 14 : pl + 19]) if flags == 3 else pts
                new = edit(index, pts, dts)
                index += 1
                size = 10 if flags == 3 else 5
                if new is None:
                    p[pl + 7] &= 0x3F
                    p[pl + 9 : pl + 9 + size] = b"\xff" * size
                elif flags == 3:
                    p[pl + 9 : pl + 14] = _timestamp_bytes(3, new[0])
                    p[pl + 14 : pl + 19] = _timestamp_bytes(1, new[1])
                else:
                    p[pl + 9 : pl + 14] = _timestamp_bytes(2, new[0])
            p.release()
    return bytes(out)


HOUR = 3600 * 90_000  # in 90 kHz ticks


def _broken_edits(fps: int, frames: int) -> dict[str, Edit]:
    tick = 90_000 // fps
    half = frames // 2

    def wrap_at_half(_i: int, p: int, d: int) -> tuple[int, int]:
        shift = (1 << 33) - half * tick  # frame ``half`` lands on 2**33, i.e. on 0
        return p + shift, d + shift

    return {
        # every 4th frame (from the 3rd on) without PTS and DTS
        "missing": lambda i, p, d: None if i % 4 == 2 else (p, d),
        # every 10th frame (from the 6th on) stamped 5 frames earlier: back, then on
        "nonmonotonic": lambda i, p, d: (p - 5 * tick, d - 5 * tick) if i % 10 == 5 else (p, d),
        # from the middle frame on, everything one hour later
        "jump": lambda i, p, d: (p + HOUR, d + HOUR) if i >= half else (p, d),
        # the 33-bit clock wraps to 0 at the middle frame
        "wrap": wrap_at_half,
        # the first frame stamped one hour later than the rest
        "bad_first": lambda i, p, d: (p + HOUR, d + HOUR) if i == 0 else (p, d),
    }


BROKEN_KINDS = ("missing", "nonmonotonic", "jump", "wrap", "bad_first")


def make_broken_ts(
    path: Path, kind: str, *, width: int = 320, height: int = 240, fps: int = 25, frames: int = 100
) -> Path:
    """An H.264 MPEG-TS file (``frames`` at ``fps``) whose video timestamps are broken.

    ``kind`` (one of ``BROKEN_KINDS``): ``missing`` (every 4th PES has no
    PTS/DTS), ``nonmonotonic`` (every 10th goes 5 frames back), ``jump``
    (+1 h from the middle on), ``wrap`` (the 33-bit clock wraps to 0 in the
    middle), ``bad_first`` (the first frame 1 h ahead of the rest). The
    frames themselves are fine. Serve it with ``TsReplay`` to keep it broken.
    """
    edits = _broken_edits(fps, frames)
    if kind not in edits:
        raise ValueError(f"kind must be one of {', '.join(BROKEN_KINDS)}, not {kind!r}")
    data = _encode_ts_cached(((width, height, frames),), fps, fps)
    path.write_bytes(edit_ts_timestamps(data, edits[kind]))
    return path
