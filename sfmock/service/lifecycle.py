"""Models come and go: which models of the catalogue are live, on the server's clock.

The real service retires models under its clients' feet (FLUX.1-schnell left the .cn
service by mid-2025; Qwen-Image arrived by Sep 2025). A retired model answers 403
``{"code":30003,"message":"Model disabled."}`` and leaves ``GET /v1/models``; a name the
service never knew stays 400 20012. Retirement is configured (``retire:`` in the config,
the pytest marker or :class:`~sfmock.Settings`), scheduled on the clock (``at`` a time,
or ``after`` seconds from the start) or triggered by a scenario rule.

Checking is one dictionary lookup per request (worked out again when the epoch changes).
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sfmock.state.memory import MemoryEpoch
from sfmock.state.store import Epoch

__all__ = ["Lifecycle", "Retirement", "SessionEpoch", "parse_time"]

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?(?:Z|\+00:00)?")


def parse_time(value: float | int | str) -> float:
    """A Unix time from a number or an ISO 8601 UTC date (``2026-09-10``, ``2026-09-10T12:00:00Z``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _ISO.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"expected a Unix time or an ISO 8601 UTC date, got {value!r}")
    parts = [int(p) if p else 0 for p in match.groups()]
    year, month, day, hour, minute, second = parts
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"not a valid date: {value!r}")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


@dataclass(frozen=True, kw_only=True)
class Retirement:
    """One model's retirement: from the start, ``at`` a Unix time, or ``after`` seconds."""

    model: str
    at: float | None = None
    after: float | None = None

    @classmethod
    def coerce(cls, value: Retirement | str | Mapping[str, Any]) -> Retirement:
        """From a :class:`Retirement`, a bare model name (retired from the start), or a
        (schema-checked) mapping ``{model, at?, after?}``."""
        if isinstance(value, Retirement):
            return value
        if isinstance(value, str):
            return cls(model=value)
        at = value.get("at")
        after = value.get("after")
        return cls(
            model=str(value["model"]),
            at=None if at is None else parse_time(at),
            after=None if after is None else float(after),
        )

    def when(self, started: float, shift: float = 0.0) -> float:
        """The server time from which the model is retired (``at`` moved on by ``shift``)."""
        if self.at is not None:
            return self.at + shift
        if self.after is not None:
            return started + self.after
        return -math.inf


class SessionEpoch:
    """A named session's epoch: the run's start, with only the models that session's
    scenario retired (another session's retirements, the default one's included, stay
    theirs); a reset of the session restarts ``own`` alone."""

    def __init__(self, run: Epoch, own: Epoch) -> None:
        self.run = run
        self.own = own
        self._read: tuple[object, object, tuple[float, Mapping[str, float]]] | None = None

    def read(self) -> tuple[float, Mapping[str, float]]:
        run, own = self.run.read(), self.own.read()
        held = self._read
        if held is not None and held[0] is run and held[1] is own:
            return held[2]  # the same object while neither changed: Lifecycle caches on it
        value = (run[0], own[1])
        self._read = (run, own, value)
        return value

    def retire(self, model: str, since: float) -> None:
        self.own.retire(model, since)

    def restart(self, started: float) -> None:
        """Forget the session's retirements (the run's start is not the session's to move)."""
        self.own.restart(started)


class Lifecycle:
    """Which models are retired, and from when; thread-safe, reset to its schedule.

    The run's start and the models a scenario retired live in an
    :class:`~sfmock.state.store.Epoch`: this process's, or one every process of a shared
    store sees (``epoch``).
    """

    def __init__(
        self,
        schedule: Iterable[Retirement | str | Mapping[str, Any]],
        *,
        started: float | None = None,
        epoch: Epoch | None = None,
    ) -> None:
        """``epoch``, or one of this process begun at ``started``."""
        self.schedule = tuple(Retirement.coerce(item) for item in schedule)
        if epoch is None:
            if started is None:
                raise TypeError("Lifecycle needs started or epoch")
            epoch = MemoryEpoch(started)
        self.epoch = epoch
        self._shift = 0.0  # seconds the retirements set at a time are moved on (reset)
        # the epoch's state last read, and each retired model's time worked out from it
        self._worked: tuple[tuple[float, Mapping[str, float]] | None, dict[str, float]] = (None, {})

    @property
    def started(self) -> float:
        """When the run began (or was last reset): what ``after`` times count from."""
        return self.epoch.read()[0]

    def reset(self, started: float, shift: float = 0.0) -> None:
        """Back to the configured schedule, counted from ``started`` (scenario retirements
        undone); a retirement set ``at`` a time moves ``shift`` seconds later."""
        self._shift = shift
        self.epoch.restart(started)

    def retire(self, model: str, now: float) -> None:
        """Retire ``model`` from ``now`` on (a scenario rule's ``retire`` action)."""
        self.epoch.retire(model, now)

    def _since(self) -> dict[str, float]:
        """Each retired model's time, from the schedule and the epoch (worked out again
        only when the epoch changed)."""
        source = self.epoch.read()
        worked = self._worked
        if source is worked[0]:
            return worked[1]
        started, by_scenario = source
        retired: dict[str, float] = {}
        for item in self.schedule:
            retired[item.model] = min(retired.get(item.model, math.inf), item.when(started, self._shift))
        for model, since in by_scenario.items():
            retired[model] = min(retired.get(model, math.inf), since)
        self._worked = (source, retired)  # one assignment: threads see both or neither
        return retired

    def is_retired(self, model: str, now: float) -> bool:
        """Whether ``model`` answers 403 "Model disabled." at server time ``now``."""
        since = self._since().get(model)
        return since is not None and now >= since

    def live(self, models: Iterable[str], now: float) -> list[str]:
        """The models of ``models`` still live at ``now``, in order."""
        return [model for model in models if not self.is_retired(model, now)]
