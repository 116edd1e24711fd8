"""USB through the pump without a camera: negotiation before opening, finding a replugged camera.

The V4L2 ioctls are answered by the fake kernel of tests/data (recorded mode lists of real
webcams); the device files are real files in a temporary /dev.  What FFmpeg's v4l2 demuxer
does with a real camera is not run here (no camera can be attached); see docs/devices.md.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any

import pytest
from test_devices import C920_ID, Rig

import camerapump as cp
from camerapump import _backend, _devices, _pump, _worker
from camerapump._hotplug import watch_devices

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fake_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    """A temporary /dev with a Logitech C920 at video0, seen by camerapump's device layer."""
    rig = Rig(tmp_path)
    rig.add("video0", "logitech_c920")
    rig.link(C920_ID, "video0")
    monkeypatch.setattr(_devices, "_SYSTEM", rig.system())
    return rig


async def test_exact_request_the_camera_lacks_fails_before_opening_listing_modes(
    fake_dev: Rig,
) -> None:
    """open_pump with a mode the C920 does not have raises FormatNotSupported naming its modes."""
    source = cp.Source.usb(str(fake_dev.dev / "video0"))
    with pytest.raises(cp.FormatNotSupported) as info:
        async with cp.open_pump(source, cp.StreamConfig(1920, 1080, fps=60)):
            pass
    message = str(info.value)
    assert "1920x1080" in message
    assert "mjpeg" in message


async def test_nearest_request_is_applied_to_the_device_options(
    fake_dev: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """negotiation='nearest' picks a real mode and passes its size, rate and format to FFmpeg."""
    seen: list[_backend.OpenSpec] = []
    real_open_input = _worker.open_input

    def spy(source: cp.Source, config: cp.StreamConfig) -> Any:
        seen.append(_backend.open_spec(source, config))
        return real_open_input(source, config)

    monkeypatch.setattr(_worker, "open_input", spy)
    source = cp.Source.usb(str(fake_dev.dev / "video0"))
    config = cp.StreamConfig(1920, 1080, fps=60, negotiation="nearest")
    with pytest.raises(cp.CameraError):  # a regular file is no camera to FFmpeg
        async with cp.open_pump(source, config):
            pass
    (spec,) = seen
    assert spec.format == "v4l2"
    assert spec.options == {"video_size": "1920x1080", "framerate": "30", "input_format": "mjpeg"}


def test_a_replugged_camera_is_found_again_by_its_id(fake_dev: Rig) -> None:
    """After a replug moves the C920 from video0 to video3, the next open goes to video3."""
    source = cp.Source.usb(str(fake_dev.dev / "video0"))
    worker = _worker.Worker(source, cp.StreamConfig(), _worker_sink())
    worker._remember_device(source)
    assert worker._device_id == C920_ID
    (fake_dev.dev / "video0").unlink()
    (fake_dev.by_id / C920_ID).unlink()
    fake_dev.add("video3", "logitech_c920")
    fake_dev.link(C920_ID, "video3")
    assert worker._usb_target().target == str(fake_dev.dev / "video3")


def test_an_unplugged_camera_keeps_its_path_until_it_returns(fake_dev: Rig) -> None:
    """While the camera is gone, the pump keeps trying its last path (DeviceNotFound)."""
    source = cp.Source.usb(str(fake_dev.dev / "video0"))
    worker = _worker.Worker(source, cp.StreamConfig(), _worker_sink())
    worker._remember_device(source)
    (fake_dev.dev / "video0").unlink()
    (fake_dev.by_id / C920_ID).unlink()
    assert worker._usb_target() == source


def _worker_sink() -> Any:
    class Sink:
        def __getattr__(self, name: str) -> Any:
            return lambda *args: None

    return Sink()


def test_stream_config_negotiation_is_validated() -> None:
    """negotiation must be 'exact' or 'nearest'."""
    with pytest.raises(ValueError, match="exact"):
        cp.StreamConfig(negotiation="closest")  # type: ignore[arg-type]


async def test_a_replug_cuts_the_reconnect_backoff_short(
    fake_dev: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While waiting out a backoff, the camera's return (inotify on /dev) ends the wait at once."""
    watch = functools.partial(
        watch_devices, dev_dir=str(fake_dev.dev), enumerator=_devices.list_devices
    )
    monkeypatch.setattr(_pump, "watch_devices", watch)
    pump = cp.Pump(cp.Source.usb(str(fake_dev.dev / "video0")))
    pump._worker._device_id = C920_ID
    (fake_dev.dev / "video0").unlink()
    (fake_dev.by_id / C920_ID).unlink()
    started = time.monotonic()
    waiting = asyncio.create_task(pump._backoff(20))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    fake_dev.add("video4", "logitech_c920")
    fake_dev.link(C920_ID, "video4")
    await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 5


async def test_without_a_known_camera_the_backoff_is_a_plain_wait(fake_dev: Rig) -> None:
    """A USB pump that never opened its camera just waits its delay."""
    pump = cp.Pump(cp.Source.usb(str(fake_dev.dev / "video0")))
    started = time.monotonic()
    await pump._backoff(0.2)
    assert 0.15 < time.monotonic() - started < 1
