"""Attached cameras: enumeration, capabilities, format negotiation and controls.

On Linux everything comes from the kernel through V4L2 ioctls (:mod:`._v4l2`);
on macOS and Windows from FFmpeg's device list (``av.enumerate_input_devices``),
which names the cameras but cannot list their modes or controls.  OS errors are
translated into camerapump's typed errors here, in one place
(:func:`_map_os_error`).

Negotiation (:func:`best_format`) is a pure function over a
:class:`Capabilities` table, so it is tested without any camera.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import av.error

from . import _v4l2
from ._config import StreamConfig, is_positive_number
from ._errors import CameraError, DeviceBusy, DeviceNotFound, FormatNotSupported, PermissionDenied
from ._source import Source, UsbBackend, default_usb_backend

__all__ = [
    "CONTROL_NAMES",
    "Capabilities",
    "Control",
    "ControlError",
    "DeviceInfo",
    "FormatDescriptor",
    "NegotiationMode",
    "best_format",
    "devices_json",
    "devices_table",
    "find_device_by_id",
    "get_controls",
    "list_devices",
    "negotiate_usb",
    "probe",
    "set_controls",
]

logger = logging.getLogger("camerapump")

NegotiationMode = Literal["exact", "nearest"]
ControlKind = Literal["integer", "boolean", "menu"]

#: The control names :func:`get_controls` reports and :func:`set_controls` takes.
CONTROL_NAMES: tuple[str, ...] = tuple(_v4l2.CONTROL_IDS)

_BACKENDS: tuple[str, ...] = ("v4l2", "avfoundation", "dshow")
# A requested rate matches a device rate within this relative tolerance (29.97 vs
# 30), the same tolerance the pump applies to the opened stream.
_FPS_TOLERANCE = 0.02
# How many of the closest modes an "exact" failure lists.
_CLOSEST = 5
_FFMPEG_NAMES = frozenset(_v4l2.FOURCC_TO_FFMPEG.values())
_COMPRESSED = frozenset({"mjpeg", "h264", "mpeg4", "cpia"})
# Auto controls are set first, so that e.g. auto_exposure=1 (manual) and an
# exposure value in the same call work in either keyword order.
_AUTO_FIRST = ("auto_exposure", "auto_focus", "auto_white_balance")


class ControlError(CameraError, ValueError):
    """Raised when a camera control is unknown, missing on the device, or out of range.

    The message names what is allowed (the known names, the device's controls,
    or the control's range and step).
    """


# --- plain data --------------------------------------------------------------------------


def _check_fps(name: str, value: float | None) -> None:
    if value is not None and not is_positive_number(value):
        raise ValueError(f"{name} must be a positive number of frames per second or None")


@dataclass(frozen=True, slots=True)
class FormatDescriptor:
    """One mode a camera offers: a frame size in one wire format, with its frame rates.

    Attributes:
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps_min: The lowest frame rate, or ``None`` if the driver does not say.
        fps_max: The highest frame rate, or ``None`` if the driver does not say.
        fps_choices: The discrete rates, highest first.  Empty when the device
            takes any rate from ``fps_min`` to ``fps_max`` (a stepwise or
            continuous interval range) or when the rates are unknown.
        input_format: What the camera sends, as FFmpeg names it for
            :attr:`StreamConfig.input_format <camerapump.StreamConfig.input_format>`
            (``"mjpeg"``, ``"yuyv422"``, ``"h264"``, ``"nv12"``); the fourcc
            itself (``"Z16"``) for formats FFmpeg has no name for.
        fourcc: The V4L2 four-character code (``"MJPG"``); ``""`` off Linux.
    """

    width: int
    height: int
    fps_min: float | None
    fps_max: float | None
    fps_choices: tuple[float, ...]
    input_format: str
    fourcc: str = ""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive whole number of pixels")
        _check_fps("fps_min", self.fps_min)
        _check_fps("fps_max", self.fps_max)
        if (self.fps_min is None) != (self.fps_max is None):
            raise ValueError("fps_min and fps_max go together: give both or neither")
        if self.fps_min is not None and self.fps_max is not None and self.fps_min > self.fps_max:
            raise ValueError("fps_min must not be above fps_max")
        if not isinstance(self.fps_choices, tuple):
            raise ValueError("fps_choices must be a tuple of frame rates")  # noqa: TRY004 - house style
        for fps in self.fps_choices:
            _check_fps("each of fps_choices", fps)
        if self.fps_choices and (
            self.fps_min is None
            or self.fps_max is None
            or not self.fps_min <= min(self.fps_choices) <= max(self.fps_choices) <= self.fps_max
        ):
            raise ValueError("fps_choices must lie between fps_min and fps_max")
        if not isinstance(self.input_format, str) or not self.input_format.strip():
            raise ValueError("input_format must be a non-empty FFmpeg format name")

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return (self.width, self.height)

    def supports_fps(self, fps: float) -> bool:
        """Whether the mode delivers ``fps`` (within 2 %; always True if the rates are unknown)."""
        if self.fps_min is None or self.fps_max is None:
            return True
        slack = _FPS_TOLERANCE * fps
        if self.fps_choices:
            return any(abs(choice - fps) <= slack for choice in self.fps_choices)
        return self.fps_min - slack <= fps <= self.fps_max + slack

    def nearest_fps(self, fps: float) -> float | None:
        """The rate of this mode closest to ``fps`` (the higher on a tie); ``None`` if unknown."""
        if self.fps_min is None or self.fps_max is None:
            return None
        if self.fps_choices:
            return min(self.fps_choices, key=lambda choice: (abs(choice - fps), -choice))
        return min(max(fps, self.fps_min), self.fps_max)

    def __str__(self) -> str:
        if self.fps_min is None or self.fps_max is None:
            rates = "? fps"
        elif self.fps_choices:
            rates = "/".join(f"{fps:g}" for fps in self.fps_choices) + " fps"
        else:
            rates = f"{self.fps_min:g}-{self.fps_max:g} fps"
        return f"{self.width}x{self.height} {self.input_format} @ {rates}"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Every mode a camera offers, in the driver's order.

    Attributes:
        formats: The modes.  Empty where they cannot be read (macOS, Windows,
            a driver without frame-size enumeration).
    """

    formats: tuple[FormatDescriptor, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.formats, tuple) or not all(
            isinstance(f, FormatDescriptor) for f in self.formats
        ):
            raise ValueError("formats must be a tuple of FormatDescriptor")

    @property
    def input_formats(self) -> tuple[str, ...]:
        """The wire formats, each once, in the driver's order."""
        return tuple(dict.fromkeys(f.input_format for f in self.formats))

    def summary(self) -> str:
        """One line: each wire format with its largest size and that size's top rate."""
        parts = []
        for name in self.input_formats:
            top = max(
                (f for f in self.formats if f.input_format == name),
                key=lambda f: (f.width * f.height, f.fps_max or 0.0),
            )
            fps = "?" if top.fps_max is None else f"{top.fps_max:g}"
            parts.append(f"{name} up to {top.width}x{top.height}@{fps}")
        return ", ".join(parts) if parts else "modes unknown"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """An attached camera.

    Attributes:
        id: An identifier that survives a replug or reboot where the OS allows:
            on Linux the ``/dev/v4l/by-id`` name (``usb-046d_HD_Pro_Webcam_C920_
            1234ABCD-video-index0``), else ``"<bus>/<serial>"`` from sysfs,
            else the device path; on Windows FFmpeg's unique DirectShow device
            name; on macOS the device's name (FFmpeg gives nothing steadier).
        name: The human-readable name (``"HD Pro Webcam C920"``).
        path: What :meth:`Source.usb <camerapump.Source.usb>` takes to open it:
            ``/dev/videoN`` on Linux, the AVFoundation index on macOS, the
            DirectShow device name on Windows.
        backend: ``"v4l2"``, ``"avfoundation"`` or ``"dshow"``.
        bus: Where it is plugged in (V4L2 ``bus_info``, ``usb-0000:00:14.0-1``);
            ``""`` off Linux.
        capabilities: Its modes (empty off Linux).
    """

    id: str
    name: str
    path: str
    backend: UsbBackend
    bus: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)

    def __post_init__(self) -> None:
        for name in ("id", "path"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        if not isinstance(self.name, str) or not isinstance(self.bus, str):
            raise ValueError("name and bus must be strings")  # noqa: TRY004 - house style
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, not {self.backend!r}")
        if not isinstance(self.capabilities, Capabilities):
            raise ValueError("capabilities must be a Capabilities")  # noqa: TRY004 - house style

    @property
    def source(self) -> Source:
        """A :class:`~camerapump.Source` that opens this camera."""
        return Source.usb(self.path, backend=self.backend)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what ``camerapump devices --json`` prints per camera)."""
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "backend": self.backend,
            "bus": self.bus,
            "formats": [
                {
                    "width": f.width,
                    "height": f.height,
                    "fps_min": f.fps_min,
                    "fps_max": f.fps_max,
                    "fps_choices": list(f.fps_choices),
                    "input_format": f.input_format,
                    "fourcc": f.fourcc,
                }
                for f in self.capabilities.formats
            ],
        }


@dataclass(frozen=True, slots=True)
class Control:
    """A camera control and its current value, in the device's own units.

    Attributes:
        name: camerapump's name (one of :data:`CONTROL_NAMES`).
        value: The current value (``bool`` for boolean controls).
        minimum: The lowest allowed value.
        maximum: The highest allowed value.
        step: Allowed values are ``minimum + k * step``.
        default: The driver's default.
        kind: ``"integer"``, ``"boolean"`` or ``"menu"``.
        choices: For menus, the allowed ``(value, label)`` pairs (menus have
            holes: UVC ``auto_exposure`` offers only 1 "Manual" and 3
            "Aperture Priority").
        read_only: The device does not let it be set.
        inactive: Set, but ignored now (``exposure`` while ``auto_exposure`` is on).
    """

    name: str
    value: int
    minimum: int
    maximum: int
    step: int
    default: int
    kind: ControlKind
    choices: tuple[tuple[int, str], ...] = ()
    read_only: bool = False
    inactive: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("integer", "boolean", "menu"):
            raise ValueError(f"kind must be integer, boolean or menu, not {self.kind!r}")
        if self.minimum > self.maximum:
            raise ValueError("minimum must not be above maximum")
        if self.step < 0:
            raise ValueError("step must be 0 or more")

    def allowed(self) -> str:
        """What values are allowed, in words (used in error messages)."""
        if self.kind == "boolean":
            return "True or False"
        if self.kind == "menu" and self.choices:
            return ", ".join(f"{value} ({label})" for value, label in self.choices)
        step = f" in steps of {self.step}" if self.step > 1 else ""
        return f"{self.minimum}..{self.maximum}{step}"

    def check(self, value: object) -> int:
        """Return ``value`` as the integer to send, or raise :class:`ControlError`.

        Raises:
            ControlError: A read-only control, a value of the wrong type, or one
                outside the range, off the step grid or not among the menu choices.
        """
        if self.read_only:
            raise ControlError(f"{self.name} is read-only on this device")
        if self.kind == "boolean":
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, int) and value in (0, 1):
                return value
            raise ControlError(f"{self.name} must be True or False, not {value!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ControlError(f"{self.name} must be a whole number ({self.allowed()})")
        if self.kind == "menu" and self.choices:
            if value not in {choice for choice, _ in self.choices}:
                raise ControlError(f"{self.name} must be one of {self.allowed()}, not {value}")
            return value
        on_grid = self.step <= 1 or (value - self.minimum) % self.step == 0
        if not self.minimum <= value <= self.maximum or not on_grid:
            raise ControlError(f"{self.name} must be {self.allowed()}, not {value}")
        return value


# --- the seams (real by default; tests pass fakes) ---------------------------------------


@dataclass(frozen=True, slots=True)
class _System:
    """Where the device functions look: the real system unless a test says otherwise."""

    ioctl: _v4l2.Ioctl = _v4l2.real_ioctl
    open: Callable[[str], int] = _v4l2.open_device
    dev_dir: str = "/dev"
    by_id_dir: str = "/dev/v4l/by-id"
    sysfs_dir: str = "/sys/class/video4linux"
    platform: str = sys.platform
    enumerate_av: Callable[[str], Sequence[Any]] | None = None

    @property
    def linux(self) -> bool:
        return self.platform.startswith("linux")


_SYSTEM = _System()


def _map_os_error(exc: OSError, path: str, doing: str) -> CameraError:
    """The one translation of OS errors on devices into typed errors."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return DeviceNotFound(f"{path}: no such device (unplugged?)", detail=str(exc))
    if code in (errno.EACCES, errno.EPERM):
        return PermissionDenied(
            f"{path}: permission denied (is the user in the 'video' group?)", detail=str(exc)
        )
    if code == errno.EBUSY:
        return DeviceBusy(f"{path}: the device is busy (another program holds it)", detail=str(exc))
    if code in (errno.ENOTTY, errno.EISDIR):
        return DeviceNotFound(f"{path} is not a V4L2 device", detail=str(exc))
    return CameraError(f"{path}: {doing} failed ({exc.strerror or exc})", detail=str(exc))


