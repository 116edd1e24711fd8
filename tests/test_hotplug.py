"""Hotplug: watch_devices against a temporary directory standing in for /dev.

Files are really created, deleted and chmod-ed, so the inotify path is the real
one.  A plain file is no V4L2 device, so the tests inject the enumerator: either
one that reports every ``video*`` file as a camera, or the real enumeration with
a fake kernel answering the ioctls from the fixture listings.
"""

from __future__ import annotations

import asyncio
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from data.v4l2_fake import FakeKernel, load

from camerapump import _devices
from camerapump._devices import DeviceInfo
from camerapump._hotplug import (
    IN_CREATE,
    IN_DELETE,
    DeviceAdded,
    DeviceRemoved,
    DeviceWatcher,
    parse_inotify_events,
    watch_devices,
)

pytestmark = pytest.mark.timeout(30)
STEP = 5.0  # seconds any single expected event may take


def files_as_devices(
    directory: Path, calls: list[int] | None = None
) -> Callable[[], list[DeviceInfo]]:
    """An enumerator reporting each readable video* file as a camera whose id is its content."""

    def enumerate_files() -> list[DeviceInfo]:
        if calls is not None:
            calls.append(1)
        devices = []
        for path in sorted(directory.glob("video*")):
            try:
                if not path.stat().st_mode & stat.S_IROTH:
                    continue  # as udev does: a node is usable once its mode is set
                device_id = path.read_text().strip() or path.name
            except FileNotFoundError:
                continue
            devices.append(DeviceInfo(device_id, f"fake {path.name}", str(path), "v4l2"))
        return devices

    return enumerate_files


def make_node(path: Path, device_id: str = "", mode: int = 0o666) -> None:
    path.write_text(device_id)
    path.chmod(mode)


