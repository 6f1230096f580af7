"""trio on the virtual clock: a ``trio.run`` the client calls during a check keeps the check's time.

trio keeps time with a clock of its own (a ``trio.abc.Clock``, not ``time.monotonic``) and
waits in an I/O manager of its own, not in a selector the checker could swap as it does
asyncio's (:mod:`sfmock.testing.vtime`). So, for the length of a check, :class:`VirtualTrio`
replaces ``trio.run`` (the module's attribute, which anyio's trio backend calls, and every
module-level name bound to it by ``from trio import run``): a run started in a thread that
sees virtual time, with no clock of its own chosen, gets :class:`_Clock`, whose time is
the check's. Like a virtual asyncio loop it jumps to the next deadline when nothing has
happened for a moment of real time (no task ran, no request was made or answered), so
``trio.sleep``, ``trio.fail_after``, ``move_on_after`` and ``anyio.sleep`` on the trio
backend cost no real time, and a deadline falls inside a generation's latency as on asyncio.

trio is imported only where the client has imported it already (it is in ``sys.modules``):
a check of a client that does not use trio never imports it. A client that first imports
trio inside a run has that run on real time, and the next ones on the virtual clock.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sfmock.testing.aliases import bound_names
from sfmock.testing.clientframe import awaited_line, trio_tasks
from sfmock.testing.runclock import min_step
from sfmock.testing.vtime import ENDLESS, REAL_BOUND, REAL_GRACE, THREAD_GRACE, HangForever, VirtualTime

if TYPE_CHECKING:
    import trio

__all__ = ["VirtualTrio", "on_virtual_trio", "trio_sleep"]

_real_monotonic = time.monotonic


class VirtualTrio:
    """``trio.run`` on the virtual clock in the check's threads, from :meth:`install` to :meth:`uninstall`."""

    def __init__(self, vtime: VirtualTime) -> None:
        self.vtime = vtime
        self._patched: list[tuple[dict[str, Any], str, Any]] = []
        self._real: Callable[..., Any] | None = None

    def install(self) -> None:
        """Patch ``trio.run`` and its aliases, once per check (cheap to call at every run)."""
        trio = sys.modules.get("trio")
        if self._real is not None or not isinstance(trio, ModuleType) or not hasattr(trio, "run"):
            return
        real: Callable[..., Any] = trio.run
        self._real = real
        virtual = _virtual_run(real, self.vtime)
        for namespace, attribute, value in bound_names([real], lambda module: module.split(".")[0] == "sfmock"):
            self._patched.append((namespace, attribute, value))
            namespace[attribute] = virtual

    def uninstall(self) -> None:
        for namespace, attribute, value in reversed(self._patched):
            namespace[attribute] = value
        self._patched.clear()
        self._real = None


def _virtual_run(real: Callable[..., Any], vtime: VirtualTime) -> Callable[..., Any]:
    @functools.wraps(real)
    def run(async_fn: Callable[..., Any], *args: Any, clock: Any = None, instruments: Any = (), **options: Any) -> Any:
        if clock is not None or not vtime.virtual_here():  # the client's own clock, or a thread of the fake's
            return real(async_fn, *args, clock=clock, instruments=instruments, **options)
        virtual = _clock_type()(vtime)
        vtime.loops += 1
        me = threading.get_ident()
        _RUNNING[me] = virtual
        try:
            result = real(async_fn, *args, clock=virtual, instruments=(*instruments, virtual), **options)
        except BaseException as exc:
            # a wait found endless (by the clock, or by the watchdog's signal landing in
            # trio's own loop or a nursery) is the run's verdict, not an error of trio's
            hung = virtual.stop or _hang_in(exc)
            if hung is not None:
                raise hung from None
            raise
        finally:
            vtime.loops -= 1
            _RUNNING.pop(me, None)
        if virtual.stop is not None:  # the client swallowed the cancellation
            raise virtual.stop
        return result

    return run


_RUNNING: dict[int, Any] = {}  # thread -> the clock of the virtual trio run under way in it


def interrupt(thread: int, error: HangForever) -> bool:
    """Stop the virtual trio run of ``thread`` with ``error`` if it waits in trio's own loop
    (for I/O or a deadline): every task is cancelled, so the client's ``async with`` blocks
    close what they opened, and ``trio.run`` raises ``error``. ``False`` when no such run
    waits there now: the caller raises ``error`` where the thread is (in a task, it
    propagates as any error does; in trio's loop, trio would abandon the run)."""
    clock = _RUNNING.get(thread)
    if clock is None or not clock.waiting:
        return False
    clock.stop = error
    return True


