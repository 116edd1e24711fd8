"""The V4L2 layer: kernel ABI numbers and layouts, and parsing of (synthesised) ioctl replies."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Any

import pytest
from data.v4l2_fake import FIXTURES, FakeKernel, listed_modes, load
from hypothesis import given
from hypothesis import strategies as st

from camerapump import _v4l2

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def node(tmp_path: Path) -> Any:
    """Open a real file named like a device node; the fake kernel answers for it."""
    fds: list[int] = []

    def _open(name: str = "video0") -> int:
        path = tmp_path / name
        path.touch()
        fd = _v4l2.open_device(str(path))
        fds.append(fd)
        return fd

    yield _open
    for fd in fds:
        os.close(fd)


# --- the kernel ABI ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("v4l2_capability", 104),
        ("v4l2_fmtdesc", 64),
        ("v4l2_frmsizeenum", 44),
        ("v4l2_frmivalenum", 52),
        ("v4l2_queryctrl", 68),
        ("v4l2_control", 8),
        ("v4l2_querymenu", 44),
        ("v4l2_fract", 8),
        ("v4l2_frmsize_stepwise", 24),
        ("v4l2_frmival_stepwise", 24),
    ],
)
def test_structure_sizes_match_the_kernel(name: str, size: int) -> None:
    """Each ctypes structure has the size of its linux/videodev2.h struct on x86_64."""
    assert ctypes.sizeof(getattr(_v4l2, name)) == size


@pytest.mark.parametrize(
    ("structure", "field", "offset"),
    [
        ("v4l2_capability", "device_caps", 88),
        ("v4l2_fmtdesc", "pixelformat", 44),
        ("v4l2_frmsizeenum", "u", 12),
        ("v4l2_frmivalenum", "u", 20),
        ("v4l2_queryctrl", "default_value", 52),
        ("v4l2_queryctrl", "flags", 56),
    ],
)
def test_field_offsets_match_the_kernel(structure: str, field: str, offset: int) -> None:
    """Fields sit at the kernel's offsets (the unions after the fixed header)."""
    assert getattr(getattr(_v4l2, structure), field).offset == offset


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("VIDIOC_QUERYCAP", 0x80685600),
        ("VIDIOC_ENUM_FMT", 0xC0405602),
        ("VIDIOC_ENUM_FRAMESIZES", 0xC02C564A),
        ("VIDIOC_ENUM_FRAMEINTERVALS", 0xC034564B),
        ("VIDIOC_QUERYCTRL", 0xC0445624),
        ("VIDIOC_G_CTRL", 0xC008561B),
        ("VIDIOC_S_CTRL", 0xC008561C),
        ("VIDIOC_QUERYMENU", 0xC02C5625),
    ],
)
def test_ioctl_numbers_match_the_kernel(name: str, number: int) -> None:
    """The computed ioctl request numbers equal the kernel's."""
    assert getattr(_v4l2, name) == number


def test_control_ids_match_the_kernel() -> None:
    """camerapump's control names map to the V4L2 control ids of v4l2-controls.h."""
    assert _v4l2.CONTROL_IDS["brightness"] == 0x00980900
    assert _v4l2.CONTROL_IDS["exposure"] == 0x009A0902
    assert _v4l2.CONTROL_IDS["auto_exposure"] == 0x009A0901
    assert _v4l2.CONTROL_IDS["white_balance"] == 0x0098091A
    assert _v4l2.CONTROL_IDS["zoom"] == 0x009A090D
    assert len(set(_v4l2.CONTROL_IDS.values())) == len(_v4l2.CONTROL_IDS) == 15


# --- fourcc ------------------------------------------------------------------------------


def test_fourcc_code_is_little_endian() -> None:
    """A fourcc packs its first character into the lowest byte (v4l2_fourcc)."""
    assert _v4l2.fourcc_code("MJPG") == 0x47504A4D
    assert _v4l2.fourcc_code("YUYV") == 0x56595559


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", min_size=4, max_size=4))
def test_fourcc_text_inverts_fourcc_code(text: str) -> None:
    """fourcc_text(fourcc_code(x)) gives back x."""
    assert _v4l2.fourcc_text(_v4l2.fourcc_code(text)) == text


def test_fourcc_big_endian_variant_is_marked() -> None:
    """A code with bit 31 set (a big-endian variant) is shown with a -BE suffix."""
    assert _v4l2.fourcc_text(_v4l2.fourcc_code("Y16 ") | 0x80000000) == "Y16 -BE"


def test_fourcc_code_rejects_wrong_length() -> None:
    """A fourcc must have exactly four characters."""
    with pytest.raises(ValueError, match="exactly four"):
        _v4l2.fourcc_code("MJPEG")


@pytest.mark.parametrize(
    ("fourcc", "name"),
    [
        ("MJPG", "mjpeg"),
        ("JPEG", "mjpeg"),
        ("YUYV", "yuyv422"),
        ("H264", "h264"),
        ("NV12", "nv12"),
        ("YU12", "yuv420p"),
        ("GREY", "gray"),
        ("RGB3", "rgb24"),
    ],
)
def test_fourccs_map_to_ffmpeg_names(fourcc: str, name: str) -> None:
    """V4L2 fourccs map to the names FFmpeg's v4l2 input_format option takes."""
    assert _v4l2.ffmpeg_name(fourcc) == name


