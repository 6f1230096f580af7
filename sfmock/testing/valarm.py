"""``signal.alarm`` and ``signal.setitimer(ITIMER_REAL, ...)`` on the check's clock.

A client may bound a request with a real-time alarm rather than its HTTP library's
timeout: ``signal.alarm(30)`` around the call, a ``SIGALRM`` handler that raises. On a
socket the signal interrupts the read; in a check the clock jumps over a request the fake
never answers, and a real alarm would never come due, so such a client was accused of
having no timeout (outsider21). During a run, the timer is kept on the check's clock:
when a request the fake holds (a ``hang``, a stalled download) reaches the alarm's time,
the clock stops there and the client's handler runs in its thread, where the signal would
have interrupted the read (:meth:`VirtualAlarm.ring`). The main thread only, as signals.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sfmock.clock import Clock
from sfmock.exchanges import HangForever, Interrupted

__all__ = ["AlarmDue", "VirtualAlarm"]


class AlarmDue(Interrupted):
    """A request held by the fake reached the client's alarm: its handler runs at the
    transport's edge (:meth:`VirtualAlarm.ring`), not inside the app."""

    def __init__(self, alarm: VirtualAlarm) -> None:
        super().__init__(
            "would hang forever: its SIGALRM handler returned without raising, and the read went on "
            "waiting for a request the server never answers; raise from the handler, or set a read timeout"
        )
        self.alarm = alarm

    def deliver(self) -> None:
        self.alarm.ring()


class VirtualAlarm:
    """The process's ``ITIMER_REAL`` timer, on ``clock``, while :meth:`installed`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.deadline: float | None = None  # on the clock
        self.interval = 0.0
        self._real = (signal.alarm, signal.setitimer, signal.getitimer)

    def _left(self) -> float:
        return 0.0 if self.deadline is None else max(self.deadline - self.clock.now(), 0.0)

    def _set(self, seconds: float, interval: float = 0.0) -> tuple[float, float]:
        before = (self._left(), self.interval)
        self.deadline = self.clock.now() + seconds if seconds > 0 else None
        self.interval = interval if seconds > 0 else 0.0
        return before

    def alarm(self, seconds: int) -> int:
        if seconds < 0:
            return self._real[0](seconds)  # the real one's error
        return math.ceil(self._set(float(seconds))[0])

    def setitimer(self, which: int, seconds: float, interval: float = 0.0) -> tuple[float, float]:
        if which != signal.ITIMER_REAL:
            return self._real[1](which, seconds, interval)
        return self._set(seconds, interval)

    def getitimer(self, which: int) -> tuple[float, float]:
        if which != signal.ITIMER_REAL:
            return self._real[2](which)
        return (self._left(), self.interval)

    def armed(self) -> float | None:
        """Seconds the timer has to go, or ``None`` when it is not set."""
        return None if self.deadline is None else self._left()

    def due(self, within: float) -> float | None:
        """Seconds from now to the alarm, where it comes within ``within`` seconds and the
        request waits on the main thread (where a signal's handler runs)."""
        if self.deadline is None or threading.current_thread() is not threading.main_thread():
            return None
        left = self._left()
        return left if left <= within else None

    def ring(self) -> None:
        """The alarm goes off: the client's ``SIGALRM`` handler runs here (it may raise, as
        on a socket); the timer starts over where it has an interval."""
        self.deadline = self.clock.now() + self.interval if self.interval > 0 else None
        handler = signal.getsignal(signal.SIGALRM)
        if callable(handler):
            handler(signal.SIGALRM, None)
        elif handler == signal.SIG_DFL:
            raise HangForever("its SIGALRM came with no handler set: the signal would end the process")

    @contextmanager
    def installed(self) -> Iterator[None]:
        """``signal.alarm``, ``setitimer`` and ``getitimer`` on the clock, for one run."""
        self.deadline, self.interval = None, 0.0
        fakes: dict[str, Any] = {"alarm": self.alarm, "setitimer": self.setitimer, "getitimer": self.getitimer}
        real = {name: getattr(signal, name) for name in fakes}
        for name, fake in fakes.items():
            setattr(signal, name, fake)
        try:
            yield
        finally:
            for name, function in real.items():
                setattr(signal, name, function)
            self.deadline, self.interval = None, 0.0
