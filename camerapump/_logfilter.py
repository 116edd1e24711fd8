"""Redaction of FFmpeg's log output as PyAV forwards it to :mod:`logging`.

With ``av.logging.set_level(av.logging.TRACE)`` (or ``DEBUG``) PyAV hands every
FFmpeg log line to the Python logger ``libav.<component>`` (``libav.rtsp``,
``libav.tcp``, ``libav.http``...).  Those lines include each RTSP request with
its ``Authorization: Basic <base64 of user:password>`` header, Digest
responses with the user name, and URLs.  This module masks them.

Where it hooks in, and why there: a :class:`logging.Filter` on the ``libav``
logger does not see records logged on ``libav.rtsp`` (a logger's filters only
run for its own records; propagation reaches the parent's handlers, not its
filters); filters on handlers only cover the handlers that exist when they are
added (pytest's ``caplog`` and most applications add theirs later); and the
child loggers are created lazily by PyAV under names that depend on the FFmpeg
component.  So :func:`install` wraps the process's log record factory
(:func:`logging.setLogRecordFactory`): every record of the ``libav`` hierarchy
is redacted as it is created, before any filter, handler or formatter sees it,
whichever logger and handler it goes to.  The wrapper chains to the factory
that was in place, costs one string comparison for other records, and is not
called at all for levels the logger does not emit.  :class:`RedactingFilter`
is the same redaction as a filter, for handlers of one's own.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, NewType

from ._redact import redact_text, split_authority_userinfo, split_userinfo

__all__ = [
    "LOGGER_PREFIX",
    "RedactingFilter",
    "Token",
    "install",
    "installed",
    "redact_record",
    "register",
    "uninstall",
    "unregister",
]

#: The logger hierarchy PyAV logs FFmpeg's messages on.
LOGGER_PREFIX = "libav"
#: What a record says when its message could not be redacted: withheld, not leaked.
WITHHELD = "[camerapump: log message withheld, it could not be redacted]"

#: An opaque handle for one :func:`register` call.
Token = NewType("Token", int)


class _State:
    """The registrations and the installed factory; one per process (``_state``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.registered: dict[Token, tuple[str, ...]] = {}
        # The union of every registration, longest first; rebuilt under the lock, read
        # without it: replacing a tuple is atomic, so a record sees the old or the new
        # set, never half of one.
        self.active: tuple[str, ...] = ()
        self.factory: _RedactingFactory | None = None

    def rebuild(self) -> None:
        every = {s for secrets in self.registered.values() for s in secrets}
        self.active = tuple(sorted(every, key=len, reverse=True))


def _basic_credentials(userinfo: str) -> set[str]:
    """The Basic-auth tokens for ``userinfo`` (FFmpeg percent-decodes it first)."""
    return {
        base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
        for text in (userinfo, urllib.parse.unquote(userinfo))
    }


def _derived(secrets: Iterable[str]) -> set[str]:
    """``secrets`` plus the base64 of every ``user:password`` pair they contain."""
    found = set(secrets)
    for secret in list(found):
        if "://" in secret:
            for userinfo in {split_userinfo(secret)[1], split_authority_userinfo(secret)}:
                if userinfo:
                    found |= _basic_credentials(userinfo)
        elif ":" in secret:
            found |= _basic_credentials(secret)
    return {s for s in found if len(s) >= 2}


def register(secrets: Iterable[str]) -> Token:
    """Mask ``secrets`` (and the base64 of their ``user:password`` pairs) in FFmpeg's log.

    A pump registers its source's secrets (``Source.secrets``) when it opens
    and unregisters them when it closes.  Registering also calls
    :func:`install`.  Thread-safe.

    Args:
        secrets: Strings as :func:`~camerapump._redact.secrets_of` returns them.

    Returns:
        The token to give to :func:`unregister`.
    """
    install()
    derived = tuple(_derived(secrets))
    with _state.lock:
        token = Token(next(_state.counter))
        _state.registered[token] = derived
        _state.rebuild()
    return token


def unregister(token: Token) -> None:
    """Stop masking the secrets of ``token``; an unknown or spent token is ignored.

    Args:
        token: What :func:`register` returned.
    """
    with _state.lock:
        if _state.registered.pop(token, None) is not None:
            _state.rebuild()


def redact_record(record: logging.LogRecord) -> None:
    """Redact ``record``'s message in place; never raises.

    The message is formatted (``msg % args``) first, since a secret may be in
    either; the redacted text becomes ``msg`` and ``args`` is emptied.  A
    message that cannot be formatted or redacted is replaced by a notice: the
    logging module would otherwise print the raw ``msg`` and ``args`` to stderr
    when a handler fails to format it.

    Args:
        record: The record.
    """
    try:
        text = record.getMessage()
        redacted = redact_text(text, _state.active)
    except Exception:  # noqa: BLE001 (a log call must not fail, nor leak when it cannot redact)
        record.msg, record.args = WITHHELD, ()
        return
    if redacted != text or record.args:
        record.msg, record.args = redacted, ()


class RedactingFilter(logging.Filter):
    """A filter that redacts every record it sees (and never drops one).

    Not needed with :func:`install`; for handlers of one's own that should be
    redacted also when another library replaces the log record factory.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place (see :func:`redact_record`); always keep it."""
        redact_record(record)
        return True


def _is_libav(name: str) -> bool:
    return name.startswith(LOGGER_PREFIX) and (
        len(name) == len(LOGGER_PREFIX) or name[len(LOGGER_PREFIX)] == "."
    )


class _RedactingFactory:
    """A log record factory that redacts ``libav`` records and chains to the previous one."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner
        self.enabled = True

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if self.enabled:
            try:
                libav = _is_libav(record.name)
            except Exception:  # noqa: BLE001 (an odd record from an odd factory: leave it)
                libav = False
            if libav:
                redact_record(record)
        return record


_state = _State()


def install() -> None:
    """Redact every record of the ``libav`` logger hierarchy from now on; idempotent.

    Authorization headers and URL credentials are masked always; the exact
    strings of :func:`register` while they are registered.  If another
    library has replaced the record factory since, a new wrapper goes on top
    of its factory (redacting twice is harmless; missing a record is not).
    """
    with _state.lock:
        current = logging.getLogRecordFactory()
        if _state.factory is not None and current is _state.factory:
            _state.factory.enabled = True
            return
        if _state.factory is not None:
            _state.factory.enabled = False  # superseded by the wrapper on top
        _state.factory = _RedactingFactory(current)
        logging.setLogRecordFactory(_state.factory)


def uninstall() -> None:
    """Stop redacting ``libav`` records (for tests); registrations are kept."""
    with _state.lock:
        factory, _state.factory = _state.factory, None
        if factory is None:
            return
        factory.enabled = False
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(factory.inner)
        # Otherwise someone wrapped ours since: unwrapping would drop theirs, so ours
        # stays in their chain, disabled.


def installed() -> bool:
    """Whether :func:`install` is in effect (our factory is the current one)."""
    factory = _state.factory
    return factory is not None and logging.getLogRecordFactory() is factory
