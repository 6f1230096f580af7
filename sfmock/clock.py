"""Where sfmock reads the time: the real clock by default, a virtual one in tests.

Everything time-dependent (URL expiry, ``created``, later quota windows) asks a
:class:`Clock`, so a test can jump an hour ahead without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "VirtualClock"]


class Clock(Protocol):
    """A source of Unix time in seconds."""

    def now(self) -> float:
        """The current Unix time, in seconds."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that moves only when told to; safe to share between threads.

    >>> clock = VirtualClock(1_700_000_000)
    >>> clock.advance(3600)
    1700003600.0
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock only advances; got {seconds} seconds")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to an absolute Unix time (backwards too, to test clock skew)."""
        with self._lock:
            self._now = float(when)
