"""Client checks: drive a user's client against the fake under generated server behaviour.

``check_client(fn)`` runs ``fn`` (one image generation through the user's client) again
and again, each time against a *schedule*: the outcomes the fake gives to successive
generation requests (``["503", "timeout", "ok"]``). Everything runs in-process on a
virtual clock, so a client's back-off sleeps cost nothing. After each run, invariants
read the transcript; the first schedule that breaks one is shrunk by Hypothesis to the
smallest that still does, and reported with its transcript, seed and a replay line.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock

import httpx
from hypothesis import HealthCheck, find
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import NoSuchExample

from .app import create_app
from .clock import VirtualClock
from .config import Settings
from .errors import SfmockError
from .faults import Action, Rule, Scenario
from .invariants import GENERATE, INVARIANTS, Invariant, Run
from .strategies import OUTCOMES, schedules
from .transports import InProcess, Transport, requests_adapter

__all__ = ["INVARIANTS", "CheckReport", "ClientCheckFailed", "ClientContext", "Run", "check_client"]

BASE = "http://sfmock.test"


@dataclass
class ClientContext:
    """What the client under test is given: where the fake is, a key, and what to ask."""

    base_url: str
    api_key: str
    request: dict[str, Any]
    clock: VirtualClock
    inprocess: InProcess
    slept: list[float] = field(default_factory=list)

    def http_client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` wired to the fake (for the API and the image downloads)."""
        return httpx.Client(transport=Transport(self.inprocess), **kwargs)

    def requests_session(self) -> Any:
        """A ``requests.Session`` wired to the fake."""
        import requests

        session = requests.Session()
        session.mount("http://", requests_adapter(self.inprocess))
        return session

    def sleep(self, seconds: float) -> None:
        """Sleep on the virtual clock (``time.sleep`` is routed here during a check too)."""
        self.slept.append(seconds)
        self.clock.advance(max(0.0, seconds))


class ClientCheckFailed(SfmockError, AssertionError):
    """A client broke an invariant; the message is the whole report."""

    def __init__(self, *, invariant: str, message: str, run: Run, seed: int, examples: int) -> None:
        self.invariant = invariant
        self.problem = message
        self.schedule = list(run.schedule)
        self.run = run
        self.seed = seed
        origin = run.exchanges[0].started if run.exchanges else 0.0
        lines = [f"  {n}. {e.describe(origin)}" for n, e in enumerate(run.exchanges, 1)]
        transcript = "\n".join(lines) or "  (no request)"
        raised = "returned normally" if run.error is None else f"raised {type(run.error).__name__}: {run.error}"
        super().__init__(
            f"client check failed: [{invariant}] {message}\n"
            f"smallest schedule: {self.schedule!r} (after {examples} schedules, seed {seed})\n"
            f"transcript:\n{transcript}\n"
            f"the client {raised}\n"
            f"replay: check_client(fn, schedule={self.schedule!r})"
        )


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """What a passing check ran."""

    examples: int
    invariants: tuple[str, ...]
    seed: int


class _Harness:
    def __init__(self, settings: Settings, api_key: str) -> None:
        self.clock = VirtualClock()
        self.app = create_app(settings, clock=self.clock, sleep=self._sleep)
        self.inprocess = InProcess(self.app, self.clock)
        self.api_key = api_key

    async def _sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def run(
        self,
        client: Callable[[ClientContext], Any],
        schedule: Sequence[str],
        request: dict[str, Any],
        max_attempts: int,
        min_attempts: int,
    ) -> Run:
        self.app.state.control.reset_all()
        self.app.state.faults.replace(_scenario(schedule))
        self.inprocess.transcript.clear()
        context = ClientContext(
            base_url=f"{BASE}/v1",
            api_key=self.api_key,
            request=dict(request),
            clock=self.clock,
            inprocess=self.inprocess,
        )
        result: Any = None
        error: BaseException | None = None
        with _virtual_time(context):
            try:
                result = client(context)
            except Exception as exc:
                error = exc
        return Run(
            schedule=tuple(schedule),
            exchanges=tuple(self.inprocess.transcript),
            result=result,
            error=error,
            api_key=self.api_key,
            max_attempts=max_attempts,
            min_attempts=min_attempts,
        )


