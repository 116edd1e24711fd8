"""Credential redaction for URLs and for free text that may quote them.

PyAV puts the whole URL, password included, into its error messages, FFmpeg's
debug log prints the ``Authorization`` header of every RTSP request, and users
paste URLs into logs.  Everything camerapump prints goes through here.

URLs are taken apart as text, not with ``urllib.parse``: a password with an
unencoded ``/``, ``?``, ``#`` or ``@`` fools a URL parser (its host would end
there), and such URLs are common in camera configs.  Where a URL is ambiguous
(``rtsp://cam:554/a@b`` is a host and port, or a user ``cam`` with the password
``554/a``) redaction masks more rather than less.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
from collections.abc import Iterator

__all__ = [
    "MASK",
    "is_secret_param",
    "redact_text",
    "redact_url",
    "secrets_of",
    "split_authority_userinfo",
    "split_userinfo",
]

MASK = "***"

# Query parameter names that carry credentials, compared case-insensitively after
# percent-decoding and with "-", "_" and "." dropped (so "access_token", "X-Amz-Signature"
# and "api-key" all match).  Exact names are short or generic words that must not
# match as a suffix ("sig" would match "config"); suffixes catch the many vendor
# spellings ("streamkey", "wowzatoken", "client_secret").
_SECRET_NAMES = frozenset(
    {
        "user",
        "username",
        "usr",
        "login",
        "pass",
        "pwd",
        "psw",
        "pw",
        "pin",
        "sig",
        "jwt",
        "session",
    }
)
_SECRET_SUFFIXES = (
    "token",
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "secret",
    "key",
    "signature",
    "credential",
    "credentials",
    "sessionid",
    "auth",
)

_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_MAX_READINGS = 8
# What may follow the "@" that ends the user info: a host (a name or IPv4, possibly
# empty or odd, or anything in brackets for IPv6), maybe a port of any shape (hostile
# input has "host:abc" and "[::1]:"), then the path, query, fragment or the end.  The
# name excludes "&", "=", ";" and "," so that "ops@example.com&token=x" in a query is
# not taken for a host.
_HOST = re.compile(
    r"""(?:\[[^\]/?#@\s]*\]|[^/?#@:\[\]\s&=;,'"<>\\]*)(?::[^/?#@\s]*)?(?=[/?#\s'"<>]|$)"""
)
# The start of a query parameter (delimiter, name, "="), and what ends a secret one's value:
# the next delimiter in a lone URL; in free text also white space and quotes (the URL ends
# there).  A value that is not secret is not skipped over: "/&@=?token=x" has two params.
_PARAM_IN_URL = (re.compile(r"[?&;#]([^=&;#?/]+)="), re.compile(r"[&;#]"))
_PARAM_IN_TEXT = (re.compile(r"""[?&;#]([^=&;#?/\s'"<>]+)="""), re.compile(r"""[&;#\s'"<>]"""))
_URL_IN_TEXT = re.compile(r"""[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+""")
# Request headers that carry credentials, and the SDP attributes that carry SRTP keys
# ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<key>", FFmpeg logs the SDP at DEBUG).  The
# whole value is masked up to the end of the line (or of the text: FFmpeg cuts log lines
# at 1023 bytes, possibly mid-value); the auth scheme word is kept because "Basic"
# versus "Digest" helps debugging.
_HEADER = re.compile(
    r"\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|x-auth-token|crypto|key-mgmt)"
    r"[ \t]*:[ \t]*"
    r"(?:(basic|digest|bearer|negotiate|ntlm)\b[ \t]*)?[^\r\n]*",
    re.IGNORECASE,
)


def is_secret_param(name: str) -> bool:
    """Whether the query parameter ``name`` (raw, maybe percent-encoded) carries a secret."""
    key = re.sub(r"[-_.\s]", "", urllib.parse.unquote(name)).lower()
    return key in _SECRET_NAMES or key.endswith(_SECRET_SUFFIXES)


def _userinfo_ends(body: str) -> Iterator[int]:
    """The positions in ``body`` (a URL after its ``://``) of each ``@`` that may end user info.

    Last first.  An ``@`` may end it if it is inside the authority as a URL parser (and
    FFmpeg) reads it, before any ``/``, ``?`` or ``#``; or if a ``:`` comes somewhere
    before it (a password with a raw ``/``, ``?`` or ``#``) and a host after it.
    """
    # Where the authority ends for a URL parser, and the first ":": comparing positions
    # keeps this linear on hostile text with thousands of "@".
    first_delimiter = min((i for i in map(body.find, "/?#") if i >= 0), default=len(body))
    first_colon = body.find(":")
    at = len(body)
    while (at := body.rfind("@", 0, at)) >= 0:
        in_authority = at < first_delimiter
        if in_authority or (0 <= first_colon < at and _HOST.match(body, at + 1)):
            yield at


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """Split ``url`` into (``scheme://``, the user info or ``None``, the rest).

    The user info ends at the last ``@`` that may end it (see the module's
    docstring): ``http://cdn/clip@2x.mp4`` has none, ``rtsp://bob:a/b?c@cam/live``
    has ``bob:a/b?c``.

    Args:
        url: The URL (any text: without a scheme it has no user info).

    Returns:
        ``("", None, url)`` for text without a scheme; otherwise the scheme
        with its ``://``, the user info (``None`` if there is none), and what
        follows the user info's ``@`` (or the whole rest).
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "", None, url
    prefix, body = scheme.group(0), url[scheme.end() :]
    for at in _userinfo_ends(body):
        return prefix, body[:at], body[at + 1 :]
    return prefix, None, body


def split_authority_userinfo(url: str) -> str | None:
    """Return the user info of ``url`` as FFmpeg reads it, or ``None``.

    FFmpeg (``av_url_split``) ends the authority at the first ``/``, ``?`` or
    ``#`` and takes the user info up to the last ``@`` before it.  This is the
    strict reading; :func:`split_userinfo` is the wide one used for masking.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return None
    body = url[scheme.end() :]
    authority = re.split(r"[/?#]", body, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")
    return userinfo if at else None


def _secret_values(
    text: str, param: tuple[re.Pattern[str], re.Pattern[str]]
) -> Iterator[tuple[int, int]]:
    """The (start, end) of each secret query parameter's value in ``text``, in order."""
    start, stop = param
    end = 0
    for match in start.finditer(text):
        # A secret value runs to the next delimiter, "?" included ("token=a?b"); a
        # parameter that starts inside it is part of it.
        if match.start() >= end and is_secret_param(match.group(1)):
            found = stop.search(text, match.end())
            end = found.start() if found else len(text)
            yield match.end(), end


def _mask_params(text: str, param: tuple[re.Pattern[str], re.Pattern[str]]) -> str:
    parts: list[str] = []
    last = 0
    for start, end in _secret_values(text, param):
        parts += (text[last:start], MASK)
        last = end
    return "".join(parts) + text[last:] if parts else text


def redact_url(url: str) -> str:
    """Return ``url`` with its user info and secret query parameters masked.

    ``rtsp://alice:secret@host/cam?token=x`` becomes ``rtsp://***@host/cam?token=***``.
    Text that is not a URL is returned unchanged.

    Args:
        url: One URL (the whole string is taken as the URL).

    Returns:
        The redacted URL.
    """
    prefix, userinfo, rest = split_userinfo(url)
    if not prefix:
        return url
    if userinfo is not None:
        # An empty one ("udp://@239.0.0.1:1234", a multicast listen) hides nothing.
        rest = (MASK if userinfo else "") + "@" + rest
    return prefix + _mask_params(rest, _PARAM_IN_URL)


def _forms(secret: str) -> set[str]:
    """``secret`` raw, percent-decoded, and percent-encoded (as a URL would carry it)."""
    decoded = urllib.parse.unquote(secret)
    # quote() keeps "/" by default, and that is how most code encodes a password.
    return {secret, decoded, urllib.parse.quote(decoded, safe=""), urllib.parse.quote(decoded)}


def secrets_of(url: str) -> tuple[str, ...]:
    """Return the secret strings of ``url``: the URL, its user info and secret params.

    The user info is read both the wide way (what :func:`redact_url` masks) and
    the strict way (what FFmpeg sends), so a password is found whichever way the
    URL is read.  User names, passwords and parameter values are given raw,
    percent-decoded and percent-encoded; everything is sorted longest first, so
    that replacing them in order never leaves a fragment of a longer one behind.

    Args:
        url: The URL.

    Returns:
        The secrets (empty for a URL without credentials).
    """
    found: set[str] = set()
    prefix, _, rest = split_userinfo(url)
    if not prefix:
        return ()
    body = url[len(prefix) :]
    # Every "@" that may end the user info gives a reading (an "@" in the path after a
    # password with a raw "?" makes two); a bounded number, or 8 KiB of "@" would make
    # millions of strings.
    ends = itertools.islice(_userinfo_ends(body), _MAX_READINGS)
    for userinfo in {body[:at] for at in ends} | {split_authority_userinfo(url)}:
        if not userinfo:
            continue
        found.update((url, urllib.parse.unquote(url), userinfo, urllib.parse.unquote(userinfo)))
        # FFmpeg splits at the first ":", but a user name may hold a raw ":" too
        # ("a:b:pw"), and so may the password: every split is a reading (bounded again).
        colons = [i for i, c in enumerate(userinfo) if c == ":"]
        for i in {*colons[:_MAX_READINGS], *colons[-_MAX_READINGS:]}:
            found |= _forms(userinfo[:i]) | _forms(userinfo[i + 1 :])
        if not colons:
            found |= _forms(userinfo)
    for start, end in _secret_values(rest, _PARAM_IN_URL):
        value = rest[start:end]
        if value:
            found.update((url, urllib.parse.unquote(url), urllib.parse.unquote_plus(value)))
            found |= _forms(value)
    # One-character "secrets" would shred every message; a password that short is
    # not a secret worth the noise, and the URL itself is still replaced whole.
    return tuple(sorted((s for s in found if len(s) >= 2), key=len, reverse=True))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask credentials in free text (an error message, a log line).

    Masks, in order: the given URLs among ``secrets`` (replaced by their
    redacted form), the values of credential headers (``Authorization:``,
    ``Cookie:``...), every URL's user info, secret query parameters (also on
    request lines without a scheme), and finally every string of ``secrets``
    wherever it still occurs: that last step is what holds when a message
    quotes a URL partially, percent-decoded, or split by a space.

    Args:
        text: The text.
        secrets: Strings from :func:`secrets_of` (longest first).

    Returns:
        The redacted text.
    """
    for secret in secrets:
        if _SCHEME.match(secret) and secret in text:
            text = text.replace(secret, redact_url(secret))
    text = _HEADER.sub(
        lambda m: f"{m.group(1)}: {m.group(2) + ' ' if m.group(2) else ''}{MASK}", text
    )
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    text = _mask_params(text, _PARAM_IN_TEXT)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
