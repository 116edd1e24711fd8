"""Where frames come from: :class:`Source`, plain data that names a camera, stream or file.

What differs between kinds of source is said once, in :data:`KIND_TRAITS`
(live or not, network or not, a capture device or not); the rest of the
package asks the traits, not the kind.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ._config import is_positive_number
from ._redact import redact_url, secrets_of
from ._urls import check_source_text, check_url, echo, with_credentials

__all__ = [
    "KIND_TRAITS",
    "RTSP_SCHEMES",
    "STREAM_SCHEMES",
    "TEST_PATTERNS",
    "KindTraits",
    "Source",
    "SourceKind",
    "default_usb_backend",
]

SourceKind = Literal["usb", "rtsp", "stream", "file", "test"]
UsbBackend = Literal["v4l2", "avfoundation", "dshow"]
Transport = Literal["auto", "tcp", "udp"]

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
_TRANSPORTS: tuple[str, ...] = ("auto", "tcp", "udp")
#: URL schemes of :meth:`Source.rtsp`.
RTSP_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps")
#: URL schemes of :meth:`Source.url`: HTTP (MJPEG cameras, HLS playlists), RTMP, SRT, UDP, TCP.
STREAM_SCHEMES: tuple[str, ...] = ("http", "https", "rtmp", "rtmps", "srt", "udp", "tcp")


@dataclass(frozen=True, slots=True)
class KindTraits:
    """What a kind of source is like.

    Attributes:
        live: It runs without us (a camera, a stream): its end is a disconnect,
            reconnection and the stall watchdog apply, and it is never paced.
        network: It is a URL: open and read timeouts, credentials, redaction.
        device: A local capture device, negotiated against its modes.
    """

    live: bool
    network: bool
    device: bool


#: The traits of each kind.
KIND_TRAITS: dict[str, KindTraits] = {
    "usb": KindTraits(live=True, network=False, device=True),
    "rtsp": KindTraits(live=True, network=True, device=False),
    "stream": KindTraits(live=True, network=True, device=False),
    "file": KindTraits(live=False, network=False, device=False),
    "test": KindTraits(live=False, network=False, device=False),
}


def default_usb_backend(platform: str | None = None) -> UsbBackend:
    """Return the FFmpeg capture backend of this operating system."""
    platform = platform or sys.platform
    if platform.startswith("darwin"):
        return "avfoundation"
    if platform.startswith(("win32", "cygwin")):
        return "dshow"
    return "v4l2"


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


@dataclass(frozen=True, slots=True)
class Source:
    """A camera, network stream, media file or synthetic pattern.

    Build one with :meth:`usb`, :meth:`rtsp`, :meth:`url`, :meth:`file`,
    :meth:`test` or :meth:`parse`; the constructor validates its fields.
    ``repr()`` and ``str()`` never show a password.

    Attributes:
        kind: ``"usb"``, ``"rtsp"``, ``"stream"`` (other stream URLs),
            ``"file"`` or ``"test"``.
        target: What FFmpeg opens: a device index or path or name, the URL (with
            credentials, so it is not in the repr), a file path, or a pattern name.
        transport: RTSP transport: ``"auto"`` (TCP, then UDP if the server
            offers no TCP), ``"tcp"`` or ``"udp"``.
        backend: The USB capture backend (``v4l2``, ``avfoundation``, ``dshow``).
        loop: For files: start again at the end.
        realtime: For files: pace frames at the stream's rate (``False``: as
            fast as decoding goes, every frame delivered).
        open_timeout: Seconds a network open (connect, handshake, first
            keyframe) may take before it fails with :class:`~camerapump.StreamTimeout`.
        options: Extra FFmpeg open options for a stream URL, as ``(name, value)``
            pairs; they win over camerapump's own.
    """

    kind: SourceKind
    target: str | int = field(repr=False)
    transport: Transport = "auto"
    backend: UsbBackend | None = None
    loop: bool = False
    realtime: bool = True
    open_timeout: float = 10.0
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KIND_TRAITS:
            raise ValueError(f"kind must be one of {', '.join(KIND_TRAITS)}, not {self.kind!r}")
        if self.transport not in _TRANSPORTS:
            raise ValueError(
                f"transport must be one of {', '.join(map(repr, _TRANSPORTS))}, "
                f"not {self.transport!r}"
            )
        if self.backend is not None and self.backend not in _USB_BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_USB_BACKENDS)} or None")
        if not is_positive_number(self.open_timeout):
            raise ValueError("open_timeout must be a positive number of seconds")
        if not all(
            isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
            for pair in self.options
        ):
            raise ValueError("options are (name, value) pairs of strings")
        if self.kind == "usb":
            if isinstance(self.target, bool) or not isinstance(self.target, (int, str)):
                raise ValueError("a USB device is an index, a device path or a device name")
            if isinstance(self.target, int) and self.target < 0:
                raise ValueError("a USB device index is 0 or more")
            if isinstance(self.target, str) and not self.target.strip():
                raise ValueError("a USB device name must not be empty")
        elif not isinstance(self.target, str) or not self.target:
            raise ValueError(f"a {self.kind} source needs a non-empty string")
        if self.kind in ("rtsp", "stream"):
            # No control characters or spaces (a CR/LF would end FFmpeg's request
            # line), a sane length, and a scheme of this kind.
            checked = check_url(
                self.target, RTSP_SCHEMES if self.kind == "rtsp" else STREAM_SCHEMES
            )
            if checked != self.target:
                raise ValueError("a URL must not start or end with white space")
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
    def rtsp(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        transport: Transport = "auto",
        open_timeout: float = 10.0,
    ) -> Source:
        """An RTSP stream (``rtsp://`` or ``rtsps://``).

        Args:
            url: ``rtsp://host:554/path``; credentials may be in it
                (``rtsp://user:password@host/path``), or given apart.
            username: The user name, kept out of the URL you write (and so out
                of ``ps``, shell history and config files that show URLs).
            password: The password; percent-encoded into the URL FFmpeg gets,
                whatever characters it holds.  Redacted everywhere.
            transport: ``"auto"`` (the default: interleaved TCP, which works
                through NAT and firewalls, and UDP when the server offers no
                TCP), ``"tcp"`` or ``"udp"``.
            open_timeout: Seconds the open may take (connect, handshake, first keyframe).

        Raises:
            TypeError: ``url`` is not a string.
            ValueError: A bad URL (control characters, spaces, another scheme),
                or credentials given twice (in the URL and apart).
        """
        url = check_url(url, RTSP_SCHEMES)
        if username is not None or password is not None:
            url = with_credentials(url, username, password)
        return cls("rtsp", url, transport=transport, open_timeout=open_timeout)

    @classmethod
    def url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        open_timeout: float = 10.0,
        options: dict[str, str] | None = None,
    ) -> Source:
        """A network stream other than RTSP: HTTP MJPEG, HLS, RTMP, SRT, UDP or TCP.

        Each protocol gets FFmpeg options of its own (reconnection, timeouts
        and buffers that fit it); RTSP URLs go to :meth:`rtsp`.  FFmpeg cannot
        read on after an interrupted read of these protocols, so a read waits
        for data up to the pump's ``stall_timeout`` (a 1 fps camera, the next
        HLS segment) and a stream quiet for longer is reconnected as stalled.
        See docs/sources.md for the options and what was tested.

        Args:
            url: ``http://cam/video.mjpg``, ``https://host/live.m3u8``,
                ``rtmp://host/live/key``, ``srt://host:9000``, ``udp://@:5000``, ...
            username: A user name for HTTP authentication, kept out of the URL.
            password: Its password (percent-encoded into the URL FFmpeg gets).
            open_timeout: Seconds the open may take.
            options: Extra FFmpeg open options; they win over camerapump's own.

        Raises:
            TypeError: ``url`` is not a string.
            ValueError: A bad URL, an unsupported scheme (the message names the
                supported ones), or credentials given twice.
        """
        url = check_url(url, (*RTSP_SCHEMES, *STREAM_SCHEMES))
        if _scheme(url) in RTSP_SCHEMES:
            return cls.rtsp(url, username=username, password=password, open_timeout=open_timeout)
        if username is not None or password is not None:
            url = with_credentials(url, username, password)
        pairs = tuple(sorted((options or {}).items()))
        return cls("stream", url, open_timeout=open_timeout, options=pairs)

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

        ``rtsp://…`` -> RTSP; ``http(s)://``, ``rtmp://``, ``srt://``,
        ``udp://``, ``tcp://`` -> a stream URL; ``/dev/video0``, ``0`` or
        ``usb:NAME`` -> USB; ``test:`` or ``test:smptebars`` -> test pattern;
        ``file:PATH``, ``file://PATH`` or an existing path -> file.  Each
        label that camerapump prints parses back to its source.

        Raises:
            TypeError: ``text`` is not a string.
            ValueError: Empty, overlong or control-character text, an
                unsupported URL scheme, or text that names none of these.
        """
        text = check_source_text(text)  # before anything looks at the file system
        lowered = text.lower()
        if lowered == "test" or lowered.startswith("test:"):
            return cls.test(text.partition(":")[2] or "testsrc2")
        if lowered.startswith("usb:"):
            name = text[4:]
            return cls.usb(int(name) if name.isdigit() else name)
        if "://" in text:
            scheme = _scheme(text)
            if scheme == "file":
                return cls.file(text[7:])
            if scheme in RTSP_SCHEMES:
                return cls.rtsp(text)
            if scheme in STREAM_SCHEMES:
                return cls.url(text)
            supported = ", ".join(f"{s}://" for s in (*RTSP_SCHEMES, *STREAM_SCHEMES, "file"))
            named = f"{scheme}://" if scheme else f"in {redact_url(text)!r}"
            raise ValueError(f"unsupported URL scheme {named}; camerapump opens {supported}")
        if lowered.startswith("file:"):
            return cls.file(text[5:])
        if text.isdigit():
            return cls.usb(int(text))
        if re.fullmatch(r"/dev/video\d+", text) or text.startswith("/dev/v4l/"):
            return cls.usb(text)
        if Path(text).is_file():
            return cls.file(text)
        raise ValueError(
            # Quoted masked: a mistyped URL (rtsp:/admin:pw@cam) still holds its password.
            f"{echo(text)!r} is not a source: use a stream URL (rtsp://, http://, rtmp://, ...), a "
            "camera index or /dev/videoN, usb:NAME, test: or test:PATTERN, or the path of an "
            "existing file"
        )

    # -- traits and presentation ----------------------------------------------------------

    @property
    def traits(self) -> KindTraits:
        """What this kind of source is like (live, network, device)."""
        return KIND_TRAITS[self.kind]

    @property
    def is_live(self) -> bool:
        """True for sources that keep running without us (cameras and streams)."""
        return KIND_TRAITS[self.kind].live

    @property
    def processed(self) -> bool:
        """True for a file read as fast as it decodes (``realtime=False``), not paced."""
        return self.kind == "file" and not self.realtime

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credential strings this source carries (for redaction)."""
        if not KIND_TRAITS[self.kind].network or not isinstance(self.target, str):
            return ()
        return secrets_of(self.target)

    @property
    def label(self) -> str:
        """A short, redacted label: ``rtsp://***@host/cam``, ``usb:/dev/video0``, ``test:``.

        :meth:`parse` turns a label back into its source (minus the secrets).
        """
        if KIND_TRAITS[self.kind].network:
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
