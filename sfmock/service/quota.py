"""Rate limits per account and model: RPM, RPH, RPD, IPM, IPD, TPM, TPD.

Windows slide: a limit of N per minute admits at most N units in any 60 seconds,
measured on the injected clock. That is the strictest reading of the service's
"per minute": a client that copes with it copes with fixed windows too, and a test
can fill a window, advance the clock by the window's length and see the limit lift,
wherever the window started. Windows follow the clock both ways: set it back and what
was recorded "in the future" no longer counts. Checking and recording are separate so
the caller can refuse for another reason (balance) in between without leaking usage.
The windows themselves are kept by a store (:mod:`sfmock.state`); this module turns
limits and usage into the windows a request counts against.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from sfmock.state.store import Window, WindowUse
from sfmock.state.windows import Windows

__all__ = ["METRICS", "Limits", "QuotaExceeded", "RateLimiter", "Usage", "window_states", "windows"]

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


class RateLimiter:
    """Counts usage per (account, model, metric) in sliding windows; thread-safe."""

    def __init__(self) -> None:
        self.windows = Windows()

    @property
    def lock(self) -> threading.RLock:
        """Hold it across :meth:`check` and :meth:`record` to admit a request atomically."""
        return self.windows.lock

    def check(self, account: str, model: str, limits: Limits, usage: Usage, now: float) -> QuotaExceeded | None:
        """The first limit ``usage`` would break now, or ``None`` if it fits."""
        specs = windows(model, limits, usage)
        over = self.windows.check(account, specs, now)
        if over is None:
            return None
        index, wait = over
        return QuotaExceeded(metric=limits.items()[index][0], limit=specs[index].limit, retry_after=wait)

    def record(self, account: str, model: str, limits: Limits, usage: Usage, now: float) -> None:
        """Count ``usage`` against every limit that is set."""
        self.windows.record(account, windows(model, limits, usage), now)

    def state(self, account: str, model: str, limits: Limits, now: float) -> dict[str, WindowState]:
        """Limit, remaining and seconds-to-full-reset of each metric that is set."""
        specs = windows(model, limits, Usage())
        return window_states(limits, specs, self.windows.usage(account, specs, now), now)

    def forget(self, account: str) -> None:
        """Forget one account's usage."""
        self.windows.forget(account)

    def models(self, account: str) -> list[str]:
        """The models ``account`` has used under a limit since the last reset."""
        return window_models(self.windows.names(account))

    def reset(self) -> None:
        """Forget all usage."""
        self.windows.reset()


def windows(model: str, limits: Limits, usage: Usage) -> tuple[Window, ...]:
    """The windows a request of ``usage`` on ``model`` counts against, in checking order."""
    return tuple(
        Window(f"{model}|{metric}", METRICS[metric][1], limit, getattr(usage, METRICS[metric][0]))
        for metric, limit in limits.items()
    )


def window_states(
    limits: Limits, specs: Sequence[Window], uses: Sequence[WindowUse], now: float
) -> dict[str, WindowState]:
    """Each metric's limit, what is left of it and when all of it is back."""
    result = {}
    for (metric, limit), spec, use in zip(limits.items(), specs, uses, strict=True):
        reset = use.newest + spec.span - now if use.newest is not None else 0.0
        result[metric] = WindowState(limit=limit, remaining=max(0, int(limit - use.used)), reset=reset)
    return result


def window_models(names: Sequence[str]) -> list[str]:
    """The models among window names (``MODEL|METRIC``)."""
    return sorted({name.rpartition("|")[0] for name in names})
