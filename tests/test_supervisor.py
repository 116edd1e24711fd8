"""The reconnect supervisor's whole matrix, against a scripted session and a fake clock.

No thread, no PyAV, no real time: each test runs in milliseconds.  The real
sessions (decode thread, RTSP server) are covered by test_reconnect.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

import camerapump as cp
from camerapump._supervisor import (
    Finish,
    GiveUp,
    Retry,
    SessionEnd,
    decide,
    stalled,
    supervise,
)

FMT = cp.StreamFormat(640, 480, 30.0, "bgr24", "h264")
NO_JITTER = cp.ReconnectPolicy(initial_backoff=1, max_backoff=8, jitter=0)
LOST = SessionEnd(cp.ConnectionFailed("gone"), "end_of_stream")
DONE = SessionEnd(None, None)
REFUSED = cp.ConnectionFailed("refused")


@dataclass
class Script:
    """A session that plays back a script of open results and session ends."""

    opens: list[cp.StreamFormat | cp.CameraError]
    reads: list[SessionEnd]
    stop_after_waits: int | None = None
    clock: float = 0.0
    log: list[tuple[object, ...]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def stopping(self) -> bool:
        return self.stop_after_waits is not None and len(self.waits) >= self.stop_after_waits

    def open(self) -> cp.StreamFormat | cp.CameraError:
        result = self.opens.pop(0)
        self.log.append(("open", type(result).__name__))
        return result

    def read(self, stall_timeout: float) -> SessionEnd:
        end = self.reads.pop(0)
        self.log.append(("read", end.reason))
        return end

    def wait(self, delay: float) -> bool:
        self.waits.append(delay)
        self.clock += delay
        return not self.stopping()

    # Events
    def connected(self, fmt: cp.StreamFormat, *, first: bool, reconnects: int) -> None:
        self.log.append(("connected", first, reconnects))

    def reconnecting(self, attempt: int, delay: float, reason: str, *, attempts: int) -> None:
        self.log.append(("reconnecting", attempt, delay, reason, attempts))

    def finished(self, error: cp.CameraError | None, reason: str | None, *, first: bool) -> None:
        self.log.append(("finished", type(error).__name__ if error else None, reason, first))


def run(
    script: Script, policy: cp.ReconnectPolicy | None = NO_JITTER, *, live: bool = True
) -> list[tuple[object, ...]]:
    supervise(script, script, policy, live=live, rng=random.Random(0))
    return script.log


def events(log: Iterable[tuple[object, ...]], name: str) -> list[tuple[object, ...]]:
    return [entry for entry in log if entry[0] == name]


def test_a_server_restart_is_one_reconnect_with_zero_based_attempts() -> None:
    """Lost once, two failed opens, then back: attempts 0, 1, 2 wait 1, 2, 4 s; one reconnect."""
    script = Script([FMT, REFUSED, REFUSED, FMT], [LOST, DONE])
    log = run(script)
    assert [e[1:4] for e in events(log, "reconnecting")] == [
        (0, 1.0, "end_of_stream"),
        (1, 2.0, "open_failed:ConnectionFailed"),
        (2, 4.0, "open_failed:ConnectionFailed"),
    ]
    assert events(log, "connected") == [("connected", True, 0), ("connected", False, 1)]
    assert [e[4] for e in events(log, "reconnecting")] == [1, 2, 3]
    assert script.waits == [1.0, 2.0, 4.0]
    assert log[-1] == ("finished", None, None, False)


def test_attempts_start_from_zero_again_after_each_success() -> None:
    """Two outages, each a failed open then success: both count 0, 1 (waits 1, 2 each time)."""
    script = Script([FMT, REFUSED, FMT, REFUSED, FMT], [LOST, LOST, DONE])
    log = run(script)
    assert [e[1] for e in events(log, "reconnecting")] == [0, 1, 0, 1]
    assert script.waits == [1.0, 2.0, 1.0, 2.0]
    assert events(log, "connected")[-1] == ("connected", False, 2)


def test_max_attempts_gives_up_with_the_last_reason() -> None:
    """max_attempts=2: two attempts, then GaveUp('max_attempts_reached:<reason>')."""
    policy = cp.ReconnectPolicy(initial_backoff=1, max_backoff=8, jitter=0, max_attempts=2)
    script = Script([FMT, REFUSED, REFUSED], [LOST])
    log = run(script, policy)
    assert len(events(log, "reconnecting")) == 2
    assert log[-1] == (
        "finished",
        "ConnectionFailed",
        "max_attempts_reached:open_failed:ConnectionFailed",
        False,
    )


def test_max_attempts_zero_gives_up_at_the_first_loss() -> None:
    """max_attempts=0 never retries: the first loss gives up."""
    policy = cp.ReconnectPolicy(jitter=0, max_attempts=0)
    log = run(Script([FMT], [LOST]), policy)
    assert events(log, "reconnecting") == []
    assert log[-1][2] == "max_attempts_reached:end_of_stream"


def test_a_failed_first_open_finishes_without_retrying() -> None:
    """Without retry_initial_open the first open's error is final, with no GaveUp reason."""
    log = run(Script([REFUSED], []))
    assert log == [("open", "ConnectionFailed"), ("finished", "ConnectionFailed", None, True)]


