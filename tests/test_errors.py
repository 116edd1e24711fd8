"""The one PyAV boundary: every PyAV error becomes a typed CameraError without secrets."""

from __future__ import annotations

import errno

import av.error
import pytest

import camerapump as cp
from camerapump._backend import guard, translate

pytestmark = pytest.mark.timeout(10)

RTSP = cp.Source.rtsp("rtsp://alice:pa55word@192.0.2.7:554/stream")
USB = cp.Source.usb("/dev/video0")
URL = str(RTSP.target)


@pytest.mark.parametrize(
    ("raw", "source", "expected"),
    [
        (
            av.error.HTTPUnauthorizedError(-1, "Server returned 401", URL),
            RTSP,
            cp.AuthenticationFailed,
        ),
        (
            av.error.HTTPForbiddenError(-1, "Server returned 403", URL),
            RTSP,
            cp.AuthenticationFailed,
        ),
        (av.error.HTTPNotFoundError(-1, "Server returned 404", URL), RTSP, cp.ConnectionFailed),
        (
            av.error.ConnectionRefusedError(errno.ECONNREFUSED, "refused", URL),
            RTSP,
            cp.ConnectionFailed,
        ),
        (av.error.OSError(errno.EHOSTUNREACH, "No route to host", URL), RTSP, cp.ConnectionFailed),
        (av.error.ExitError(-1, "Immediate exit requested", URL), RTSP, cp.StreamTimeout),
        (av.error.TimeoutError(errno.ETIMEDOUT, "timed out", URL), RTSP, cp.StreamTimeout),
        (av.error.InvalidDataError(-1, "Invalid data found", URL), RTSP, cp.ConnectionFailed),
        (
            av.error.FileNotFoundError(errno.ENOENT, "No such file", "/dev/video0"),
            USB,
            cp.DeviceNotFound,
        ),
        (av.error.OSError(errno.ENODEV, "No such device", "/dev/video0"), USB, cp.DeviceNotFound),
        (
            av.error.OSError(errno.EBUSY, "Device or resource busy", "/dev/video0"),
            USB,
            cp.DeviceBusy,
        ),
        (
            av.error.PermissionError(errno.EACCES, "Permission denied", "/dev/video0"),
            USB,
            cp.PermissionDenied,
        ),
        (av.error.InvalidDataError(-1, "Invalid data", "/dev/video0"), USB, cp.FormatNotSupported),
    ],
)
def test_translate_maps_each_pyav_error_to_its_typed_error(
    raw: Exception, source: cp.Source, expected: type[cp.CameraError]
) -> None:
    """Each PyAV error class (or errno) maps to the documented CameraError."""
    error = translate(raw, source, "open")
    assert type(error) is expected
    assert "pa55word" not in str(error)
    assert "pa55word" not in (error.detail or "")
    assert "alice" not in str(error) + (error.detail or "")


def test_guard_raises_the_typed_error_without_chaining_the_raw_one() -> None:
    """guard() raises outside the except block: no __context__ or __cause__ carries the URL."""

    def fail() -> None:
        raise av.error.HTTPUnauthorizedError(-1, "Server returned 401 Unauthorized", URL)

    with pytest.raises(cp.AuthenticationFailed) as info:
        guard(RTSP, "open", fail)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    assert "rtsp://***@192.0.2.7:554/stream" in str(info.value)


def test_camera_errors_pass_through_translate_unchanged() -> None:
    """An error that is already typed is not wrapped again."""
    error = cp.DeviceBusy("busy")
    assert translate(error, USB, "open") is error
