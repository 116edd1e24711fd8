"""Devices: enumeration, ids, probe, negotiate_usb, controls and error mapping.

Enumeration runs against real files in a temporary directory standing in for
/dev, opened for real; a fake kernel answers the ioctls on them from the
fixture listings.  Error mapping also runs against the real /dev and real files.
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Any

import av.device
import pytest
from data.v4l2_fake import FakeKernel, load

from camerapump import _devices, _v4l2
from camerapump._config import StreamConfig
from camerapump._devices import (
    Capabilities,
    Control,
    ControlError,
    DeviceInfo,
    FormatDescriptor,
    devices_json,
    devices_table,
    find_device_by_id,
    get_controls,
    list_devices,
    negotiate_usb,
    probe,
    set_controls,
)
from camerapump._errors import (
    CameraError,
    DeviceBusy,
    DeviceNotFound,
    FormatNotSupported,
    PermissionDenied,
)
from camerapump._source import Source

pytestmark = pytest.mark.timeout(30)

C920_ID = "usb-046d_HD_Pro_Webcam_C920_1234ABCD-video-index0"


class Rig:
    """A temporary /dev with fake cameras, and the _System that looks there."""

    def __init__(self, root: Path) -> None:
        self.dev = root / "dev"
        self.by_id = self.dev / "v4l" / "by-id"
        self.sysfs = root / "sys"
        self.by_id.mkdir(parents=True)
        self.sysfs.mkdir()
        self.kernel = FakeKernel()
        self.opened: list[str] = []

    def add(self, node: str, fixture: str | None) -> Path:
        path = self.dev / node
        path.touch()
        if fixture is not None:
            self.kernel.cameras[node] = load(fixture)
        return path

    def link(self, name: str, node: str) -> None:
        (self.by_id / name).symlink_to(f"../../{node}")

    def system(self, **changes: Any) -> _devices._System:
        fields: dict[str, Any] = {
            "ioctl": self.kernel.ioctl,
            "dev_dir": str(self.dev),
            "by_id_dir": str(self.by_id),
            "sysfs_dir": str(self.sysfs),
            "platform": "linux",
        }
        fields.update(changes)
        return _devices._System(**fields)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    """A fake /dev: a C920 (video0), its metadata node, a plain file and a LifeCam (video10)."""
    rig = Rig(tmp_path)
    rig.add("video0", "logitech_c920")
    rig.add("video1", "uvc_metadata")
    rig.add("video2", None)
    rig.add("video10", "lifecam_hd3000")
    rig.add("vbi0", "logitech_c270")  # not a video* node: never looked at
    rig.link(C920_ID, "video0")
    return rig


# --- enumeration -------------------------------------------------------------------------


def test_list_devices_finds_capture_nodes_only(rig: Rig) -> None:
    """Capture nodes are listed in numeric order; metadata nodes and non-devices are skipped."""
    devices = _devices._list_devices(rig.system())
    assert [d.path for d in devices] == [str(rig.dev / "video0"), str(rig.dev / "video10")]
    c920, lifecam = devices
    assert (c920.name, c920.backend, c920.bus) == (
        "HD Pro Webcam C920",
        "v4l2",
        "usb-0000:00:14.0-1",
    )
    assert lifecam.name == "Microsoft LifeCam HD-3000"
    assert c920.capabilities.input_formats == ("yuyv422", "h264", "mjpeg")


def test_id_comes_from_by_id_link(rig: Rig) -> None:
    """The id is the /dev/v4l/by-id name that points at the node."""
    c920 = _devices._list_devices(rig.system())[0]
    assert c920.id == C920_ID


def test_id_falls_back_to_bus_and_serial(rig: Rig) -> None:
    """Without a by-id link the id is bus info plus the USB serial from sysfs."""
    usb = rig.sysfs / "devices" / "usb1" / "1-2"
    (usb / "1-2:1.0").mkdir(parents=True)
    (usb / "serial").write_text("ABC123\n")
    (rig.sysfs / "video10").mkdir()
    (rig.sysfs / "video10" / "device").symlink_to(usb / "1-2:1.0")
    lifecam = _devices._list_devices(rig.system())[1]
    assert lifecam.id == "usb-0000:00:14.0-3/ABC123"


def test_id_falls_back_to_the_path(rig: Rig) -> None:
    """Without a by-id link or a serial the id is the device path."""
    lifecam = _devices._list_devices(rig.system())[1]
    assert lifecam.id == str(rig.dev / "video10")


def test_find_device_by_id_follows_a_replug(rig: Rig) -> None:
    """A camera replugged as another /dev/videoN is found again by its id."""
    system = rig.system()
    assert _devices._find_device_by_id(C920_ID, system).path == str(rig.dev / "video0")  # type: ignore[union-attr]
    (rig.dev / "video0").unlink()
    rig.kernel.cameras["video3"] = rig.kernel.cameras.pop("video0")
    rig.add("video3", None)
    (rig.by_id / C920_ID).unlink()
    rig.link(C920_ID, "video3")
    found = _devices._find_device_by_id(C920_ID, system)
    assert found is not None
    assert found.path == str(rig.dev / "video3")
    assert _devices._find_device_by_id("usb-nothing-video-index0", system) is None


def test_unreadable_nodes_are_skipped_with_a_warning(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A node the user may not open is skipped and the log says why."""

    def opener(path: str) -> int:
        if path.endswith("video10"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return _v4l2.open_device(path)

    with caplog.at_level(logging.WARNING, logger="camerapump"):
        devices = _devices._list_devices(rig.system(open=opener))
    assert [d.name for d in devices] == ["HD Pro Webcam C920"]
    assert "video10: permission denied" in caplog.text


def test_list_devices_on_this_machine_is_empty() -> None:
    """The real enumeration runs here and finds no camera (none is attached)."""
    assert not any(Path("/dev").glob("video*"))
    assert list_devices() == []


def test_empty_dev_dir_lists_nothing(tmp_path: Path) -> None:
    """A missing device directory lists no cameras rather than failing."""
    assert _devices._list_devices(_devices._System(dev_dir=str(tmp_path / "none"))) == []


# --- macOS / Windows through FFmpeg's device list ----------------------------------------


def _av_devices(_backend: str) -> list[av.device.DeviceInfo]:
    return [
        av.device.DeviceInfo("0", "FaceTime HD Camera", True, ["video"]),
        av.device.DeviceInfo("1", "MacBook Pro Microphone", False, ["audio"]),
        av.device.DeviceInfo("2", "Capture screen 0", False, ["video"]),
    ]


def test_macos_devices_come_from_ffmpeg() -> None:
    """On macOS: AVFoundation index as path, the name as id and name, no modes, audio skipped."""
    devices = _devices._list_devices(_devices._System(platform="darwin", enumerate_av=_av_devices))
    assert [(d.id, d.path, d.backend) for d in devices] == [
        ("FaceTime HD Camera", "0", "avfoundation"),
        ("Capture screen 0", "2", "avfoundation"),
    ]
    assert devices[0].capabilities == Capabilities()
    assert devices[0].bus == ""


def test_windows_devices_come_from_ffmpeg() -> None:
    """On Windows: the unique DirectShow name is id and path, the friendly name is the name."""
    moniker = "@device_pnp_\\\\?\\usb#vid_046d&pid_082d&mi_00#7&1a2b#{65e8773d}\\global"

    def listing(backend: str) -> list[av.device.DeviceInfo]:
        assert backend == "dshow"
        return [av.device.DeviceInfo(moniker, "HD Pro Webcam C920", False, ["video"])]

    (device,) = _devices._list_devices(_devices._System(platform="win32", enumerate_av=listing))
    assert (device.id, device.name, device.path, device.backend) == (
        moniker,
        "HD Pro Webcam C920",
        moniker,
        "dshow",
    )
    assert device.source.target == moniker


def test_ffmpeg_listing_failure_lists_nothing() -> None:
    """When FFmpeg cannot list devices, the list is empty rather than an error."""

    def broken(_backend: str) -> list[av.device.DeviceInfo]:
        raise NotImplementedError

    assert _devices._list_devices(_devices._System(platform="darwin", enumerate_av=broken)) == []


def test_probe_off_linux_is_empty() -> None:
    """Off Linux, probe gives empty capabilities (FFmpeg cannot list modes there)."""
    system = _devices._System(platform="darwin", enumerate_av=_av_devices)
    assert _devices._probe(0, system) == Capabilities()


# --- probe -------------------------------------------------------------------------------


def test_probe_accepts_every_way_of_naming_a_device(rig: Rig) -> None:
    """A DeviceInfo, a path, an index, a Source.usb, a name and an id all probe the same camera."""
    system = rig.system()
    info = _devices._list_devices(system)[0]
    path = str(rig.dev / "video0")
    ways: list[object] = [info, path, 0, Source.usb(path), "HD Pro Webcam C920", C920_ID]
    results = {_devices._probe(way, system) for way in ways}
    assert results == {info.capabilities}


def test_probe_rejects_what_is_not_a_camera(rig: Rig) -> None:
    """Non-USB sources and negative indexes are ValueErrors; bools and floats TypeErrors."""
    system = rig.system()
    with pytest.raises(ValueError, match="not a USB camera"):
        _devices._probe(Source.test(), system)
    with pytest.raises(TypeError):
        _devices._probe(True, system)
    with pytest.raises(TypeError):
        _devices._probe(1.5, system)
    with pytest.raises(ValueError, match="0 or more"):
        _devices._probe(-1, system)
    with pytest.raises(DeviceNotFound, match="no camera named"):
        _devices._probe("Nonexistent Cam", system)


def test_probe_of_a_metadata_node_is_device_not_found(rig: Rig) -> None:
    """Probing the metadata node says it is not a video capture node."""
    with pytest.raises(DeviceNotFound, match="not a video capture node"):
        _devices._probe(1, rig.system())


def test_probe_of_a_missing_device_is_device_not_found() -> None:
    """The real path /dev/video99 (absent) raises DeviceNotFound."""
    with pytest.raises(DeviceNotFound, match="/dev/video99: no such device"):
        probe("/dev/video99")
    with pytest.raises(DeviceNotFound):
        probe(99)


def test_probe_of_a_regular_file_says_not_v4l2(tmp_path: Path) -> None:
    """A real regular file answers ENOTTY, reported as not a V4L2 device."""
    path = tmp_path / "video0"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(DeviceNotFound, match="is not a V4L2 device") as info:
        probe(str(path))
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOTTY


def test_probe_of_a_directory_says_not_v4l2(tmp_path: Path) -> None:
    """A real directory (EISDIR on open) is not a V4L2 device either."""
    with pytest.raises(DeviceNotFound, match="is not a V4L2 device"):
        probe(str(tmp_path))


def test_permission_denied_is_typed(rig: Rig) -> None:
    """EACCES on open raises PermissionDenied (a seam: as root no real path is unreadable)."""

    def opener(path: str) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    with pytest.raises(PermissionDenied, match="'video' group") as info:
        _devices._probe(0, rig.system(open=opener))
    assert isinstance(info.value, PermissionError)


def test_busy_device_is_typed(rig: Rig) -> None:
    """EBUSY on open raises DeviceBusy."""

    def opener(path: str) -> int:
        raise OSError(errno.EBUSY, "Device or resource busy", path)

    with pytest.raises(DeviceBusy):
        _devices._probe(0, rig.system(open=opener))


def test_device_vanishing_mid_query_is_device_not_found(rig: Rig) -> None:
    """A camera unplugged while open (ENODEV from the ioctls) raises DeviceNotFound."""
    rig.kernel.cameras["video0"].unplugged = True
    with pytest.raises(DeviceNotFound, match="unplugged"):
        _devices._probe(0, rig.system())


def test_other_os_errors_are_camera_errors(rig: Rig) -> None:
    """An unexpected errno becomes a plain CameraError naming the path."""

    def opener(path: str) -> int:
        raise OSError(errno.EIO, "Input/output error", path)

    with pytest.raises(CameraError, match="probe failed"):
        _devices._probe(0, rig.system(open=opener))


# --- negotiate_usb -----------------------------------------------------------------------


def test_negotiate_fills_in_the_chosen_mode(rig: Rig) -> None:
    """A size-only request comes back with the rate and wire format of the chosen mode."""
    config = StreamConfig(1920, 1080, pixel_format="rgb24")
    got = _devices._negotiate_usb(Source.usb(0), config, "exact", rig.system())
    assert got == StreamConfig(1920, 1080, 30.0, "rgb24", "mjpeg")


def test_negotiate_snaps_the_rate_to_the_device(rig: Rig) -> None:
    """29.97 fps is filled in as the device's 30 fps."""
    got = _devices._negotiate_usb(
        Source.usb(str(rig.dev / "video0")), StreamConfig(1280, 720, 29.97), "exact", rig.system()
    )
    assert got.fps == 30.0


def test_negotiate_exact_failure_names_source_and_modes(rig: Rig) -> None:
    """An unsupported request raises FormatNotSupported with the label and the closest modes."""
    with pytest.raises(FormatNotSupported, match=r"usb:0: no mode 1920x1080 @ 60 fps; the closest"):
        _devices._negotiate_usb(Source.usb(0), StreamConfig(1920, 1080, 60), "exact", rig.system())


def test_negotiate_nearest_substitutes(rig: Rig) -> None:
    """In "nearest" mode an unsupported request gets the nearest mode instead."""
    got = _devices._negotiate_usb(
        Source.usb(0), StreamConfig(1920, 1080, 60), "nearest", rig.system()
    )
    assert (got.width, got.height, got.fps, got.input_format) == (1920, 1080, 30.0, "mjpeg")


def test_negotiate_leaves_an_empty_request_alone(rig: Rig) -> None:
    """Nothing asked (all None) keeps the driver's own mode: the config comes back unchanged."""
    config = StreamConfig()
    assert _devices._negotiate_usb(Source.usb(0), config, "exact", rig.system()) is config


def test_negotiate_leaves_non_v4l2_paths_alone(rig: Rig) -> None:
    """A path that answers ENOTTY (not V4L2 to the ioctls) is left to FFmpeg, unchanged."""
    config = StreamConfig(640, 480)
    got = _devices._negotiate_usb(Source.usb(2), config, "exact", rig.system())
    assert got is config


def test_negotiate_off_linux_is_unchanged() -> None:
    """On macOS and Windows the config comes back unchanged (no capabilities to check)."""
    config = StreamConfig(1280, 720, 30)
    for platform, backend in (("darwin", "avfoundation"), ("win32", "dshow")):
        source = Source.usb(0, backend=backend)  # type: ignore[arg-type]
        got = _devices._negotiate_usb(source, config, "exact", _devices._System(platform=platform))
        assert got is config


def test_negotiate_never_picks_a_format_ffmpeg_cannot_open(rig: Rig) -> None:
    """The Z16 depth mode (no FFmpeg name) is never chosen, even when it is the exact size."""
    rig.add("video4", "stepwise_sensor")
    got = _devices._negotiate_usb(Source.usb(4), StreamConfig(640, 480, 30), "exact", rig.system())
    assert got.input_format == "yuv420p"
    with pytest.raises(FormatNotSupported):
        _devices._negotiate_usb(
            Source.usb(4), StreamConfig(640, 480, input_format="Z16"), "exact", rig.system()
        )


def test_negotiate_errors_are_typed(rig: Rig) -> None:
    """Metadata nodes, vanished cameras and non-USB sources raise the typed errors."""
    system = rig.system()
    with pytest.raises(DeviceNotFound, match="metadata"):
        _devices._negotiate_usb(Source.usb(1), StreamConfig(640, 480), "exact", system)
    rig.kernel.cameras["video0"].unplugged = True
    with pytest.raises(DeviceNotFound):
        _devices._negotiate_usb(Source.usb(0), StreamConfig(640, 480), "exact", system)
    with pytest.raises(ValueError, match="not a USB camera"):
        _devices._negotiate_usb(Source.test(), StreamConfig(640, 480), "exact", system)
    with pytest.raises(ValueError, match="'exact' or 'nearest'"):
        _devices._negotiate_usb(Source.usb(0), StreamConfig(), "best", system)  # type: ignore[arg-type]


def test_negotiate_usb_on_a_missing_device_is_device_not_found() -> None:
    """The real negotiate_usb on /dev/video99 raises DeviceNotFound."""
    with pytest.raises(DeviceNotFound):
        negotiate_usb(Source.usb("/dev/video99"), StreamConfig(640, 480))


# --- controls ----------------------------------------------------------------------------


def test_get_controls_reports_names_ranges_and_menus(rig: Rig) -> None:
    """The C920's controls come back under camerapump's names with their ranges."""
    controls = _devices._get_controls(0, rig.system())
    assert set(controls) == set(_devices.CONTROL_NAMES)
    assert controls["brightness"] == Control("brightness", 128, 0, 255, 1, 128, "integer")
    assert controls["auto_focus"].kind == "boolean"
    assert controls["auto_focus"].value is True
    assert controls["auto_exposure"].choices == ((1, "Manual Mode"), (3, "Aperture Priority Mode"))
    assert controls["exposure"].inactive
    assert controls["pan"].step == 3600


def test_get_controls_lists_only_what_the_device_has(rig: Rig) -> None:
    """A C270 has no zoom, pan, tilt or focus controls."""
    rig.add("video5", "logitech_c270")
    controls = _devices._get_controls(5, rig.system())
    assert not {"zoom", "pan", "tilt", "focus", "auto_focus"} & set(controls)
    assert controls["white_balance"].step == 10


def test_set_controls_sets_auto_controls_first(rig: Rig) -> None:
    """Values are written, auto_exposure before exposure whatever the keyword order."""
    written: list[int] = []

    def ioctl(fd: int, request: int, arg: Any) -> int:
        if request == _v4l2.VIDIOC_S_CTRL:
            written.append(arg.id)
        return rig.kernel.ioctl(fd, request, arg)

    _devices._set_controls(0, {"exposure": 500, "auto_exposure": 1}, rig.system(ioctl=ioctl))
    assert written == [_v4l2.CONTROL_IDS["auto_exposure"], _v4l2.CONTROL_IDS["exposure"]]
    controls = _devices._get_controls(0, rig.system())
    assert (controls["exposure"].value, controls["auto_exposure"].value) == (500, 1)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"brightness": 300}, r"brightness must be 0\.\.255, not 300"),
        ({"pan": 1000}, r"pan must be -36000\.\.36000 in steps of 3600, not 1000"),
        ({"auto_exposure": 0}, r"must be one of 1 \(Manual Mode\), 3 \(Aperture Priority Mode\)"),
        ({"auto_focus": 2}, "auto_focus must be True or False"),
        ({"gain": 1.5}, "gain must be a whole number"),
        ({"gain": True}, "gain must be a whole number"),
        ({"hue": 3}, "unknown control hue; the controls are brightness, contrast"),
    ],
)
def test_bad_control_values_name_what_is_allowed(
    rig: Rig, values: dict[str, object], message: str
) -> None:
    """A bad name or value raises ControlError (a ValueError) saying what is allowed."""
    with pytest.raises(ControlError, match=message) as info:
        _devices._set_controls(0, values, rig.system())
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CameraError)


