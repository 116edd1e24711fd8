"""Where frames come from: :class:`Source`, plain data that names a camera, stream or file."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ._config import is_positive_number
from ._redact import redact_url, secrets_of

__all__ = ["TEST_PATTERNS", "Source", "SourceKind", "default_usb_backend"]

SourceKind = Literal["usb", "rtsp", "file", "test"]
UsbBackend = Literal["v4l2", "avfoundation", "dshow"]
Transport = Literal["tcp", "udp"]

#: The FFmpeg (lavfi) generators that :meth:`Source.test` accepts.
TEST_PATTERNS: tuple[str, ...] = (
    "testsrc",
    "testsrc2",
    "smptebars",
    "smptehdbars",
    "rgbtestsrc",
    "yuvtestsrc",
    "pal75bars",
    "pal100bars",
    "colorspectrum",
    "mandelbrot",
)
_USB_BACKENDS: tuple[str, ...] = ("v4l2", "avfoundation", "dshow")
_NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp", "tcp")


def default_usb_backend(platform: str | None = None) -> UsbBackend:
    """Return the FFmpeg capture backend of this operating system."""
    platform = platform or sys.platform
    if platform.startswith("darwin"):
        return "avfoundation"
    if platform.startswith(("win32", "cygwin")):
        return "dshow"
    return "v4l2"


@dataclass(frozen=True, slots=True)
class Source:
    """A camera, network stream, media file or synthetic pattern.

    Build one with :meth:`usb`, :meth:`rtsp`, :meth:`file`, :meth:`test` or
    :meth:`parse`; the constructor validates its fields.  ``repr()`` and
    ``str()`` never show a password.

    Attributes:
        kind: ``"usb"``, ``"rtsp"``, ``"file"`` or ``"test"``.
        target: What FFmpeg opens: a device index or path or name, the URL (with
            credentials, so it is not in the repr), a file path, or a pattern name.
        transport: RTSP transport, ``"tcp"`` or ``"udp"``.
        backend: The USB capture backend (``v4l2``, ``avfoundation``, ``dshow``).
        loop: For files: start again at the end.
        realtime: For files: pace frames at the stream's rate (``False``: as
            fast as decoding goes, every frame delivered).
        open_timeout: Seconds an RTSP open (connect, handshake, first keyframe)
            may take before it fails with :class:`~camerapump.StreamTimeout`.
    """

    kind: SourceKind
    target: str | int = field(repr=False)
    transport: Transport = "tcp"
    backend: UsbBackend | None = None
    loop: bool = False
    realtime: bool = True
    open_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.kind not in ("usb", "rtsp", "file", "test"):
            raise ValueError(f"kind must be usb, rtsp, file or test, not {self.kind!r}")
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', not {self.transport!r}")
        if self.backend is not None and self.backend not in _USB_BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_USB_BACKENDS)} or None")
        if not is_positive_number(self.open_timeout):
            raise ValueError("open_timeout must be a positive number of seconds")
        if self.kind == "usb":
            if isinstance(self.target, bool) or not isinstance(self.target, (int, str)):
                raise ValueError("a USB device is an index, a device path or a device name")
            if isinstance(self.target, int) and self.target < 0:
                raise ValueError("a USB device index is 0 or more")
            if isinstance(self.target, str) and not self.target.strip():
                raise ValueError("a USB device name must not be empty")
        elif not isinstance(self.target, str) or not self.target:
            raise ValueError(f"a {self.kind} source needs a non-empty string")
        if self.kind == "rtsp":
            scheme = str(self.target).split("://", 1)[0].lower()
            if "://" not in str(self.target) or scheme not in _NETWORK_SCHEMES:
                raise ValueError(
                    f"a network URL starts with one of {', '.join(_NETWORK_SCHEMES)}:// "
                    f"(got {redact_url(str(self.target))!r})"
                )
        if self.kind == "test" and self.target not in TEST_PATTERNS:
            raise ValueError(
                f"unknown test pattern {self.target!r}; choose one of {', '.join(TEST_PATTERNS)}"
            )

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def usb(cls, device: int | str = 0, *, backend: UsbBackend | None = None) -> Source:
        """A USB (or built-in) camera.

        Args:
            device: An index (``0``), a device path (``/dev/video2``) or a device
                name as the OS lists it (``"FaceTime HD Camera"``, a dshow name).
            backend: ``v4l2``, ``avfoundation`` or ``dshow``; ``None`` picks this OS's.
        """
        return cls("usb", device, backend=backend or default_usb_backend())

    @classmethod
    def rtsp(cls, url: str, *, transport: Transport = "tcp", open_timeout: float = 10.0) -> Source:
        """An RTSP (or other network) stream; credentials may be in the URL.

        Args:
            url: ``rtsp://user:password@host:554/path``.
            transport: ``"tcp"`` (interleaved; the default, works through NAT and
                firewalls) or ``"udp"``.
            open_timeout: Seconds the open may take (connect, handshake, first keyframe).
        """
        return cls("rtsp", url, transport=transport, open_timeout=open_timeout)

    @classmethod
    def file(
        cls, path: str | os.PathLike[str], *, loop: bool = False, realtime: bool = True
    ) -> Source:
        """A media file.

        Args:
            path: The file.
            loop: Start again from the beginning at the end.
            realtime: Pace frames at the stream's own rate like a camera (newest
                frames, drops for a slow consumer); ``False`` processes the file
                as fast as decoding goes and delivers every frame.
        """
        return cls("file", os.fspath(path), loop=loop, realtime=realtime)

    @classmethod
    def test(cls, pattern: str = "testsrc2") -> Source:
        """A synthetic FFmpeg (lavfi) pattern, paced like a camera; needs no hardware.

        Args:
            pattern: One of :data:`TEST_PATTERNS`.
        """
        return cls("test", pattern)

    @classmethod
    def parse(cls, text: str) -> Source:
        """Build a source from a command-line style string.

        ``rtsp://…`` (and other stream URLs) -> RTSP; ``/dev/video0``, ``0`` or
        ``usb:NAME`` -> USB; ``test:`` or ``test:smptebars`` -> test pattern;
        an existing path -> file.

        Raises:
            ValueError: Empty text, or text that names none of these.
        """
        text = text.strip()
        if not text:
            raise ValueError("a source must not be empty: try 'test:', '0', '/dev/video0' or a URL")
        lowered = text.lower()
        if lowered == "test" or lowered.startswith("test:"):
            return cls.test(text.partition(":")[2] or "testsrc2")
        if lowered.startswith("usb:"):
            name = text[4:]
            return cls.usb(int(name) if name.isdigit() else name)
        if "://" in text:
            if lowered.startswith("file://"):
                return cls.file(text[7:])
            return cls.rtsp(text)
        if text.isdigit():
            return cls.usb(int(text))
        if re.fullmatch(r"/dev/video\d+", text) or text.startswith("/dev/v4l/"):
            return cls.usb(text)
        if Path(text).is_file():
            return cls.file(text)
        raise ValueError(
            f"{text!r} is not a source: use a stream URL (rtsp://...), a camera index or "
            "/dev/videoN, usb:NAME, test: or test:PATTERN, or the path of an existing file"
        )

    # -- presentation ---------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        """True for sources that keep running without us (cameras and streams)."""
        return self.kind in ("usb", "rtsp")

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credential strings this source carries (for redaction)."""
        return (
            secrets_of(self.target) if isinstance(self.target, str) and self.kind == "rtsp" else ()
        )

    @property
    def label(self) -> str:
        """A short, redacted label: ``rtsp://***@host/cam``, ``usb:/dev/video0``, ``test:``."""
        if self.kind == "rtsp":
            return redact_url(str(self.target))
        return f"{self.kind}:{self.target}"

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        extra = ""
        if self.kind == "rtsp":
            extra = f" transport={self.transport}"
        elif self.kind == "usb":
            extra = f" backend={self.backend}"
        elif self.kind == "file":
            extra = f" loop={self.loop} realtime={self.realtime}"
        return f"<Source {self.label}{extra}>"