# --- Linux: V4L2 -------------------------------------------------------------------------

_NODE = re.compile(r"video(\d+)")


def _capabilities(modes: Iterable[_v4l2.Mode]) -> Capabilities:
    seen: set[tuple[int, int, str]] = set()
    formats = []
    for mode in modes:
        name = _v4l2.ffmpeg_name(mode.fourcc) or mode.fourcc.strip()
        key = (mode.width, mode.height, name)
        if key in seen:  # YU12 and YV12 are both FFmpeg's yuv420p
            continue
        seen.add(key)
        formats.append(
            FormatDescriptor(
                width=mode.width,
                height=mode.height,
                fps_min=mode.fps_min,
                fps_max=mode.fps_max,
                fps_choices=mode.fps_choices,
                input_format=name,
                fourcc=mode.fourcc,
            )
        )
    return Capabilities(tuple(formats))


def _read_node(path: str, system: _System) -> tuple[_v4l2.CapabilityInfo, Capabilities]:
    """Query one node; raises the raw OSError (ENOTTY: not a V4L2 device)."""
    fd = system.open(path)
    try:
        cap = _v4l2.query_capability(fd, system.ioctl)
        if not cap.is_capture:
            return cap, Capabilities()
        return cap, _capabilities(_v4l2.enumerate_modes(fd, system.ioctl))
    finally:
        os.close(fd)