def test_retry_initial_open_retries_a_service_that_starts_first() -> None:
    """retry_initial_open: failed first opens are retried until the camera appears."""
    policy = cp.ReconnectPolicy(initial_backoff=1, jitter=0, retry_initial_open=True)
    script = Script([REFUSED, REFUSED, FMT], [DONE])
    log = run(script, policy)
    assert [e[1] for e in events(log, "reconnecting")] == [0, 1]
    assert events(log, "connected") == [("connected", True, 0)]


def test_retry_initial_open_that_never_succeeds_gives_up_as_first() -> None:
    """retry_initial_open with max_attempts: the give-up says no session ever opened."""
    policy = cp.ReconnectPolicy(jitter=0, retry_initial_open=True, max_attempts=1)
    log = run(Script([REFUSED, REFUSED], []), policy)
    assert log[-1] == (
        "finished",
        "ConnectionFailed",
        "max_attempts_reached:open_failed:ConnectionFailed",
        True,
    )


def test_no_policy_gives_up_at_the_first_loss() -> None:
    """policy=None: a lost session gives up with its own reason."""
    log = run(Script([FMT], [LOST]), None)
    assert log[-1] == ("finished", "ConnectionFailed", "end_of_stream", False)


@pytest.mark.parametrize("reason", ["end_of_stream", "read_error:CameraError"])
def test_files_and_patterns_are_never_retried(reason: str) -> None:
    """A source that is not live gives up at its first error, whatever the policy."""
    log = run(Script([FMT], [SessionEnd(cp.CameraError("x"), reason)]), live=False)
    assert events(log, "reconnecting") == []
    assert log[-1][2] == reason


def test_retry_initial_open_does_not_apply_to_files() -> None:
    """A missing file fails at once even with retry_initial_open."""
    policy = cp.ReconnectPolicy(retry_initial_open=True)
    log = run(Script([cp.DeviceNotFound("no such file")], []), policy, live=False)
    assert log[-1] == ("finished", "DeviceNotFound", None, True)


def test_a_file_that_ends_finishes_cleanly() -> None:
    """A finite source's end is a clean finish (no error, no reason)."""
    log = run(Script([FMT], [DONE]), live=False)
    assert log[-1] == ("finished", None, None, False)


def test_a_stop_during_the_backoff_ends_at_once() -> None:
    """A stop that comes during a wait ends the loop without another open."""
    script = Script([FMT, FMT], [LOST], stop_after_waits=1)
    log = run(script)
    assert events(log, "open") == [("open", "StreamFormat")]
    assert log[-1] == ("finished", None, None, False)


def test_stall_reason_is_carried_into_the_event() -> None:
    """A stalled session reconnects with reason stall_timeout_exceeded."""
    stall = SessionEnd(cp.StreamTimeout("stalled"), "stall_timeout_exceeded")
    log = run(Script([FMT, FMT], [stall, DONE]))
    assert events(log, "reconnecting")[0][3] == "stall_timeout_exceeded"


def test_jitter_spreads_delays_within_bounds() -> None:
    """With jitter 0.2 each delay is within ±20 % of the doubling base."""
    policy = cp.ReconnectPolicy(initial_backoff=1, max_backoff=30, jitter=0.2)
    script = Script([FMT] + [REFUSED] * 6 + [FMT], [LOST, DONE])
    run(script, policy)
    for n, delay in enumerate(script.waits):
        base = min(30.0, 2.0**n)
        assert base * 0.8 <= delay <= base * 1.2


@given(
    attempt=st.integers(0, 100),
    opened=st.booleans(),
    live=st.booleans(),
    retry_first=st.booleans(),
    limit=st.none() | st.integers(0, 10),
)
def test_decide_matches_the_policy_table(
    attempt: int, opened: bool, live: bool, retry_first: bool, limit: int | None
) -> None:
    """decide(): Finish before any open (unless retried), GiveUp when not live or at the cap."""
    policy = cp.ReconnectPolicy(jitter=0, max_attempts=limit, retry_initial_open=retry_first)
    decision = decide(policy, live=live, opened_before=opened, attempt=attempt, reason="r")
    if not opened and not (retry_first and live):
        assert isinstance(decision, Finish)
    elif not live:
        assert decision == GiveUp("r")
    elif limit is not None and attempt >= limit:
        assert decision == GiveUp("max_attempts_reached:r")
    else:
        assert decision == Retry(cp.backoff_delay(attempt, policy))


def test_stall_is_strictly_longer_than_the_timeout() -> None:
    """stalled() is true only once more than stall_timeout passed since the last frame."""
    assert not stalled(10.0, 0.0, 10.0)
    assert stalled(10.001, 0.0, 10.0)
    assert not stalled(5.0, 4.0, 15.0)
