"""USB through the pump without a camera: negotiation before opening, finding a replugged camera.

The V4L2 ioctls are answered by the fake kernel of tests/data (recorded mode lists of real
webcams); the device files are real files in a temporary /dev.  What FFmpeg's v4l2 demuxer
does with a real camera is not run here (no camera can be attached); see docs/devices.md.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_devices import C920_ID, Rig

import camerapump as cp
from camerapump import _backend, _devices
from camerapump import _worker as _worker_module
from camerapump._demand import Demand
from camerapump._usb import UsbTracker

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
    real_open_input = _worker_module.open_input

    def spy(source: cp.Source, config: cp.StreamConfig) -> Any:
        seen.append(_backend.open_spec(source, config))
        return real_open_input(source, config)

    monkeypatch.setattr(_worker_module, "open_input", spy)
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
    tracker = UsbTracker()
    tracker.remember(source)
    assert tracker.device_id == C920_ID
    (fake_dev.dev / "video0").unlink()
    (fake_dev.by_id / C920_ID).unlink()
    fake_dev.add("video3", "logitech_c920")
    fake_dev.link(C920_ID, "video3")
    assert tracker.target(source).target == str(fake_dev.dev / "video3")


def test_an_unplugged_camera_keeps_its_path_until_it_returns(fake_dev: Rig) -> None:
    """While the camera is gone, the pump keeps trying its last path (DeviceNotFound)."""
    source = cp.Source.usb(str(fake_dev.dev / "video0"))
    tracker = UsbTracker()
    tracker.remember(source)
    (fake_dev.dev / "video0").unlink()
    (fake_dev.by_id / C920_ID).unlink()
    assert tracker.target(source) == source
    assert tracker.present() is False


class _NoSink:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def alive(self) -> bool:
        return True


def _worker(source: cp.Source, tracker: UsbTracker) -> _worker_module.Worker:
    return _worker_module.Worker(source, cp.StreamConfig(), _NoSink(), Demand(), device=tracker)


def test_stream_config_negotiation_is_validated() -> None:
    """negotiation must be 'exact' or 'nearest'."""
    with pytest.raises(ValueError, match="exact"):
        cp.StreamConfig(negotiation="closest")  # type: ignore[arg-type]


def test_a_replug_cuts_the_reconnect_backoff_short(fake_dev: Rig) -> None:
    """While the decode thread waits out a backoff, the camera's return ends the wait early."""
    source = cp.Source.usb(str(fake_dev.dev / "video0"))
    tracker = UsbTracker()
    tracker.remember(source)
    (fake_dev.dev / "video0").unlink()
    (fake_dev.by_id / C920_ID).unlink()
    worker = _worker(source, tracker)

    def replug() -> None:
        time.sleep(0.4)
        fake_dev.add("video4", "logitech_c920")
        fake_dev.link(C920_ID, "video4")

    plug = threading.Thread(target=replug)
    started = time.monotonic()
    plug.start()
    assert worker.wait(20) is True
    plug.join()
    assert 0.3 < time.monotonic() - started < 3


def test_without_a_known_camera_the_backoff_is_a_plain_wait(fake_dev: Rig) -> None:
    """A USB pump that never opened its camera just waits its delay."""
    worker = _worker(cp.Source.usb(str(fake_dev.dev / "video0")), UsbTracker())
    started = time.monotonic()
    assert worker.wait(0.2) is True
    assert 0.15 < time.monotonic() - started < 1


def test_a_stop_ends_a_backoff_at_once(fake_dev: Rig) -> None:
    """stop() during a backoff wakes the decode thread's wait, which says False."""
    worker = _worker(cp.Source.usb(str(fake_dev.dev / "video0")), UsbTracker())
    threading.Timer(0.1, worker.stop).start()
    started = time.monotonic()
    assert worker.wait(20) is False
    assert time.monotonic() - started < 1
