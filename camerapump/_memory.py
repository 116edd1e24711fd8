"""Freed pictures stay in the process for the next ones (glibc's allocator, Linux).

Every converted picture is a new allocation of its full size (PyAV's reformat
allocates the frame it writes into: 2.7 MB for 720p bgr24), freed wherever its
last reference goes, usually on the event loop a frame or two later.  glibc
serves blocks of that size from an arena's heap once it has seen one freed, and
by its own dynamic rule gives the top of a heap back to the kernel as soon as
twice the largest freed block lies free there (5.5 MB after a 720p picture).
With a few pictures in flight per arena, which is the case with more threads
than arenas (glibc makes at most 8 per core: 16 pumps on 2 cores share them) or
with ``MALLOC_ARENA_MAX`` set low, as container images often do, the heap
shrinks and grows again with every picture: the kernel zeroes the memory and
faults it back in page by page.

Measured (2 cores, 16 pumps of 720p30 RTSP, full-size bgr24 frames): 56,000
page faults a second, and 1.40-1.56 ms of decode-thread CPU per frame against
1.12-1.23 ms with the thresholds below (plain PyAV threads, which free each
picture at once on their own thread: 1.04 ms); one pump of the 720p test source
with ``MALLOC_ARENA_MAX=1`` and a consumer holding six frames: 245 page faults
per frame, none with them.  Peak RSS at 16 pumps: 285-287 MB before, 289-292 MB
after.

So when the first decode thread starts, camerapump fixes glibc's thresholds
where its dynamic rule ends on a 64-bit system: blocks under 32 MiB come from
the heap (``M_MMAP_THRESHOLD``), and a heap keeps up to 64 MiB free at its top
(``M_TRIM_THRESHOLD``).  Nothing is done where glibc is not the C library, on
32-bit builds, when the environment sets glibc's malloc thresholds itself
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
``MALLOC_MMAP_MAX_``, or ``glibc.malloc`` tunables in ``GLIBC_TUNABLES``: that
choice stands), or with ``CAMERAPUMP_MALLOC_TUNING=0``.

Thread ownership: none; :func:`keep_freed_pictures` may be called from any
thread, and acts once per process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Mapping

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_pictures", "tuning_wanted"]

logger = logging.getLogger("camerapump")

#: Blocks smaller than this come from an arena's heap (glibc's ceiling on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: A heap is trimmed only once this much lies free at its top (twice the above,
#: as glibc's own rule pairs them).
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

_ENV = "CAMERAPUMP_MALLOC_TUNING"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_ENV = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)
_lock = threading.Lock()
_done = threading.Event()  # set once the first call has decided


def tuning_wanted(environ: Mapping[str, str], libc: str | None, word_bits: int) -> str | None:
    """Why the thresholds are left alone, or None to set them.

    Args:
        environ: The process environment.
        libc: ``os.confstr("CS_GNU_LIBC_VERSION")``: ``"glibc 2.36"``, or None.
        word_bits: 64 on a 64-bit build.
    """
    if environ.get(_ENV, "").strip() == "0":
        return f"{_ENV}=0"
    if not libc or not libc.startswith("glibc"):
        return "the C library is not glibc"
    if word_bits < 64:
        return "a 32-bit build"
    for name in _GLIBC_ENV:
        if name in environ:
            return f"{name} is set"
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets glibc.malloc"
    return None


def _libc_version() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not a glibc system (or no confstr)
        return None


def keep_freed_pictures() -> bool:
    """Set glibc's malloc thresholds (see the module's docstring) once per process.

    Returns:
        Whether this call set them.
    """
    with _lock:
        if _done.is_set():
            return False
        _done.set()
        word_bits = 64 if sys.maxsize > 2**32 else 32
        reason = tuning_wanted(os.environ, _libc_version(), word_bits)
        if reason is not None:
            logger.debug("malloc thresholds left alone: %s", reason)
            return False
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            logger.debug("malloc thresholds left alone: no mallopt")
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        ok = int(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) == 1
        ok = int(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) == 1 and ok
        logger.debug(
            "malloc thresholds %s: mmap %d, trim %d",
            "set" if ok else "not (all) accepted",
            MMAP_THRESHOLD,
            TRIM_THRESHOLD,
        )
        return ok
