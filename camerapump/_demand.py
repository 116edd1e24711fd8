"""What the consumers want, shared between the event loop and the decode thread.

The loop side (:mod:`camerapump._delivery`) says, per distinct
:class:`~camerapump.Output`, how many frames its consumers are waiting for
(*tickets*) and whether some consumer takes every frame (*eager*, a buffer of
more than one frame).  The decode thread asks :meth:`Demand.pick` for each
decoded picture which outputs it must be converted for, so a picture that
nobody will take is never converted.  A ticket is served by exactly one
conversion: each conversion of an output opens a new *epoch*, and a ticket
names the epoch that will serve it, so a frame already on its way when a
consumer starts waiting is not mistaken for the fresh one it asked for.

Ownership: everything is guarded by :attr:`Demand.lock`; ``last_pick`` (the
rate limit's memory) is touched by the decode thread only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ._output import Output

__all__ = ["Demand", "Pick", "Want"]

# Stream clocks are exact (a 90 kHz RTP clock, a file's time base); this only
# absorbs float rounding when frames sit exactly 1/max_fps apart.
_RATE_TOLERANCE = 1e-4


@dataclass(eq=False, slots=True)
class Want:
    """The demand for one output."""

    output: Output
    refs: int = 0  # consumers that use this output
    tickets: int = 0  # frames asked for and not yet converted
    eager: int = 0  # consumers that take every frame
    captures: int = 0  # of the tickets, how many are one-shot captures
    epoch: int = 0  # conversions made so far; a ticket names the one that serves it
    last_pick: float | None = field(default=None)  # decode thread: clock of the last pick


@dataclass(frozen=True, slots=True)
class Pick:
    """One conversion the decode thread must make.

    Attributes:
        output: What to convert to.
        epoch: The tickets it serves.
        stream: Whether eager consumers take it too (every frame of the stream).
        serves: Whether it serves tickets (a consumer waits for this very frame,
            so it must not be dropped on the way).
    """

    output: Output
    epoch: int
    stream: bool
    serves: bool = False


class Demand:
    """The consumers' wants, per output (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._wants: dict[Output, Want] = {}
        # Epochs are unique over the whole pump, not per output: a Want made
        # again for an output must not reuse an epoch of a frame still on its way.
        self._epochs = 0
        #: All frame consumers want keyframes only: the decoder may skip the rest.
        self.skip_nonkey = False
        #: Set while frames for the stream are wanted at all (not paused).
        self.active = True
        #: A processed file (``realtime=False``): every frame decoded goes to its
        #: consumer, pause or not (the thread idles between frames instead).
        self.processing = False

    # -- the loop's side ------------------------------------------------------------------

    def register(self, output: Output) -> None:
        """A consumer of ``output`` appeared."""
        with self.lock:
            want = self._wants.get(output)
            if want is None:
                self._epochs += 1
                want = self._wants[output] = Want(output, epoch=self._epochs)
            want.refs += 1
            self._update_skip()

    def unregister(self, output: Output) -> None:
        """A consumer of ``output`` went away (its tickets are revoked separately)."""
        with self.lock:
            want = self._wants.get(output)
            if want is None:
                return
            want.refs -= 1
            if want.refs <= 0:
                del self._wants[output]
            self._update_skip()

    def grant(self, output: Output, *, capture: bool = False) -> int:
        """Ask for one more frame of ``output``; return the epoch that will serve it."""
        with self.lock:
            want = self._wants[output]
            want.tickets += 1
            if capture:
                want.captures += 1
            return want.epoch

    def revoke(self, output: Output, epoch: int, *, capture: bool = False) -> bool:
        """Take back a ticket of ``epoch``; False if it was already served (a frame is coming)."""
        with self.lock:
            want = self._wants.get(output)
            if want is None or want.epoch != epoch or want.tickets <= 0:
                return False
            want.tickets -= 1
            if capture and want.captures > 0:
                want.captures -= 1
            return True

    def set_eager(self, output: Output, delta: int) -> None:
        """A consumer of ``output`` starts (+1) or stops (-1) taking every frame."""
        with self.lock:
            want = self._wants.get(output)
            if want is not None:
                want.eager = max(0, want.eager + delta)

    def _update_skip(self) -> None:
        self.skip_nonkey = bool(self._wants) and all(
            w.output.keyframes_only for w in self._wants.values()
        )

    # -- the decode thread's side ---------------------------------------------------------

    def new_session(self) -> None:
        """A session starts: the stream clock starts again, so does every rate limit."""
        with self.lock:
            for want in self._wants.values():
                want.last_pick = None

    def captures_pending(self) -> bool:
        """True while a one-shot capture waits for a frame."""
        with self.lock:
            return any(w.captures for w in self._wants.values())

    def wanted(self) -> bool:
        """True when some consumer wants frames now (a ticket or an eager consumer)."""
        with self.lock:
            live = self.active or self.processing
            return any(w.tickets or (w.eager and live) for w in self._wants.values())

    def pick(self, *, keyframe: bool, clock: float, eager: bool = True) -> list[Pick]:
        """The outputs a picture decoded now must be converted for.

        Args:
            keyframe: Whether the picture is a keyframe.
            clock: The picture's time on the stream's clock (seconds).
            eager: Whether eager consumers count (False: only tickets, e.g.
                while a processed file waits for its consumer).
        """
        picks: list[Pick] = []
        with self.lock:
            live = self.active or self.processing
            for want in self._wants.values():
                stream = eager and want.eager > 0 and live
                if not (want.tickets or stream):
                    continue
                output = want.output
                if output.keyframes_only and not keyframe:
                    continue
                if output.max_fps is not None:
                    # Captures ask for outputs without a rate (see _delivery), so
                    # only stream consumers meet the limit.  A clock that went
                    # backwards (a new session, a wrap) starts it again.
                    last = want.last_pick
                    if (
                        last is not None
                        and last <= clock < last + 1.0 / output.max_fps - _RATE_TOLERANCE
                    ):
                        continue
                    want.last_pick = clock
                picks.append(Pick(output, want.epoch, stream, serves=want.tickets > 0))
                self._epochs += 1
                want.epoch = self._epochs
                want.tickets = 0
                want.captures = 0
        return picks