def _stable_id(path: str, bus: str, system: _System) -> str:
    real = os.path.realpath(path)
    try:
        links = sorted(os.listdir(system.by_id_dir))
    except OSError:
        links = []
    for link in links:
        if os.path.realpath(os.path.join(system.by_id_dir, link)) == real:
            return link
    # sysfs: videoN/device is the USB interface; its parent, the USB device, has the serial.
    node = os.path.basename(path)
    try:
        usb_device = Path(system.sysfs_dir, node, "device").resolve().parent
        serial = (usb_device / "serial").read_text().strip()
    except OSError:
        serial = ""
    if serial and bus:
        return f"{bus}/{serial}"
    return path


def _nodes(system: _System) -> list[str]:
    try:
        names = os.listdir(system.dev_dir)
    except OSError:
        return []
    numbered = [(int(m.group(1)), n) for n in names if (m := _NODE.fullmatch(n))]
    return [os.path.join(system.dev_dir, n) for _, n in sorted(numbered)]


def _list_v4l2(system: _System) -> list[DeviceInfo]:
    devices = []
    for path in _nodes(system):
        try:
            cap, caps = _read_node(path, system)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                logger.warning("skipping %s: permission denied (add the user to 'video')", path)
            else:
                # Vanished between listdir and open, or not a V4L2 device at all.
                logger.debug("skipping %s: %s", path, exc)
            continue
        if not cap.is_capture:
            continue  # a UVC metadata node, an output or a codec
        devices.append(
            DeviceInfo(
                id=_stable_id(path, cap.bus_info, system),
                name=cap.card or os.path.basename(path),
                path=path,
                backend="v4l2",
                bus=cap.bus_info,
                capabilities=caps,
            )
        )
    return devices


