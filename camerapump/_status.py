"""Status events a pump publishes on ``pump.status``."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from ._config import StreamFormat

__all__ = [
    "Connected",
    "Connecting",
    "FormatChanged",
    "GaveUp",
    "PumpStatus",
    "Reconnecting",
]


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """Base of every status event.

    ``str(event)`` is a short line for people (``reconnecting #0 in 0.9 s
    (end_of_stream)``); :meth:`as_dict` is the same as plain JSON-ready data.

    Attributes:
        at: ``time.time()`` when the pump published the event (not compared:
            two events with the same fields are equal).
    """

    at: float = field(default_factory=time.time, kw_only=True, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The event's short name: ``connecting``, ``connected``, ``reconnecting``, ..."""
        return _NAMES[type(self)]

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data: ``{"event": "reconnecting", "attempt": 0, ...}``."""
        data: dict[str, Any] = {"event": self.name}
        for f in dataclasses.fields(self):
            if f.name == "at":
                continue
            value = getattr(self, f.name)
            if f.name == "next_delay":
                data["delay"] = round(value, 3)
            elif isinstance(value, StreamFormat):
                data[f.name] = value.as_dict()
            else:
                data[f.name] = value
        data["at"] = round(self.at, 3)
        return data

    def __str__(self) -> str:
        return self.name


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

    def __str__(self) -> str:
        return f"connected {self.format}"


@dataclass(frozen=True, slots=True)
class Reconnecting(PumpStatus):
    """The session was lost; the pump waits ``next_delay`` seconds, then tries again.

    Attributes:
        attempt: This reconnect attempt's number, zero-based as in the seed
            design: 0 for the first retry after a failure (which waits
            ``initial_backoff``); reset by every success.
        next_delay: Seconds until the attempt.
        reason: Why, short and machine-readable, never with credentials:
            ``"end_of_stream"``, ``"stall_timeout_exceeded"``,
            ``"read_error:<ErrorName>"``, ``"open_failed:<ErrorName>"`` or
            ``"format_changed"``.
    """

    attempt: int
    next_delay: float
    reason: str

    def __str__(self) -> str:
        return f"reconnecting #{self.attempt} in {self.next_delay:.1f} s ({self.reason})"


@dataclass(frozen=True, slots=True)
class FormatChanged(PumpStatus):
    """The stream changed its size, codec or rate mid-session; ``pump.format`` follows.

    Frames keep flowing where the pump's :class:`~camerapump.StreamConfig`
    allows the new format; where it does not, the session ends with
    :class:`~camerapump.FormatNotSupported` and reconnection takes over.

    Attributes:
        format: The new format.
    """

    format: StreamFormat

    def __str__(self) -> str:
        return f"format changed to {self.format}"


@dataclass(frozen=True, slots=True)
class GaveUp(PumpStatus):
    """The pump stopped trying; iteration raises the last error.

    Attributes:
        reason: ``"max_attempts_reached:<last reason>"``, or the reason of a
            failure that reconnection does not cover (``policy=None``, a file).
    """

    reason: str

    def __str__(self) -> str:
        return f"gave up ({self.reason})"


_NAMES: dict[type[PumpStatus], str] = {
    PumpStatus: "status",
    Connecting: "connecting",
    Connected: "connected",
    Reconnecting: "reconnecting",
    FormatChanged: "format_changed",
    GaveUp: "gave_up",
}
