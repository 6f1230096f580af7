"""Where sfmock reads the time: the real clock by default, a virtual one in tests.

Everything time-dependent (URL expiry, ``created``, quota windows, the journal) asks a
:class:`Clock`, so a test can jump an hour ahead without sleeping.

Each named session has a clock of its own (:class:`SessionClock`): the server's clock
plus the session's own moves, so one session's jump leaves the others where they are.
The service reads time through a :class:`ScopedClock`, which answers with the clock of
the session whose request is being served.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from typing import Protocol

__all__ = [
    "MAX_TIME",
    "Clock",
    "ScopedClock",
    "SessionClock",
    "ShiftedClock",
    "SystemClock",
    "VirtualClock",
    "serving",
    "stands_still",
    "within_range",
]

MAX_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the last second a 4-digit year (X-Amz-Date) can name


def _checked(when: float) -> float:
    if not 0 <= when <= MAX_TIME:  # also False for NaN
        raise ValueError(f"the clock must stay within 0..{MAX_TIME:.0f} (1970 to 9999); got {when!r}")
    return float(when)


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
        self.start = float(start)
        self._now = self.start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards) and return the new time."""
        if not seconds >= 0:
            raise ValueError(f"a clock only advances; got {seconds} seconds")
        with self._lock:
            self._now = _checked(self._now + seconds)
            return self._now

    def set(self, when: float) -> None:
        """Jump to an absolute Unix time (backwards too, to test clock skew)."""
        with self._lock:
            self._now = _checked(when)

    def reset(self) -> None:
        """Back to the start time."""
        self.set(self.start)


def stands_still(clock: Clock) -> bool:
    """Whether ``clock``'s time stands still unless moved (a virtual clock, or a frozen one)."""
    frozen = getattr(clock, "frozen", None)
    if frozen is not None:
        return bool(frozen)
    return hasattr(clock, "advance")


def within_range(when: float) -> float:
    """``when`` kept within 0..MAX_TIME: a session's offset over a server clock moved
    since must not carry the session past what a date can name."""
    return min(max(when, 0.0), MAX_TIME)


class SessionClock:
    """A named session's clock in this process: the server's clock plus the session's own
    moves (an offset), or stopped where the session froze it.

    It starts on the server's time and follows it (the server's moves move it too, as a
    full reset resets every session); its own moves change its offset alone. While
    frozen it stands still whatever the server's clock does.
    """

    def __init__(self, server: Clock) -> None:
        self.server = server
        self._offset = 0.0
        self._stopped: float | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        stopped = self._stopped
        return stopped if stopped is not None else within_range(self.server.now() + self._offset)

    @property
    def frozen(self) -> bool:
        """Whether its time stands still: frozen itself, or following a server clock that does."""
        return self._stopped is not None or stands_still(self.server)

    def freeze(self, frozen: bool = True) -> None:
        """Stop time where it is (``False``: follow the server's clock again from there)."""
        with self._lock:
            if frozen and self._stopped is None:
                self._stopped = self.now()
            elif not frozen and self._stopped is not None:
                self._offset = self._stopped - self.server.now()
                self._stopped = None

    def advance(self, seconds: float) -> float:
        """Jump forward by ``seconds`` (this session only) and return the new time."""
        if not seconds >= 0:
            raise ValueError(f"a clock only advances; got {seconds} seconds")
        with self._lock:
            _checked(self.now() + seconds)
            self._offset += seconds
            if self._stopped is not None:
                self._stopped += seconds
        return self.now()

    def set(self, when: float) -> None:
        """Make it ``when`` now for this session."""
        with self._lock:
            self._offset = _checked(when) - self.server.now()
            if self._stopped is not None:
                self._stopped = when

    def reset(self) -> None:
        """Back to the server's time, following it."""
        with self._lock:
            self._offset = 0.0
            self._stopped = None


class ShiftedClock(SessionClock):
    """The wall clock plus an offset that can be moved: the server's default clock.

    Time runs on by itself, and the control API can still jump it forward (to expire
    URLs or lift rate limits) or set it. Set near the end of 9999, it stops there (as a
    session's clock does): a later time has no 4-digit year for ``X-Amz-Date``. It is a
    session's clock over the wall clock (:class:`SessionClock`); ``reset`` goes back to
    the wall clock, running.
    """

    def __init__(self) -> None:
        super().__init__(SystemClock())


# the session clock of the request being served, with the ScopedClock that set it
_SERVING: ContextVar[tuple[object, Clock] | None] = ContextVar("sfmock_serving_clock", default=None)


class ScopedClock:
    """The time as the request being served sees it: its session's clock while
    :meth:`serving` it, the server's clock otherwise (between requests, at start)."""

    def __init__(self, server: Clock) -> None:
        self.server = server

    def now(self) -> float:
        held = _SERVING.get()
        # another app's request (an app serving inside another's) sets its own, not ours
        if held is not None and held[0] is self:
            return held[1].now()
        return self.server.now()

    def serving(self, clock: Clock) -> AbstractContextManager[None]:
        """Answer :meth:`now` from ``clock`` in this task (and the threads it hands work to)."""
        return _Serving(self, clock)


class _Serving:
    """:meth:`ScopedClock.serving`: a class, not a generator, as it wraps every request."""

    __slots__ = ("held", "token")

    def __init__(self, scoped: ScopedClock, clock: Clock) -> None:
        self.held = (scoped, clock)

    def __enter__(self) -> None:
        self.token = _SERVING.set(self.held)

    def __exit__(self, *exc: object) -> None:
        _SERVING.reset(self.token)


def serving(scoped: Clock, clock: Clock) -> AbstractContextManager[None]:
    """:meth:`ScopedClock.serving` if ``scoped`` is one; nothing to do otherwise."""
    return scoped.serving(clock) if isinstance(scoped, ScopedClock) else nullcontext()


def serve_on(scoped: Clock, clock: Clock) -> Token[tuple[object, Clock] | None] | None:
    """:func:`serving` entered without a context manager (the pipeline's, on every request:
    two calls where ``with`` makes four); pass what it returns to :func:`served`."""
    return _SERVING.set((scoped, clock)) if isinstance(scoped, ScopedClock) else None


def served(token: Token[tuple[object, Clock] | None] | None) -> None:
    """Leave what :func:`serve_on` entered."""
    if token is not None:
        _SERVING.reset(token)