def test_unknown_fourcc_has_no_ffmpeg_name() -> None:
    """A fourcc FFmpeg cannot open maps to None (not silently to MJPEG)."""
    assert _v4l2.ffmpeg_name("Z16 ") is None


# --- replies parsed from bytes -----------------------------------------------------------


def test_querycap_reply_is_parsed(node: Any) -> None:
    """VIDIOC_QUERYCAP bytes give the driver, card, bus and capture capability."""
    kernel = FakeKernel({"video0": load("logitech_c920")})
    cap = _v4l2.query_capability(node(), kernel.ioctl)
    assert (cap.driver, cap.card, cap.bus_info) == (
        "uvcvideo",
        "HD Pro Webcam C920",
        "usb-0000:00:14.0-1",
    )
    assert cap.is_capture


def test_metadata_node_is_not_capture(node: Any) -> None:
    """A UVC metadata node (META_CAPTURE in device_caps) is not a video capture node."""
    kernel = FakeKernel({"video1": load("uvc_metadata")})
    cap = _v4l2.query_capability(node("video1"), kernel.ioctl)
    assert cap.capabilities & _v4l2.V4L2_CAP_VIDEO_CAPTURE  # the whole device captures...
    assert not cap.is_capture  # ...but this node does not


def test_capabilities_without_device_caps_flag_are_used_directly() -> None:
    """Without V4L2_CAP_DEVICE_CAPS, the node's capabilities are the capabilities field."""
    cap = _v4l2.CapabilityInfo("old", "card", "bus", 0, capabilities=0x1, device_caps=0)
    assert cap.is_capture


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if f != "stepwise_sensor"])
def test_discrete_modes_are_enumerated_exactly(node: Any, fixture: str) -> None:
    """ENUM_FMT/FRAMESIZES/FRAMEINTERVALS replies reproduce the published mode list."""
    camera = load(fixture)
    modes = _v4l2.enumerate_modes(node(), FakeKernel({"video0": camera}).ioctl)
    got = {(m.fourcc, m.width, m.height, m.fps_choices) for m in modes}
    assert got == listed_modes(camera)
    assert all(m.fps_min == min(m.fps_choices) and m.fps_max == max(m.fps_choices) for m in modes)


def test_uvc_intervals_round_to_the_listed_rates(node: Any) -> None:
    """100 ns UVC intervals (333333/10000000) come out as 30.0 and 7.5 fps, not 30.00003."""
    modes = _v4l2.enumerate_modes(node(), FakeKernel({"video0": load("logitech_c920")}).ioctl)
    assert modes[0].fps_choices == (30.0, 24.0, 20.0, 15.0, 10.0, 7.5, 5.0)


def test_modes_keep_driver_order_and_flags(node: Any) -> None:
    """Formats come in the driver's order, compressed ones flagged."""
    modes = _v4l2.enumerate_modes(node(), FakeKernel({"video0": load("logitech_c920")}).ioctl)
    order = list(dict.fromkeys(m.fourcc for m in modes))
    assert order == ["YUYV", "H264", "MJPG"]
    assert {m.fourcc for m in modes if m.compressed} == {"H264", "MJPG"}


def test_stepwise_sizes_and_continuous_intervals(node: Any) -> None:
    """A stepwise size range expands to common sizes; a continuous rate range has no choices."""
    modes = _v4l2.enumerate_modes(node(), FakeKernel({"video0": load("stepwise_sensor")}).ioctl)
    yuyv = [m for m in modes if m.fourcc == "YUYV"]
    sizes = {(m.width, m.height) for m in yuyv}
    assert {(640, 480), (1280, 720), (1920, 1080), (2592, 1944)} <= sizes
    assert (32, 32) not in sizes
    assert all(m.fps_choices == () for m in yuyv)
    assert {(m.fps_min, m.fps_max) for m in yuyv} == {(1.0, 90.0)}
    h264 = [m for m in modes if m.fourcc == "H264"]
    assert {(m.fps_min, m.fps_max) for m in h264} == {(1.0, 30.0)}


@given(
    min_w=st.integers(1, 2000),
    min_h=st.integers(1, 2000),
    extra_w=st.integers(0, 4000),
    extra_h=st.integers(0, 4000),
    step_w=st.integers(1, 64),
    step_h=st.integers(1, 64),
)
def test_stepwise_expansion_stays_in_range_and_on_grid(
    min_w: int, min_h: int, extra_w: int, extra_h: int, step_w: int, step_h: int
) -> None:
    """Every expanded size lies in the range on its step grid, and the largest size is there."""
    size = _v4l2.StepwiseSize(
        min_w,
        min_w + extra_w - extra_w % step_w,
        step_w,
        min_h,
        min_h + extra_h - extra_h % step_h,
        step_h,
    )
    sizes = _v4l2.expand_stepwise_sizes(size)
    assert (size.max_width, size.max_height) in sizes
    for width, height in sizes:
        assert size.min_width <= width <= size.max_width
        assert size.min_height <= height <= size.max_height
        assert (width - size.min_width) % step_w == 0
        assert (height - size.min_height) % step_h == 0


