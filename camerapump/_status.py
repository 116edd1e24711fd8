"""Status events a pump publishes on ``pump.status``."""

from __future__ import annotations

from dataclasses import dataclass

from ._config import StreamFormat

__all__ = ["Connected", "Connecting", "GaveUp", "PumpStatus", "Reconnecting"]


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """Base of every status event."""


@dataclass(frozen=True, slots=True)
class Connecting(PumpStatus):
    """The pump started opening its source for the first time."""


@dataclass(frozen=True, slots=True)
class Connected(PumpStatus):
    """A session is open and frames flow.

    Attributes:
        format: What was negotiated.
    """

    format: StreamFormat


@dataclass(frozen=True, slots=True)
class Reconnecting(PumpStatus):
    """The session was lost; the pump waits ``next_delay`` seconds, then tries again.

    Attributes:
        attempt: This reconnect attempt's number, from 1, reset by every success.
        next_delay: Seconds until the attempt.
        reason: Why, short and machine-readable, never with credentials:
            ``"end_of_stream"``, ``"stall_timeout_exceeded"``,
            ``"read_error:<ErrorName>"`` or ``"open_failed:<ErrorName>"``.
    """

    attempt: int
    next_delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class GaveUp(PumpStatus):
    """The pump stopped trying; iteration raises the last error.

    Attributes:
        reason: ``"max_attempts_reached:<last reason>"``, or the reason of a
            failure that reconnection does not cover (``policy=None``).
    """

    reason: str
