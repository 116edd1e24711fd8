"""Credential redaction for URLs and for free text that may quote them.

PyAV puts the whole URL, password included, into its error messages, and
users paste URLs into logs.  Everything camerapump prints goes through here.

URLs are taken apart as text, not with ``urllib.parse``: a password with an
unencoded ``/``, ``?``, ``#`` or ``@`` fools a URL parser (its host would end
there), and such URLs are common in camera configs.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["redact_text", "redact_url", "secrets_of"]

MASK = "***"

# Query parameters that some cameras use to carry credentials (?user=admin&pwd=...).
_SECRET_PARAMS = (
    "user",
    "username",
    "password",
    "pass",
    "passwd",
    "pwd",
    "token",
    "auth",
    "key",
    "apikey",
)
_SECRET_QUERY = re.compile(
    r"([?&;](?:" + "|".join(_SECRET_PARAMS) + r")=)([^&;#\s'\"<>]*)", re.IGNORECASE
)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# What follows the "@" of user info: a host (name, IPv4 or [IPv6]) and maybe a port,
# then the path, query or fragment, or the end.
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d+)?(?=[/?#]|$)")


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """Split ``url`` into (``scheme://``, the user info or ``None``, the rest).

    The user info ends at the last ``@`` that is followed by a host; it may
    hold ``/`` only after a ``:`` (a password), so ``http://cdn/clip@2x.mp4``
    has none.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "", None, url
    prefix, body = scheme.group(0), url[scheme.end() :]
    at = len(body)
    while (at := body.rfind("@", 0, at)) > 0:
        userinfo, rest = body[:at], body[at + 1 :]
        slash = userinfo.find("/")
        if _HOST.match(rest) and (slash < 0 or 0 <= userinfo.find(":") < slash):
            return prefix, userinfo, rest
    return prefix, None, body


def redact_url(url: str) -> str:
    """Return ``url`` with its user info and secret query parameters masked.

    ``rtsp://alice:secret@host/cam?token=x`` becomes ``rtsp://***@host/cam?token=***``.
    Text that is not a URL is returned unchanged.
    """
    prefix, userinfo, rest = _split_userinfo(url)
    if not prefix:
        return url
    if userinfo is not None:
        rest = MASK + "@" + rest
    return prefix + _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, rest)


def secrets_of(url: str) -> tuple[str, ...]:
    """Return the secret strings of ``url``: the raw URL, its user info and secret params.

    Each is returned raw and percent-decoded, longest first, so that replacing
    them in order never leaves a fragment of a longer one behind.
    """
    found: set[str] = set()
    _, userinfo, _ = _split_userinfo(url)
    if userinfo is not None:
        found.update((url, userinfo))
        user, _, password = userinfo.partition(":")
        found.update((user, password))
    for match in _SECRET_QUERY.finditer(url):
        if match.group(2):
            found.update((url, match.group(2)))
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
