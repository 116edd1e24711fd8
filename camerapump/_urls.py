"""Checks on URLs and source strings before FFmpeg or the file system sees them.

FFmpeg copies a URL into the RTSP or HTTP request line as it is: a CR or LF in
it ends the line and starts a header of the caller's choosing, and a space
splits the request line.  Text that is not a string, is absurdly long or holds
control characters is refused here with a clear error that never quotes the
raw text (only its redacted form).
"""

from __future__ import annotations

import os
import re
import unicodedata
import urllib.parse
from collections.abc import Collection

from ._redact import MASK, redact_text, split_authority_userinfo, split_userinfo

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "MAX_TEXT_LENGTH",
    "NETWORK_SCHEMES",
    "check_source_text",
    "check_url",
    "echo",
    "with_credentials",
]

#: The URL schemes a network source accepts (FFmpeg protocols that carry live video).
NETWORK_SCHEMES: tuple[str, ...] = (
    "rtsp",
    "rtsps",
    "rtmp",
    "rtmps",
    "http",
    "https",
    "srt",
    "udp",
    "tcp",
)
#: The longest URL or source string accepted, in characters.  Real camera URLs are a
#: few hundred characters at most; 8 KiB is also the request-line limit of common
#: servers, so anything longer fails there anyway, only later and less clearly.
MAX_TEXT_LENGTH = 8192
#: POSIX limits (Linux NAME_MAX and PATH_MAX) that a file path must fit before it is
#: handed to the file system, which would otherwise raise ``OSError`` (name too long).
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096

_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://")
_ECHO_LENGTH = 120


def _is_control(char: str) -> bool:
    # C0, DEL and C1: none of them belongs in a URL, a path or a device name.
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _describe(char: str) -> str:
    names = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\x00": "a NUL character"}
    if char in names:
        return f"{names[char]}, U+{ord(char):04X}"
    if char == "\t":
        return "a tab, U+0009"
    if _is_control(char):
        return f"a control character, U+{ord(char):04X}"
    name = unicodedata.name(char, "white space").lower()
    return f"{name}, U+{ord(char):04X}"


def echo(text: str) -> str:
    """``text`` redacted for an error message, cautiously, and cut to a readable length.

    Text refused as a URL may not be one (no scheme, so :func:`redact_url` leaves it
    alone: ``alice:secret@cam/live``), so whatever precedes its last ``@`` is masked
    too; an error message can afford to hide a path.
    """
    shown = redact_text(text)
    scheme = _SCHEME.match(shown)
    start = scheme.end() if scheme else 0
    head, at, tail = shown[start:].rpartition("@")
    if at and head != MASK:
        shown = f"{shown[:start]}{MASK}@{tail}"
    if len(shown) > _ECHO_LENGTH:
        shown = shown[: _ECHO_LENGTH - 3] + "..."
    return shown


def _check_text(value: object, what: str, *, whitespace: bool) -> str:
    """The checks common to URLs and source strings; returns the stripped text."""
    if not isinstance(value, str):
        hint = " (decode it first)" if isinstance(value, (bytes, bytearray)) else ""
        raise TypeError(f"{what} must be a str, not {type(value).__name__}{hint}")
    text = value.strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(
            f"{what} is {len(text)} characters long; the limit is {MAX_TEXT_LENGTH} characters"
        )
    for char in text:
        if _is_control(char):
            raise ValueError(
                f"{what} must not contain control characters (CR, LF, NUL, tab, ...): "
                f"found {_describe(char)} in {echo(text)!r}"
            )
        if not whitespace and char.isspace():
            raise ValueError(
                f"{what} must not contain spaces or other white space (percent-encode a space "
                f"as %20): found {_describe(char)} in {echo(text)!r}"
            )
    return text