def test_a_bad_value_changes_nothing(rig: Rig) -> None:
    """All values are checked before any is written."""
    camera = rig.kernel.cameras["video0"]
    with pytest.raises(ControlError):
        _devices._set_controls(0, {"contrast": 10, "brightness": 999}, rig.system())
    assert _v4l2.VIDIOC_S_CTRL not in camera.calls


def test_missing_control_names_what_the_device_has(rig: Rig) -> None:
    """Setting zoom on a C270 says which controls it does have."""
    rig.add("video5", "logitech_c270")
    with pytest.raises(ControlError, match="has no zoom control; it has: brightness"):
        _devices._set_controls(5, {"zoom": 200}, rig.system())


def test_device_refusing_a_value_is_a_control_error(rig: Rig) -> None:
    """ERANGE from VIDIOC_S_CTRL becomes a ControlError naming the allowed range."""

    def ioctl(fd: int, request: int, arg: Any) -> int:
        if request == _v4l2.VIDIOC_S_CTRL:  # the driver is stricter than it said
            raise OSError(errno.ERANGE, "Numerical result out of range")
        return rig.kernel.ioctl(fd, request, arg)

    with pytest.raises(ControlError, match=r"refused zoom=400 \(allowed: 100\.\.500"):
        _devices._set_controls(0, {"zoom": 400}, rig.system(ioctl=ioctl))


