"""Sliding windows in one process: pure bookkeeping over times the caller gives.

A window of span S admits at most its limit in any S seconds of the injected clock.
Windows follow the clock both ways: set it back and what was recorded "in the future"
no longer counts. The Redis store keeps the same semantics in a server-side script.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Callable, Sequence

from sfmock.state.store import Verdict, Window, WindowUse

__all__ = ["SlidingWindow", "Windows"]

_ADMITTED, _SHORT = Verdict("admitted"), Verdict("short")  # frozen: one of each serves every request
_WALK_AT = 16  # entries a log takes before fits() walks it whatever the limit (then half its live ones more)


class SlidingWindow:
    """A sliding window log: times and amounts in two arrays of C doubles (no object per
    entry for the garbage collector to walk, 64 bytes when empty: open mode keeps one per
    metric per token); entries of one instant are merged. Entries before ``head`` have
    left the window; they are cut off once they are half the log, so a busy window costs
    the same per request however many entries it holds (cutting them one request at a time
    moved the whole log each time: 180,000 entries at 3,000 requests/s under an RPM limit).

    An admission asks :meth:`fits`, which walks the log only where what left the window
    could matter. While the clock has not gone back since the last walk, a walk now drops
    exactly what a walk at every admission since would have dropped (what leaves at an
    earlier time has left at a later one too), and while all the log holds fits under the
    limit, what left cannot change a verdict: a limit far off costs no walk per request.
    Where the clock went back, the log is first walked at the latest time it saw (what
    left by then is gone for good, as it was for a walk on every request)."""

    __slots__ = ("amounts", "cut_at", "head", "seen", "times", "total")

    def __init__(self) -> None:
        self.times = array("d")
        self.amounts = array("d")
        self.total = 0.0
        self.head = 0
        self.seen = -math.inf  # the latest time it was asked about
        self.cut_at = _WALK_AT  # the log's length at which fits() walks it, whatever the limit

    def used(self, now: float, span: int) -> float:
        """What the window holds at ``now`` (dropping what left it)."""
        if now < self.seen:  # the clock went back: what left by the latest time seen is gone
            self._walk(self.seen, span)
        self.seen = now
        return self._walk(now, span)

    def _walk(self, now: float, span: int) -> float:
        times, amounts = self.times, self.amounts
        while len(times) > self.head and times[-1] > now:  # the clock went back: that timeline is gone
            times.pop()
            self.total -= amounts.pop()
        head, end = self.head, len(times)
        while head < end and times[head] <= now - span:
            self.total -= amounts[head]
            head += 1
        if head * 2 >= end and head:  # all gone, or half the log: cut (amortised O(1) a request)
            del times[:head], amounts[:head]
            head = 0
        self.head = head
        return self.total

    def fits(self, now: float, span: int, amount: float, limit: float) -> bool:
        """``used(now, span) + amount <= limit``, without the walk while the clock has not gone
        back and all the log holds fits. Where it does not fit, it has walked: :attr:`total`
        is what the window holds."""
        if now >= self.seen and self.total + amount <= limit and len(self.times) < self.cut_at:
            self.seen = now
            return True
        used = self.used(now, span)
        self.cut_at = len(self.times) + (len(self.times) - self.head) // 2 + _WALK_AT
        return used + amount <= limit

    def add(self, now: float, amount: float) -> None:
        if len(self.times) > self.head and self.times[-1] == now:
            self.amounts[-1] += amount
        else:
            self.times.append(now)
            self.amounts.append(amount)
        self.total += amount

    def free_after(self, now: float, span: int, needed: float) -> float:
        """Seconds until ``needed`` units have left the window."""
        freed = 0.0
        for when, amount in zip(self.times[self.head :], self.amounts[self.head :], strict=True):
            freed += amount
            if freed >= needed:
                return max(0.0, when + span - now)
        return 0.0

    def newest(self) -> float | None:
        return self.times[-1] if len(self.times) > self.head else None


class Windows:
    """Every window of every account, by name; thread-safe (hold :attr:`lock` to check
    and record atomically)."""

    def __init__(self) -> None:
        self._windows: dict[str, dict[str, SlidingWindow]] = {}  # account -> name -> window
        self.lock = threading.RLock()

    def _window(self, account: str, name: str) -> SlidingWindow:
        windows = self._windows.get(account)
        if windows is None:
            windows = self._windows[account] = {}
        window = windows.get(name)
        if window is None:
            window = windows[name] = SlidingWindow()
        return window

    def check(self, account: str, windows: Sequence[Window], now: float) -> tuple[int, float] | None:
        """(index, seconds to wait) of the first window ``windows`` would overfill, or ``None``."""
        with self.lock:
            for index, spec in enumerate(windows):
                window = self._window(account, spec.name)
                used = window.used(now, spec.span)
                if used + spec.amount > spec.limit:
                    needed = used + spec.amount - spec.limit
                    wait = math.inf if spec.amount > spec.limit else window.free_after(now, spec.span, needed)
                    return index, wait
            return None

    def admit(self, account: str, windows: Sequence[Window], now: float, allow: Callable[[], bool]) -> Verdict:
        """Check every window, then ``allow()`` (the balance), then count: one pass, one lock."""
        with self.lock:
            held = []
            table = self._windows.get(account)  # _window's look-ups, once for all the windows
            if table is None:
                table = self._windows[account] = {}
            for index, spec in enumerate(windows):
                window = table.get(spec.name)
                if window is None:
                    window = table[spec.name] = SlidingWindow()
                held.append(window)
                if not window.fits(now, spec.span, spec.amount, spec.limit):
                    needed = window.total + spec.amount - spec.limit
                    wait = math.inf if spec.amount > spec.limit else window.free_after(now, spec.span, needed)
                    return Verdict("limited", (), index, wait)
            if not allow():
                return _SHORT
            for spec, window in zip(windows, held, strict=True):
                window.add(now, spec.amount)  # fits() above left nothing newer than now
            return _ADMITTED

    def record(self, account: str, windows: Sequence[Window], now: float) -> None:
        """Count each window's amount at ``now``."""
        with self.lock:
            for spec in windows:
                window = self._window(account, spec.name)
                window.used(now, spec.span)  # drop entries the clock has gone back before
                window.add(now, spec.amount)

    def usage(self, account: str, windows: Sequence[Window], now: float) -> tuple[WindowUse, ...]:
        with self.lock:
            result = []
            for spec in windows:
                window = self._window(account, spec.name)
                result.append(WindowUse(used=window.used(now, spec.span), newest=window.newest()))
            return tuple(result)

    def names(self, account: str) -> list[str]:
        with self.lock:
            return list(self._windows.get(account, {}))

    def forget(self, account: str) -> None:
        with self.lock:
            self._windows.pop(account, None)

    def reset(self) -> None:
        with self.lock:
            self._windows.clear()