# --- macOS / Windows: FFmpeg's device list -----------------------------------------------


def _list_ffmpeg(system: _System) -> list[DeviceInfo]:
    backend = default_usb_backend(system.platform)
    enumerate_av = system.enumerate_av or getattr(av, "enumerate_input_devices", None)
    if enumerate_av is None:
        return []
    try:
        entries = list(enumerate_av(backend))
    except (av.error.FFmpegError, ValueError, OSError, NotImplementedError) as exc:
        logger.debug("FFmpeg cannot list %s devices: %s", backend, exc)
        return []
    devices = []
    for entry in entries:
        media = list(getattr(entry, "media_types", None) or [])
        if media and "video" not in media:
            continue
        raw_name = str(getattr(entry, "name", "") or "")
        description = str(getattr(entry, "description", "") or "") or raw_name
        if not raw_name:
            continue
        if backend == "avfoundation":
            # FFmpeg gives an index (which shifts on replug) and the name.
            device = DeviceInfo(description, description, raw_name, "avfoundation")
        else:
            device = DeviceInfo(raw_name, description, raw_name, "dshow")
        devices.append(device)
    return devices


# --- public functions --------------------------------------------------------------------


def _list_devices(system: _System) -> list[DeviceInfo]:
    return _list_v4l2(system) if system.linux else _list_ffmpeg(system)


