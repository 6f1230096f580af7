"""The client's asyncio loops on the check's virtual clock.

:func:`new_event_loop` makes an asyncio loop on the same clock as
:class:`~sfmock.testing.vtime.VirtualTime`: when nothing is ready to run it jumps the clock
to its next timer instead of waiting, so ``asyncio.sleep``, ``anyio.sleep``,
``asyncio.wait_for`` and httpx's async timeouts are virtual too. A loop that has nothing to
wait for at all is deadlocked: it raises :class:`HangForever`. :func:`virtual_loops` makes
every loop the client makes itself during a run a virtual one.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sfmock.clock import VirtualClock
from sfmock.offload import INLINE
from sfmock.testing.clientframe import asyncio_tasks, awaited_line
from sfmock.testing.runclock import MIN_STEP, min_step
from sfmock.testing.vtime import ENDLESS, HOLD_BOUND, REAL_BOUND, REAL_GRACE, THREAD_GRACE, VirtualTime
from sfmock.transports import HangForever

__all__ = ["new_event_loop", "on_virtual_loop", "virtual_loops"]

_real_monotonic = time.monotonic  # a loop holds its clock for real time


@contextmanager
def virtual_loops(vtime: VirtualTime) -> Iterator[None]:
    """Every event loop the client makes itself during a run (``asyncio.run``,
    ``asyncio.new_event_loop``, ``anyio.run``, a loop in a thread of its own) is a virtual
    one: a loop on the patched clock that waited in real time would never see its timers
    come due."""
    with _policies():
        previous = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(_VirtualPolicy(vtime, previous))
    try:
        yield
    finally:
        with _policies():
            asyncio.set_event_loop_policy(previous)


class _JumpingSelector(selectors.BaseSelector):
    """A selector that, instead of blocking until a timer is due, moves the clock there."""

    def __init__(self, clock: VirtualClock, busy: Callable[[], bool], vtime: VirtualTime) -> None:
        self._vtime = vtime
        self._inner = selectors.DefaultSelector()
        self._clock = clock
        self._busy = busy
        self.threads_at_start = threading.active_count()
        self.in_executor = 0  # calls handed to worker threads and not yet back
        self._held_since: float | None = None  # real time since which other threads hold the clock

    def _threads_may_answer(self) -> bool:
        """Whether a thread may still wake this loop: work in its executor, or threads begun
        since it started (anyio's workers, a client's own). With neither, waiting is in vain."""
        return self.in_executor > 0 or threading.active_count() > self.threads_at_start

    def _held(self) -> bool:
        """Whether a thread that may wake this loop is at work: the app answering on it (as
        long as it takes), or one of the client's threads runnable (up to :data:`HOLD_BOUND`
        real seconds: a thread that keeps the CPU, polling, does not stop the clock for good)."""
        if not self._threads_may_answer():
            return False
        if self._vtime.answering_elsewhere():
            return True
        if not self._vtime.runnable_elsewhere():
            self._held_since = None
            return False
        if self._held_since is None:
            self._held_since = _real_monotonic()
        return _real_monotonic() - self._held_since < HOLD_BOUND

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self._vtime.ticks += 1
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        # real work may be on its way (a worker thread's result, a live socket's answer):
        # give it a moment of real time before time jumps; wait longer before calling it endless
        sockets = len(self._inner.get_map()) > 1  # more than the loop's own wake-up pipe
        grace = REAL_BOUND if timeout is None else (REAL_GRACE if sockets else THREAD_GRACE)
        due = self._clock.now() + (math.inf if timeout is None else timeout)
        self._vtime.waiting += 1  # this loop has nothing to do: its timers are set, it waits
        try:
            with self._vtime.idle_loop(due):
                if sockets or timeout is None or self._threads_may_answer():
                    ready = self._inner.select(grace)
                    if ready:
                        return ready
                # a live request served in real time, the app answering on another thread (an
                # answer's latency comes after), or a thread that has yet to run: wait, do not jump
                if self._busy() or self._held():
                    return self._inner.select(REAL_GRACE if timeout is None else min(timeout, REAL_GRACE))
                # an answer's latency on a thread (asyncio.to_thread) ends first: up to there
                ends = self._vtime.latencies()
        finally:
            self._vtime.waiting -= 1
        if timeout is None and math.isinf(ends):
            where = awaited_line(asyncio_tasks(asyncio.all_tasks(asyncio.get_running_loop())))
            raise HangForever(ENDLESS if where is None else f"{ENDLESS}: it awaits at {where}, and nothing can end it")
        self._held_since = None
        if due <= ends:
            self._vtime.fired.append(due)
        # at Unix-time magnitudes a float moves in steps of ~2.4e-7 s: never advance by less
        now = self._clock.now()
        self._clock.advance(max(min(due, ends) - now, min_step(now)))
        return []

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, vtime: VirtualTime) -> None:
        super().__init__(_JumpingSelector(vtime.clock, vtime.busy, vtime))
        # the fake's slow work (sfmock.offload) runs here, not on a thread: time stands still
        # while it runs, where a thread's real time would let the clock jump past the client's timeouts
        setattr(self, INLINE, True)
        self._vtime = vtime
        # a timer counts as due within this of its time: asyncio's 1 ns (the real clock's
        # resolution) is below a float's step once the virtual monotonic clock has run on a few
        # months (a day per run of a check): a timer at the loop's time would never come due
        self._clock_resolution = MIN_STEP

    def run_forever(self) -> None:
        self._vtime.loops += 1
        try:
            super().run_forever()
        finally:
            self._vtime.loops -= 1

    def time(self) -> float:
        return self._vtime.monotonic()

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        selector: _JumpingSelector = self._selector  # type: ignore[attr-defined]
        selector.in_executor += 1
        future = super().run_in_executor(executor, func, *args)

        def back(_: asyncio.Future[Any]) -> None:
            selector.in_executor -= 1

        future.add_done_callback(back)
        return future


@contextmanager
def _policies() -> Iterator[None]:
    """Loop policies are deprecated from Python 3.14 and still how ``asyncio.run`` finds its loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


with _policies():
    _DefaultPolicy = asyncio.DefaultEventLoopPolicy


class _VirtualPolicy(_DefaultPolicy):
    """Hands out virtual loops to the client's threads, real ones to the fake's own."""

    def __init__(self, vtime: VirtualTime, previous: asyncio.AbstractEventLoopPolicy) -> None:
        super().__init__()
        self._vtime = vtime
        self._previous = previous

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        if self._vtime.virtual_here():
            return _VirtualLoop(self._vtime)
        return self._previous.new_event_loop()


def on_virtual_loop() -> bool:
    """Whether the caller runs on a loop made by :func:`new_event_loop`."""
    try:
        return isinstance(asyncio.get_running_loop(), _VirtualLoop)
    except RuntimeError:
        return False


def new_event_loop(vtime: VirtualTime) -> asyncio.AbstractEventLoop:
    """An asyncio loop whose time is ``vtime``'s and whose waits jump the clock."""
    return _VirtualLoop(vtime)
