"""Following one USB camera across its sessions: negotiation, identity, replug.

The pump hands a :class:`UsbTracker` to its decode thread, so neither the
thread nor the supervisor imports the device layer.  All methods run on the
decode thread.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from ._config import StreamConfig
from ._devices import find_device_by_id, list_devices, negotiate_usb
from ._source import Source

__all__ = ["UsbTracker"]

logger = logging.getLogger("camerapump")


class UsbTracker:
    """Knows a USB camera by its stable id once it has been opened.

    A camera plugged back in may come back as another ``/dev/videoN``; the
    next open goes to wherever its id is now, and a backoff ends as soon as
    it is back.
    """

    def __init__(self) -> None:
        #: The camera's stable id (:attr:`DeviceInfo.id`), once known.
        self.device_id: str | None = None

    def prepare(self, source: Source, config: StreamConfig) -> tuple[Source, StreamConfig]:
        """The source to open now, and the config checked against (and filled from) its modes.

        Raises:
            CameraError: ``"exact"`` negotiation found no such mode, or the
                device cannot be read.
        """
        source = self.target(source)
        return source, negotiate_usb(source, config, mode=config.negotiation)

    def target(self, source: Source) -> Source:
        """The USB source to open now: a replugged camera may have a new /dev/videoN."""
        if self.device_id is None:
            return source
        info = find_device_by_id(self.device_id)
        if info is None or info.path == source.target:
            return source
        logger.info("%s: found the camera again at %s", source.label, info.path)
        return dataclasses.replace(source, target=info.path)

    def remember(self, source: Source) -> None:
        """Note the stable id of the camera just opened (Linux), to find it after a replug."""
        if self.device_id is not None or source.backend != "v4l2":
            return
        target = source.target if isinstance(source.target, str) else f"/dev/video{source.target}"
        real = os.path.realpath(target)
        for info in list_devices():
            if os.path.realpath(info.path) == real:
                self.device_id = info.id
                return

    def present(self) -> bool | None:
        """Whether the known camera is attached now; ``None`` when none is known yet."""
        if self.device_id is None:
            return None
        return find_device_by_id(self.device_id) is not None
