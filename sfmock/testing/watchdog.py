"""A bound in real time on a client that makes no progress at all.

Virtual time ends every wait the checker can see (a sleep, a timer, a socket read with a
timeout). A client can still block where it cannot look: on a lock, an event nobody
sets, a thread that never ends, a real socket with no timeout. :class:`Watchdog` notices
that nothing moved (no request, no tick of the clock) for :data:`STALL` real seconds
while a run is under way and interrupts the client's thread with a signal whose handler
raises :class:`~sfmock.transports.HangForever`, naming the line it was blocked on: the
run ends with a verdict instead of a check that never returns. It works where signals
do: when the check runs in the main thread (as pytest runs tests); elsewhere it is off.

It also holds the check to its budget of real time (:attr:`Watchdog.deadline`): a run still
under way when the budget runs out is interrupted with :class:`OutOfTime` (and left out of
the verdict), and it notes where the client waits while nothing moves
(:attr:`Watchdog.outside`: its line, and the real seconds spent there), which is how a
report names a wait outside the virtual clock (``select``, a C extension's sleep).
"""

from __future__ import annotations

import functools
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from sfmock.testing import vtrio
from sfmock.testing.clientframe import client_line
from sfmock.testing.threadstate import cpu_time
from sfmock.transports import HangForever

__all__ = ["STALL", "STALLED", "OutOfTime", "Watchdog"]

STALL = 60.0  # real seconds with no progress at all before a run is stopped (at most; see Watchdog.stall)
STALLED = "the client made no progress for"  # in the verdict of a run the watchdog stopped
LOOK = 0.1  # real seconds between two looks at the client
QUIET = 0.2  # real seconds with nothing moving before the client's line counts as a wait (evidence.OUTSIDE_CLOCK)


class OutOfTime(HangForever):
    """The check's budget of real time ran out during a run: the run is cut short, not judged."""


_real_monotonic, _real_sleep = time.monotonic, time.sleep


class Watchdog:
    """Watches ``progress()`` (any value that changes while the client gets anywhere)."""

    def __init__(self, progress: Callable[[], Any]) -> None:
        self.progress = progress
        self._main = threading.main_thread().ident
        self._armed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: Any = None
        self.deadline = math.inf  # real monotonic time at which the check's budget runs out
        self.stall = STALL  # the bound of this check: below its budget, or a stall is never judged (within)
        self.spinning = False  # the stall being stopped spent most of its time on the CPU
        self.cut = False  # whether the budget interrupted the run under way
        self.outside: dict[str, float] = {}  # the client's line -> real seconds it waited there, nothing moving
        self.busy: Callable[[], bool] = lambda: False  # real work under way (the live socket answering)
        # a wait the checker bounds itself (one with no timeout on the client's thread): not "outside"
        self.reached: Callable[[], bool] = lambda: False

    def within(self, deadline: float, budget: float) -> None:
        """Hold the check to its ``budget`` of real seconds (ending at real monotonic
        ``deadline``), and stop a stall after half of it where that is less than
        :data:`STALL` (never under 10 s): a stall the budget cuts is never judged, so at 60 s
        of each a client deadlocked on a lock the checker cannot see passed (outsider19)."""
        self.deadline = deadline
        self.stall = min(self.stall, max(budget / 2, 10.0))

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch the block (one run of the client)."""
        if threading.get_ident() != self._main:
            yield  # a signal reaches only the main thread: no watch here
            return
        if self._thread is None:
            self._previous = signal.signal(signal.SIGUSR2, self._interrupt)
            self._thread = threading.Thread(target=self._watch, name="sfmock-watchdog", daemon=True)
            self._thread.start()
        self.cut = False
        self._armed = True
        previous, threads = sys.unraisablehook, threading.excepthook
        sys.unraisablehook = functools.partial(_own_dropped, previous)
        threading.excepthook = functools.partial(_own_dropped, threads)
        try:
            yield
        finally:
            self._armed = False
            sys.unraisablehook, threading.excepthook = previous, threads

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(5)
            signal.signal(signal.SIGUSR2, self._previous)
            self._thread = None

    def _watch(self) -> None:
        seen, since = self.progress(), _real_monotonic()
        looked = interrupted = since
        spent = cpu_time(self._main) if self._main is not None else 0.0  # its CPU when things last moved
        while not self._stop.wait(min(LOOK, self.stall / 4)):
            now, real = self.progress(), _real_monotonic()
            if now != seen or not self._armed:
                seen, since = now, real
                spent = cpu_time(self._main) if self._main is not None else 0.0
            elif real - since >= QUIET and not self.busy() and not self.reached():  # a wait the clock does not reach
                frame = sys._current_frames().get(self._main) if self._main is not None else None
                where = client_line(frame)
                self.outside[where] = self.outside.get(where, 0.0) + real - max(looked, since)
            looked = real
            if self._main is None or not self._armed:
                continue
            if real >= self.deadline and real - interrupted >= 1.0:  # again while a client swallows it
                interrupted, self.cut = real, True
                signal.pthread_kill(self._main, signal.SIGUSR2)
            elif real - since >= self.stall:
                # a tenth of the stall or more on the CPU (a busy machine shares it): a loop that
                # spins; a thread blocked in a wait uses next to none
                self.spinning = cpu_time(self._main) - spent >= (real - since) / 10
                since, spent = real, cpu_time(self._main)
                signal.pthread_kill(self._main, signal.SIGUSR2)

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        if not self._armed:
            return
        if self.cut:
            self._stop_run(OutOfTime("the check's budget of real time ran out during this run"))
            return
        where = client_line(frame)
        if self.spinning:  # outsider22: a busy-wait back-off on time.monotonic was "blocked"
            self._stop_run(
                HangForever(
                    f"would hang forever: {STALLED} {self.stall:g} real seconds, spinning on the CPU at "
                    f"{where}: a loop that polls the clock (time.monotonic, time.time) until a deadline spins "
                    "forever in a check, whose clock moves only when the client waits (time.sleep, an event's "
                    "wait, a request); sleep in the loop"
                )
            )
            return
        # stopped at half the budget: a real wait that long may yet end, and more budget shows it
        half = " (half the check's budget: budget= gives a real wait that ends more)" if self.stall < STALL else ""
        self._stop_run(
            HangForever(
                f"would hang forever: {STALLED} {self.stall:g} real seconds{half} (no request, no tick of "
                f"the clock), blocked at {where}: a lock, an event or a thread nobody ends, or a wait outside "
                "the checker's reach"
            )
        )

    def _stop_run(self, error: HangForever) -> None:
        """End the run with ``error``: raised here, in the client's thread, or handed to the
        virtual trio run waiting in its own loop there, which cancels its tasks and raises it."""
        if not vtrio.interrupt(threading.get_ident(), error):
            raise error


def _own_dropped(previous: Callable[[Any], object], unraisable: Any) -> None:
    """The watchdog's own stop, raised by its signal inside a callback (a weakref's, a
    ``__del__``) where nothing can catch it, is dropped: the watchdog raises it again at the
    run's next line. So is the stop of a client's thread whose request would wait forever
    (the transcript has it; pytest would report it as the thread's unhandled error).
    Anything else goes on to ``previous``."""
    if not isinstance(unraisable.exc_value, (OutOfTime, HangForever)):
        previous(unraisable)