def test_busy_device_on_set_is_device_busy(rig: Rig) -> None:
    """EBUSY from VIDIOC_S_CTRL raises DeviceBusy."""
    rig.kernel.cameras["video0"].busy = True
    with pytest.raises(DeviceBusy):
        _devices._set_controls(0, {"brightness": 10}, rig.system())


def test_controls_of_a_vanished_device(rig: Rig) -> None:
    """Controls of an unplugged camera raise DeviceNotFound."""
    rig.kernel.cameras["video0"].unplugged = True
    with pytest.raises(DeviceNotFound):
        _devices._get_controls(0, rig.system())


def test_controls_of_a_regular_file_say_not_v4l2(tmp_path: Path) -> None:
    """Real get_controls/set_controls on a plain file say it is not a V4L2 device."""
    path = tmp_path / "video0"
    path.touch()
    with pytest.raises(DeviceNotFound, match="not a V4L2 device"):
        get_controls(str(path))
    with pytest.raises(DeviceNotFound, match="not a V4L2 device"):
        set_controls(str(path), brightness=1)


def test_controls_of_a_missing_device() -> None:
    """Real get_controls on /dev/video99 raises DeviceNotFound."""
    with pytest.raises(DeviceNotFound):
        get_controls("/dev/video99")


def test_controls_off_linux() -> None:
    """Off Linux get_controls is empty and set_controls says controls need V4L2."""
    system = _devices._System(platform="darwin")
    assert _devices._get_controls(0, system) == {}
    with pytest.raises(ControlError, match="Linux"):
        _devices._set_controls(0, {"brightness": 1}, system)
    _devices._set_controls(0, {}, system)  # nothing asked, nothing to refuse