def list_devices() -> list[DeviceInfo]:
    """Return the attached cameras; ``[]`` when there are none.

    Linux: every ``/dev/videoN`` that is a V4L2 video capture node (metadata
    nodes are skipped), with its modes.  Nodes the user may not open are skipped
    with a warning in the log.  macOS and Windows: FFmpeg's device list, without
    modes.
    """
    return _list_devices(_SYSTEM)


def _find_device_by_id(device_id: str, system: _System) -> DeviceInfo | None:
    for device in _list_devices(system):
        if device.id == device_id:
            return device
    return None


def find_device_by_id(device_id: str) -> DeviceInfo | None:
    """Find an attached camera by its :attr:`DeviceInfo.id`, wherever it now is.

    A camera replugged into the same port may come back as another
    ``/dev/videoN``; its id stays the same where the OS allows (see
    :class:`DeviceInfo`).

    Returns:
        The camera, or ``None`` if none with that id is attached.
    """
    return _find_device_by_id(device_id, _SYSTEM)


def _resolve_path(device: object, system: _System) -> str | DeviceInfo:
    """A V4L2 path for ``device``, or the DeviceInfo when it is not a V4L2 one."""
    if isinstance(device, DeviceInfo):
        return device.path if device.backend == "v4l2" else device
    if isinstance(device, Source):
        if device.kind != "usb":
            raise ValueError(f"{device.label} is not a USB camera")
        return _resolve_path(device.target, system)
    if isinstance(device, bool) or not isinstance(device, (int, str)):
        raise TypeError("a device is a DeviceInfo, a path, an index or a Source.usb")
    if isinstance(device, int):
        if device < 0:
            raise ValueError("a device index is 0 or more")
        return os.path.join(system.dev_dir, f"video{device}")
    if device.startswith("/"):
        return device
    for info in _list_devices(system):
        if device in (info.id, info.name):
            return info if info.backend != "v4l2" else info.path
    raise DeviceNotFound(f"no camera named {device!r}")


def _probe(device: object, system: _System) -> Capabilities:
    if not system.linux:
        return device.capabilities if isinstance(device, DeviceInfo) else Capabilities()
    target = _resolve_path(device, system)
    if isinstance(target, DeviceInfo):
        return target.capabilities
    try:
        cap, caps = _read_node(target, system)
    except OSError as exc:
        raise _map_os_error(exc, target, "probe") from exc
    if not cap.is_capture:
        raise DeviceNotFound(f"{target} is not a video capture node (a metadata node?)")
    return caps


def probe(device: DeviceInfo | str | int | Source) -> Capabilities:
    """Read the modes a camera offers.

    Args:
        device: A :class:`DeviceInfo`, a path (``"/dev/video0"``), an index
            (``0`` is ``/dev/video0``), a camera's name or id, or a
            :meth:`Source.usb <camerapump.Source.usb>`.

    Returns:
        The modes; empty off Linux, where FFmpeg cannot list them.

    Raises:
        DeviceNotFound: No such device, or the path is no V4L2 capture device.
        PermissionDenied: The user may not open it.
        DeviceBusy: The driver answered EBUSY.
        CameraError: Any other failure of the V4L2 queries.
    """
    return _probe(device, _SYSTEM)


