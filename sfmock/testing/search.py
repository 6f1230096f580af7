"""The search of one client check: Hypothesis draws (schedule, random seed) cases, the
first that breaks an invariant is shrunk (:func:`search`, then :func:`minimize`), and a
:class:`Tally` keeps what every run saw for the verdict that nothing was tested."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import Phase, example, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter

from sfmock.keepalive import CLOSED
from sfmock.testing.images import whole_images
from sfmock.testing.invariants import Run
from sfmock.testing.strategies import first_schedules, schedules
from sfmock.testing.watchdog import OutOfTime
from sfmock.wording import plural

__all__ = ["Judge", "Tally", "error_text", "minimize", "search", "stale_loop"]

Judge = Callable[[Sequence[str], int], "tuple[str, str, Run] | None"]


class _Violation(Exception):
    def __init__(self, found: tuple[str, str, Run]) -> None:
        super().__init__(found[1])
        self.found = found


class Tally:
    """What the runs of one check saw, for the verdict that nothing was tested."""

    def __init__(self) -> None:
        self.runs = self.reached = self.succeeded = 0
        self.outcomes: set[str] = set()
        self.failures: list[tuple[str, str, Run]] = []  # every break seen, even once
        self.errors: dict[str, int] = {}
        self.statuses: set[str] = set()
        self.elsewhere: dict[str, None] = {}  # requests other than a generation's or a download (a few)
        self.last: Run | None = None
        self.happy: Run | None = None  # the run whose schedule was all success
        self.outside = 0.0  # real seconds waited outside the virtual clock between attempts
        self.kept = 0  # runs that returned without a request, after runs that made some (a cache)
        self.stopped: list[Run] = []  # runs that raised or hung without a request, after runs that made some

    def add(self, run: Run) -> None:
        self.runs += 1
        self.last = run
        if not run.schedule and self.happy is None:
            self.happy = run
        if run.exchanges:
            self.reached += 1
            self.outside += sum(run.outside_clock().values())
        elif self.reached and (run.error is not None or run.hung is not None):
            self.stopped.append(run)
        elif self.reached:
            self.kept += 1
        for index in range(len(run.generations)):
            self.outcomes.add(run.outcome(index))
        self.statuses.update(e.failure or str(e.status) for e in run.generations)
        if not self.statuses and len(self.elsewhere) < 3:  # what it asked instead (a wrong path, say)
            known = {id(e) for e in (*run.generations, *run.downloads)}
            for e in run.exchanges:
                if id(e) not in known:
                    self.elsewhere.setdefault(f"{e.method} {e.path} -> {e.failure or e.status}", None)
        gens_ok = any(g.status == 200 and g.failure is None for g in run.generations)
        if gens_ok and whole_images(run.downloads):
            self.succeeded += 1
        if run.error is not None:
            line = error_text(run.error)
            self.errors[line] = self.errors.get(line, 0) + 1

    def kept_note(self) -> str:
        """What a pass says of runs that returned without a request, after runs that made some."""
        if not self.kept:
            return ""
        return (
            f"{plural(self.kept, 'run')} of {self.runs} returned without a request to the fake (the client "
            "answered from what it kept of an earlier run: a cache?): those runs tested nothing"
        )

    def uncovered(self, *, replaying: bool = False) -> str | None:
        seen = "; ".join(f"{line} ({count}x)" for line, count in list(self.errors.items())[:3])
        if not self.reached:
            return (
                f"the client never reached the fake in {plural(self.runs, 'run')}"
                + (f": it raised {seen}" if seen else "")
                + ". It must use ctx.http_client(), ctx.async_http_client(), ctx.requests_session() "
                "or ctx.live_base_url; a connection of its own goes elsewhere"
            )
        if self.stopped:
            first = self.stopped[0]
            what = f"raised {error_text(first.error)}" if first.error is not None else "hung"
            start = (
                f"{plural(len(self.stopped), 'run')} of {self.runs} made no request to the fake, after earlier runs "
                f"had: the first {what}."
            )
            if stale_loop(first.error):
                return f"{start} {stale_loop(first.error)}"
            return (
                f"{start} Something the client keeps between calls stops it (a session tied to an "
                "event loop that has closed, a circuit breaker that stays open): each run is one call of the "
                "client, and a call that does not ask cannot generate; a breaker timed on a clock the check does "
                "not move (a timer function kept as a value, C code) should be given to each run afresh"
            )
        if not self.succeeded and not replaying and not self.statuses:
            asked = "; ".join(self.elsewhere) or "none"
            return (
                f"the client never sent a generation request (POST .../v1/images/generations) in "
                f"{plural(self.runs, 'run')}; what it asked instead: {asked}" + (f"; it raised {seen}" if seen else "")
            )
        if not self.succeeded and not replaying:
            answers = ", ".join(sorted(self.statuses))
            return (
                f"the client never succeeded in {plural(self.runs, 'run')} (no generation answered 200 whose image it "
                f"downloaded); generation answers seen: {answers}" + (f"; it raised {seen}" if seen else "")
            )
        return None


def stale_loop(error: BaseException | None) -> str:
    """Why ``error`` came, where it is what asyncio raises on a connection of a loop that is
    gone (httpx's pool, aiohttp's session), however the client wrapped it; else nothing."""
    seen = 0
    while error is not None and seen < 10:
        text = str(error)
        if isinstance(error, RuntimeError) and (text == CLOSED or text.endswith("is bound to a different event loop")):
            return (
                "An HTTP client kept between calls (an httpx.AsyncClient, an AsyncOpenAI) keeps its "
                "connections on the event loop of the call that opened them, and asyncio.run closed that loop: "
                "make the client inside each asyncio.run (async with ctx.async_http_client()), or run every call "
                "on one loop (an asyncio.Runner kept, a loop in a thread)"
            )
        error, seen = error.__cause__ or error.__context__, seen + 1
    return ""


def search(
    judge: Callable[[Sequence[str], int], tuple[str, str, Run] | None],
    tally: Tally,
    names: list[str],
    max_attempts: int,
    max_examples: int | None,
    seed: int | None,
    database_key: bytes,
) -> tuple[str, str, Run] | None:
    """Hypothesis looks for a breaking (schedule, random seed) and shrinks it."""
    __tracebackhide__ = True
    strategy = st.tuples(schedules(names, max_attempts=max_attempts), st.integers(0, 2**32 - 1))
    current = hypothesis_settings()  # the profile in force
    config = hypothesis_settings(
        current,
        max_examples=max_examples if max_examples is not None else current.max_examples,
        deadline=None,  # a run's real duration says nothing: time is virtual
        report_multiple_bugs=False,
        phases=[phase for phase in current.phases if phase is not Phase.explain],
        print_blob=False,
    )

    def attempt(case: tuple[list[str], int]) -> None:
        found = judge(*case)
        if found is not None:
            raise _Violation(found)

    for case in reversed(first_schedules(names, max_attempts)):
        attempt = example((case, 0))(attempt)
    test = config(given(strategy)(attempt))
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    test._hypothesis_internal_database_key = database_key  # type: ignore[attr-defined]
    try:
        # Hypothesis's own lines ("You can reproduce this failure by adding @seed(...)", said
        # when the budget cuts a search short) are not for the user: the check prints its
        # verdict and its own replay line
        with with_reporter(lambda _: None):
            test()
    except _Violation as violation:
        return violation.found
    except (Flaky, OutOfTime):
        # a break the search saw did not come back when Hypothesis replayed it, or the budget
        # ran out while it shrank one: the smallest seen stays found
        if not tally.failures:
            return None
        return min(tally.failures, key=lambda f: (len(f[2].schedule), f[2].schedule, f[2].random_seed))
    return None


def minimize(judge: Judge, found: tuple[str, str, Run]) -> tuple[str, str, Run]:
    """Drop outcomes one by one while the same invariant still breaks: the smallest schedule."""
    improved = True
    while improved:
        improved = False
        schedule = found[2].schedule
        for index in range(len(schedule)):
            candidate = schedule[:index] + schedule[index + 1 :]
            try:
                again = judge(candidate, found[2].random_seed)
            except OutOfTime:
                return found  # the smallest by the time the budget ran out
            if again is not None and again[0] == found[0]:
                found, improved = again, True
                break
    return found


def error_text(error: BaseException) -> str:
    """``Type: message`` (just ``Type`` when the message is empty, as a bare TimeoutError's is)."""
    message = str(error)[:160]
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