def test_read_only_control_cannot_be_set() -> None:
    """A read-only control refuses any value."""
    control = Control("gain", 1, 0, 10, 1, 1, "integer", read_only=True)
    with pytest.raises(ControlError, match="read-only"):
        control.check(2)


# --- data and presentation ---------------------------------------------------------------


def test_device_info_validates() -> None:
    """DeviceInfo rejects an empty id or path and unknown backends."""
    with pytest.raises(ValueError, match="id must be a non-empty string"):
        DeviceInfo("", "cam", "/dev/video0", "v4l2")
    with pytest.raises(ValueError, match="backend must be one of v4l2, avfoundation, dshow"):
        DeviceInfo("x", "cam", "/dev/video0", "gstreamer")  # type: ignore[arg-type]


def test_device_info_opens_as_a_source() -> None:
    """DeviceInfo.source is the Source.usb that opens the camera."""
    info = DeviceInfo("id", "cam", "/dev/video4", "v4l2")
    assert info.source == Source.usb("/dev/video4", backend="v4l2")


def test_devices_table(rig: Rig) -> None:
    """The table has a header and one row per camera with its modes summarised."""
    text = devices_table(_devices._list_devices(rig.system()))
    lines = text.splitlines()
    assert lines[0].split() == ["PATH", "NAME", "ID", "MODES"]
    assert len(lines) == 3
    assert "mjpeg up to 1920x1080@30" in lines[1]
    assert C920_ID in lines[1]
    assert devices_table([]) == "no cameras found\n"