def _matches_format(descriptor: FormatDescriptor, wanted: str) -> bool:
    wanted = wanted.strip()
    return (
        wanted.lower() == descriptor.input_format.lower()
        or wanted.upper() == descriptor.fourcc.strip().upper()
    )


def _wire_preference(input_format: str) -> int:
    # Raw costs no decoding and adds no delay; MJPEG is intra-only, so every frame
    # decodes on its own; H.264 from a webcam must first wait for a keyframe.
    if input_format == "mjpeg":
        return 1
    return 2 if input_format in _COMPRESSED else 0


def _rank(
    descriptor: FormatDescriptor, index: int, config: StreamConfig
) -> tuple[int, int, bool, bool, float, int, int, int]:
    size_ok = config.width is None or descriptor.size == (config.width, config.height)
    format_ok = config.input_format is None or _matches_format(descriptor, config.input_format)
    fps_ok = config.fps is None or descriptor.supports_fps(config.fps)
    tier = 0 if size_ok and format_ok and fps_ok else 1 if size_ok else 2
    distance = 0
    if config.width is not None and config.height is not None:
        distance = abs(descriptor.width - config.width) + abs(descriptor.height - config.height)
    return (
        tier,
        distance,
        not fps_ok,
        not format_ok,
        -(descriptor.fps_max or 0.0),
        -(descriptor.width * descriptor.height),
        _wire_preference(descriptor.input_format),
        index,
    )


def _describe_request(config: StreamConfig) -> str:
    parts = []
    if config.width is not None:
        parts.append(f"{config.width}x{config.height}")
    if config.input_format is not None:
        parts.append(config.input_format)
    if config.fps is not None:
        parts.append(f"@ {config.fps:g} fps")
    return " ".join(parts) or "any mode"


def best_format(
    capabilities: Capabilities, config: StreamConfig, *, mode: NegotiationMode = "exact"
) -> FormatDescriptor:
    """Pick the camera mode for a request.  A pure function of its arguments.

    ``None`` fields of ``config`` match anything; ``config.pixel_format`` is the
    delivered array layout and plays no part here (``input_format`` does).

    ``"exact"``: the mode must have the requested size and input format and
    offer the requested rate (within 2 %).  ``"nearest"``, in this order:
    (1) the requested size and format with the rate in range; (2) the requested
    size in any format; (3) the smallest ``|dw| + |dh|`` size distance.  Within a
    step, and among several exact matches, ties go to: the requested rate
    reachable, the requested format, the highest rate, the larger frame, then
    raw over MJPEG over other compressed formats (H.264 must wait for a
    keyframe), then the driver's order.

    Args:
        capabilities: What the camera offers (from :func:`probe`).
        config: What is asked for.
        mode: ``"exact"`` (the default) or ``"nearest"``.

    Returns:
        The chosen mode.  Use :meth:`FormatDescriptor.nearest_fps` for the rate.

    Raises:
        FormatNotSupported: ``"exact"`` and no mode fits (the message lists the
            five closest modes), or the camera lists no modes at all.
        ValueError: ``mode`` is neither ``"exact"`` nor ``"nearest"``.
    """
    if mode not in ("exact", "nearest"):
        raise ValueError(f"mode must be 'exact' or 'nearest', not {mode!r}")
    if not capabilities.formats:
        raise FormatNotSupported("the camera lists no modes")
    ranked = sorted(
        enumerate(capabilities.formats), key=lambda item: _rank(item[1], item[0], config)
    )
    index, chosen = ranked[0]
    if mode == "exact" and _rank(chosen, index, config)[0] != 0:
        closest = "; ".join(str(descriptor) for _, descriptor in ranked[:_CLOSEST])
        raise FormatNotSupported(
            f"no mode {_describe_request(config)}; the closest supported modes: {closest}"
        )
    return chosen


