"""A fake V4L2 driver: it answers ioctls from the ``v4l2-ctl`` listings in this directory.

Replies are packed byte by byte with :mod:`struct` from the kernel's structure
layout (written out here, independently of the ctypes structures under test),
so the tests check camerapump's parsing of real-shaped ioctl buffers.  See
README.md for where the listings come from; the bytes are synthesised from them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent
FIXTURES = ("logitech_c920", "logitech_c270", "lifecam_hd3000", "stepwise_sensor")

# The ioctl numbers as the kernel ABI defines them (x86_64, linux/videodev2.h).
QUERYCAP = 0x80685600
ENUM_FMT = 0xC0405602
G_CTRL = 0xC008561B
S_CTRL = 0xC008561C
QUERYCTRL = 0xC0445624
QUERYMENU = 0xC02C5625
ENUM_FRAMESIZES = 0xC02C564A
ENUM_FRAMEINTERVALS = 0xC034564B

# struct layouts (little-endian x86_64), each exactly sizeof() the kernel structure
CAPABILITY = struct.Struct("<16s32s32sIII12x")  # 104
FMTDESC = struct.Struct("<III32sII12x")  # 64
FRMSIZE_DISCRETE = struct.Struct("<IIIII16x8x")  # 44
FRMSIZE_STEPWISE = struct.Struct("<IIIIIIIII8x")  # 44
FRMIVAL_DISCRETE = struct.Struct("<IIIIIII16x8x")  # 52
FRMIVAL_STEPWISE = struct.Struct("<IIIIIIIIIII8x")  # 52
QUERYCTRL_S = struct.Struct("<II32siiiiI8x")  # 68
CONTROL = struct.Struct("<Ii")  # 8
QUERYMENU_S = struct.Struct("<II32sI")  # 44

_UVC_UNIT = 10_000_000  # UVC intervals are in 100 ns units


def interval_of(fps: float) -> Fraction:
    """The frame interval of ``fps`` the way the UVC driver reports it (333333/10000000)."""
    return Fraction(round(_UVC_UNIT / fps), _UVC_UNIT)


def fourcc_code(text: str) -> int:
    return int.from_bytes(text.encode("ascii"), "little")


@dataclass
class FakeSize:
    width: int
    height: int
    rates: list[float] = field(default_factory=list)


@dataclass
class FakeFormat:
    fourcc: str
    description: str
    compressed: bool
    sizes: list[FakeSize] = field(default_factory=list)
    stepwise: tuple[int, int, int, int, int, int] | None = None  # minw maxw stepw minh maxh steph
    interval_range: tuple[str, float, float] | None = None  # kind, fps_min, fps_max


@dataclass
class FakeControl:
    id: int
    type: int
    name: str
    minimum: int
    maximum: int
    step: int
    default: int
    value: int
    flags: int = 0
    menu: dict[int, str] = field(default_factory=dict)


@dataclass
class FakeCamera:
    """One device node: its QUERYCAP answer, formats and controls."""

    driver: str
    card: str
    bus_info: str
    capabilities: int
    device_caps: int
    formats: list[FakeFormat]
    controls: dict[int, FakeControl]
    unplugged: bool = False
    busy: bool = False
    calls: list[int] = field(default_factory=list)

    def ioctl(self, fd: int, request: int, arg: Any) -> int:
        """Fill ``arg`` as the kernel would, or raise OSError like it."""
        self.calls.append(request)
        if self.unplugged:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        raw = bytes(arg)
        reply = self._answer(request, raw)
        assert len(reply) == ctypes.sizeof(arg), (hex(request), len(reply), ctypes.sizeof(arg))
        ctypes.memmove(ctypes.addressof(arg), reply, len(reply))
        return 0

    def _answer(self, request: int, raw: bytes) -> bytes:
        if request == QUERYCAP:
            return CAPABILITY.pack(
                self.driver.encode(),
                self.card.encode(),
                self.bus_info.encode(),
                0x00060100,
                self.capabilities,
                self.device_caps,
            )
        if request == ENUM_FMT:
            index, buf_type = struct.unpack_from("<II", raw)
            if buf_type != 1 or index >= len(self.formats):
                raise _einval()
            fmt = self.formats[index]
            flags = 1 if fmt.compressed else 0
            desc = fmt.description.encode()
            return FMTDESC.pack(index, buf_type, flags, desc, fourcc_code(fmt.fourcc), 0)
        if request == ENUM_FRAMESIZES:
            index, code = struct.unpack_from("<II", raw)
            fmt = self._format(code)
            if fmt.stepwise is not None:
                if index != 0:
                    raise _einval()
                kind = 2 if fmt.stepwise[2] == fmt.stepwise[5] == 1 else 3
                return FRMSIZE_STEPWISE.pack(index, code, kind, *fmt.stepwise)
            if index >= len(fmt.sizes):
                raise _einval()
            size = fmt.sizes[index]
            return FRMSIZE_DISCRETE.pack(index, code, 1, size.width, size.height)
        if request == ENUM_FRAMEINTERVALS:
            index, code, width, height = struct.unpack_from("<IIII", raw)
            fmt = self._format(code)
            if fmt.interval_range is not None:
                if index != 0:
                    raise _einval()
                kind, fps_min, fps_max = fmt.interval_range
                low, high = interval_of(fps_max), interval_of(fps_min)
                step = Fraction(1, _UVC_UNIT) if kind == "stepwise" else Fraction(1, 1)
                return FRMIVAL_STEPWISE.pack(
                    index,
                    code,
                    width,
                    height,
                    3 if kind == "stepwise" else 2,
                    low.numerator,
                    low.denominator,
                    high.numerator,
                    high.denominator,
                    step.numerator,
                    step.denominator,
                )
            size = next((s for s in fmt.sizes if (s.width, s.height) == (width, height)), None)
            if size is None or index >= len(size.rates):
                raise _einval()
            ival = interval_of(size.rates[index])
            return FRMIVAL_DISCRETE.pack(
                index, code, width, height, 1, ival.numerator, ival.denominator
            )
        if request == QUERYCTRL:
            (control_id,) = struct.unpack_from("<I", raw)
            ctrl = self._control(control_id)
            return QUERYCTRL_S.pack(
                ctrl.id,
                ctrl.type,
                ctrl.name.encode(),
                ctrl.minimum,
                ctrl.maximum,
                ctrl.step,
                ctrl.default,
                ctrl.flags,
            )
        if request == QUERYMENU:
            control_id, index = struct.unpack_from("<II", raw)
            ctrl = self._control(control_id)
            if index not in ctrl.menu:
                raise _einval()
            return QUERYMENU_S.pack(control_id, index, ctrl.menu[index].encode(), 0)
        if request == G_CTRL:
            (control_id,) = struct.unpack_from("<I", raw)
            return CONTROL.pack(control_id, self._control(control_id).value)
        if request == S_CTRL:
            control_id, value = CONTROL.unpack_from(raw)
            ctrl = self._control(control_id)
            if self.busy:
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
            if not ctrl.minimum <= value <= ctrl.maximum:
                raise OSError(errno.ERANGE, os.strerror(errno.ERANGE))
            ctrl.value = value
            return CONTROL.pack(control_id, value)
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    def _format(self, code: int) -> FakeFormat:
        for fmt in self.formats:
            if fourcc_code(fmt.fourcc) == code:
                return fmt
        raise _einval()

    def _control(self, control_id: int) -> FakeControl:
        if control_id not in self.controls:
            raise _einval()
        return self.controls[control_id]


def _einval() -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))


_FORMAT = re.compile(r"^\s*\[(\d+)\]: '(.{4})' \((.*?)(, compressed)?\)$")
_DISCRETE = re.compile(r"^\s*Size: Discrete (\d+)x(\d+)$")
_STEPWISE = re.compile(r"^\s*Size: Stepwise (\d+)x(\d+) - (\d+)x(\d+) with step (\d+)/(\d+)$")
_INTERVAL = re.compile(r"^\s*Interval: Discrete [\d.]+s \(([\d.]+) fps\)$")
_RANGE = re.compile(r"^\s*Interval: (Continuous|Stepwise) .*\(([\d.]+)-([\d.]+) fps\)$")
_CONTROL = re.compile(r"^\s*(\w+) (0x[0-9a-f]{8}) \((\w+)\)\s*: (.*)$")
_MENU_ITEM = re.compile(r"^\s+(\d+): (.+)$")
_TYPES = {"int": 1, "bool": 2, "menu": 3}


def load(name: str) -> FakeCamera:
    """Parse ``tests/data/<name>.txt`` into a fake camera."""
    header: dict[str, str] = {}
    formats: list[FakeFormat] = []
    controls: dict[int, FakeControl] = {}
    last: FakeControl | None = None
    in_controls = False
    for line in (DATA / f"{name}.txt").read_text().splitlines():
        if line.startswith("# controls"):
            in_controls = True
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() in ("driver", "card", "bus_info", "capabilities", "device_caps"):
                header[key.strip()] = value.strip()
            continue
        if in_controls:
            if m := _CONTROL.match(line):
                values = dict(part.split("=", 1) for part in m.group(4).split())
                kind = _TYPES[m.group(3)]
                last = FakeControl(
                    id=int(m.group(2), 16),
                    type=kind,
                    name=m.group(1).replace("_", " ").title(),
                    minimum=int(values.get("min", 0)),
                    maximum=int(values.get("max", 1)),
                    step=int(values.get("step", 1)) if kind != 3 else 1,
                    default=int(values["default"]),
                    value=int(values["value"]),
                    flags=0x10 if values.get("flags") == "inactive" else 0,
                )
                controls[last.id] = last
            elif (m := _MENU_ITEM.match(line)) and last is not None:
                last.menu[int(m.group(1))] = m.group(2).strip()
            continue
        if m := _FORMAT.match(line):
            formats.append(FakeFormat(m.group(2), m.group(3), bool(m.group(4))))
        elif m := _DISCRETE.match(line):
            formats[-1].sizes.append(FakeSize(int(m.group(1)), int(m.group(2))))
        elif m := _STEPWISE.match(line):
            minw, minh, maxw, maxh, stepw, steph = (int(g) for g in m.groups())
            formats[-1].stepwise = (minw, maxw, stepw, minh, maxh, steph)
        elif m := _INTERVAL.match(line):
            formats[-1].sizes[-1].rates.append(float(m.group(1)))
        elif m := _RANGE.match(line):
            kind = m.group(1).lower()
            formats[-1].interval_range = (kind, float(m.group(2)), float(m.group(3)))
    return FakeCamera(
        driver=header["driver"],
        card=header["card"],
        bus_info=header["bus_info"],
        capabilities=int(header["capabilities"], 16),
        device_caps=int(header["device_caps"], 16),
        formats=formats,
        controls=controls,
    )


def listed_modes(camera: FakeCamera) -> set[tuple[str, int, int, tuple[float, ...]]]:
    """The (fourcc, width, height, rates highest first) of a camera's discrete listing."""
    return {
        (fmt.fourcc, size.width, size.height, tuple(sorted(size.rates, reverse=True)))
        for fmt in camera.formats
        for size in fmt.sizes
    }


class FakeKernel:
    """Answers ioctls on real open files, by the file's name (``video0`` -> a camera).

    A file whose name has no camera behaves like any non-device file: ENOTTY.
    """

    def __init__(self, cameras: dict[str, FakeCamera] | None = None) -> None:
        self.cameras: dict[str, FakeCamera] = dict(cameras or {})

    def ioctl(self, fd: int, request: int, arg: Any) -> int:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        camera = self.cameras.get(name)
        if camera is None:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        return camera.ioctl(fd, request, arg)
