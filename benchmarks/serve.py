"""The live viewer under load: server CPU with 1 and 10 viewers, decode-to-wire latency.

    python benchmarks/serve.py                # 3 runs of 8 s windows, about 2 minutes
    python benchmarks/serve.py --quick        # 1 run of 4 s windows
    python benchmarks/serve.py --repeat 5 --json /tmp/serve.json

One 1280x720@30 H.264 camera (the test suite's gst-rtsp-server on loopback),
served by ``python -m camerapump.serve URL --fps 10 --width 640`` as a child
process, watched by 0, 1 and 10 MJPEG viewers (threads of this process reading
raw sockets).  For each number of viewers, over a window:

* the server process's CPU, in % of one core (utime + stime from /proc);
* decode to wire: for every part received, ``time.monotonic()`` when its last
  byte arrived minus its ``X-Captured-At`` (the frame's ``captured_at``, taken
  on the decode thread when decoding finished).  Both processes read the same
  CLOCK_MONOTONIC, so this is the time from decoded picture to the JPEG
  received by a client on this machine: conversion, encoding, the loop, the
  socket;
* JPEGs encoded and frames converted per second (the server's own counters),
  and JPEGs received per second per viewer.

The order of the three cases rotates from run to run; the table gives the
median over the runs (and their min to max).  Target: the server's CPU with 10
viewers at most 1.2x that with 1.  Nothing here fails on a number: the machine
is shared and noisy; read the "machine" column before believing one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import anyio  # noqa: E402
import uvicorn  # noqa: E402
from _common import CpuMeter, machine_info, percentile, summary  # noqa: E402

import camerapump as cp  # noqa: E402
import camerapump.serve  # noqa: E402
from netfaults import RtspServer  # noqa: E402

CASES = (0, 1, 10)
FPS = 10
WIDTH = 640


class Viewer(threading.Thread):
    """One MJPEG client: reads parts, notes each one's decode-to-arrival latency."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.halt = threading.Event()
        self.arrivals: list[tuple[float, float]] = []  # (arrived at, latency s)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def _read(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"GET /cameras/0/mjpeg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            body = _Dechunked(sock)
            buffer = bytearray()
            while not self.halt.is_set():
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    buffer += body.read()
                    continue
                head = bytes(buffer[:head_end]).decode("latin-1")
                length = int(_header(head, "Content-Length"))
                captured = float(_header(head, "X-Captured-At"))
                while len(buffer) < head_end + 4 + length:
                    buffer += body.read()
                now = time.monotonic()
                self.arrivals.append((now, now - captured))
                del buffer[: head_end + 4 + length]


def _header(head: str, name: str) -> str:
    found = re.search(rf"{name}: ([^\r\n]+)", head)
    if found is None:
        raise ValueError(f"a part without {name}: {head!r}")
    return found.group(1)


class _Dechunked:
    """The body of a chunked HTTP/1.1 response, read from a socket as it comes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._raw = bytearray()
        while b"\r\n\r\n" not in self._raw:
            self._more()
        head, _, rest = bytes(self._raw).partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" not in head.lower():
            raise ValueError("expected a chunked response")
        self._raw = bytearray(rest)

    def _more(self) -> None:
        chunk = self._sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server ended the stream")
        self._raw += chunk

    def read(self) -> bytes:
        """The next chunk's data."""
        while b"\r\n" not in self._raw:
            self._more()
        line_end = self._raw.index(b"\r\n")
        size = int(bytes(self._raw[:line_end]).split(b";")[0], 16)
        while len(self._raw) < line_end + 2 + size + 2:
            self._more()
        data = bytes(self._raw[line_end + 2 : line_end + 2 + size])
        del self._raw[: line_end + 2 + size + 2]
        if not size:
            raise ConnectionError("the server ended the stream")
        return data