def _negotiate_usb(
    source: Source, config: StreamConfig, mode: NegotiationMode, system: _System
) -> StreamConfig:
    if mode not in ("exact", "nearest"):
        raise ValueError(f"mode must be 'exact' or 'nearest', not {mode!r}")
    if source.kind != "usb":
        raise ValueError(f"{source.label} is not a USB camera")
    backend = source.backend or default_usb_backend(system.platform)
    if backend != "v4l2" or not system.linux:
        return config
    if config.width is None and config.fps is None and config.input_format is None:
        return config  # nothing asked: the driver's current mode, as FFmpeg opens it
    target = _resolve_path(source.target, system)
    if isinstance(target, DeviceInfo):
        return config
    try:
        cap, caps = _read_node(target, system)
    except OSError as exc:
        if exc.errno == errno.ENOTTY:
            return config  # not V4L2 to the ioctls: leave the request to FFmpeg
        raise _map_os_error(exc, target, "probe") from exc
    if not cap.is_capture:
        raise DeviceNotFound(f"{source.label}: not a video capture node (a metadata node?)")
    # Only modes FFmpeg can open are worth choosing.
    usable = Capabilities(tuple(f for f in caps.formats if f.input_format in _FFMPEG_NAMES))
    if not usable.formats:
        return config
    try:
        chosen = best_format(usable, config, mode=mode)
    except FormatNotSupported as exc:
        raise FormatNotSupported(f"{source.label}: {exc}") from None
    fps = chosen.nearest_fps(config.fps) if config.fps is not None else chosen.fps_max
    return dataclasses.replace(
        config,
        width=chosen.width,
        height=chosen.height,
        fps=config.fps if fps is None else fps,
        input_format=chosen.input_format,
    )


def negotiate_usb(
    source: Source, config: StreamConfig, *, mode: NegotiationMode = "exact"
) -> StreamConfig:
    """Check a USB request against the camera's modes and fill in what was left open.

    Linux (V4L2) only.  The config comes back unchanged when nothing is asked
    (width, fps and input_format all ``None``: the driver's own mode), off
    Linux, for a non-V4L2 path (ENOTTY) and when the camera lists no modes
    FFmpeg can open.  Otherwise the chosen mode's width, height, rate and
    input format are filled in (the rate: the mode's rate nearest the request,
    or its highest when none was asked).

    Args:
        source: A :meth:`Source.usb <camerapump.Source.usb>`.
        config: The request.
        mode: ``"exact"`` or ``"nearest"`` (see :func:`best_format`).

    Raises:
        FormatNotSupported: ``"exact"`` and the camera has no such mode (the
            message lists the closest ones).
        DeviceNotFound: No such device, or a metadata node.
        PermissionDenied: The user may not open it.
        DeviceBusy: The driver answered EBUSY.
        ValueError: ``source`` is not a USB source, or a bad ``mode``.
    """
    return _negotiate_usb(source, config, mode, _SYSTEM)


# --- controls ----------------------------------------------------------------------------

_KINDS: dict[int, ControlKind] = {
    _v4l2.V4L2_CTRL_TYPE_INTEGER: "integer",
    _v4l2.V4L2_CTRL_TYPE_BOOLEAN: "boolean",
    _v4l2.V4L2_CTRL_TYPE_MENU: "menu",
    _v4l2.V4L2_CTRL_TYPE_INTEGER_MENU: "menu",
}


def _read_controls(fd: int, system: _System) -> dict[str, Control]:
    controls: dict[str, Control] = {}
    for name, control_id in _v4l2.CONTROL_IDS.items():
        info = _v4l2.query_control(fd, control_id, system.ioctl)
        if info is None or info.type not in _KINDS:
            continue
        kind = _KINDS[info.type]
        if info.flags & _v4l2.V4L2_CTRL_FLAG_WRITE_ONLY:
            value = info.default
        else:
            value = _v4l2.get_control(fd, control_id, system.ioctl)
        controls[name] = Control(
            name=name,
            value=bool(value) if kind == "boolean" else value,
            minimum=info.minimum,
            maximum=info.maximum,
            step=info.step,
            default=bool(info.default) if kind == "boolean" else info.default,
            kind=kind,
            choices=info.menu,
            read_only=bool(info.flags & _v4l2.V4L2_CTRL_FLAG_READ_ONLY),
            inactive=bool(info.flags & _v4l2.V4L2_CTRL_FLAG_INACTIVE),
        )
    return controls


def _open_for_controls(device: object, system: _System) -> tuple[str, int]:
    target = _resolve_path(device, system)
    if isinstance(target, DeviceInfo):
        raise ControlError(f"{target.name}: controls are available on Linux (V4L2) only")
    try:
        fd = system.open(target)
    except OSError as exc:
        raise _map_os_error(exc, target, "open") from exc
    return target, fd


