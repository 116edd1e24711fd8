"""The V4L2 kernel interface through ``fcntl.ioctl`` and ctypes: no native dependency.

Structures and ioctl numbers follow ``<linux/videodev2.h>`` (checked on x86_64
against the kernel header; the numbers only depend on the structure sizes, which
are the same on every Linux ABI that Python runs on, because every field is a
fixed-width integer).  Everything here takes the ioctl callable as an argument
so that tests can answer from recorded tables; the real one is ``fcntl.ioctl``.

Functions here raise plain :class:`OSError`; the translation into camerapump's
typed errors happens in one place, :mod:`camerapump._devices`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "COMMON_SIZES",
    "CONTROL_IDS",
    "FOURCC_TO_FFMPEG",
    "V4L2_CAP_DEVICE_CAPS",
    "V4L2_CAP_VIDEO_CAPTURE",
    "VIDIOC_ENUM_FMT",
    "VIDIOC_ENUM_FRAMEINTERVALS",
    "VIDIOC_ENUM_FRAMESIZES",
    "VIDIOC_G_CTRL",
    "VIDIOC_QUERYCAP",
    "VIDIOC_QUERYCTRL",
    "VIDIOC_QUERYMENU",
    "VIDIOC_S_CTRL",
    "CapabilityInfo",
    "ControlInfo",
    "Ioctl",
    "Mode",
    "StepwiseSize",
    "enumerate_modes",
    "expand_stepwise_sizes",
    "ffmpeg_name",
    "fourcc_code",
    "fourcc_text",
    "get_control",
    "open_device",
    "query_capability",
    "query_control",
    "real_ioctl",
    "set_control",
]

#: ``(fd, request, structure) -> anything``; fills ``structure`` in place or
#: raises :class:`OSError`.  The real one is :func:`fcntl.ioctl`.
Ioctl = Callable[[int, int, Any], object]

# --- ioctl number encoding (asm-generic/ioctl.h) -----------------------------------------

_IOC_WRITE = 1
_IOC_READ = 2
_V = ord("V")


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (_V << 8) | nr


# --- structures (linux/videodev2.h) ------------------------------------------------------


class v4l2_capability(ctypes.Structure):  # noqa: N801 - the kernel's name
    _fields_ = (
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    )


class v4l2_fmtdesc(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("index", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("description", ctypes.c_char * 32),
        ("pixelformat", ctypes.c_uint32),
        ("mbus_code", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    )


class v4l2_frmsize_discrete(ctypes.Structure):  # noqa: N801
    _fields_ = (("width", ctypes.c_uint32), ("height", ctypes.c_uint32))


class v4l2_frmsize_stepwise(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("min_width", ctypes.c_uint32),
        ("max_width", ctypes.c_uint32),
        ("step_width", ctypes.c_uint32),
        ("min_height", ctypes.c_uint32),
        ("max_height", ctypes.c_uint32),
        ("step_height", ctypes.c_uint32),
    )


class _frmsize_union(ctypes.Union):  # noqa: N801
    _fields_ = (("discrete", v4l2_frmsize_discrete), ("stepwise", v4l2_frmsize_stepwise))


class v4l2_frmsizeenum(ctypes.Structure):  # noqa: N801
    _anonymous_ = ("u",)
    _fields_ = (
        ("index", ctypes.c_uint32),
        ("pixel_format", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("u", _frmsize_union),
        ("reserved", ctypes.c_uint32 * 2),
    )


class v4l2_fract(ctypes.Structure):  # noqa: N801
    _fields_ = (("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32))


class v4l2_frmival_stepwise(ctypes.Structure):  # noqa: N801
    _fields_ = (("min", v4l2_fract), ("max", v4l2_fract), ("step", v4l2_fract))


class _frmival_union(ctypes.Union):  # noqa: N801
    _fields_ = (("discrete", v4l2_fract), ("stepwise", v4l2_frmival_stepwise))


class v4l2_frmivalenum(ctypes.Structure):  # noqa: N801
    _anonymous_ = ("u",)
    _fields_ = (
        ("index", ctypes.c_uint32),
        ("pixel_format", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("u", _frmival_union),
        ("reserved", ctypes.c_uint32 * 2),
    )


class v4l2_queryctrl(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("id", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("name", ctypes.c_char * 32),
        ("minimum", ctypes.c_int32),
        ("maximum", ctypes.c_int32),
        ("step", ctypes.c_int32),
        ("default_value", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 2),
    )


class v4l2_control(ctypes.Structure):  # noqa: N801
    _fields_ = (("id", ctypes.c_uint32), ("value", ctypes.c_int32))


class _querymenu_union(ctypes.Union):  # noqa: N801
    _pack_ = 1
    _fields_ = (("name", ctypes.c_char * 32), ("value", ctypes.c_int64))


class v4l2_querymenu(ctypes.Structure):  # noqa: N801
    # __attribute__((packed)) in the header: 44 bytes, the int64 is not 8-aligned.
    _pack_ = 1
    _anonymous_ = ("u",)
    _fields_ = (
        ("id", ctypes.c_uint32),
        ("index", ctypes.c_uint32),
        ("u", _querymenu_union),
        ("reserved", ctypes.c_uint32),
    )


VIDIOC_QUERYCAP = _ioc(_IOC_READ, 0, ctypes.sizeof(v4l2_capability))
VIDIOC_ENUM_FMT = _ioc(_IOC_READ | _IOC_WRITE, 2, ctypes.sizeof(v4l2_fmtdesc))
VIDIOC_G_CTRL = _ioc(_IOC_READ | _IOC_WRITE, 27, ctypes.sizeof(v4l2_control))
VIDIOC_S_CTRL = _ioc(_IOC_READ | _IOC_WRITE, 28, ctypes.sizeof(v4l2_control))
VIDIOC_QUERYCTRL = _ioc(_IOC_READ | _IOC_WRITE, 36, ctypes.sizeof(v4l2_queryctrl))
VIDIOC_QUERYMENU = _ioc(_IOC_READ | _IOC_WRITE, 37, ctypes.sizeof(v4l2_querymenu))
VIDIOC_ENUM_FRAMESIZES = _ioc(_IOC_READ | _IOC_WRITE, 74, ctypes.sizeof(v4l2_frmsizeenum))
VIDIOC_ENUM_FRAMEINTERVALS = _ioc(_IOC_READ | _IOC_WRITE, 75, ctypes.sizeof(v4l2_frmivalenum))

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_DEVICE_CAPS = 0x80000000
V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_FRMSIZE_TYPE_DISCRETE = 1
V4L2_FRMSIZE_TYPE_CONTINUOUS = 2
V4L2_FRMSIZE_TYPE_STEPWISE = 3
V4L2_FRMIVAL_TYPE_DISCRETE = 1
V4L2_FRMIVAL_TYPE_CONTINUOUS = 2
V4L2_FRMIVAL_TYPE_STEPWISE = 3
V4L2_CTRL_FLAG_DISABLED = 0x0001
V4L2_CTRL_FLAG_READ_ONLY = 0x0004
V4L2_CTRL_FLAG_INACTIVE = 0x0010
V4L2_CTRL_FLAG_WRITE_ONLY = 0x0040
V4L2_CTRL_TYPE_INTEGER = 1
V4L2_CTRL_TYPE_BOOLEAN = 2
V4L2_CTRL_TYPE_MENU = 3
V4L2_CTRL_TYPE_INTEGER_MENU = 9

#: camerapump's control names and the V4L2 control ids behind them.
CONTROL_IDS: dict[str, int] = {
    "brightness": 0x00980900,
    "contrast": 0x00980901,
    "saturation": 0x00980902,
    "sharpness": 0x0098091B,
    "gain": 0x00980913,
    "exposure": 0x009A0902,  # V4L2_CID_EXPOSURE_ABSOLUTE (100 µs units)
    "auto_exposure": 0x009A0901,  # V4L2_CID_EXPOSURE_AUTO (a menu)
    "focus": 0x009A090A,  # V4L2_CID_FOCUS_ABSOLUTE
    "auto_focus": 0x009A090C,
    "white_balance": 0x0098091A,  # V4L2_CID_WHITE_BALANCE_TEMPERATURE (kelvin)
    "auto_white_balance": 0x0098090C,
    "power_line_frequency": 0x00980918,  # a menu: 0 off, 1 50 Hz, 2 60 Hz, 3 auto
    "zoom": 0x009A090D,  # V4L2_CID_ZOOM_ABSOLUTE
    "pan": 0x009A0908,  # V4L2_CID_PAN_ABSOLUTE (arc seconds)
    "tilt": 0x009A0909,  # V4L2_CID_TILT_ABSOLUTE (arc seconds)
}

# --- fourcc <-> FFmpeg -------------------------------------------------------------------


def fourcc_code(text: str) -> int:
    """The 32-bit V4L2 code of a four-character code such as ``"MJPG"`` (``"Y16 "``)."""
    raw = text.encode("ascii")
    if len(raw) != 4:
        raise ValueError(f"a fourcc has exactly four characters, not {text!r}")
    return int.from_bytes(raw, "little")


def fourcc_text(code: int) -> str:
    """The four characters of a V4L2 code; big-endian variants get a ``-BE`` suffix."""
    text = (code & 0x7FFFFFFF).to_bytes(4, "little").decode("latin-1")
    return text + "-BE" if code & 0x80000000 else text


#: V4L2 fourcc -> the name FFmpeg's v4l2 demuxer takes as ``input_format``
#: (libavdevice/v4l2-common.c, ``ff_fmt_conversion_table``): a pixel format name
#: for raw formats, a codec name for compressed ones.
FOURCC_TO_FFMPEG: dict[str, str] = {
    "YU12": "yuv420p",
    "YV12": "yuv420p",
    "422P": "yuv422p",
    "YUYV": "yuyv422",
    "UYVY": "uyvy422",
    "411P": "yuv411p",
    "YUV9": "yuv410p",
    "YVU9": "yuv410p",
    "RGBO": "rgb555le",
    "RGBQ": "rgb555be",
    "RGBP": "rgb565le",
    "RGBR": "rgb565be",
    "BGR3": "bgr24",
    "RGB3": "rgb24",
    "XR24": "bgr0",
    "BX24": "0rgb",
    "AR24": "bgra",
    "BA24": "argb",
    "BGR4": "bgr0",
    "RGB4": "0rgb",
    "GREY": "gray",
    "Y16 ": "gray16le",
    "NV12": "nv12",
    "MJPG": "mjpeg",
    "JPEG": "mjpeg",
    "H264": "h264",
    "MPG4": "mpeg4",
    "CPIA": "cpia",
    "BA81": "bayer_bggr8",
    "GBRG": "bayer_gbrg8",
    "GRBG": "bayer_grbg8",
    "RGGB": "bayer_rggb8",
}


def ffmpeg_name(fourcc: str) -> str | None:
    """FFmpeg's ``input_format`` name for a V4L2 fourcc, or ``None`` if FFmpeg has none."""
    return FOURCC_TO_FFMPEG.get(fourcc)


