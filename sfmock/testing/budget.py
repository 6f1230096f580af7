"""A client check's budget of real time, and what it says when the client spends it.

Virtual time makes a client's waits free only where the checker reaches them; a wait it
cannot reach (``select`` in C, a C extension's sleep, a loop of a framework it does not
know) costs its real seconds on every run. :class:`Budget` bounds the check in real time,
as ``sfmock check``'s ``--budget`` bounds a program's (:data:`BUDGET`, the same default):
no run starts once it is spent, and the run under way is cut short (by the watchdog,
:class:`~sfmock.testing.watchdog.OutOfTime`). It says once when a check is slow, and the
note of a pass cut short names how many schedules ran, where the client waited outside
the virtual clock and which outcomes were never met.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence

from sfmock.testing.watchdog import OutOfTime
from sfmock.wording import plural

__all__ = ["BUDGET", "SLOW", "Budget", "to_stderr"]

BUDGET = 60.0  # real seconds a check may take, a program's (sfmock check --budget) or a client's
SLOW = 10.0  # real seconds after which a slow check says so, once (at most half the budget)
SLOW_RUN = 0.25  # real seconds a schedule takes, on average, in a slow check (a fast one takes milliseconds)

_real_monotonic = time.monotonic


def to_stderr(line: str) -> None:
    """The default progress of ``check_client``: a line on stderr."""
    print(f"sfmock check_client: {line}", file=sys.stderr, flush=True)


class Budget:
    """``seconds`` of real time from now for one check of ``name``; ``say`` gets its progress lines."""

    def __init__(self, seconds: float, say: Callable[[str], None], name: str) -> None:
        self.seconds = seconds
        self.say = say
        self.name = name
        self.started = _real_monotonic()
        self.deadline = self.started + seconds
        self.ran_out = False
        self.waits: Mapping[str, float] = {}  # the client's line -> real seconds it waited there (the watchdog's)
        self.live: Callable[[], bool] = lambda: False  # whether the client used the live socket
        self._told = False

    @property
    def elapsed(self) -> float:
        return _real_monotonic() - self.started

    def check(self) -> None:
        """Before a run: raise :class:`OutOfTime` once the budget is spent."""
        if _real_monotonic() >= self.deadline:
            self.ran_out = True
            raise OutOfTime(f"the budget of {self.seconds:g}s of real time ran out")

    def spent(self) -> None:
        """A run was cut short by the budget."""
        self.ran_out = True

    def after(self, runs: int, outside: float) -> None:
        """After a run: say once that the check is slow in real time (its schedules take a
        quarter of a second or more, or the client waits a quarter of the time outside the
        virtual clock), and why if it can tell."""
        elapsed = self.elapsed
        if self._told or elapsed < min(SLOW, self.seconds / 2):
            return
        if elapsed / max(runs, 1) < SLOW_RUN and max(sum(self.waits.values()), outside) < elapsed / 4:
            return  # many quick schedules: long, not slow
        self._told = True
        self.say(
            f"{self.name}: slow in real time: {plural(runs, 'schedule')} in {elapsed:.1f}s; "
            f"{self.why(outside)}; it stops at its budget of {self.seconds:g}s of real time (budget= sets it)"
        )

    def why(self, outside: float) -> str:
        """Where the real time went: the waits outside the virtual clock (``outside`` seconds
        between attempts, or more where the watchdog saw them), by the client's line."""
        waits = dict(self.waits)
        total = max(sum(waits.values()), outside)
        places = sorted(waits.items(), key=lambda item: -item[1])[:3]
        named = "; ".join(f"{seconds:.1f}s at {where}" for where, seconds in places if seconds >= 0.1)
        waited = f"the client waited {total:.1f}s of real time outside the virtual clock" + (
            f" ({named})" if named else ""
        )
        if total >= self.elapsed / 4:
            return (
                f"{waited}: a wait the checker does not reach (select, a C extension's sleep, a loop it does "
                "not know) or a wait on another process (subprocess, multiprocessing: real by design) costs its "
                "real seconds; time.sleep, asyncio, trio and anyio waits are virtual, but a time.sleep taken "
                "before the check (a functools.partial, a default argument) keeps real time"
            )
        # a client that never used the live socket is not told the socket is why
        socket = "a live socket serves in real time; " if self.live() else ""
        slow = (
            f"its runs take real time ({socket}a wait on a clock the check does not move, such as a "
            "timer function kept as a value; a slow machine)"
        )
        return f"{slow}; {waited}" if total >= 0.5 else slow

    def note(self, runs: int, unmet: Sequence[str], outside: float) -> str:
        """What a pass cut short by the budget says."""
        never = f"; outcomes never met: {', '.join(unmet)}" if unmet else ""
        return (
            f"{self.name}: passed, but the budget of {self.seconds:g}s of real time ran out after "
            f"{plural(runs, 'schedule')}: {self.why(outside)}{never}"
        )
