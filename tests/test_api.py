"""Plain data, validation, redaction, the error hierarchy and the public surface."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import camerapump as cp
from camerapump._redact import redact_text, redact_url, secrets_of

pytestmark = pytest.mark.timeout(30)


def test_all_is_sorted_and_every_name_exists() -> None:
    """__all__ lists exactly what the package exports, and every name resolves."""
    assert all(hasattr(cp, name) for name in cp.__all__)
    modules = {"annotations", "contextlib", "logging", "serve"}  # camerapump.serve: a subpackage
    public = {n for n in dir(cp) if not n.startswith("_") and n not in modules}
    assert public == set(cp.__all__)


def test_public_types_show_the_public_module() -> None:
    """Reprs and tracebacks say camerapump.Source, not a private module."""
    assert cp.Source.__module__ == "camerapump"
    assert cp.StreamTimeout.__module__ == "camerapump"


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (cp.DeviceNotFound, LookupError),
        (cp.PermissionDenied, PermissionError),
        (cp.DeviceBusy, OSError),
        (cp.FormatNotSupported, ValueError),
        (cp.ConnectionFailed, ConnectionError),
        (cp.AuthenticationFailed, cp.ConnectionFailed),
        (cp.StreamTimeout, TimeoutError),
        (cp.StreamEnded, EOFError),
    ],
)
def test_each_error_is_a_camera_error_and_a_fitting_builtin(
    error: type[Exception], builtin: type
) -> None:
    """Every error derives from CameraError and the built-in that fits."""
    instance = error("message")
    assert isinstance(instance, cp.CameraError)
    assert isinstance(instance, builtin)
    assert str(instance) == "message"
    assert instance.code == error.__name__  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("rtsp://cam.local/s1", "rtsp", "rtsp://cam.local/s1"),
        ("RTSP://cam/s1", "rtsp", "RTSP://cam/s1"),
        ("0", "usb", 0),
        ("3", "usb", 3),
        ("/dev/video2", "usb", "/dev/video2"),
        ("usb:HD Webcam", "usb", "HD Webcam"),
        ("test:", "test", "testsrc2"),
        ("test", "test", "testsrc2"),
        ("test:smptebars", "test", "smptebars"),
    ],
)
def test_parse_recognises_each_kind(text: str, kind: str, target: object) -> None:
    """Source.parse maps command-line strings to the right kind."""
    source = cp.Source.parse(text)
    assert (source.kind, source.target) == (kind, target)


def test_parse_an_existing_path_is_a_file(tmp_path: Path) -> None:
    """An existing path parses as a file source; a missing one is an error."""
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    assert cp.Source.parse(str(clip)) == cp.Source.file(clip)
    with pytest.raises(ValueError, match="not a source"):
        cp.Source.parse(str(tmp_path / "missing.mp4"))


@pytest.mark.parametrize("bad", ["", "   "])
def test_parse_rejects_empty_text(bad: str) -> None:
    """An empty source string raises ValueError saying what is allowed."""
    with pytest.raises(ValueError, match="must not be empty"):
        cp.Source.parse(bad)


def test_source_validation_says_what_is_allowed() -> None:
    """Bad constructor arguments raise ValueError naming the allowed values."""
    with pytest.raises(ValueError, match=r"tcp.*udp"):
        cp.Source.rtsp("rtsp://h/x", transport="http")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown test pattern"):
        cp.Source.test("nope")
    with pytest.raises(ValueError, match="starts with one of"):
        cp.Source.rtsp("cam.local/stream")
    with pytest.raises(ValueError, match="0 or more"):
        cp.Source.usb(-1)
    with pytest.raises(ValueError, match="v4l2"):
        cp.Source.usb(0, backend="x")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.Source.test().kind = "usb"  # type: ignore[misc]


def test_source_repr_and_str_never_show_the_password() -> None:
    """repr() and str() of an RTSP source mask user info and secret query parameters."""
    source = cp.Source.rtsp("rtsp://admin:S3cr3t!@10.0.0.5:554/live?token=abc123&ch=1")
    for text in (repr(source), str(source), source.label):
        assert "S3cr3t" not in text
        assert "abc123" not in text
        assert "admin" not in text
    assert str(source) == "rtsp://***@10.0.0.5:554/live?token=***&ch=1"


def test_usb_backend_defaults_to_the_platform() -> None:
    """Source.usb picks v4l2 on Linux (avfoundation on macOS, dshow on Windows)."""
    from camerapump._source import default_usb_backend

    assert cp.Source.usb(0).backend == default_usb_backend()
    assert default_usb_backend("darwin") == "avfoundation"
    assert default_usb_backend("win32") == "dshow"
    assert default_usb_backend("linux") == "v4l2"


def test_stream_config_validation() -> None:
    """StreamConfig rejects impossible requests with a message saying what is allowed."""
    with pytest.raises(ValueError, match="go together"):
        cp.StreamConfig(width=640)
    with pytest.raises(ValueError, match="positive whole number"):
        cp.StreamConfig(0, 480)
    with pytest.raises(ValueError, match="fps"):
        cp.StreamConfig(fps=0)
    with pytest.raises(ValueError, match="bgr24"):
        cp.StreamConfig(pixel_format="yuv420p")  # type: ignore[arg-type]
    assert cp.StreamConfig().pixel_format == "bgr24"


def test_frame_checks_shape_against_pixel_format() -> None:
    """A Frame whose array does not fit its pixel format is rejected."""
    data = np.zeros((4, 6, 3), np.uint8)
    frame = cp.Frame(data, 6, 4, "bgr24", 0, None, 1.0)
    assert np.asarray(frame) is data
    with pytest.raises(ValueError, match="shape"):
        cp.Frame(data, 6, 4, "gray", 0, None, 1.0)
    with pytest.raises(ValueError, match="uint8"):
        cp.Frame(data.astype(np.float32), 6, 4, "bgr24", 0, None, 1.0)


def test_policy_validation() -> None:
    """ReconnectPolicy rejects negative times and jitter outside 0..1."""
    assert cp.ReconnectPolicy() == cp.ReconnectPolicy(1.0, 30.0, None, 0.2, 15.0, False)
    for bad in (
        {"initial_backoff": -1},
        {"max_backoff": -1},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"stall_timeout": 0},
        {"max_attempts": -1},
        {"initial_backoff": 5, "max_backoff": 1},
    ):
        with pytest.raises(ValueError):
            cp.ReconnectPolicy(**bad)  # type: ignore[arg-type]


def test_backoff_doubles_from_initial_up_to_max_without_jitter() -> None:
    """Attempt n waits min(max_backoff, initial * 2**n)."""
    policy = cp.ReconnectPolicy(initial_backoff=1, max_backoff=30, jitter=0)
    assert [cp.backoff_delay(n, policy) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


@given(attempt=st.integers(min_value=0, max_value=10**6), seed=st.integers(0, 2**32))
def test_backoff_is_finite_bounded_and_jittered_within_range(attempt: int, seed: int) -> None:
    """For any attempt the delay is finite and within ±jitter of the capped base."""
    policy = cp.ReconnectPolicy(initial_backoff=0.5, max_backoff=30, jitter=0.2)
    delay = cp.backoff_delay(attempt, policy, random.Random(seed))
    base = min(30.0, 0.5 * 2.0 ** min(attempt, 62))
    assert base * 0.8 - 1e-9 <= delay <= base * 1.2 + 1e-9


def test_backoff_rejects_negative_attempts() -> None:
    """Attempts count from zero."""
    with pytest.raises(ValueError, match="from 0"):
        cp.backoff_delay(-1, cp.ReconnectPolicy())


def test_status_events_are_frozen_plain_data() -> None:
    """Status events compare by value and cannot be changed."""
    fmt = cp.StreamFormat(640, 480, 30.0, "bgr24", "h264")
    assert cp.Connected(fmt) == cp.Connected(fmt)
    assert isinstance(cp.Reconnecting(1, 1.0, "end_of_stream"), cp.PumpStatus)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.GaveUp("x").reason = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://u:p@h/x", "rtsp://***@h/x"),
        ("rtsp://user@h:554/x", "rtsp://***@h:554/x"),
        ("rtsp://h/x?password=pw&a=1", "rtsp://h/x?password=***&a=1"),
        ("rtsp://h/x", "rtsp://h/x"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    """User info and secret query parameters are masked; the rest stays readable."""
    assert redact_url(url) == expected


def test_redact_text_masks_quoted_urls_and_decoded_passwords() -> None:
    """Text quoting a URL, or the password alone (also percent-decoded), is masked."""
    url = "rtsp://alice:p%40ss-word@127.0.0.1:8554/secure"
    text = f"Server returned 401: '{url}' and p@ss-word again"
    out = redact_text(text, secrets_of(url))
    assert "p%40ss-word" not in out
    assert "p@ss-word" not in out
    assert "rtsp://***@127.0.0.1:8554/secure" in out


@given(password=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=3, max_size=20))
def test_no_password_survives_redaction_of_pyav_style_messages(password: str) -> None:
    """Whatever the password, a PyAV-style message about its URL comes out without it."""
    url = f"rtsp://bob:{password}@192.0.2.1/cam"
    message = f"[Errno 1] Server returned 401 Unauthorized (authorization failed): '{url}'"
    source = cp.Source.rtsp(url)
    assert password not in redact_text(message, source.secrets)
    assert repr(source) == "<Source rtsp://***@192.0.2.1/cam transport=auto>"


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://alice:Se#cr3t@127.0.0.1:1/h264",
        "rtsp://admin:Hunter#2024@10.0.0.1/stream1",
        "rtsp://bob:a/b?c@cam.local/live",
        "rtsp://carol:p%40ss@cam.local/live",
        "rtsp://dave:x@y@cam.local/live",
    ],
)
def test_unencoded_special_characters_in_passwords_are_still_masked(url: str) -> None:
    """A password with a raw '#', '?', '/' or '@' (which fools URL parsers) never shows."""
    source = cp.Source.rtsp(url)
    password = url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
    message = f"[Errno -1] Server returned 401 Unauthorized: '{url}'"
    for text in (repr(source), str(source), redact_text(message, source.secrets)):
        assert password not in text
        assert "***@" in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "rtsp://alice:secret@cam.local/s?notify=ops@example.com&token=abc",
            "rtsp://***@cam.local/s?notify=ops@example.com&token=***",
        ),
        (
            "rtsp://cam.local/s?email=a@b.com&token=abc",
            "rtsp://cam.local/s?email=a@b.com&token=***",
        ),
        ("http://cdn/v/clip@2x.mp4", "http://cdn/v/clip@2x.mp4"),
        ("rtsp://u:p@[::1]:554/x", "rtsp://***@[::1]:554/x"),
    ],
)
def test_an_at_sign_after_the_host_is_not_user_info(url: str, expected: str) -> None:
    """'@' after the host (an e-mail in the query, a file name) neither leaks nor over-masks."""
    assert redact_url(url) == expected
    assert "abc" not in redact_text(f"failed: {url}", secrets_of(url))
