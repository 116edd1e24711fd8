"""The parent's side of the measurements: child processes, code trees, other tenants, the floor.

* :class:`Child` runs ``_child.py`` with ``PYTHONPATH`` set to one camerapump tree
  and talks to it in JSON lines.
* :func:`before_tree` extracts the code before the rewrite (``git archive``, no
  worktree, nothing left in the repository's metadata).
* :class:`TenantMeter` tells the CPU this suite used from what the rest of the
  machine used meanwhile (other people's test suites on a shared machine).
* :func:`ffmpeg_floor` decodes the same stream with ``ffmpeg -f null``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from _common import ROOT

CHILD = Path(__file__).resolve().with_name("_child.py")
#: The code before the rewrite (plain asyncio, every frame converted at full size).
BEFORE_COMMIT = "df0af37"
_TICK = os.sysconf("SC_CLK_TCK")

Result = dict[str, Any]


class ChildError(RuntimeError):
    """A child failed, timed out or died; the message carries the end of its stderr."""


class Child:
    """``_child.py`` in a process of its own, importing camerapump from ``tree``."""

    def __init__(
        self, tree: Path, log_dir: Path, name: str, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        env = dict(os.environ, **(env or {}), PYTHONPATH=str(tree), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"child-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def send(self, spec: Result) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()

    def _next(self, deadline: float) -> str:
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ChildError(f"{self.name}: no answer in time{self._tail()}") from None
        if line is None:
            raise ChildError(f"{self.name}: exited ({self.proc.poll()}){self._tail()}")
        return line

    def wait_event(self, name: str, timeout: float) -> None:
        """Wait for ``EVENT name``."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(deadline)
            if line == f"EVENT {name}":
                return
            if line.startswith("RESULT "):
                raise ChildError(f"{self.name}: finished before {name}: {line[:300]}")

    def result(self, timeout: float) -> Result:
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(deadline)
            if line.startswith("RESULT "):
                result: Result = json.loads(line[7:])
                if "error" in result:
                    raise ChildError(f"{self.name}: {result['error']}\n{result.get('traceback')}")
                return result

    def call(self, spec: Result, timeout: float) -> Result:
        self.send(spec)
        return self.result(timeout)

    def _tail(self) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
        return f"; stderr: {text}" if text.strip() else ""

    def close(self) -> None:
        """End the child (it exits when stdin closes); kill it if it does not.  Never raises."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                # A process that grew large can take a while to be torn down.
                self.proc.wait(60.0)
            except subprocess.TimeoutExpired:
                print(f"child {self.name} (pid {self.pid}) did not die", file=sys.stderr)
        self._log.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def children(
    trees: dict[str, Path], log_dir: Path, names: dict[str, str]
) -> Iterator[dict[str, Child]]:
    """One child per variant: ``names`` maps a variant to the tree it imports."""
    made: dict[str, Child] = {}
    try:
        for variant, tree in names.items():
            made[variant] = Child(trees[tree], log_dir, variant)
        yield made
    finally:
        for child in made.values():
            child.close()


def before_tree(dest: Path) -> Path | None:
    """camerapump as of :data:`BEFORE_COMMIT` under ``dest``, or None (not a git checkout)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BEFORE_COMMIT, "camerapump"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(dest, filter="data")
    return dest


# --------------------------------------------------------------------------- other tenants


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, name, CPU seconds) for every process we may read."""
    table: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, rest = raw.rpartition(")")
        name = head.split("(", 1)[1] if "(" in head else "?"
        fields = rest.split()
        try:
            table[int(entry.name)] = (
                int(fields[1]),
                name,
                (int(fields[11]) + int(fields[12])) / _TICK,
            )
        except (IndexError, ValueError):
            continue
    return table


def _descendants(table: dict[int, tuple[int, str, float]], root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = {root}, [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _machine_busy_s() -> float:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (parts[0] + parts[1] + parts[2] + parts[5] + parts[6]) / _TICK


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class TenantMeter:
    """CPU of this suite (this process and its descendants) against the whole machine."""

    def start(self) -> TenantMeter:
        self.t0 = time.monotonic()
        self.load0 = loadavg()
        self.table0 = _proc_table()
        self.busy0 = _machine_busy_s()
        times = os.times()
        self.reaped0 = times.children_user + times.children_system
        return self

    def stop(self) -> Result:
        wall = max(time.monotonic() - self.t0, 1e-9)
        busy = _machine_busy_s() - self.busy0
        table = _proc_table()
        ours = _descendants(table, os.getpid()) | _descendants(self.table0, os.getpid())
        times = os.times()
        ours_cpu = times.children_user + times.children_system - self.reaped0
        others: dict[str, float] = {}
        for pid, (_, name, cpu) in table.items():
            delta = cpu - (self.table0[pid][2] if pid in self.table0 else 0.0)
            if pid in ours:
                ours_cpu += delta
            elif delta > 0:
                others[name] = others.get(name, 0.0) + delta
        top = sorted(others.items(), key=lambda kv: -kv[1])[:5]
        cores = os.cpu_count() or 1
        return {
            "wall_s": wall,
            "loadavg_start": self.load0,
            "loadavg_end": loadavg(),
            "machine_pct": 100.0 * busy / (wall * cores),
            "suite_pct": 100.0 * ours_cpu / (wall * cores),
            # What ran on the machine that is not this suite (short-lived processes
            # of other tenants included: they are in the machine total).
            "others_pct": 100.0 * max(0.0, busy - ours_cpu) / (wall * cores),
            "others_top": [(name, round(100.0 * cpu / wall, 1)) for name, cpu in top],
        }


# --------------------------------------------------------------------------- ffmpeg floor


def ffmpeg_floor(url: str, n: int, seconds: float, stagger: float = 0.15) -> Result:
    """``ffmpeg -f null`` decoding ``url`` ``n`` times: CPU per stream (cores), over ``seconds``.

    FFmpeg's own threading defaults; ``-f null`` takes the decoded pictures as they
    are (no pixel conversion).  The practical floor of decoding the stream at all.
    """
    exe = shutil.which("ffmpeg")
    if exe is None:
        return {"error": "ffmpeg not found"}
    procs: list[subprocess.Popen[bytes]] = []
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp"]
    cmd += ["-i", url, "-an", "-f", "null", "-"]
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            time.sleep(stagger)
        time.sleep(2.0)  # opened, probed, past the first burst
        alive = [p for p in procs if p.poll() is None]
        start = {p.pid: _pid_cpu(p.pid) for p in alive}
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        used = sum(_pid_cpu(p.pid) - start[p.pid] for p in alive if p.poll() is None)
        running = sum(p.poll() is None for p in alive)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(5.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5.0)
    errors = [p.stderr.read().decode(errors="replace")[-300:] for p in procs if p.stderr]
    errors = [e for e in errors if e.strip()]
    for p in procs:
        if p.stderr:
            p.stderr.close()
    if running < n:
        return {"error": f"only {running} of {n} ffmpeg decoders ran", "stderr": errors}
    return {"cpu_per_s": used / wall, "cpu_per_stream": used / wall / n, "wall_s": wall}


def _pid_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return float("nan")
