"""The exception hierarchy: one base, :class:`CameraError`, and a built-in parent each.

Every error that camerapump raises is a :class:`CameraError`.  Each subclass also
derives from the built-in exception that fits, so ``except TimeoutError`` or
``except ConnectionError`` in existing code keeps working.  Messages never carry
credentials: they are built from redacted source labels.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "CameraError",
    "ConnectionFailed",
    "DeviceBusy",
    "DeviceNotFound",
    "FormatNotSupported",
    "PermissionDenied",
    "StreamTimeout",
]


class CameraError(Exception):
    """Base of every error raised by camerapump.

    Attributes:
        detail: The (redacted) text of the underlying library error, if any.
    """

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail

    @property
    def code(self) -> str:
        """The short, machine-readable name used in status reasons (the class name)."""
        return type(self).__name__


class DeviceNotFound(CameraError, LookupError):
    """Raised when a camera, device path or file does not exist (or vanished)."""


class PermissionDenied(CameraError, PermissionError):
    """Raised when the operating system refuses access to a device or file."""


class DeviceBusy(CameraError, OSError):
    """Raised when a device is held by another process (EBUSY)."""


class FormatNotSupported(CameraError, ValueError):
    """Raised when a source cannot deliver the requested size, rate or format.

    The message names what the source really gives; nothing is silently substituted.
    """


class ConnectionFailed(CameraError, ConnectionError):
    """Raised when a network source cannot be reached or the connection broke.

    Refused, unreachable, unknown path (RTSP 404), server gone, garbage answers.
    """


class AuthenticationFailed(ConnectionFailed):
    """Raised when a server rejects the credentials (RTSP 401/403)."""


class StreamTimeout(CameraError, TimeoutError):
    """Raised when nothing arrives in time: a silent server, a stalled stream, a frame wait."""
