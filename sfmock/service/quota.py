"""Rate limits per account and model: RPM, RPH, RPD, IPM, IPD, TPM, TPD.

Windows slide: a limit of N per minute admits at most N units in any 60 seconds,
measured on the injected clock. That is the strictest reading of the service's
"per minute": a client that copes with it copes with fixed windows too, and a test
can fill a window, advance the clock by the window's length and see the limit lift,
wherever the window started. Windows follow the clock both ways: set it back and what
was recorded "in the future" no longer counts. Checking and recording are separate so
the caller can refuse for another reason (balance) in between without leaking usage.
"""

from __future__ import annotations

import functools
import math
import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

__all__ = ["METRICS", "Limits", "QuotaExceeded", "RateLimiter", "Usage"]

# metric -> (what it counts, window in seconds), in the order they are checked
METRICS: Final[Mapping[str, tuple[str, int]]] = {
    "rpm": ("requests", 60),
    "rph": ("requests", 3600),
    "rpd": ("requests", 86_400),
    "ipm": ("images", 60),
    "ipd": ("images", 86_400),
    "tpm": ("tokens", 60),
    "tpd": ("tokens", 86_400),
}
PRESETS: Final[Mapping[str, Mapping[str, int]]] = {
    "realistic": {"ipm": 2, "ipd": 400},  # the lowest real tier for image models
    "unlimited": {},
}


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Upper bounds per window; ``None`` means no limit on that metric."""

    rpm: int | None = None
    rph: int | None = None
    rpd: int | None = None
    ipm: int | None = None
    ipd: int | None = None
    tpm: int | None = None
    tpd: int | None = None

    @classmethod
    def from_config(cls, values: str | Mapping[str, Any]) -> Limits:
        """From a (schema-checked) config value: a preset name, or a mapping of an
        optional ``preset`` and metrics."""
        if isinstance(values, str):
            values = {"preset": values}
        merged = dict(PRESETS[values.get("preset", "unlimited")])
        merged.update({k: v for k, v in values.items() if k != "preset"})
        return cls(**merged)

    def over(self, base: Limits) -> Limits:
        """``base`` with every metric this one sets replaced."""
        return replace(base, **{m: v for m, v in self.items()})

    def items(self) -> tuple[tuple[str, int], ...]:
        """The metrics that are set, in checking order."""
        return self._set

    @functools.cached_property
    def _set(self) -> tuple[tuple[str, int], ...]:
        # computed once: limits are checked on every request
        pairs = ((field.name, getattr(self, field.name)) for field in fields(self))
        return tuple((name, value) for name, value in pairs if value is not None)


@dataclass(frozen=True, kw_only=True)
class Usage:
    """What one request consumes."""

    requests: int = 1
    images: int = 1
    tokens: int = 0


@dataclass(frozen=True, kw_only=True)
class QuotaExceeded:
    """The first limit a request would break, and when it could pass."""

    metric: str
    limit: int
    retry_after: float  # seconds; math.inf when the request alone is over the limit


@dataclass(frozen=True, kw_only=True)
class WindowState:
    """One metric's limit, what is left of it now, and when all of it is back."""

    limit: int
    remaining: int
    reset: float


class _Window:
    """A sliding window log: times and amounts in two arrays of C doubles (no object per
    entry for the garbage collector to walk, 64 bytes when empty: open mode keeps one per
    metric per token); entries of one instant are merged. Entries before ``head`` have
    left the window; they are cut off once they are half the log, so a busy window costs
    the same per request however many entries it holds (cutting them one request at a time
    moved the whole log each time: 180,000 entries at 3,000 requests/s under an RPM limit)."""

    __slots__ = ("amounts", "head", "times", "total")

    def __init__(self) -> None:
        self.times = array("d")
        self.amounts = array("d")
        self.total = 0.0
        self.head = 0

    def used(self, now: float, span: int) -> float:
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


class RateLimiter:
    """Counts usage per (account, model, metric); thread-safe."""

    def __init__(self) -> None:
        self._windows: dict[str, dict[tuple[str, str], _Window]] = {}  # account -> (model, metric) -> window
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """Hold it across :meth:`check` and :meth:`record` to admit a request atomically."""
        return self._lock

    def _window(self, account: str, model: str, metric: str) -> _Window:
        windows = self._windows.get(account)
        if windows is None:
            windows = self._windows[account] = {}
        window = windows.get((model, metric))
        if window is None:
            window = windows[(model, metric)] = _Window()
        return window

    def check(self, account: str, model: str, limits: Limits, usage: Usage, now: float) -> QuotaExceeded | None:
        """The first limit ``usage`` would break now, or ``None`` if it fits."""
        with self._lock:
            for metric, limit in limits.items():
                unit, span = METRICS[metric]
                amount = getattr(usage, unit)
                window = self._window(account, model, metric)
                used = window.used(now, span)
                if used + amount > limit:
                    wait = math.inf if amount > limit else window.free_after(now, span, used + amount - limit)
                    return QuotaExceeded(metric=metric, limit=limit, retry_after=wait)
            return None

    def record(self, account: str, model: str, limits: Limits, usage: Usage, now: float) -> None:
        """Count ``usage`` against every limit that is set."""
        with self._lock:
            for metric, _ in limits.items():
                unit, span = METRICS[metric]
                window = self._window(account, model, metric)
                window.used(now, span)  # drop entries the clock has gone back before
                window.add(now, getattr(usage, unit))

    def state(self, account: str, model: str, limits: Limits, now: float) -> dict[str, WindowState]:
        """Limit, remaining and seconds-to-full-reset of each metric that is set."""
        with self._lock:
            result = {}
            for metric, limit in limits.items():
                span = METRICS[metric][1]
                window = self._window(account, model, metric)
                used = window.used(now, span)
                reset = window.times[-1] + span - now if len(window.times) > window.head else 0.0
                result[metric] = WindowState(limit=limit, remaining=max(0, int(limit - used)), reset=reset)
            return result

    def forget(self, account: str) -> None:
        """Forget one account's usage."""
        with self._lock:
            self._windows.pop(account, None)

    def models(self, account: str) -> list[str]:
        """The models ``account`` has used under a limit since the last reset."""
        with self._lock:
            return sorted({model for model, _ in self._windows.get(account, {})})

    def reset(self) -> None:
        """Forget all usage."""
        with self._lock:
            self._windows.clear()
