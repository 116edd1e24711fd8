"""Hotplug: an async iterator of cameras arriving and leaving.

On Linux the watcher is event-driven: an inotify watch (through ctypes, no
native dependency) on the device directory wakes it when a ``video*`` node is
created, deleted or changes permissions, and the inotify fd is read from the
event loop with ``loop.add_reader``, never blocking it.  Elsewhere, or when
inotify cannot be set up, it polls.  Either way, what is reported comes from
diffing two enumerations (run in a worker thread, since opening a device can
take a moment), so a burst of filesystem events yields one clean answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import struct
import sys
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import anyio
import anyio.to_thread

from ._config import is_positive_number
from ._devices import DeviceInfo, _list_devices, _System
from ._handoff import current_backend

__all__ = [
    "DeviceAdded",
    "DeviceEvent",
    "DeviceRemoved",
    "DeviceWatcher",
    "parse_inotify_events",
    "watch_devices",
]

logger = logging.getLogger("camerapump")

# <sys/inotify.h>
IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_WATCH_MASK = IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


@dataclass(frozen=True, slots=True)
class DeviceAdded:
    """A camera appeared.

    Attributes:
        info: The camera, as :func:`~camerapump.list_devices` describes it.
    """

    info: DeviceInfo


@dataclass(frozen=True, slots=True)
class DeviceRemoved:
    """A camera went away.

    Attributes:
        info: The camera as it was last seen (its path no longer opens it).
    """

    info: DeviceInfo


DeviceEvent = DeviceAdded | DeviceRemoved
Enumerator = Callable[[], Iterable[DeviceInfo]]


def parse_inotify_events(data: bytes) -> list[tuple[int, str]]:
    """Split what was read from an inotify fd into ``(mask, name)`` pairs."""
    events = []
    offset = 0
    while offset + _EVENT_HEADER.size <= len(data):
        _wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, offset)
        offset += _EVENT_HEADER.size
        raw = data[offset : offset + length]
        offset += length
        events.append((mask, os.fsdecode(raw.split(b"\0", 1)[0])))
    return events


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_init1.restype = ctypes.c_int
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_add_watch.restype = ctypes.c_int
    return libc


def _inotify_open(directory: str) -> int:
    """An inotify fd (non-blocking, close-on-exec) watching ``directory``; OSError if not."""
    try:
        libc = _libc()
        init1 = libc.inotify_init1
        add_watch = libc.inotify_add_watch
    except (OSError, AttributeError) as exc:
        raise OSError(f"inotify is not available: {exc}") from exc
    fd = int(init1(IN_NONBLOCK | IN_CLOEXEC))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    if add_watch(fd, os.fsencode(directory), _WATCH_MASK) < 0:
        code = ctypes.get_errno()
        os.close(fd)
        raise OSError(code, os.strerror(code), directory)
    return fd


def _release(loop: asyncio.AbstractEventLoop | None, fd: int) -> None:
    if loop is not None and not loop.is_closed():
        loop.remove_reader(fd)
    with contextlib.suppress(OSError):
        os.close(fd)


def _wake_watcher(ref: weakref.ref[DeviceWatcher]) -> None:
    watcher = ref()
    if watcher is not None:
        watcher._on_readable()


class DeviceWatcher:
    """The async iterator :func:`watch_devices` returns; also an async context manager.

    Iterating yields :class:`DeviceAdded` and :class:`DeviceRemoved`.  Closing it
    (``aclose()``, leaving ``async with``, breaking out of ``async for``, or
    cancelling the task that waits on it) removes the loop reader and closes
    the inotify fd; the iteration then ends with ``StopAsyncIteration``.
    Errors of the enumerator end the iteration too, raised to the caller.
    """

    def __init__(
        self,
        *,
        include_present: bool,
        poll_interval: float,
        dev_dir: str,
        enumerator: Enumerator | None,
        use_inotify: bool,
    ) -> None:
        if not is_positive_number(poll_interval):
            raise ValueError(
                f"poll_interval must be a positive number of seconds, not {poll_interval!r}"
            )
        self._include_present = include_present
        self._poll_interval = float(poll_interval)
        self._dev_dir = dev_dir
        self._enumerator: Enumerator = enumerator or functools.partial(
            _list_devices, _System(dev_dir=dev_dir)
        )
        self._use_inotify = use_inotify
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: anyio.Event | None = None
        self._queue: deque[DeviceEvent] = deque()
        self._known: dict[str, DeviceInfo] = {}
        self._started = False
        self._closed = False
        self._method: Literal["inotify", "poll"] | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def method(self) -> Literal["inotify", "poll"] | None:
        """``"inotify"`` or ``"poll"`` once started; ``None`` before."""
        return self._method

    @property
    def closed(self) -> bool:
        """True once the watcher was closed."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else (self._method or "not started")
        return f"<DeviceWatcher {self._dev_dir} {state} devices={len(self._known)}>"

    def __aiter__(self) -> DeviceWatcher:
        return self

    async def __anext__(self) -> DeviceEvent:
        if self._closed:
            raise StopAsyncIteration
        try:
            if not self._started:
                await self._start()
            while not self._queue and not self._closed:
                await self._wait_for_change()
                # aclose() from another task may have run during either await.
                if self._is_closed():
                    break
                devices = list(await anyio.to_thread.run_sync(self._enumerator))
                if not self._is_closed():
                    self._diff(devices)
        except BaseException:
            # Cancelled or failed: like an async generator, a watcher that raised is done.
            self._close_now()
            raise
        if self._closed or not self._queue:  # closed while waiting
            raise StopAsyncIteration
        return self._queue.popleft()

    async def __aenter__(self) -> DeviceWatcher:
        if not self._started and not self._closed:
            try:
                await self._start()
            except BaseException:
                self._close_now()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop watching: remove the reader, close the fd, end any waiting iteration."""
        self._close_now()

    def __del__(self) -> None:
        # `break` out of `async for` drops the last reference: clean up right here.
        self._close_now()

    # -- internals ------------------------------------------------------------------------

    async def _start(self) -> None:
        self._started = True
        self._wake = anyio.Event()
        self._method = "poll"
        # The inotify fd is read by asyncio's add_reader; under trio the watcher polls.
        if current_backend() == "asyncio":
            self._loop = asyncio.get_running_loop()
        if self._loop is not None and self._use_inotify and sys.platform.startswith("linux"):
            try:
                # Watch first, list second: a camera that arrives in between is not missed.
                fd = _inotify_open(self._dev_dir)
            except OSError as exc:
                logger.debug("inotify on %s failed (%s); polling instead", self._dev_dir, exc)
            else:
                self._fd = fd
                # A weak reference: the loop must not keep an abandoned watcher alive,
                # or `break` would never reach __del__ and the fd would leak.
                self._loop.add_reader(fd, _wake_watcher, weakref.ref(self))
                self._method = "inotify"
        # The worker thread gets the enumerator only, never self: a thread that
        # outlives the call must not hold the watcher (its __del__ would run there).
        devices = list(await anyio.to_thread.run_sync(self._enumerator))
        self._known = {d.path: d for d in devices}
        if self._include_present:
            self._queue.extend(DeviceAdded(d) for d in devices)

    async def _wait_for_change(self) -> None:
        assert self._wake is not None  # set by _start
        if self._method == "inotify":
            await self._wake.wait()
        else:
            with anyio.move_on_after(self._poll_interval):
                await self._wake.wait()  # set early by aclose()
        self._wake = anyio.Event()

    def _is_closed(self) -> bool:
        return self._closed

    def _on_readable(self) -> None:
        relevant = False
        fd = self._fd
        while fd is not None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError as exc:
                logger.debug("reading inotify failed (%s); polling instead", exc)
                self._stop_inotify()
                relevant = True
                break
            if not data:
                break
            for mask, name in parse_inotify_events(data):
                if mask & (IN_DELETE_SELF | IN_IGNORED):
                    # The directory itself went away: nothing more will come from inotify.
                    self._stop_inotify()
                    relevant = True
                elif mask & IN_Q_OVERFLOW or name.startswith("video"):
                    relevant = True
            fd = self._fd
        if relevant and self._wake is not None:
            self._wake.set()

    def _diff(self, devices: list[DeviceInfo]) -> None:
        current = {d.path: d for d in devices}
        for path, before in self._known.items():
            now = current.get(path)
            if now is None or now.id != before.id:
                self._queue.append(DeviceRemoved(before))
        for path, now in current.items():
            was = self._known.get(path)
            if was is None or was.id != now.id:
                self._queue.append(DeviceAdded(now))
        self._known = current

    def _stop_inotify(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if not self._closed:
            self._method = "poll"
        loop = self._loop
        if loop is None or loop.is_closed():
            _release(None, fd)
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or not loop.is_running():
            _release(loop, fd)
        else:
            # Called from another thread (a late __del__): the loop's own thread must
            # remove its reader.
            loop.call_soon_threadsafe(_release, loop, fd)

    def _close_now(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._stop_inotify()
        self._queue.clear()
        if self._wake is not None:
            self._wake.set()


def watch_devices(
    *,
    include_present: bool = False,
    poll_interval: float = 1.0,
    dev_dir: str = "/dev",
    enumerator: Enumerator | None = None,
    use_inotify: bool = True,
) -> DeviceWatcher:
    """Watch for cameras arriving and leaving.

    >>> async for event in camerapump.watch_devices():  # doctest: +SKIP
    ...     print(event)

    A device is known by its path; a path that comes back with another id
    (a different camera on a reused ``/dev/videoN``) is reported as removed and
    then added.

    Args:
        include_present: Start with a :class:`DeviceAdded` for every camera
            already attached (default: report changes only).
        poll_interval: Seconds between enumerations when polling (macOS,
            Windows, or when inotify is unavailable).
        dev_dir: The directory whose ``video*`` entries are watched (tests
            point it at a temporary directory).
        enumerator: Lists the cameras; default :func:`~camerapump.list_devices`
            looking in ``dev_dir``.  It runs in a worker thread.
        use_inotify: ``False`` forces polling on Linux too.

    Returns:
        A :class:`DeviceWatcher`: ``async for`` it, and ``aclose()`` it (or use
        ``async with``) when done.

    Raises:
        ValueError: A ``poll_interval`` that is not a positive number.
    """
    return DeviceWatcher(
        include_present=include_present,
        poll_interval=poll_interval,
        dev_dir=dev_dir,
        enumerator=enumerator,
        use_inotify=use_inotify,
    )
