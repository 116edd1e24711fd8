"""How each USB backend is opened: the macOS and Windows branches are pure, so test them here.

No camera can be attached on this machine, and FFmpeg's avfoundation and dshow
inputs do not exist on Linux; what these tests pin is what camerapump asks
FFmpeg for on those systems (docs/devices.md says how that was checked).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import camerapump as cp
from camerapump import _backend
from camerapump._backend import READ_POLL, OpenSpec, open_spec


def test_avfoundation_opens_the_index_without_audio_with_size_rate_and_pixel_format() -> None:
    """macOS: "N:none" (video N, no audio device), with video_size, framerate, pixel_format."""
    source = cp.Source.usb(1, backend="avfoundation")
    config = cp.StreamConfig(1280, 720, 30, input_format="nv12")
    assert open_spec(source, config) == OpenSpec(
        "1:none",
        "avfoundation",
        {"video_size": "1280x720", "framerate": "30", "pixel_format": "nv12"},
        (5.0, READ_POLL),
    )


def test_avfoundation_by_name_leaves_the_mode_to_the_device() -> None:
    """macOS by name with no request: no options at all (the camera's own mode)."""
    spec = open_spec(cp.Source.usb("FaceTime HD Camera", backend="avfoundation"), cp.StreamConfig())
    assert (spec.file, spec.format, spec.options) == ("FaceTime HD Camera:none", "avfoundation", {})


@pytest.mark.parametrize(("wire", "option"), [("mjpeg", "vcodec"), ("h264", "vcodec")])
def test_dshow_compressed_wire_formats_go_to_vcodec(wire: str, option: str) -> None:
    """Windows: mjpeg/h264 from the camera are asked for with vcodec (PyAV #2243)."""
    source = cp.Source.usb("HD Pro Webcam C920", backend="dshow")
    spec = open_spec(source, cp.StreamConfig(1920, 1080, 30, input_format=wire))
    assert spec.file == "video=HD Pro Webcam C920"
    assert spec.format == "dshow"
    assert spec.options == {
        "video_size": "1920x1080",
        "framerate": "30",
        option: wire,
        "rtbufsize": "16M",
    }


def test_dshow_raw_wire_formats_go_to_pixel_format_and_the_buffer_is_bounded() -> None:
    """Windows: a raw format (yuyv422) is pixel_format; rtbufsize bounds dshow's own buffer."""
    spec = open_spec(cp.Source.usb("Cam", backend="dshow"), cp.StreamConfig(input_format="yuyv422"))
    assert spec.options == {"pixel_format": "yuyv422", "rtbufsize": "16M"}


def test_dshow_index_is_resolved_to_a_name_through_enumeration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows by index: the index-th video device FFmpeg lists (audio devices skipped)."""
    devices = [
        SimpleNamespace(name="Microphone", is_audio=True),
        SimpleNamespace(name="Integrated Camera", is_audio=False),
        SimpleNamespace(name="USB Camera", is_audio=False),
    ]
    monkeypatch.setattr(_backend.av, "enumerate_input_devices", lambda fmt: devices, raising=False)
    assert (
        open_spec(cp.Source.usb(1, backend="dshow"), cp.StreamConfig()).file == "video=USB Camera"
    )
    with pytest.raises(cp.DeviceNotFound, match="2 video devices"):
        open_spec(cp.Source.usb(5, backend="dshow"), cp.StreamConfig())


def test_v4l2_index_is_a_dev_video_path() -> None:
    """Linux by index: /dev/videoN, with the wire format as input_format."""
    spec = open_spec(
        cp.Source.usb(2, backend="v4l2"), cp.StreamConfig(640, 480, input_format="mjpeg")
    )
    assert (spec.file, spec.format) == ("/dev/video2", "v4l2")
    assert spec.options == {"video_size": "640x480", "input_format": "mjpeg"}
