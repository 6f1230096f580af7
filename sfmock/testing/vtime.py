"""Virtual time for a client under check: its waits cost nothing, its deadlines still hold.

:class:`VirtualTime` routes ``time.sleep``, ``time.monotonic``, ``time.time`` (and their
``_ns`` twins) to a :class:`~sfmock.clock.VirtualClock` while a client runs. It replaces
the functions on the ``time`` module *and* every module-level name bound to them
(``from time import sleep``), found once by scanning ``sys.modules`` (sfmock's own
modules excepted); a function kept
elsewhere (a default argument, a closure, a C extension) keeps real time: that is the
limit, and it is documented. Threads named in :attr:`VirtualTime.real_threads` (the
fake's own server) keep real time.

:func:`new_event_loop` makes an asyncio loop on the same clock: when nothing is ready
to run it jumps the clock to its next timer instead of waiting, so ``asyncio.sleep``,
``anyio.sleep``, ``asyncio.wait_for`` and httpx's async timeouts are virtual too. A
loop that has nothing to wait for at all is deadlocked: it raises :class:`HangForever`.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sfmock.clock import VirtualClock
from sfmock.offload import INLINE
from sfmock.transports import HangForever

__all__ = ["HangForever", "VirtualTime", "new_event_loop", "on_virtual_loop"]

REAL_GRACE = 0.05  # real seconds an async loop with open sockets waits for I/O before time jumps
THREAD_GRACE = 0.001  # real seconds it waits for a worker thread's wake-up before time jumps
REAL_BOUND = 10.0  # real seconds it waits, with no timer at all, before calling the wait endless

MIN_STEP = 1e-6  # the smallest jump of the clock an async loop makes

_NAMES = ("sleep", "monotonic", "time", "monotonic_ns", "time_ns")


class VirtualTime:
    """Patches the clock functions for the duration of a check; on only while :attr:`active`."""

    def __init__(self, clock: VirtualClock, on_sleep: Callable[[float], None]) -> None:
        self.clock = clock
        self.on_sleep = on_sleep
        self.active = False
        self.real_threads: set[int] = set()
        # real work under way elsewhere (the live socket serving a request): time must not jump
        self.busy: Callable[[], bool] = lambda: False
        self.ticks = 0  # selects made by the client's virtual loops: each is a look at their timers
        self.loops = 0  # virtual loops running now
        self.waiting = 0  # of them, those blocked waiting for I/O or a thread
        self._origin = time.monotonic()
        self._real: dict[str, Any] = {name: getattr(time, name) for name in _NAMES}
        self._fake: dict[str, Any] = {
            "sleep": self._sleep,
            "monotonic": self._monotonic,
            "time": self._time,
            "monotonic_ns": lambda: int(self._monotonic() * 1e9),
            "time_ns": lambda: int(self._time() * 1e9),
        }
        self._patched: list[tuple[dict[str, Any], str, Any]] = []

    def virtual_here(self) -> bool:
        """Whether the calling thread sees virtual time now."""
        return self.active and threading.get_ident() not in self.real_threads

    def monotonic(self) -> float:
        """The virtual monotonic clock (moves with the virtual clock, starts near the real one)."""
        return self._origin + (self.clock.now() - self.clock.start)

    def _sleep(self, seconds: float) -> None:
        if not self.virtual_here():
            self._real["sleep"](seconds)
            return
        self.on_sleep(seconds)

    def _monotonic(self) -> float:
        return self.monotonic() if self.virtual_here() else float(self._real["monotonic"]())

    def _time(self) -> float:
        return self.clock.now() if self.virtual_here() else float(self._real["time"]())

    @contextmanager
    def installed(self) -> Iterator[VirtualTime]:
        """Patch the ``time`` module and every module-level alias of its functions."""
        originals = {id(function): name for name, function in self._real.items()}
        for module_name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict) or module_name.split(".")[0] == "sfmock":
                continue  # sfmock keeps real time where it binds it (waiting for its own server)
            for attribute, value in list(namespace.items()):
                name = originals.get(id(value))
                if name is not None and value is self._real[name]:
                    self._patched.append((namespace, attribute, value))
                    namespace[attribute] = self._fake[name]
        try:
            yield self
        finally:
            for namespace, attribute, value in reversed(self._patched):
                namespace[attribute] = value
            self._patched.clear()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Virtual time on, for one run of the client.

        Every event loop the client makes itself (``asyncio.run``, ``asyncio.new_event_loop``,
        ``anyio.run``, a loop in a thread of its own) is a virtual one too: a loop on the
        patched clock that waited in real time would never see its timers come due.
        """
        with _policies():
            previous = asyncio.get_event_loop_policy()
            asyncio.set_event_loop_policy(_VirtualPolicy(self, previous))
        self.active = True
        try:
            yield
        finally:
            self.active = False
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

    def _threads_may_answer(self) -> bool:
        """Whether a thread may still wake this loop: work in its executor, or threads begun
        since it started (anyio's workers, a client's own). With neither, waiting is in vain."""
        return self.in_executor > 0 or threading.active_count() > self.threads_at_start

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
        self._vtime.waiting += 1  # this loop has nothing to do: its timers are set, it waits
        try:
            if sockets or timeout is None or self._threads_may_answer():
                ready = self._inner.select(grace)
                if ready:
                    return ready
            if self._busy():  # a live request is being served in real time: wait for it, do not jump
                return self._inner.select(REAL_GRACE if timeout is None else min(timeout, REAL_GRACE))
        finally:
            self._vtime.waiting -= 1
        if timeout is None:
            raise HangForever("the client awaits something that never comes, with no timeout")
        # at Unix-time magnitudes a float moves in steps of ~2.4e-7 s: never advance by less
        self._clock.advance(max(timeout, MIN_STEP))
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