# --- opening -----------------------------------------------------------------------------


def open_device(path: str) -> int:
    """Open a device node for queries and controls (read-write, non-blocking, close-on-exec).

    Opening does not start streaming, so it works while another program streams.
    """
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)


def real_ioctl(fd: int, request: int, arg: Any) -> object:
    """:func:`fcntl.ioctl` with the structure filled in place, retrying on EINTR."""
    while True:
        try:
            return fcntl.ioctl(fd, request, arg)  # mutate_flag defaults to True
        except InterruptedError:
            continue


# --- capability --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapabilityInfo:
    """The answer to VIDIOC_QUERYCAP."""

    driver: str
    card: str
    bus_info: str
    version: int
    capabilities: int
    device_caps: int

    @property
    def node_caps(self) -> int:
        """The capabilities of this node (``device_caps`` when the driver gives them)."""
        if self.capabilities & V4L2_CAP_DEVICE_CAPS:
            return self.device_caps
        return self.capabilities

    @property
    def is_capture(self) -> bool:
        """True for a video capture node (False for a UVC metadata node, an output, ...)."""
        return bool(self.node_caps & V4L2_CAP_VIDEO_CAPTURE)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def query_capability(fd: int, ioctl: Ioctl = real_ioctl) -> CapabilityInfo:
    """VIDIOC_QUERYCAP.  A file that is no V4L2 device raises ``OSError(ENOTTY)``."""
    cap = v4l2_capability()
    ioctl(fd, VIDIOC_QUERYCAP, cap)
    return CapabilityInfo(
        driver=_text(cap.driver),
        card=_text(cap.card),
        bus_info=_text(cap.bus_info),
        version=cap.version,
        capabilities=cap.capabilities,
        device_caps=cap.device_caps,
    )