def _get_controls(device: object, system: _System) -> dict[str, Control]:
    if not system.linux:
        return {}
    path, fd = _open_for_controls(device, system)
    try:
        _v4l2.query_capability(fd, system.ioctl)  # ENOTTY here: not a V4L2 device
        return _read_controls(fd, system)
    except OSError as exc:
        raise _map_os_error(exc, path, "reading controls") from exc
    finally:
        os.close(fd)


def get_controls(device: DeviceInfo | str | int | Source) -> dict[str, Control]:
    """Read a camera's controls (those of :data:`CONTROL_NAMES` it has).

    Args:
        device: As for :func:`probe`.

    Returns:
        Name -> :class:`Control`; ``{}`` off Linux (FFmpeg has no control API).

    Raises:
        DeviceNotFound: No such device, or not a V4L2 device.
        PermissionDenied: The user may not open it.
    """
    return _get_controls(device, _SYSTEM)


def _set_controls(device: object, values: dict[str, object], system: _System) -> None:
    unknown = sorted(set(values) - set(CONTROL_NAMES))
    if unknown:
        raise ControlError(
            f"unknown control {', '.join(unknown)}; the controls are {', '.join(CONTROL_NAMES)}"
        )
    if not values:
        return
    if not system.linux:
        raise ControlError("camera controls are available on Linux (V4L2) only")
    path, fd = _open_for_controls(device, system)
    try:
        _v4l2.query_capability(fd, system.ioctl)
        controls = _read_controls(fd, system)
        missing = sorted(set(values) - set(controls))
        if missing:
            has = ", ".join(controls) or "none"
            raise ControlError(
                f"{path} has no {', '.join(missing)} control; it has: {has}"
            ) from None
        # Every value is checked before any is set: a bad call changes nothing.
        checked = {name: controls[name].check(value) for name, value in values.items()}
        order = sorted(checked, key=lambda n: (n not in _AUTO_FIRST, CONTROL_NAMES.index(n)))
        for name in order:
            try:
                _v4l2.set_control(fd, _v4l2.CONTROL_IDS[name], checked[name], system.ioctl)
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ERANGE, errno.EACCES, errno.EPERM):
                    raise ControlError(
                        f"{path}: the device refused {name}={checked[name]} "
                        f"(allowed: {controls[name].allowed()}; an inactive or read-only "
                        "control is refused too, e.g. exposure while auto_exposure is on)",
                        detail=str(exc),
                    ) from exc
                raise
    except OSError as exc:
        raise _map_os_error(exc, path, "setting controls") from exc
    finally:
        os.close(fd)


def set_controls(device: DeviceInfo | str | int | Source, **values: int | bool) -> None:
    """Set camera controls, e.g. ``set_controls(0, auto_exposure=1, exposure=250)``.

    All values are checked against the device's ranges before any is set; the
    ``auto_*`` controls are set before the others.

    Args:
        device: As for :func:`probe`.
        **values: Control names (:data:`CONTROL_NAMES`) and values in the
            device's units (see :func:`get_controls` for the ranges).

    Raises:
        ControlError: An unknown name, a control the device lacks, a value out
            of range or refused by the device (the message says what is
            allowed), or controls asked for off Linux.
        DeviceNotFound: No such device, or not a V4L2 device.
        PermissionDenied: The user may not open it.
        DeviceBusy: The driver answered EBUSY.
    """
    _set_controls(device, dict(values), _SYSTEM)


# --- presentation (the ``camerapump devices`` command) -----------------------------------


def devices_table(devices: Sequence[DeviceInfo]) -> str:
    """A plain-text table of cameras: path, name, id and modes, one row each.

    Returns:
        The table (ending in a newline), or ``"no cameras found\\n"``.
    """
    if not devices:
        return "no cameras found\n"
    rows = [("PATH", "NAME", "ID", "MODES")]
    rows += [(d.path, d.name, d.id, d.capabilities.summary()) for d in devices]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def devices_json(devices: Sequence[DeviceInfo], *, indent: int | None = 2) -> str:
    """The cameras as JSON text: a list of :meth:`DeviceInfo.as_dict` objects."""
    return json.dumps([d.as_dict() for d in devices], indent=indent)
