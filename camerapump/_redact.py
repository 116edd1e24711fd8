"""Credential redaction for URLs and for free text that may quote them.

PyAV puts the whole URL, password included, into its error messages, and
users paste URLs into logs.  Everything camerapump prints goes through here.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["redact_text", "redact_url", "secrets_of"]

MASK = "***"

# Query parameters that some cameras use to carry credentials (?user=admin&pwd=...).
_SECRET_PARAMS = frozenset(
    {"user", "username", "password", "pass", "passwd", "pwd", "token", "auth", "key", "apikey"}
)


# scheme://userinfo@rest, where userinfo runs to the LAST "@": a password with an
# unencoded "/", "?" or "#" fools urlsplit (its netloc ends there), and masking
# too much is the safe way to be wrong.
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s]*)@([^@\s]*)$")


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """Split ``url`` into (scheme://, user info or None, the rest)."""
    match = _USERINFO.match(url)
    if match is None:
        scheme, sep, rest = url.partition("://")
        return (scheme + sep, None, rest) if sep else ("", None, url)
    return match.group(1), match.group(2), match.group(3)


def redact_url(url: str) -> str:
    """Return ``url`` with its user info and secret query parameters masked.

    ``rtsp://alice:secret@host/cam?token=x`` becomes ``rtsp://***@host/cam?token=***``.
    Text that is not a URL is returned unchanged.
    """
    prefix, userinfo, rest = _split_userinfo(url)
    if not prefix:
        return url
    if userinfo is not None:
        url = prefix + MASK + "@" + rest
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = "&".join(
                f"{k}={MASK}" if k.lower() in _SECRET_PARAMS else f"{k}={v}" for k, v in pairs
            )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_of(url: str) -> tuple[str, ...]:
    """Return the secret strings of ``url``: the raw URL, its user info and secret params.

    Each is returned raw and percent-decoded, longest first, so that replacing
    them in order never leaves a fragment of a longer one behind.
    """
    found: set[str] = set()
    _, userinfo, rest = _split_userinfo(url)
    if userinfo is not None:
        found.add(url)
        found.add(userinfo)
        user, _, password = userinfo.partition(":")
        if password:
            found.add(password)
        found.add(user)
    # The query is looked at without the user info (which may hold a "?").
    parts = urllib.parse.urlsplit(url if userinfo is None else "x://" + rest)
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_PARAMS and value:
            found.add(url)
            found.add(value)
    decoded = {urllib.parse.unquote(s) for s in found}
    # One-character "secrets" would shred every message; a password that short is
    # not a secret worth the noise, and the URL itself is still replaced whole.
    return tuple(sorted((s for s in found | decoded if len(s) >= 2), key=len, reverse=True))


_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask every URL's credentials in ``text`` and every string of ``secrets``."""
    for secret in secrets:
        if "://" in secret:
            text = text.replace(secret, redact_url(secret))
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    for secret in secrets:
        if "://" not in secret:
            text = text.replace(secret, MASK)
    return text