def check_client(
    client: Callable[[ClientContext], Any],
    *,
    request: Mapping[str, Any] | None = None,
    invariants: Sequence[str | Invariant] | None = None,
    outcomes: Sequence[str] | None = None,
    schedule: Sequence[str] | None = None,
    max_examples: int = 200,
    seed: int = 0,
    max_attempts: int = 6,
    min_attempts: int = 3,
    api_key: str = "sk-sfmock-check-0123456789",
    settings: Settings | None = None,
) -> CheckReport:
    """Check ``client`` under generated schedules; raise :class:`ClientCheckFailed` on a break.

    ``client(ctx)`` makes one generation of ``ctx.request`` through the client under test,
    using ``ctx.base_url``, ``ctx.api_key`` and ``ctx.http_client()`` (or
    ``ctx.requests_session()``), and returns (ideally) the image bytes. ``invariants``
    picks from :data:`INVARIANTS` by name, or adds callables ``Run -> message | None``.
    ``schedule`` replays one schedule instead of searching. ``min_attempts``: a transient
    failure must be retried until at least this many attempts; ``max_attempts``: never more.
    """
    chosen = _invariants(invariants)
    body = dict(request or {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42})
    base = settings or Settings()
    harness = _Harness(replace(base, seed=seed, public_url=BASE, url_ttl=base.url_ttl), api_key)
    examples = 0

    def violation(candidate: Sequence[str]) -> tuple[str, str, Run] | None:
        nonlocal examples
        examples += 1
        run = harness.run(client, candidate, body, max_attempts, min_attempts)
        for name, invariant in chosen:
            try:
                message = invariant(run)
            except AssertionError as exc:
                message = str(exc) or "assertion failed"
            if message:
                return name, message, run
        return None

    try:
        if schedule is not None:
            found = violation(list(schedule))
        else:
            strategy = schedules(outcomes or list(OUTCOMES))
            config = hypothesis_settings(
                max_examples=max_examples, database=None, deadline=None, suppress_health_check=list(HealthCheck)
            )
            try:
                smallest = find(
                    strategy, lambda s: violation(s) is not None, settings=config, random=random.Random(seed)
                )
            except NoSuchExample:
                smallest = None
            found = None if smallest is None else violation(smallest)
    finally:
        harness.inprocess.close()
    if found is not None:
        name, message, run = found
        raise ClientCheckFailed(invariant=name, message=message, run=run, seed=seed, examples=examples)
    return CheckReport(examples=examples, invariants=tuple(name for name, _ in chosen), seed=seed)


def _invariants(selection: Sequence[str | Invariant] | None) -> list[tuple[str, Invariant]]:
    chosen: list[tuple[str, Invariant]] = []
    for item in selection if selection is not None else list(INVARIANTS):
        if isinstance(item, str):
            if item not in INVARIANTS:
                raise ValueError(f"unknown invariant {item!r}; choose from {sorted(INVARIANTS)}")
            chosen.append((item, INVARIANTS[item]))
        else:
            chosen.append((getattr(item, "__name__", "custom"), item))
    return chosen


def _scenario(schedule: Sequence[str]) -> Scenario:
    steps = tuple(Action.from_config(OUTCOMES[outcome]) for outcome in schedule)
    if not steps:
        return Scenario(name="schedule")
    rule = Rule(name="schedule", when={"path": GENERATE, "method": "POST"}, steps=steps, sequence=True)
    return Scenario(name="schedule", rules=(rule,))


@contextmanager
def _virtual_time(context: ClientContext) -> Iterator[None]:
    with mock.patch.object(time, "sleep", context.sleep):
        yield