# --- formats, sizes, intervals -----------------------------------------------------------

# A driver answers EINVAL past the last entry.  The caps stop a buggy driver that
# never does from hanging the enumeration.
_MAX_FORMATS = 128
_MAX_SIZES = 512
_MAX_INTERVALS = 256


def _enumerate(ioctl: Ioctl, fd: int, request: int, make: Callable[[int], Any]) -> Iterator[Any]:
    for index in range(_MAX_SIZES):
        arg = make(index)
        try:
            ioctl(fd, request, arg)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return
            raise
        yield arg


@dataclass(frozen=True, slots=True)
class StepwiseSize:
    """A stepwise (or, with steps of 1, continuous) frame size range."""

    min_width: int
    max_width: int
    step_width: int
    min_height: int
    max_height: int
    step_height: int


#: The frame sizes offered from a stepwise or continuous range (see
#: :func:`expand_stepwise_sizes`): the usual webcam, video and sensor sizes.
COMMON_SIZES: tuple[tuple[int, int], ...] = (
    (160, 120),
    (176, 144),
    (320, 240),
    (352, 288),
    (640, 360),
    (640, 480),
    (800, 600),
    (960, 540),
    (1024, 768),
    (1280, 720),
    (1280, 960),
    (1280, 1024),
    (1600, 1200),
    (1920, 1080),
    (2048, 1536),
    (2560, 1440),
    (2592, 1944),
    (3840, 2160),
    (4096, 2160),
)


