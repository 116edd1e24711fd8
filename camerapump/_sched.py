"""Decode threads give way to the event loop: a long EEVDF slice on Linux 6.12 and newer.

Decoding is throughput work; the event loop (and any other thread of the
application) is latency work.  Linux's EEVDF scheduler (6.6 and newer) lets a
thread say which it is without changing its share of the CPU: since 6.12 a
SCHED_OTHER thread may ask for a custom time slice (``sched_setattr`` with
``sched_runtime``, no privilege needed).  A waking thread whose slice is shorter
than the running one's preempts it, and a longer slice puts a thread's deadline
later, so a thread with the default slice (1.4 ms on the 2-core machine this was
measured on) gets a core first when it wakes.  The weight, and so the CPU share,
is unchanged: unlike ``nice`` or SCHED_IDLE a decode thread is never starved,
only asked to wait its turn behind a thread that has just woken up.

Measured (2 cores, 16 plain PyAV threads decoding 720p30 RTSP, 4 runs each): a
5 ms asyncio ticker in another process had a p99 lateness of 6.7 to 7.1 ms with
default slices and 3.3 to 4.8 ms with the decoders at 10 ms; in the decoders'
own process 7.9 to 8.2 ms against 4.9 to 5.3 ms (runs with little hypervisor
steal time).

The slice is set by the decode thread on itself before FFmpeg starts the
decoder's own threads, which inherit it.  Elsewhere (macOS, Windows, older
kernels, an architecture whose syscall numbers are not known here, a thread that
is not SCHED_OTHER or SCHED_BATCH) nothing happens.  ``CAMERAPUMP_DECODE_SLICE_MS``
in the environment sets another slice (0.1 to 100 ms; the kernel clamps to that
range) or ``0`` to leave the threads alone.

Thread ownership: none; :func:`yield_to_latency_work` acts on the calling thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys

__all__ = ["DEFAULT_SLICE_MS", "slice_ms", "thread_slice_ns", "yield_to_latency_work"]

logger = logging.getLogger("camerapump")

#: The decode threads' slice unless ``CAMERAPUMP_DECODE_SLICE_MS`` says otherwise.
DEFAULT_SLICE_MS = 10.0
_ENV = "CAMERAPUMP_DECODE_SLICE_MS"
# (sched_setattr, sched_getattr) by machine; the generic table covers arm64 and riscv64.
_SYSCALLS = {
    "x86_64": (314, 315),
    "amd64": (314, 315),
    "aarch64": (274, 275),
    "arm64": (274, 275),
    "riscv64": (274, 275),
}
_SCHED_OTHER, _SCHED_BATCH = 0, 3


class _SchedAttr(ctypes.Structure):
    # struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes: no utilisation clamps).
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def slice_ms(environ: dict[str, str] | None = None) -> float:
    """The slice asked for, in ms: the environment's, or :data:`DEFAULT_SLICE_MS`; 0 is off.

    A value that is not a number, or is negative, is ignored with a warning.
    """
    raw = (os.environ if environ is None else environ).get(_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_SLICE_MS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        logger.warning("%s=%r is not a number of milliseconds >= 0; ignored", _ENV, raw)
        return DEFAULT_SLICE_MS
    return value


def _libc() -> tuple[ctypes.CDLL, int, int] | None:
    if not sys.platform.startswith("linux"):
        return None
    numbers = _SYSCALLS.get(platform.machine().lower())
    if numbers is None:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a Linux without a dynamic libc
        return None
    return libc, numbers[0], numbers[1]


def _get(libc: ctypes.CDLL, number: int) -> _SchedAttr | None:
    attr = _SchedAttr()
    if libc.syscall(number, 0, ctypes.byref(attr), ctypes.sizeof(attr), 0) != 0:
        return None
    return attr


def thread_slice_ns() -> int | None:
    """The calling thread's EEVDF slice in nanoseconds, or None where it cannot be read.

    Kernels before 6.12 report 0 for an ordinary thread.
    """
    found = _libc()
    if found is None:
        return None
    attr = _get(found[0], found[2])
    return None if attr is None else int(attr.sched_runtime)


def yield_to_latency_work(ms: float | None = None) -> bool:
    """Give the calling thread a long slice (``ms``, default :func:`slice_ms`); True if it took.

    Never raises: where the kernel cannot do it, the thread stays as it was.
    """
    ms = slice_ms() if ms is None else ms
    if ms <= 0.0:
        return False
    found = _libc()
    if found is None:
        return False
    libc, set_number, get_number = found
    attr = _get(libc, get_number)
    if attr is None or attr.sched_policy not in (_SCHED_OTHER, _SCHED_BATCH):
        return False
    wanted = int(min(max(ms, 0.1), 100.0) * 1_000_000)
    new = _SchedAttr(
        size=ctypes.sizeof(_SchedAttr),
        sched_policy=attr.sched_policy,
        sched_nice=attr.sched_nice,
        sched_runtime=wanted,
    )
    if libc.syscall(set_number, 0, ctypes.byref(new), 0) != 0:
        logger.debug("sched_setattr: %s", os.strerror(ctypes.get_errno()))
        return False
    after = _get(libc, get_number)
    # Before 6.12 the call succeeds and the kernel ignores sched_runtime (it reads back 0).
    return after is not None and int(after.sched_runtime) == wanted
