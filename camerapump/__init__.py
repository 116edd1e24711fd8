"""camerapump: asyncio-native camera streaming that never hangs and never serves a stale frame.

>>> async with camerapump.open_pump(camerapump.Source.rtsp(url)) as pump:   # doctest: +SKIP
...     async for frame in pump:
...         ...
"""

from __future__ import annotations

import contextlib
import logging

from ._camera import Camera, StreamEnded, open_camera
from ._config import PIXEL_FORMATS, ReconnectPolicy, StreamConfig, StreamFormat, backoff_delay
from ._delivery import ConsumerStatistics, StatusFeed
from ._devices import (
    CONTROL_NAMES,
    Capabilities,
    Control,
    ControlError,
    DeviceInfo,
    FormatDescriptor,
    best_format,
    find_device_by_id,
    get_controls,
    list_devices,
    probe,
    set_controls,
)
from ._errors import (
    AuthenticationFailed,
    CameraError,
    ConnectionFailed,
    DeviceBusy,
    DeviceNotFound,
    FormatNotSupported,
    PermissionDenied,
    StreamTimeout,
)
from ._frame import Frame
from ._hotplug import DeviceAdded, DeviceRemoved, DeviceWatcher, watch_devices
from ._image import save_image
from ._output import FITS, Geometry, Output
from ._pump import Pump, PumpState, PumpStatistics, Subscription, open_pump
from ._record import Recorder, RecordingFailed
from ._source import TEST_PATTERNS, Source
from ._status import Connected, Connecting, FormatChanged, GaveUp, PumpStatus, Reconnecting

__version__ = "0.1.0"

__all__ = [
    "CONTROL_NAMES",
    "FITS",
    "PIXEL_FORMATS",
    "TEST_PATTERNS",
    "AuthenticationFailed",
    "Camera",
    "CameraError",
    "Capabilities",
    "Connected",
    "Connecting",
    "ConnectionFailed",
    "ConsumerStatistics",
    "Control",
    "ControlError",
    "DeviceAdded",
    "DeviceBusy",
    "DeviceInfo",
    "DeviceNotFound",
    "DeviceRemoved",
    "DeviceWatcher",
    "FormatChanged",
    "FormatDescriptor",
    "FormatNotSupported",
    "Frame",
    "GaveUp",
    "Geometry",
    "Output",
    "PermissionDenied",
    "Pump",
    "PumpState",
    "PumpStatistics",
    "PumpStatus",
    "ReconnectPolicy",
    "Reconnecting",
    "Recorder",
    "RecordingFailed",
    "Source",
    "StatusFeed",
    "StreamConfig",
    "StreamEnded",
    "StreamFormat",
    "StreamTimeout",
    "Subscription",
    "backoff_delay",
    "best_format",
    "find_device_by_id",
    "get_controls",
    "list_devices",
    "open_camera",
    "open_pump",
    "probe",
    "save_image",
    "set_controls",
    "watch_devices",
]

# Reprs and tracebacks show the public path (camerapump.Source, not camerapump._source.Source).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj

logging.getLogger(__name__).addHandler(logging.NullHandler())
