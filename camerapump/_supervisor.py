"""The reconnect supervisor and the stall watchdog: pure decisions, and the loop that applies them.

Everything here is independent of PyAV, threads and event loops.  The loop,
:func:`supervise`, drives a :class:`Session` (open one, read it until it ends,
wait) through an injected clock, so the whole reconnect matrix is tested in
milliseconds with a scripted session (``tests/test_supervisor.py``); the real
session is the decode thread's (:class:`camerapump._worker.Worker`), which runs
this loop on that thread.

Why the supervisor runs on the decode thread, not as event-loop tasks: the
thread already owns the session, so opening, reading, stall detection and
backoff all happen where the container lives, with no task for a caller's
cancel scope to tear (a pump opened in one task and closed in another, as ASGI
lifespans do), under asyncio and trio alike, and the blocking
:class:`~camerapump.Camera` gets reconnection from the same code.  The event
loop only hears the outcome (status events, frames).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ._config import ReconnectPolicy, StreamFormat, backoff_delay
from ._errors import CameraError

__all__ = [
    "Clock",
    "Events",
    "Finish",
    "GiveUp",
    "Retry",
    "Session",
    "SessionEnd",
    "decide",
    "stalled",
    "supervise",
]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """How a session ended.

    Attributes:
        error: ``None`` for a normal end (a finite source ended, or a stop);
            otherwise the typed error.
        reason: The machine-readable reason for status events, or ``None``.
    """

    error: CameraError | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop for good; ``reason`` goes into :class:`~camerapump.GaveUp`."""

    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The first open failed and is not retried: the caller of ``open_pump`` gets the error."""


Decision = Retry | GiveUp | Finish


def decide(
    policy: ReconnectPolicy | None,
    *,
    live: bool,
    opened_before: bool,
    attempt: int,
    reason: str,
    rng: random.Random | None = None,
) -> Decision:
    """What to do after a failed open or a lost session.

    Args:
        policy: The pump's policy; ``None`` never retries.
        live: Whether the source is live (files and test patterns are never retried).
        opened_before: Whether any session of this pump ever opened.
        attempt: The zero-based number of the attempt this decision would make.
        reason: Why the session is gone (``open_failed:...``, ``end_of_stream``, ...).
        rng: Random source for the jitter.
    """
    if not opened_before and not (policy is not None and policy.retry_initial_open and live):
        return Finish()
    if policy is None or not live:
        return GiveUp(reason)
    if policy.max_attempts is not None and attempt >= policy.max_attempts:
        return GiveUp(f"max_attempts_reached:{reason}")
    return Retry(backoff_delay(attempt, policy, rng))


def stalled(now: float, last_frame_at: float, stall_timeout: float) -> bool:
    """True when no frame came for longer than ``stall_timeout`` seconds."""
    return now - last_frame_at > stall_timeout


class Session(Protocol):
    """What :func:`supervise` drives: the decode thread, or a script in the tests."""

    def stopping(self) -> bool:
        """True once the owner asked to stop."""
        ...

    def open(self) -> StreamFormat | CameraError:
        """Open a session; return what was negotiated, or the typed error."""
        ...

    def read(self, stall_timeout: float) -> SessionEnd:
        """Read the open session until it ends, stalls for ``stall_timeout``, or a stop."""
        ...

    def wait(self, delay: float) -> bool:
        """Wait ``delay`` seconds (shorter if the source is known to be back).

        Returns:
            False if a stop came meanwhile.
        """
        ...


class Events(Protocol):
    """What :func:`supervise` reports, in order."""

    def connected(self, fmt: StreamFormat, *, first: bool, reconnects: int) -> None:
        """A session opened; ``reconnects`` counts sessions re-established so far."""
        ...

    def reconnecting(self, attempt: int, delay: float, reason: str, *, attempts: int) -> None:
        """A session was lost or an open failed; attempt ``attempt`` follows in ``delay`` s."""
        ...

    def finished(self, error: CameraError | None, reason: str | None, *, first: bool) -> None:
        """The supervisor is done: the source ended (``error`` None), failed or gave up.

        ``first`` is True when no session ever opened (open_pump raises ``error``).
        """
        ...


def supervise(
    session: Session,
    events: Events,
    policy: ReconnectPolicy | None,
    *,
    live: bool,
    rng: random.Random | None = None,
) -> None:
    """Open sessions and reopen them under ``policy`` until the end, a give-up or a stop."""
    stall_timeout = (policy or ReconnectPolicy()).stall_timeout
    attempt = 0  # zero-based number of the next reconnect attempt
    attempts = 0  # reconnect attempts made, over the pump's life
    reconnects = 0  # sessions re-established after a loss
    opened_before = False
    while not session.stopping():
        result = session.open()
        if isinstance(result, CameraError):
            error, reason = result, f"open_failed:{result.code}"
        else:
            if opened_before:
                reconnects += 1
            events.connected(result, first=not opened_before, reconnects=reconnects)
            opened_before = True
            attempt = 0
            end = session.read(stall_timeout)
            if end.error is None:
                events.finished(None, None, first=False)
                return
            error, reason = end.error, end.reason or f"read_error:{end.error.code}"
        if session.stopping():
            break
        decision = decide(
            policy, live=live, opened_before=opened_before, attempt=attempt, reason=reason, rng=rng
        )
        if isinstance(decision, Finish):
            events.finished(error, None, first=True)
            return
        if isinstance(decision, GiveUp):
            events.finished(error, decision.reason, first=not opened_before)
            return
        attempts += 1
        events.reconnecting(attempt, decision.delay, reason, attempts=attempts)
        attempt += 1
        if not session.wait(decision.delay):
            break
    events.finished(None, None, first=not opened_before)