def expand_stepwise_sizes(size: StepwiseSize) -> list[tuple[int, int]]:
    """Turn a size range into the discrete sizes camerapump offers for it.

    The rule: every size of :data:`COMMON_SIZES` that lies inside the range and
    on its step grid (``(w - min_width) % step_width == 0``, the same for the
    height), plus the range's largest size (the full sensor); sorted by area.
    The smallest size of a range (often 32x32 or 16x16) is left out: it is a
    driver limit, not a mode anyone asks for.
    """
    step_w = max(1, size.step_width)
    step_h = max(1, size.step_height)
    found = {(size.max_width, size.max_height)}
    for width, height in COMMON_SIZES:
        if (
            size.min_width <= width <= size.max_width
            and size.min_height <= height <= size.max_height
            and (width - size.min_width) % step_w == 0
            and (height - size.min_height) % step_h == 0
        ):
            found.add((width, height))
    return sorted(found, key=lambda wh: (wh[0] * wh[1], wh))


@dataclass(frozen=True, slots=True)
class Mode:
    """One (fourcc, size) of a device and the frame rates it offers there.

    ``fps_choices`` lists the discrete rates (highest first); it is empty when
    the driver takes any interval in a range, ``fps_min``..``fps_max``.  All
    three are empty/``None`` when the driver does not list intervals at all.
    """

    fourcc: str
    description: str
    compressed: bool
    width: int
    height: int
    fps_min: float | None
    fps_max: float | None
    fps_choices: tuple[float, ...]


def _fps(interval: Fraction) -> float:
    # UVC intervals are in 100 ns units (333333/10000000): three decimals is what
    # v4l2-ctl prints and all that any request means.
    return round(float(1 / interval), 3)


def _intervals(
    fd: int, fourcc: int, width: int, height: int, ioctl: Ioctl
) -> tuple[float | None, float | None, tuple[float, ...]]:
    def make(index: int) -> v4l2_frmivalenum:
        return v4l2_frmivalenum(index=index, pixel_format=fourcc, width=width, height=height)

    rates: set[float] = set()
    try:
        for count, ival in enumerate(_enumerate(ioctl, fd, VIDIOC_ENUM_FRAMEINTERVALS, make)):
            if count >= _MAX_INTERVALS:
                break
            if ival.type == V4L2_FRMIVAL_TYPE_DISCRETE:
                if ival.discrete.numerator and ival.discrete.denominator:
                    rates.add(_fps(Fraction(ival.discrete.numerator, ival.discrete.denominator)))
                continue
            low, high = ival.stepwise.min, ival.stepwise.max
            if not (low.numerator and low.denominator and high.numerator and high.denominator):
                return None, None, ()
            # A short interval is a high rate: fps_max comes from the minimum interval.
            fps_max = _fps(Fraction(low.numerator, low.denominator))
            fps_min = _fps(Fraction(high.numerator, high.denominator))
            return min(fps_min, fps_max), max(fps_min, fps_max), ()
    except OSError as exc:
        # Some drivers do not implement the interval ioctl: the rate is then unknown.
        if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
            return None, None, ()
        raise
    if not rates:
        return None, None, ()
    choices = tuple(sorted(rates, reverse=True))
    return choices[-1], choices[0], choices