class Served:
    """``python -m camerapump.serve`` as a child process."""

    OPTIONS = ("--fps", str(FPS), "--width", str(WIDTH))

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camerapump.serve", url, "--port", "0", *self.OPTIONS],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode()
            found = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
            if found:
                self.port = int(found.group(1))
                return
            if not line:
                break
        self.proc.kill()
        raise RuntimeError("the server did not start")

    def counters(self) -> dict[str, float]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(
                b"GET /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        camera = json.loads(data.split(b"\r\n\r\n", 1)[1])["cameras"][0]
        statistics = camera["statistics"]
        return {
            "at": time.monotonic(),
            "encoded": camera["jpegs_encoded"],
            "converted": statistics["frames_converted"],
            "decoded": statistics["frames_decoded"],
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(served: Served, viewers: int, settle: float, window: float) -> dict[str, float]:
    """One case: ``viewers`` clients, ``settle`` s to start, then ``window`` s measured."""
    clients = [Viewer(served.port) for _ in range(viewers)]
    for client in clients:
        client.start()
    time.sleep(settle)
    before = served.counters()
    meter = CpuMeter(pids=[served.proc.pid]).start()
    started = time.monotonic()
    time.sleep(window)
    cpu = meter.stop()
    ended = time.monotonic()
    after = served.counters()
    for client in clients:
        client.halt.set()
    for client in clients:
        client.join(5)
        if client.error is not None:
            raise RuntimeError(f"a viewer failed: {client.error!r}")
    latencies = [lat for client in clients for at, lat in client.arrivals if started <= at <= ended]
    span = after["at"] - before["at"]
    received = [sum(started <= at <= ended for at, _ in c.arrivals) for c in clients]
    return {
        "viewers": float(viewers),
        "server_cpu_pct": cpu["others_pct"],
        "machine_pct": cpu["machine_pct"],
        "encoded_per_s": (after["encoded"] - before["encoded"]) / span,
        "converted_per_s": (after["converted"] - before["converted"]) / span,
        "decoded_per_s": (after["decoded"] - before["decoded"]) / span,
        "received_per_viewer_per_s": (sum(received) / len(received) / window) if received else 0,
        "latency_p50_ms": percentile(latencies, 50) * 1000,
        "latency_p99_ms": percentile(latencies, 99) * 1000,
        "parts": float(len(latencies)),
    }


def watch_only(port: int, viewers: int, seconds: float) -> int:
    """The viewers of the loop-lag phase, in a process of their own (``--viewers-for``)."""
    clients = [Viewer(port) for _ in range(viewers)]
    for client in clients:
        client.start()
    time.sleep(seconds)
    for client in clients:
        client.halt.set()
    return 0


async def loop_lag(url: str, viewers: int, seconds: float) -> dict[str, float]:
    """The app in this process (uvicorn on a pre-bound socket), ``viewers`` in a child
    process: how late a 5 ms sleep on the event loop wakes up, while they watch."""

    class Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async with cp.open_pump(cp.Source.rtsp(url)) as pump:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        server = Quiet(
            uvicorn.Config(
                camerapump.serve.app([pump], fps=FPS, width=WIDTH),
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
        lags: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:  # noqa: ASYNC110 - uvicorn has a flag, not an event
                await anyio.sleep(0.01)
            command = [sys.executable, __file__, "--viewers-for", str(port), str(viewers)]
            async with await anyio.open_process(
                [*command, str(seconds + 3)], cwd=ROOT, stdout=None, stderr=None
            ) as child:
                await anyio.sleep(2.0)
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    asked = time.monotonic()
                    await anyio.sleep(0.005)
                    lags.append(time.monotonic() - asked - 0.005)
                await child.wait()
            server.should_exit = True
        sock.close()
    return {
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": max(lags) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per case")
    parser.add_argument("--quick", action="store_true", help="1 run of 4 s windows")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--viewers-for", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.viewers_for:
        port, viewers, seconds = args.viewers_for
        return watch_only(int(port), int(viewers), float(seconds))
    repeat, window = (1, 4.0) if args.quick else (args.repeat, args.window)

    runs: list[dict[int, dict[str, float]]] = []
    with RtspServer(width=1280, height=720, fps=30) as camera:
        for run in range(repeat):
            served = Served(camera.url())
            try:
                time.sleep(2.0)  # the session settles (first keyframe, probe)
                order = CASES[run % len(CASES) :] + CASES[: run % len(CASES)]
                results = {}
                for viewers in order:
                    results[viewers] = measure(served, viewers, settle=2.0, window=window)
                    time.sleep(1.0)
                runs.append(results)
            finally:
                served.stop()
            lag = asyncio.run(loop_lag(camera.url(), 10, window))
            results[-1] = lag
            one = results[1]["server_cpu_pct"]
            print(
                f"run {run + 1}/{repeat}: server CPU "
                + ", ".join(f"{v} viewers {results[v]['server_cpu_pct']:.1f} %" for v in CASES)
                + f"; 10/1 = {results[10]['server_cpu_pct'] / one:.2f}"
                + f"; loop lag p99 {lag['lag_p99_ms']:.1f} ms",
                file=sys.stderr,
            )

    def figure(viewers: int, key: str) -> dict[str, float]:
        return summary([r[viewers][key] for r in runs])

    ratio = summary([r[10]["server_cpu_pct"] / r[1]["server_cpu_pct"] for r in runs])
    rows = [
        ("server CPU, % of one core", "server_cpu_pct", "{:.1f}"),
        ("machine busy, % (all cores)", "machine_pct", "{:.0f}"),
        ("frames decoded /s", "decoded_per_s", "{:.1f}"),
        ("frames converted /s", "converted_per_s", "{:.1f}"),
        ("JPEGs encoded /s", "encoded_per_s", "{:.1f}"),
        ("JPEGs received /s per viewer", "received_per_viewer_per_s", "{:.1f}"),
        ("decode to wire p50, ms", "latency_p50_ms", "{:.1f}"),
        ("decode to wire p99, ms", "latency_p99_ms", "{:.1f}"),
    ]
    print(f"\n1280x720@30 H.264 RTSP served at {FPS} fps {WIDTH} wide; median of {repeat} runs")
    print(f"of {window:g} s (min-max)\n")
    print("| figure | " + " | ".join(f"{v} viewers" for v in CASES) + " |")
    print("|---|" + "---|" * len(CASES))
    for label, key, fmt in rows:
        cells = []
        for viewers in CASES:
            s = figure(viewers, key)
            if s["median"] != s["median"]:
                cells.append("-")
                continue
            text = fmt.format(s["median"])
            if len(runs) > 1:
                text += f" ({fmt.format(s['min'])}-{fmt.format(s['max'])})"
            cells.append(text)
        print(f"| {label} | " + " | ".join(cells) + " |")
    for key, label in (("lag_p50_ms", "p50"), ("lag_p99_ms", "p99"), ("lag_max_ms", "max")):
        s = summary([r[-1][key] for r in runs])
        extra = f" ({s['min']:.1f}-{s['max']:.1f})" if len(runs) > 1 else ""
        print(
            f"event-loop lag with 10 viewers (app in-process), {label}: {s['median']:.1f} ms{extra}"
        )
    spread = f" ({ratio['min']:.2f}-{ratio['max']:.2f})" if len(runs) > 1 else ""
    met = "met" if ratio["median"] <= 1.2 else "NOT met"
    print(
        f"\nserver CPU, 10 viewers / 1 viewer: {ratio['median']:.2f}{spread} (target <= 1.2: {met})"
    )
    if args.json:
        record: dict[str, Any] = {
            "machine": machine_info(),
            "runs": [{str(k): v for k, v in r.items()} for r in runs],
            "ratio_10_to_1": ratio,
        }
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