def _hang_in(error: BaseException) -> HangForever | None:
    """A HangForever that ``error`` is, wraps (TrioInternalError) or groups (a nursery's)."""
    pending = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, HangForever):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        if current.__cause__ is not None:
            pending.append(current.__cause__)
    return None


@functools.cache
def _clock_type() -> type[Any]:
    """The clock class, made once trio is there to subclass (trio is an optional import)."""
    import trio

    class Clock(trio.abc.Clock, trio.abc.Instrument):
        """The check's virtual time for one ``trio.run``, and the instrument that lets it see
        whether anything happened since it last looked."""

        def __init__(self, vtime: VirtualTime) -> None:
            self.vtime = vtime
            self.steps = 0  # task steps so far: any task that ran means something happened
            self.seen: tuple[int, Any] | None = None  # steps and the check's progress at the last look
            self.quiet_since = _real_monotonic()
            self.waiting = False
            self.own_reads = 1
            self.threads_at_start = threading.active_count()
            self.stop: HangForever | None = None  # why the run is being stopped from outside

        def start_clock(self) -> None:
            return

        def current_time(self) -> float:
            return self.vtime.monotonic()

        def deadline_to_sleep_time(self, deadline: float) -> float:
            """Real seconds trio's loop may wait for I/O before it looks again; 0 once the clock
            has jumped to ``deadline``. Called only when no task is ready to run."""
            vtime = self.vtime
            if self.stop is not None:  # interrupted (the check's budget, the watchdog): cancel every task
                for nursery in trio.lowlevel.current_root_task().child_nurseries:  # type: ignore[union-attr]
                    nursery.cancel_scope.cancel()
                return 0.0
            now = vtime.monotonic()
            if deadline <= now:
                return 0.0
            real = _real_monotonic()
            # the live socket is answering: time stands still (an in-process answer is not
            # waited for: it runs on this loop, its waits are this loop's)
            if vtime.busy():
                self.seen, self.quiet_since = None, real
                return REAL_GRACE
            look = (self.steps, vtime.progress())
            if look != self.seen:
                # something happened since the last look: what may follow gets a moment of real
                # time (longer while a task waits on a socket, whose answer may be on its way);
                # with no socket waited on and no thread begun since the run began, nothing can
                # come but the deadline (as on a virtual asyncio loop)
                self.seen, self.quiet_since = look, real
                if self._waiting_on_io():
                    return REAL_GRACE
                if threading.active_count() > self.threads_at_start:
                    return THREAD_GRACE
            # a whole wait went by with nothing: nothing is on its way before the next deadline
            if deadline == math.inf:
                if real - self.quiet_since >= REAL_BOUND:  # ended as an interruption is: its tasks cancelled
                    where = awaited_line(trio_tasks(trio.lowlevel.current_root_task()))
                    self.stop = HangForever(ENDLESS if where is None else f"{ENDLESS}: it awaits at {where}")
                return REAL_GRACE
            while now < deadline:  # at Unix-time magnitudes one step may land just short of it
                vtime.clock.advance(max(deadline - now, min_step(now)))
                now = vtime.monotonic()
            return 0.0

        def _waiting_on_io(self) -> bool:
            """Whether a task of the client's waits on a socket or a file. trio's own task
            for wake-ups from other threads waits to read a socket the whole run: the fewest
            reads ever seen waiting, and at most that one, are trio's own."""
            statistics = trio.lowlevel.current_statistics().io_statistics
            reads = getattr(statistics, "tasks_waiting_read", getattr(statistics, "tasks_waiting", 0))
            self.own_reads = min(self.own_reads, reads)
            return reads > self.own_reads or getattr(statistics, "tasks_waiting_write", 0) > 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            self.steps += 1

        def before_io_wait(self, timeout: float) -> None:
            self.vtime.ticks += 1  # a look at its timers, for the live socket's hand-over
            if timeout > 0:
                self.waiting = True
                self.vtime.waiting += 1

        def after_io_wait(self, timeout: float) -> None:
            if self.waiting:
                self.waiting = False
                self.vtime.waiting -= 1

    return Clock


def on_virtual_trio() -> bool:
    """Whether the caller runs in a ``trio.run`` on the virtual clock (without importing trio)."""
    trio = sys.modules.get("trio")
    if trio is None or _clock_type.cache_info().currsize == 0:  # no virtual trio run was ever made
        return False
    try:
        return isinstance(trio.lowlevel.current_clock(), _clock_type())
    except RuntimeError:  # not inside a trio run
        return False


async def trio_sleep(seconds: float) -> None:
    """``trio.sleep`` (on the virtual clock when :func:`on_virtual_trio`)."""
    import trio

    await trio.sleep(seconds)