def test_driver_without_frame_intervals_gives_unknown_rates(node: Any) -> None:
    """A driver answering ENOTTY to ENUM_FRAMEINTERVALS gives modes with unknown rates."""
    camera = load("lifecam_hd3000")

    def ioctl(fd: int, request: int, arg: Any) -> int:
        if request == _v4l2.VIDIOC_ENUM_FRAMEINTERVALS:
            raise OSError(errno.ENOTTY, "no")
        return camera.ioctl(fd, request, arg)

    modes = _v4l2.enumerate_modes(node(), ioctl)
    assert modes
    assert all(m.fps_min is None and m.fps_max is None and m.fps_choices == () for m in modes)


def test_driver_without_frame_sizes_gives_no_modes(node: Any) -> None:
    """A driver answering ENOTTY to ENUM_FRAMESIZES lists formats without modes."""
    camera = load("lifecam_hd3000")

    def ioctl(fd: int, request: int, arg: Any) -> int:
        if request == _v4l2.VIDIOC_ENUM_FRAMESIZES:
            raise OSError(errno.ENOTTY, "no")
        return camera.ioctl(fd, request, arg)

    assert _v4l2.enumerate_modes(node(), ioctl) == []


def test_endless_driver_enumeration_is_capped(node: Any) -> None:
    """A driver that never answers EINVAL cannot make the enumeration run forever."""
    calls = {"fmt": 0}

    def ioctl(fd: int, request: int, arg: Any) -> int:
        if request == _v4l2.VIDIOC_ENUM_FMT:
            calls["fmt"] += 1
            arg.pixelformat = _v4l2.fourcc_code("YUYV")
            return 0
        raise OSError(errno.EINVAL, "no")

    assert _v4l2.enumerate_modes(node(), ioctl) == []
    assert calls["fmt"] <= 130


def test_other_ioctl_errors_propagate(node: Any) -> None:
    """An error other than EINVAL/ENOTTY (an unplugged camera: ENODEV) is raised."""
    camera = load("logitech_c920")
    camera.unplugged = True
    with pytest.raises(OSError) as info:
        _v4l2.enumerate_modes(node(), FakeKernel({"video0": camera}).ioctl)
    assert info.value.errno == errno.ENODEV


def test_real_ioctl_on_a_regular_file_is_enotty(tmp_path: Path) -> None:
    """The real fcntl.ioctl path: QUERYCAP on a plain file fails with ENOTTY."""
    path = tmp_path / "video0"
    path.write_bytes(b"not a camera")
    fd = _v4l2.open_device(str(path))
    try:
        with pytest.raises(OSError) as info:
            _v4l2.query_capability(fd)
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOTTY


# --- controls ----------------------------------------------------------------------------


def test_query_control_reads_range_and_flags(node: Any) -> None:
    """VIDIOC_QUERYCTRL bytes give the range, step, default and the inactive flag."""
    kernel = FakeKernel({"video0": load("logitech_c920")})
    info = _v4l2.query_control(node(), _v4l2.CONTROL_IDS["focus"], kernel.ioctl)
    assert info is not None
    assert (info.minimum, info.maximum, info.step, info.default) == (0, 250, 5, 0)
    assert info.flags & _v4l2.V4L2_CTRL_FLAG_INACTIVE


def test_menu_controls_list_only_offered_items(node: Any) -> None:
    """VIDIOC_QUERYMENU holes are skipped: UVC exposure_auto offers only 1 and 3."""
    kernel = FakeKernel({"video0": load("logitech_c920")})
    info = _v4l2.query_control(node(), _v4l2.CONTROL_IDS["auto_exposure"], kernel.ioctl)
    assert info is not None
    assert info.menu == ((1, "Manual Mode"), (3, "Aperture Priority Mode"))


def test_missing_control_is_none(node: Any) -> None:
    """A control the device lacks (EINVAL from QUERYCTRL) is reported as None."""
    kernel = FakeKernel({"video0": load("logitech_c270")})
    assert _v4l2.query_control(node(), _v4l2.CONTROL_IDS["zoom"], kernel.ioctl) is None


def test_get_and_set_control_round_trip(node: Any) -> None:
    """VIDIOC_S_CTRL then VIDIOC_G_CTRL gives back the value set."""
    kernel = FakeKernel({"video0": load("logitech_c920")})
    fd = node()
    brightness = _v4l2.CONTROL_IDS["brightness"]
    assert _v4l2.get_control(fd, brightness, kernel.ioctl) == 128
    _v4l2.set_control(fd, brightness, 200, kernel.ioctl)
    assert _v4l2.get_control(fd, brightness, kernel.ioctl) == 200