def _sizes(fd: int, fourcc: int, ioctl: Ioctl) -> list[tuple[int, int]]:
    def make(index: int) -> v4l2_frmsizeenum:
        return v4l2_frmsizeenum(index=index, pixel_format=fourcc)

    sizes: list[tuple[int, int]] = []
    try:
        for fsize in _enumerate(ioctl, fd, VIDIOC_ENUM_FRAMESIZES, make):
            if fsize.type == V4L2_FRMSIZE_TYPE_DISCRETE:
                if fsize.discrete.width and fsize.discrete.height:
                    sizes.append((fsize.discrete.width, fsize.discrete.height))
                continue
            sw = fsize.stepwise
            step_w, step_h = sw.step_width, sw.step_height
            if fsize.type == V4L2_FRMSIZE_TYPE_CONTINUOUS:
                step_w = step_h = 1
            return expand_stepwise_sizes(
                StepwiseSize(
                    sw.min_width, sw.max_width, step_w, sw.min_height, sw.max_height, step_h
                )
            )
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
            return []
        raise
    return sizes


def enumerate_modes(fd: int, ioctl: Ioctl = real_ioctl) -> list[Mode]:
    """Every (format, size) of a capture node with its frame rates, in driver order.

    Uses VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMESIZES and VIDIOC_ENUM_FRAMEINTERVALS;
    stepwise and continuous sizes are expanded with :func:`expand_stepwise_sizes`.
    """
    modes: list[Mode] = []

    def make(index: int) -> v4l2_fmtdesc:
        return v4l2_fmtdesc(index=index, type=V4L2_BUF_TYPE_VIDEO_CAPTURE)

    for count, desc in enumerate(_enumerate(ioctl, fd, VIDIOC_ENUM_FMT, make)):
        if count >= _MAX_FORMATS:
            break
        code = desc.pixelformat
        fourcc = fourcc_text(code)
        for width, height in _sizes(fd, code, ioctl):
            fps_min, fps_max, choices = _intervals(fd, code, width, height, ioctl)
            modes.append(
                Mode(
                    fourcc=fourcc,
                    description=_text(desc.description),
                    compressed=bool(desc.flags & 0x0001),
                    width=width,
                    height=height,
                    fps_min=fps_min,
                    fps_max=fps_max,
                    fps_choices=choices,
                )
            )
    return modes


# --- controls ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlInfo:
    """The answer to VIDIOC_QUERYCTRL (plus the menu entries for a menu control)."""

    id: int
    type: int
    name: str
    minimum: int
    maximum: int
    step: int
    default: int
    flags: int
    menu: tuple[tuple[int, str], ...]


def query_control(fd: int, control_id: int, ioctl: Ioctl = real_ioctl) -> ControlInfo | None:
    """VIDIOC_QUERYCTRL for one id; ``None`` when the device has no such control."""
    query = v4l2_queryctrl(id=control_id)
    try:
        ioctl(fd, VIDIOC_QUERYCTRL, query)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise
    if query.flags & V4L2_CTRL_FLAG_DISABLED:
        return None
    menu: list[tuple[int, str]] = []
    if query.type in (V4L2_CTRL_TYPE_MENU, V4L2_CTRL_TYPE_INTEGER_MENU):
        # Menus have holes (UVC exposure_auto offers only 1 and 3): each index is asked.
        for index in range(query.minimum, min(query.maximum, query.minimum + 64) + 1):
            item = v4l2_querymenu(id=control_id, index=index)
            try:
                ioctl(fd, VIDIOC_QUERYMENU, item)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    continue
                raise
            label = (
                str(item.value) if query.type == V4L2_CTRL_TYPE_INTEGER_MENU else _text(item.name)
            )
            menu.append((index, label))
    return ControlInfo(
        id=control_id,
        type=query.type,
        name=_text(query.name),
        minimum=query.minimum,
        maximum=query.maximum,
        step=query.step,
        default=query.default_value,
        flags=query.flags,
        menu=tuple(menu),
    )


def get_control(fd: int, control_id: int, ioctl: Ioctl = real_ioctl) -> int:
    """VIDIOC_G_CTRL: the current value of a control."""
    ctrl = v4l2_control(id=control_id)
    ioctl(fd, VIDIOC_G_CTRL, ctrl)
    return int(ctrl.value)


def set_control(fd: int, control_id: int, value: int, ioctl: Ioctl = real_ioctl) -> None:
    """VIDIOC_S_CTRL: set a control (the caller has checked the range)."""
    ioctl(fd, VIDIOC_S_CTRL, v4l2_control(id=control_id, value=value))
