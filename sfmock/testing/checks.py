"""Client checks: drive a user's client against the fake under generated server behaviour.

``check_client(fn)`` runs ``fn`` (one image generation through the user's client, sync
or ``async``) again and again, each time against a *schedule*: the outcomes the fake
gives to successive generation requests (``["503", "timeout", "ok"]``). Time is virtual
(:mod:`sfmock.testing.vtime`), so back-off sleeps and timeouts cost nothing. After each run the
invariants (:mod:`sfmock.testing.invariants`) read the transcript; the first schedule that
breaks one is shrunk by Hypothesis to the smallest that still does and reported with its
transcript and a replay line. A check that never reached the fake, or never saw the
client succeed, fails too: nothing tested is not a pass.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sfmock.config import Settings
from sfmock.errors import SfmockError
from sfmock.testing.arguments import (
    ArgumentError,
    check_arguments,
    chosen_names,
    default_request,
    refuse_patched_threads,
)
from sfmock.testing.budget import BUDGET, Budget, to_stderr
from sfmock.testing.harness import DEFAULT_KEY, Client, ClientContext, Harness, Options
from sfmock.testing.invariants import INVARIANTS, Invariant, Run
from sfmock.testing.logcapture import opened_logs
from sfmock.testing.replays import carried_over, flakiness
from sfmock.testing.search import Judge, Tally, error_text, minimize, search, stale_loop
from sfmock.testing.strategies import OUTCOMES, drawn_outcomes
from sfmock.testing.vtime import ENDLESS
from sfmock.testing.watchdog import STALLED, OutOfTime
from sfmock.transports import Exchange
from sfmock.wording import plural
from sfmock.wording import unknown as unknown_name

__all__ = ["INVARIANTS", "CheckReport", "ClientCheckFailed", "ClientContext", "Run", "check_client"]


class ClientCheckFailed(SfmockError, AssertionError):
    """A client broke an invariant (or was never really tested); the message is the report."""

    def __init__(
        self, *, invariant: str, message: str, run: Run | None, seed: int | None, examples: int, replay: str, note: str
    ) -> None:
        self.invariant = invariant
        self.problem = message
        self.run = run
        self.schedule = list(run.schedule) if run is not None else []
        self.random_seed = run.random_seed if run is not None else 0
        self.seed = seed
        self.replay = replay
        lines = []
        if run is not None:
            origin = run.exchanges[0].started if run.exchanges else 0.0
            lines = [f"  {n}. {e.describe(origin)}{_outside(run, e)}" for n, e in enumerate(run.exchanges, 1)]
        transcript = "\n".join(lines) or "  (no request reached the fake)"
        raised = "returned normally" if run is None or run.error is None else _error_line(run.error)
        if run is not None and run.hung is not None:
            raised = "was stopped: it would have waited forever"
        seeded = f", seed {seed}" if seed is not None else ""
        super().__init__(
            f"client check failed: [{invariant}] {message}\n"
            + (f"{note}\n" if note else "")
            + f"smallest schedule: {self.schedule!r} (random seed {self.random_seed}; "
            f"after {plural(examples, 'schedule')}{seeded})\n"
            f"transcript:\n{transcript}\n"
            f"the client {raised}\n"
            f"replay: {replay}"
        )


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """What a passing check ran: how many schedules, which invariants and outcomes."""

    examples: int
    invariants: tuple[str, ...]
    seed: int | None
    outcomes: tuple[str, ...] = ()  # the outcomes the client actually met
    reached: int = 0  # runs in which the client reached the fake
    succeeded: int = 0  # runs that completed a generation and its download
    elapsed: float = 0.0  # real seconds the check took
    unmet: tuple[str, ...] = ()  # outcomes to draw that no run met
    note: str = ""  # why the check stopped short (its budget ran out), or runs that made no request


def check_client(
    client: Client,
    *,
    request: Mapping[str, Any] | None = None,
    invariants: Sequence[str | Invariant] | None = None,
    outcomes: Sequence[str] | None = None,
    schedule: Sequence[str] | None = None,
    random_seed: int | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    max_attempts: int = 6,
    min_attempts: int = 3,
    api_key: str = DEFAULT_KEY,
    settings: Settings | None = None,
    returns_image: bool = True,
    max_total_wait: float = 600.0,
    hang_bound: float = 600.0,
    budget: float = BUDGET,
    progress: Callable[[str], None] | None = to_stderr,
) -> CheckReport:
    """Check ``client`` under generated schedules; raise :class:`ClientCheckFailed` on a break.

    ``client(ctx)`` (a function or ``async def``) makes one generation of ``ctx.request``
    through the client under test, using ``ctx.base_url`` and ``ctx.api_key`` with
    ``ctx.http_client()``, ``ctx.async_http_client()`` or ``ctx.requests_session()``, or
    ``ctx.live_base_url`` for any other HTTP stack, and returns the image bytes
    (``returns_image=False`` if it returns nothing to compare). ``invariants`` picks from
    :data:`INVARIANTS` by name, or adds callables ``Run -> message | None``.

    The search follows the Hypothesis settings in force (profile, ``max_examples``,
    ``derandomize``, the example database, ``--hypothesis-seed``); ``seed`` fixes it.
    ``schedule`` (with ``random_seed``) replays one schedule instead of searching.
    ``min_attempts``: a transient failure must be retried until at least this many
    attempts; ``max_attempts``: never more. ``max_total_wait``: seconds of back-off a run
    may spend. ``hang_bound``: virtual seconds after which a client waiting on an answer
    that never comes is stopped as "would hang forever". ``budget``: real seconds the check
    may take (as ``sfmock check --budget``): then it ends with the failure found so far, or a
    pass whose :attr:`CheckReport.note` (also said to ``progress``, a line on stderr by
    default; ``None``: quiet) tells how many schedules ran, where the client waited outside
    the virtual clock, and which outcomes were never met.
    """
    __tracebackhide__ = True
    base = settings or Settings()
    request = default_request(strict=base.strict) if request is None else request
    refuse_patched_threads()
    check_arguments(
        request=request,
        outcomes=outcomes,
        schedule=schedule,
        min_attempts=min_attempts,
        max_attempts=max_attempts,
        strict=base.strict,
        max_total_wait=max_total_wait,
        hang_bound=hang_bound,
        budget=budget,
    )
    _check_client_callable(client)
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise ArgumentError("max_examples", f"expected a whole number of schedules, at least 1; got {max_examples!r}")
    if invariants is not None:
        chosen_names("invariants", invariants, sorted(INVARIANTS), "invariant")
    chosen = _invariants(invariants)
    options = Options(
        request=dict(request),
        max_attempts=max_attempts,
        min_attempts=min_attempts,
        returns_image=returns_image,
        max_total_wait=max_total_wait,
        strict=base.strict,
    )
    names = list(outcomes) if outcomes is not None else drawn_outcomes(base)
    replay = _replay_line(client, options, chosen, settings, api_key, max_total_wait, hang_bound, budget)
    harness = Harness(replace(base, seed=0 if seed is None else seed), api_key, hang_bound)
    tally = Tally()
    clock = Budget(budget, progress or (lambda line: None), _name_of(client))
    harness.watchdog.within(clock.deadline, budget)
    clock.waits = harness.watchdog.outside
    clock.live = harness.live_used

    def judge(candidate: Sequence[str], rseed: int) -> tuple[str, str, Run] | None:
        clock.check()
        try:
            run = harness.run(client, candidate, rseed, options)
        except OutOfTime:
            clock.spent()
            raise
        tally.add(run)
        if not run.hung or (ENDLESS not in run.hung and STALLED not in run.hung):  # its real wait is its verdict
            clock.after(tally.runs, tally.outside)
        for name, invariant in chosen:
            try:
                message = invariant(run)
            except AssertionError as exc:
                message = str(exc) or "assertion failed"
            if message:
                tally.failures.append((name, message, run))
                return name, message, run
        return None

    try:
        with harness.vtime.installed(), opened_logs():
            verdict = _verdict(
                judge, tally, schedule, random_seed, names, max_attempts, max_examples, seed, client, replay, clock
            )
        if verdict is not None:
            raise verdict
        unmet = tuple(name for name in names if name not in tally.outcomes) if schedule is None else ()
        note = clock.note(tally.runs, unmet, tally.outside) if clock.ran_out else ""
        note = "\n".join(line for line in (note, tally.kept_note()) if line)
        if note:
            clock.say(note)
    finally:
        harness.close()
    return CheckReport(
        examples=tally.runs,
        invariants=tuple(name for name, _ in chosen),
        seed=seed,
        outcomes=tuple(sorted(tally.outcomes, key=list(OUTCOMES).index)),
        reached=tally.reached,
        succeeded=tally.succeeded,
        elapsed=clock.elapsed,
        unmet=unmet,
        note=note,
    )


def _check_client_callable(client: Any) -> None:
    """Refuse a ``client`` no run could call for an image: not callable, or a generator
    function (calling it runs none of its body; outsider19's checks of both ran 131 schedules)."""
    if not callable(client):
        raise ArgumentError("client", f"expected a function of ctx that returns the image; got {client!r}")
    if inspect.isgeneratorfunction(client) or inspect.isasyncgenfunction(client):
        raise ArgumentError(
            "client",
            f"{_name_of(client)} is a generator function: calling it runs none of its body; "
            "return the image instead of yielding it",
        )


def _verdict(
    judge: Judge,
    tally: Tally,
    schedule: Sequence[str] | None,
    random_seed: int | None,
    names: list[str],
    max_attempts: int,
    max_examples: int | None,
    seed: int | None,
    client: Client,
    replay: Callable[[Sequence[str], int], str],
    budget: Budget,
) -> ClientCheckFailed | None:
    __tracebackhide__ = True
    if True:
        try:
            if schedule is not None:
                found = judge(list(schedule), random_seed or 0)
            else:
                found = search(judge, tally, names, max_attempts, max_examples, seed, _digest(client, replay([], 0)))
        except OutOfTime:
            found = None
        if found is not None:
            # a run the watchdog stopped cost STALL real seconds, and one awaiting what never
            # comes REAL_BOUND: seen once, it is the verdict (each replay, shrink or flakiness
            # check would pay those seconds again); so is a failure found when the budget ran
            # out (it is reported as found)
            hung = found[2].hung or ""
            stalled = STALLED in hung or ENDLESS in hung
            try:
                if schedule is None and not stalled and judge(found[2].schedule, found[2].random_seed) is not None:
                    found = minimize(judge, found)
            except OutOfTime:
                pass
            name, message, run = found
            examples = tally.runs  # before the flakiness replays, which are not the search's
            again = lambda: judge(run.schedule, run.random_seed)  # noqa: E731
            try:
                replayed = "" if stalled or budget.ran_out else flakiness(again, lambda: tally.last, run)
            except OutOfTime:
                replayed = ""
            if budget.ran_out:
                replayed = (
                    f"the budget of {budget.seconds:g}s of real time ran out: this schedule is the smallest "
                    "found by then, not shrunk further or replayed"
                )
            replayed = "\n".join(note for note in (replayed, carried_over(run), stale_loop(run.error)) if note)
            return ClientCheckFailed(
                invariant=name,
                message=message,
                run=run,
                seed=seed,
                examples=examples,
                replay=replay(run.schedule, run.random_seed),
                note=replayed,
            )
        uncovered = tally.uncovered(replaying=schedule is not None)
        if budget.ran_out and not tally.runs:
            uncovered = f"no run finished within the budget of {budget.seconds:g}s of real time"
        if uncovered is not None and budget.ran_out:
            uncovered += f" ({budget.why(tally.outside)}; budget= gives it more)"
        if uncovered is not None:
            shown = tally.stopped[0] if tally.stopped else tally.happy or tally.last
            return ClientCheckFailed(
                invariant="coverage",
                message=uncovered,
                run=shown,
                seed=seed,
                examples=tally.runs,
                replay=replay(shown.schedule, shown.random_seed) if tally.stopped and shown else replay([], 0),
                note="its replay line, in a fresh process, may pass: the first call asks" if tally.stopped else "",
            )
    return None


def _invariants(selection: Sequence[str | Invariant] | None) -> list[tuple[str, Invariant]]:
    chosen: list[tuple[str, Invariant]] = []
    for item in selection if selection is not None else list(INVARIANTS):
        if isinstance(item, str):
            if item not in INVARIANTS:
                raise ValueError(unknown_name("invariant", item, sorted(INVARIANTS)))
            chosen.append((item, INVARIANTS[item]))
        else:
            chosen.append((getattr(item, "__name__", "custom"), item))
    return chosen


def _outside(run: Run, exchange: Exchange) -> str:
    """A note on a generation the client sent after waiting outside the virtual clock."""
    attempts = run.generations
    for index, real in run.outside_clock().items():
        if attempts[index] is exchange:
            return f" (after waiting {real:.2f}s of real time, outside the virtual clock)"
    return ""


def _error_line(error: BaseException) -> str:
    return f"raised {error_text(error)}"


def _name_of(function: Any) -> str:
    """The name a function is called by (a lambda or a partial has none that runs: say so)."""
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else f"<{type(function).__name__}>"


def _digest(client: Client, replay: str) -> bytes:
    """The example-database key: the client and everything that shapes its check."""
    name = f"{getattr(client, '__module__', '')}.{getattr(client, '__qualname__', repr(client))}"
    return hashlib.sha256(f"sfmock-check\0{name}\0{replay}".encode()).digest()


def _replay_line(
    client: Client,
    options: Options,
    chosen: list[tuple[str, Invariant]],
    settings: Settings | None,
    api_key: str,
    max_total_wait: float,
    hang_bound: float,
    budget: float = BUDGET,
) -> Callable[[Sequence[str], int], str]:
    """``check_client(...)`` with every option that shapes the run, for a schedule and seed."""
    # a custom invariant by the name it has in the caller's code, so the line runs as printed
    names = [repr(name) if INVARIANTS.get(name) is invariant else _name_of(invariant) for name, invariant in chosen]
    fixed = [f"request={options.request!r}", f"invariants=[{', '.join(names)}]"]
    optional = {
        "max_attempts": (options.max_attempts, 6),
        "min_attempts": (options.min_attempts, 3),
        "returns_image": (options.returns_image, True),
        "max_total_wait": (max_total_wait, 600.0),
        "hang_bound": (hang_bound, 600.0),
        "budget": (budget, BUDGET),
    }
    fixed += [f"{key}={value!r}" for key, (value, default) in optional.items() if value != default]
    if api_key != DEFAULT_KEY:
        fixed.append("api_key=...")
    if settings is not None:
        default = Settings()
        changed = {
            f: getattr(settings, f)
            for f in settings.__dataclass_fields__
            if getattr(settings, f) != getattr(default, f)
        }
        if changed:
            fixed.append(f"settings=Settings(**{changed!r})")
    name = _name_of(client)

    def line(schedule: Sequence[str], random_seed: int) -> str:
        return f"check_client({name}, schedule={list(schedule)!r}, random_seed={random_seed}, {', '.join(fixed)})"

    return line