def check_url(value: object, schemes: Collection[str] = NETWORK_SCHEMES) -> str:
    """Check that ``value`` is a network URL FFmpeg can be given safely.

    Args:
        value: The URL (anything: non-strings are refused).
        schemes: The accepted schemes, lower case (``rtsp``, ``http``, ...).

    Returns:
        The URL without surrounding white space.

    Raises:
        TypeError: ``value`` is not a ``str``.
        ValueError: It is empty, longer than :data:`MAX_TEXT_LENGTH`, holds a
            control character or white space, has no ``scheme://`` or one that
            is not in ``schemes``, or names nothing after the scheme.
    """
    text = _check_text(value, "a URL", whitespace=False)
    accepted = ", ".join(f"{s}://" for s in schemes)
    scheme = _SCHEME.match(text)
    if scheme is None:
        raise ValueError(f"a network URL starts with one of {accepted} (got {echo(text)!r})")
    if scheme.group(1).lower() not in {s.lower() for s in schemes}:
        raise ValueError(
            f"unsupported URL scheme {scheme.group(1)!r}: a network URL starts with one of "
            f"{accepted}"
        )
    if scheme.end() == len(text):
        raise ValueError(f"the URL {echo(text)!r} names no host")
    return text


def check_source_text(value: object) -> str:
    """Check a source string (for ``Source.parse``) before anything touches the file system.

    White space is allowed (device names and file paths have spaces), control
    characters are not.  Text that is not a URL may end up as a file path, so it
    must also fit the file system's limits: past them ``Path.is_file()`` raises
    ``OSError`` ("File name too long") instead of saying it is no source.

    Args:
        value: The text.

    Returns:
        The text without surrounding white space.

    Raises:
        TypeError: ``value`` is not a ``str``.
        ValueError: It is empty, longer than :data:`MAX_TEXT_LENGTH`, holds a
            control character, or (not being a URL) is too long for a file path
            or cannot be encoded as one.
    """
    text = _check_text(value, "a source", whitespace=True)
    if "://" in text:
        return text
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        raise ValueError(
            f"a source must be encodable as a file name; {echo(text)!r} is not"
        ) from None
    separators = {os.fsencode(sep) for sep in (os.sep, os.altsep) if sep}
    parts = [encoded]
    for separator in separators:
        parts = [piece for part in parts for piece in part.split(separator)]
    longest = max(len(part) for part in parts)
    if len(encoded) > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        raise ValueError(
            f"{echo(text)!r} is not a source: too long for a file path (at most "
            f"{MAX_NAME_BYTES} bytes a name and {MAX_PATH_BYTES} in all)"
        )
    return text


def _check_credential(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"the {what} must be a str, not {type(value).__name__}")
    if any(_is_control(c) for c in value):
        # FFmpeg percent-decodes credentials and quotes the user name in a Digest
        # header: an encoded CR/LF would come back as a line break in the request.
        raise ValueError(f"the {what} must not contain control characters (CR, LF, NUL, ...)")
    return value


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Return ``url`` with ``username`` and ``password`` as its (percent-encoded) user info.

    Lets credentials stay out of the URL string a user types, and so out of
    ``ps`` and shell history.  Every character of both is percent-encoded;
    FFmpeg decodes them before it sends them (Basic or Digest).

    Args:
        url: A URL with a scheme and no user info.
        username: The user name, or ``None`` for no credentials.
        password: The password, or ``None`` for a user name alone.

    Returns:
        ``scheme://user:password@rest``, or ``url`` unchanged when both are ``None``.

    Raises:
        TypeError: ``username`` or ``password`` is not a ``str`` (or ``None``).
        ValueError: A password without a user name, an empty user name,
            control characters in either, a URL without a scheme, or a URL that
            already has user info.
    """
    if username is None and password is None:
        return url
    if username is None:
        raise ValueError("a password needs a username")
    user = _check_credential(username, "username")
    if not user:
        raise ValueError("the username must not be empty")
    secret = None if password is None else _check_credential(password, "password")
    prefix, _, _ = split_userinfo(url)
    if not prefix:
        raise ValueError(f"credentials go into a URL with a scheme, not {echo(url)!r}")
    # The strict reading (FFmpeg's) decides: a "cam:554/s?to=ops@example.com" query
    # has an "@" but no user info, and the new credentials are the ones FFmpeg uses.
    existing = split_authority_userinfo(url)
    body = url[len(prefix) :]
    if existing:
        raise ValueError(
            "the URL already has credentials; give them either in the URL or as "
            "username and password, not both"
        )
    if existing == "":  # "udp://@host": an empty user info, replaced
        body = body[1:]
    info = urllib.parse.quote(user, safe="")
    if secret is not None:
        info += ":" + urllib.parse.quote(secret, safe="")
    return f"{prefix}{info}@{body}"