def test_devices_json_round_trips(rig: Rig) -> None:
    """The JSON form holds every field and every mode."""
    devices = _devices._list_devices(rig.system())
    data = json.loads(devices_json(devices))
    assert [d["id"] for d in data] == [d.id for d in devices]
    assert data[0]["formats"][0] == {
        "width": 640,
        "height": 480,
        "fps_min": 5.0,
        "fps_max": 30.0,
        "fps_choices": [30.0, 24.0, 20.0, 15.0, 10.0, 7.5, 5.0],
        "input_format": "yuyv422",
        "fourcc": "YUYV",
    }
    assert len(data[0]["formats"]) == len(devices[0].capabilities.formats)


def test_format_descriptor_str() -> None:
    """A mode prints as size, format and rates."""
    assert (
        str(FormatDescriptor(1280, 720, 1.0, 90.0, (), "yuyv422")) == "1280x720 yuyv422 @ 1-90 fps"
    )
    assert str(FormatDescriptor(640, 480, None, None, (), "gray")) == "640x480 gray @ ? fps"


def test_find_device_by_id_on_this_machine() -> None:
    """The real find_device_by_id finds nothing here (no camera attached)."""
    assert find_device_by_id(C920_ID) is None


def test_non_linux_paths_are_not_opened() -> None:
    """A DeviceInfo of another backend is not opened on Linux: its own capabilities are used."""
    info = DeviceInfo("cam", "cam", "0", "avfoundation")
    assert probe(info) == Capabilities()