def inotify_fds() -> int:
    """How many inotify fds this process holds."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


async def next_event(watcher: DeviceWatcher) -> DeviceAdded | DeviceRemoved:
    return await asyncio.wait_for(watcher.__anext__(), STEP)


def test_parse_inotify_events() -> None:
    """Raw inotify records split into (mask, name), padding NULs dropped."""
    data = struct.pack("iIII", 1, IN_CREATE, 0, 16) + b"video0".ljust(16, b"\0")
    data += struct.pack("iIII", 1, IN_DELETE, 0, 0)
    assert parse_inotify_events(data) == [(IN_CREATE, "video0"), (IN_DELETE, "")]


def test_poll_interval_is_validated() -> None:
    """poll_interval must be a positive number of seconds."""
    for bad in (0, -1.0, float("inf"), True):
        with pytest.raises(ValueError, match="poll_interval must be a positive number"):
            watch_devices(poll_interval=bad)


async def test_inotify_reports_added_and_removed(tmp_path: Path) -> None:
    """Creating and deleting a video* file yields DeviceAdded then DeviceRemoved (inotify)."""
    async with watch_devices(dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path)) as w:
        assert w.method == "inotify"
        make_node(tmp_path / "video0", "cam-a")
        added = await next_event(w)
        assert added == DeviceAdded(
            DeviceInfo("cam-a", "fake video0", str(tmp_path / "video0"), "v4l2")
        )
        (tmp_path / "video0").unlink()
        assert await next_event(w) == DeviceRemoved(added.info)


async def test_real_enumeration_with_fake_kernel(tmp_path: Path) -> None:
    """With the real enumerator and a fake kernel, a new node is reported as a C920."""
    kernel = FakeKernel({"video2": load("logitech_c920")})
    system = _devices._System(ioctl=kernel.ioctl, dev_dir=str(tmp_path), platform="linux")
    enumerator = lambda: _devices._list_devices(system)  # noqa: E731
    async with watch_devices(dev_dir=str(tmp_path), enumerator=enumerator) as w:
        (tmp_path / "video3").touch()  # a plain file: not a camera, nothing reported
        (tmp_path / "video2").touch()
        event = await next_event(w)
    assert isinstance(event, DeviceAdded)
    assert event.info.name == "HD Pro Webcam C920"
    assert event.info.path == str(tmp_path / "video2")


async def test_present_devices_are_reported_only_when_asked(tmp_path: Path) -> None:
    """include_present=True starts with DeviceAdded for present cameras; the default does not."""
    make_node(tmp_path / "video0", "cam-a")
    make_node(tmp_path / "video1", "cam-b")
    enumerator = files_as_devices(tmp_path)
    async with watch_devices(
        dev_dir=str(tmp_path), enumerator=enumerator, include_present=True
    ) as w:
        first = [await next_event(w), await next_event(w)]
    assert [e.info.id for e in first if isinstance(e, DeviceAdded)] == ["cam-a", "cam-b"]

    async with watch_devices(dev_dir=str(tmp_path), enumerator=enumerator) as w:
        make_node(tmp_path / "video2", "cam-c")
        event = await next_event(w)
    assert event == DeviceAdded(
        DeviceInfo("cam-c", "fake video2", str(tmp_path / "video2"), "v4l2")
    )


async def test_permission_change_makes_a_node_appear(tmp_path: Path) -> None:
    """A node created unusable and then chmod-ed (as udev does) is reported on IN_ATTRIB."""
    async with watch_devices(dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path)) as w:
        make_node(tmp_path / "video0", "cam-a", mode=0o600)
        await asyncio.sleep(0.2)
        (tmp_path / "video0").chmod(0o666)
        event = await next_event(w)
    assert event == DeviceAdded(
        DeviceInfo("cam-a", "fake video0", str(tmp_path / "video0"), "v4l2")
    )


async def test_other_names_do_not_wake_the_watcher(tmp_path: Path) -> None:
    """Files that are not video* cause no re-enumeration under inotify."""
    calls: list[int] = []
    async with watch_devices(
        dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path, calls)
    ) as w:
        before = len(calls)
        (tmp_path / "ttyS0").touch()
        (tmp_path / "hidraw0").touch()
        await asyncio.sleep(0.3)
        assert len(calls) == before
        make_node(tmp_path / "video0", "cam-a")
        await next_event(w)
        assert len(calls) > before


async def test_replug_with_another_id_on_the_same_path(tmp_path: Path) -> None:
    """A path that comes back holding another camera is reported as removed, then added."""
    make_node(tmp_path / "video0", "cam-a")
    async with watch_devices(dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path)) as w:
        (tmp_path / "video0").unlink()
        make_node(tmp_path / "video0", "cam-b")
        events = []
        while not any(isinstance(e, DeviceAdded) for e in events):
            events.append(await next_event(w))
    assert events[0] == DeviceRemoved(
        DeviceInfo("cam-a", "fake video0", str(tmp_path / "video0"), "v4l2")
    )
    assert events[-1].info.id == "cam-b"


async def test_polling_when_inotify_is_off(tmp_path: Path) -> None:
    """use_inotify=False polls, and still reports additions and removals."""
    w = watch_devices(
        dev_dir=str(tmp_path),
        enumerator=files_as_devices(tmp_path),
        use_inotify=False,
        poll_interval=0.05,
    )
    async with w:
        assert w.method == "poll"
        make_node(tmp_path / "video7", "cam-p")
        assert isinstance(await next_event(w), DeviceAdded)
        (tmp_path / "video7").unlink()
        assert isinstance(await next_event(w), DeviceRemoved)


async def test_polling_fallback_when_inotify_fails(tmp_path: Path) -> None:
    """A device directory inotify cannot watch (it does not exist) falls back to polling."""
    devices = tmp_path / "elsewhere"
    devices.mkdir()
    w = watch_devices(
        dev_dir=str(tmp_path / "missing"), enumerator=files_as_devices(devices), poll_interval=0.05
    )
    async with w:
        assert w.method == "poll"
        make_node(devices / "video0", "cam-a")
        assert isinstance(await next_event(w), DeviceAdded)


async def test_aclose_closes_fd_and_removes_reader(tmp_path: Path) -> None:
    """aclose() closes the inotify fd, removes the loop reader and ends the iteration."""
    baseline = inotify_fds()
    w = watch_devices(dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path))
    await w.__aenter__()
    fd = w._fd
    assert fd is not None
    assert inotify_fds() == baseline + 1
    await w.aclose()
    assert inotify_fds() == baseline
    assert not asyncio.get_running_loop().remove_reader(fd)
    assert w.closed
    with pytest.raises(StopAsyncIteration):
        await w.__anext__()
    await w.aclose()  # idempotent


async def test_break_closes_the_watcher(tmp_path: Path) -> None:
    """Breaking out of async for releases the inotify fd right away."""
    baseline = inotify_fds()
    make_node(tmp_path / "video0", "cam-a")
    async for event in watch_devices(
        dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path), include_present=True
    ):
        assert isinstance(event, DeviceAdded)
        assert inotify_fds() == baseline + 1
        break
    assert inotify_fds() == baseline


async def test_cancellation_closes_the_watcher(tmp_path: Path) -> None:
    """Cancelling the task waiting for an event closes the watcher and its fd."""
    baseline = inotify_fds()
    w = watch_devices(dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path))

    async def consume() -> None:
        async for _ in w:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    assert inotify_fds() == baseline + 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.closed
    assert inotify_fds() == baseline


async def test_aclose_from_another_task_ends_a_waiting_iteration(tmp_path: Path) -> None:
    """A consumer waiting for events ends cleanly when another task closes the watcher."""
    w = watch_devices(
        dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path), use_inotify=False
    )
    seen: list[object] = []

    async def consume() -> None:
        seen.extend([event async for event in w])

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await w.aclose()
    await asyncio.wait_for(task, STEP)
    assert seen == []


async def test_enumerator_errors_propagate_and_close(tmp_path: Path) -> None:
    """An error in the enumerator reaches the consumer, and the watcher is closed."""
    calls: list[int] = []

    def failing() -> list[DeviceInfo]:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("enumeration broke")
        return []

    w = watch_devices(dev_dir=str(tmp_path), enumerator=failing)
    async with w:
        make_node(tmp_path / "video0")
        with pytest.raises(RuntimeError, match="enumeration broke"):
            await next_event(w)
        assert w.closed
        assert w._fd is None


async def test_removed_device_directory_falls_back_to_polling(tmp_path: Path) -> None:
    """If the watched directory itself disappears, the watcher keeps going by polling."""
    watched = tmp_path / "dev"
    watched.mkdir()
    devices = tmp_path / "devices"
    devices.mkdir()
    w = watch_devices(
        dev_dir=str(watched), enumerator=files_as_devices(devices), poll_interval=0.05
    )
    async with w:
        assert w.method == "inotify"
        watched.rmdir()
        for _ in range(100):
            if w.method == "poll":
                break
            await asyncio.sleep(0.02)
        assert w.method == "poll"
        make_node(devices / "video0", "cam-a")
        assert isinstance(await next_event(w), DeviceAdded)


def test_repr_says_state(tmp_path: Path) -> None:
    """The repr names the directory and the state."""
    w = watch_devices(dev_dir=str(tmp_path))
    assert repr(w) == f"<DeviceWatcher {tmp_path} not started devices=0>"


@pytest.mark.anyio
async def test_watch_devices_works_under_trio_and_asyncio(
    tmp_path: Path, anyio_backend: str
) -> None:
    """Under either backend a camera that appears is reported (trio polls; asyncio uses inotify)."""
    import anyio

    async with watch_devices(
        dev_dir=str(tmp_path), enumerator=files_as_devices(tmp_path), poll_interval=0.05
    ) as watcher:
        make_node(tmp_path / "video0", "cam-a")
        with anyio.fail_after(STEP):
            event = await anext(aiter(watcher))
        assert watcher.method == ("inotify" if anyio_backend == "asyncio" else "poll")
    assert isinstance(event, DeviceAdded) and event.info.id == "cam-a"
