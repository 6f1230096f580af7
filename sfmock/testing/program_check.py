"""Checking a program as a client: search schedules, shrink a failure, say how to replay it.

:func:`check_program` runs the program (:mod:`sfmock.testing.programs`) first under the
schedule where every answer succeeds, then under each outcome alone and a run of transient
failures longer than ``max_attempts`` (:func:`~sfmock.testing.strategies.first_schedules`),
then under schedules Hypothesis generates, ``jobs`` runs at a time (each on a fake of its
own), until ``budget`` seconds have passed or ``max_examples`` generated schedules have been tried.
A drawn schedule that is the same as one already run up to what that run's program asked
for (its generations and its downloads) is not run again: the program met the same answers,
so it gets that run's verdict, as Hypothesis treats a test that draws the same choices.
The first schedule that breaks a check is shrunk to the smallest that still does, replayed
once more to see whether it fails again, and reported with its transcript, the program's
output and the command line that replays it.

Whether the program is judged on ``faithful-request`` is decided by one more run
(:func:`~sfmock.testing.program_rules.takes_request`): a program whose request does not
follow ``$SFMOCK_REQUEST`` chooses its own, and is not judged on it (unless ``--request``
asks for it).
"""

from __future__ import annotations

import dataclasses
import random
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from hypothesis import find
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from sfmock.testing.arguments import check_arguments, chosen_names
from sfmock.testing.budget import BUDGET
from sfmock.testing.evidence import GENERATE
from sfmock.testing.invariants import AT_ONCE
from sfmock.testing.program_rules import ORDER, check_names, judge, one_line, takes_request
from sfmock.testing.programs import STALLED, ProgramError, ProgramRun, ProgramSetup, replay_command, run_program
from sfmock.testing.strategies import DOWNLOAD_FAULTS, OUTCOMES, drawn_outcomes, first_schedules, schedules
from sfmock.wording import plural

__all__ = ["ProgramFailure", "ProgramReport", "check_program"]

Verdict = tuple[str, str] | None


@dataclass(frozen=True, kw_only=True)
class ProgramFailure:
    """The smallest failing run found, and whether a replay of it failed again."""

    check: str
    message: str
    schedule: tuple[str, ...]
    result: ProgramRun
    reproduced: bool | None  # None: not replayed


@dataclass(frozen=True, kw_only=True)
class ProgramReport:
    """The verdict of :func:`check_program`: what ran, for how long, and the failure if any."""

    setup: ProgramSetup
    checks: tuple[str, ...]
    runs: int
    elapsed: float
    outcomes: dict[str, int]  # outcome -> generation attempts that met it
    failure: ProgramFailure | None
    replay: str
    not_applied: Mapping[str, str] = field(default_factory=dict)  # check -> why it was not applied
    unmet: tuple[str, ...] = ()  # outcomes to draw that no run met (the budget ran out first)
    recalled: int = 0  # drawn schedules answered by an earlier run (the same as far as the program asked)
    notes: tuple[str, ...] = ()  # verdicts not judged, and why

    @property
    def passed(self) -> bool:
        return self.failure is None

    def text(self) -> str:
        """The report a human reads (the API key masked)."""
        seen = ", ".join(f"{name} {count}" for name, count in self.outcomes.items()) or "none"
        summary = f"{plural(self.runs, 'run')} in {self.elapsed:.1f}s, seed {self.setup.seed}"
        if self.recalled:
            summary += (
                f"; {plural(self.recalled, 'more schedule')} drawn, each the same as a run's "
                "as far as its program asked (not run again)"
            )
        notes = "".join(f"not applied: {name} ({why})\n" for name, why in self.not_applied.items())
        notes += "".join(f"{note}\n" for note in self.notes)
        if self.unmet:
            notes += f"outcomes no run met (the budget or max_examples ran out first): {', '.join(self.unmet)}\n"
        if self.failure is None:
            return (
                f"client check passed: {summary}\n"
                f"checks: {', '.join(self.checks)}\n{notes}"
                f"outcomes exercised (generation attempts): {seen}\n"
            )
        failure = self.failure
        run = failure.result.run
        origin = run.exchanges[0].started if run.exchanges else 0.0
        lines = [f"  {n}. {e.describe(origin)}" for n, e in enumerate(run.exchanges, 1)] or ["  (no request)"]
        replayed = {None: "", True: "; a replay failed again", False: "; FLAKY: a replay of it passed"}
        status = failure.result.status
        ended = "was killed after the run's time limit" if status is None else f"exited with status {status}"
        text = (
            f"client check failed: [{failure.check}] {failure.message}\n"
            f"smallest schedule: {list(failure.schedule)!r} ({summary}){replayed[failure.reproduced]}\n"
            f"transcript:\n" + "\n".join(lines) + "\n"
            f"the program {ended} after {failure.result.duration:.1f}s\n"
            f"stdout:\n{_indent(failure.result.stdout)}\n"
            f"stderr:\n{_indent(failure.result.stderr)}\n"
            f"{notes}outcomes exercised (generation attempts): {seen}\n"
            f"replay: {self.replay}\n"
        )
        return text.replace(self.setup.api_key, "<the API key>")


def check_program(
    setup: ProgramSetup,
    *,
    checks: Sequence[str] | None = None,
    outcomes: Sequence[str] | None = None,
    schedule: Sequence[str] | None = None,
    budget: float = BUDGET,
    jobs: int = 2,
    max_examples: int = 100,
    progress: Callable[[str], None] | None = None,
) -> ProgramReport:
    """Check the program of ``setup`` under generated schedules (or one ``schedule``).

    ``outcomes``: those the schedules may use (by default the ones the fake, as
    ``setup.settings`` configure it, can give: :func:`~sfmock.testing.strategies.drawn_outcomes`).
    Raises :class:`~sfmock.testing.programs.ProgramError` when it cannot be tested: it does not
    start, or it makes no request when every answer succeeds; and
    :class:`~sfmock.testing.arguments.ArgumentError` for an argument no check can run with.
    """
    check_arguments(
        request=setup.request,
        outcomes=outcomes,
        schedule=schedule,
        min_attempts=setup.min_attempts,
        max_attempts=setup.max_attempts,
        strict=setup.settings.strict,
    )
    if checks is not None:
        chosen_names("checks", checks, ORDER, "check")
    names = check_names(checks)
    if schedule is not None and list(schedule) == [STALLED]:  # asked for: the stalled download is held
        setup = dataclasses.replace(setup, hold_stalled=True)
    drawn = list(outcomes) if outcomes is not None else drawn_outcomes(setup.settings)
    strategy = schedules(drawn)
    say = progress or (lambda line: None)
    say(f"checking {shlex.join(setup.command)} (budget {budget:g}s, {jobs} jobs, seed {setup.seed})")
    not_applied: dict[str, str] = {}
    if "faithful-request" in names:  # decided by a run of its own, not one of the schedules
        applies, why = takes_request(setup)
        say(f"faithful-request {'applies' if applies else 'is not applied'}: {why}")
        if not applies:
            not_applied["faithful-request"] = why
            names = tuple(name for name in names if name != "faithful-request")
    search = _Search(setup, names, budget, max_examples, say)
    # the first run's generations take their modelled latency in real time: the one run that
    # can catch a read timeout shorter than a generation (the others answer at once, to be quick)
    first = search.evaluate(list(schedule) if schedule is not None else [], phase="first", latency=True)
    assert first is not None  # the first run always runs
    if schedule is None and not first[1].run.exchanges:
        ended = (
            f"it was killed at --timeout {setup.timeout:g}s before it sent one: is the time limit too short?"
            if first[1].status is None
            else f"it exited {first[1].status}; does it read SILICONFLOW_BASE_URL or OPENAI_BASE_URL?"
        )
        raise ProgramError(
            f"nothing was tested: the program made no request to the fake when every answer succeeds ({ended})\n"
            f"stdout:\n{_indent(first[1].stdout)}\nstderr:\n{_indent(first[1].stderr)}"
        )
    found: list[tuple[str, ...]] = [first[1].schedule] if first[0] is not None else []
    if schedule is None and not found:
        found = search.each(first_schedules(drawn, setup.max_attempts)[1:], jobs)
        if found:
            found = [search.minimize(min(found, key=_order))]
    if schedule is None and not found:
        search.parallel(jobs, lambda n: search.worker(strategy, n, found))
    failure, notes = None, []
    if found:
        smallest = min((_key(s) for s in found), key=_order)
        cached = search.cache[_key(smallest)]
        assert cached[0] is not None
        reproduced, at_once = None, _at_once(cached[0])
        if schedule is None:
            say(f"replaying the smallest schedule {list(smallest)!r}")
            soon = _threshold(cached[0])  # give or take a busy machine's process start
            again = run_program(setup, smallest, latency=smallest == _key(first[1].schedule), immediate=soon)
            reproduced = judge(again, names) is not None
        if reproduced is False and at_once:
            # a program's waits cannot be drawn under another random state, but its replay draws them
            # again: retries within 50 ms that it did not make again were a jittered back-off's draws
            why = "its replay backed off: the short waits were a jittered back-off's draws"
            notes.append(f"not judged: [backoff] {cached[0][1]}, in schedule {list(smallest)!r}; {why}")
        else:
            failure = ProgramFailure(
                check=cached[0][0], message=cached[0][1], schedule=smallest, result=cached[1], reproduced=reproduced
            )
    met = set(search.outcomes)
    return ProgramReport(
        setup=setup,
        checks=names,
        runs=search.runs,
        recalled=search.recalled,
        elapsed=time.monotonic() - search.started,
        outcomes=dict(search.outcomes.most_common()),
        failure=failure,
        replay=replay_command(setup, failure.schedule if failure else (), checks),
        not_applied=not_applied,
        notes=tuple(notes),
        unmet=() if failure is not None or schedule is not None else tuple(o for o in drawn if o not in met),
    )


class _Search:
    """Runs shared by the search threads: a cache by schedule, the budget, and progress."""

    def __init__(
        self, setup: ProgramSetup, names: tuple[str, ...], budget: float, limit: int, say: Callable[[str], None]
    ) -> None:
        self.setup = setup
        self.names = names
        self.started = time.monotonic()
        self.deadline = self.started + budget
        self.limit = limit
        self.say = say
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.running: set[tuple[str, ...]] = set()
        self.cache: dict[tuple[str, ...], tuple[Verdict, ProgramRun]] = {}
        # per run: how many generations and downloads its program made, and the steps they met
        self.asked: list[tuple[int, int, _Steps, int, tuple[Verdict, ProgramRun]]] = []
        self.recalled = 0
        self.runs = 0
        self.generated = 0  # schedules the random search drew and tried (max_examples bounds them)
        self.outcomes: Counter[str] = Counter()
        self.found = threading.Event()
        self.error: ProgramError | None = None

    def evaluate(
        self, schedule: Sequence[str], *, phase: str, latency: bool = False, immediate: str = "immediate"
    ) -> tuple[Verdict, ProgramRun] | None:
        """Run (or recall) one schedule; ``None`` when the budget or the example limit says stop.

        ``phase``: ``first`` (the schedules tried before the search), ``search`` (one it drew:
        no more once a failure is found or ``max_examples`` have run) or ``shrink``;
        ``immediate``: the :data:`~sfmock.testing.programs.TIMINGS` entry under which a retry
        counts as "at once" (:func:`_threshold`).
        """
        key = _key(schedule)
        with self.lock:
            while key in self.running:  # another thread runs it now: wait for its verdict
                self.done.wait()
            if key in self.cache:
                return self.cache[key]
            if time.monotonic() > self.deadline or self.error is not None:
                return None
            if phase == "search" and (self.found.is_set() or self.generated >= self.limit):
                return None
            self.generated += phase == "search"  # one of max_examples, run or not
            # a run that asked nothing (a program keeping state between runs) answers for no schedule
            same = next((run for run in self.asked if run[0] and _steps(key, run[0], run[1]) == run[2]), None)
            if same is not None:
                generations, _, _, number, done = same
                self.cache[key] = done
                self.recalled += 1
                self.outcomes.update(key[i] if i < len(key) else "ok" for i in range(generations))
                elapsed = time.monotonic() - self.started
                self.say(f"[{elapsed:5.1f}s] {list(key)!r} is run {number} as far as the program asked: not run again")
                return done
            self.runs += 1
            number = self.runs
            self.running.add(key)
        try:
            result = run_program(self.setup, schedule, latency=latency, immediate=immediate)
            verdict = judge(result, self.names)
        except BaseException:
            with self.lock:
                self.running.discard(key)
                self.done.notify_all()
            raise
        with self.lock:
            self.cache[key] = (verdict, result)
            asked = _asked(result)
            self.asked.append((*asked, _steps(key, *asked), number, (verdict, result)))
            self.outcomes.update(result.run.outcome(i) for i in range(len(result.run.generations)))
            self.running.discard(key)
            self.done.notify_all()
        elapsed = time.monotonic() - self.started
        told = "passed" if verdict is None else f"FAILED [{verdict[0]}] {one_line(verdict[1])}"
        self.say(
            f"[{elapsed:5.1f}s] run {number}: {list(key)!r} exit {result.status} in {result.duration:.1f}s: {told}"
        )
        if verdict is not None and phase == "search" and not self.found.is_set():
            self.found.set()
            self.say("found a failure: shrinking it to the smallest schedule that still fails")
        return verdict, result

    def parallel(self, jobs: int, work: Callable[[int], None]) -> None:
        """``work(n)`` on ``jobs`` threads; a program that could not run ends the check."""
        threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.error is not None:
            raise self.error

    def each(self, cases: Sequence[Sequence[str]], jobs: int) -> list[tuple[str, ...]]:
        """Run ``cases`` in order, ``jobs`` at a time, until one fails; the failing ones."""
        waiting = [list(case) for case in cases]
        failed: list[tuple[str, ...]] = []

        def work(_: int) -> None:
            while True:
                with self.lock:
                    if not waiting or failed:
                        return
                    case = waiting.pop(0)
                try:
                    outcome = self.evaluate(case, phase="first")
                except ProgramError as exc:
                    with self.lock:
                        self.error = self.error or exc
                    return
                if outcome is None:
                    return
                if outcome[0] is not None:
                    with self.lock:
                        failed.append(_key(case))

        self.parallel(jobs, work)
        if failed:
            self.say("found a failure: shrinking it to the smallest schedule that still fails")
        return failed

    def minimize(self, schedule: tuple[str, ...]) -> tuple[str, ...]:
        """Drop outcomes one by one while the same check still breaks (within the budget)."""
        verdict = self.cache[schedule][0]
        assert verdict is not None
        improved = True
        while improved:
            improved = False
            for index in range(len(schedule)):
                candidate = schedule[:index] + schedule[index + 1 :]
                outcome = self.evaluate(candidate, phase="shrink", immediate=_threshold(verdict))
                if outcome is None:
                    return schedule
                if outcome[0] is not None and outcome[0][0] == verdict[0]:
                    schedule, improved = _key(candidate), True
                    break
        return schedule

    def worker(self, strategy: st.SearchStrategy[list[str]], number: int, found: list[tuple[str, ...]]) -> None:
        """One search thread: Hypothesis finds and shrinks a failing schedule."""
        mine: list[tuple[str, ...]] = []

        def fails(candidate: list[str]) -> bool:
            try:
                phase, soon = ("shrink", _threshold(self.cache[mine[0]][0])) if mine else ("search", "immediate")
                outcome = self.evaluate(candidate, phase=phase, immediate=soon)
            except ProgramError as exc:
                with self.lock:
                    self.error = self.error or exc
                raise _StopSearch() from None
            if outcome is None:  # the budget is spent, or another thread found a failure first
                raise _StopSearch()
            if outcome[0] is None:
                return False
            mine.append(_key(candidate))
            return True

        config = hypothesis_settings(max_examples=max(1, self.limit), database=None, deadline=None)
        try:
            smallest = find(strategy, fails, settings=config, random=random.Random(f"{self.setup.seed}:{number}"))
        except NoSuchExample:
            return
        except _StopSearch:  # shrinking cut short: the smallest failure seen so far
            if not mine:
                return
            best: tuple[str, ...] = min(mine, key=_order)
            smallest = list(best)
        with self.lock:
            found.append(tuple(smallest))


def _at_once(verdict: Verdict) -> bool:
    return verdict is not None and verdict[0] == "backoff" and verdict[1].startswith(AT_ONCE)


def _threshold(verdict: Verdict) -> str:
    """The :data:`~sfmock.testing.programs.TIMINGS` entry under which a retry counts as "at
    once" in the runs that shrink or replay a failure found with ``verdict``: for a retry at
    once, found where the run retried within 50 ms more than once, the replay's wider one (a
    busy machine's process start may slow one retry of a smaller schedule past 50 ms; a
    shrunk schedule of a jittered back-off must draw twice under it again, and its replay a
    third time)."""
    return "replay_immediate" if _at_once(verdict) else "immediate"


class _StopSearch(BaseException):
    """Ends a Hypothesis search at once (a BaseException: Hypothesis does not treat it as a failure)."""


def _order(schedule: Sequence[str]) -> tuple[int, list[int]]:
    """Shorter first, then simpler outcomes first: the order Hypothesis shrinks toward."""
    return len(schedule), [list(OUTCOMES).index(o) for o in schedule]


_Steps = tuple[tuple[str | None, ...], tuple[str | None, ...]]


def _asked(result: ProgramRun) -> tuple[int, int]:
    """How many generations and image downloads the program made in a run: the steps of its
    schedule's two sequences it met (:func:`~sfmock.testing.harness.schedule_scenario`)."""
    exchanges = result.run.exchanges
    generations = sum(e.method == "POST" and e.path == GENERATE for e in exchanges)
    return generations, sum(e.method == "GET" and fnmatchcase(e.path, "*/outputs/*") for e in exchanges)


def _steps(schedule: Sequence[str], generations: int, downloads: int) -> _Steps:
    """The steps of ``schedule`` that ``generations`` generations and ``downloads`` downloads
    meet (``None``: answered as usual), as the scenario it becomes gives them out."""
    made = [None if o == "ok" or o in DOWNLOAD_FAULTS else o for o in schedule] + [None] * generations
    loaded = [o for o in schedule if o in DOWNLOAD_FAULTS] + [None] * downloads
    return tuple(made[:generations]), tuple(loaded[:downloads])


def _key(schedule: Sequence[str]) -> tuple[str, ...]:
    """Trailing "ok"s change nothing (after the schedule every answer succeeds): one run for all."""
    key = list(schedule)
    while key and key[-1] == "ok":
        key.pop()
    return tuple(key)


def _indent(text: str) -> str:
    lines = text.rstrip("\n").splitlines()[-40:]
    return "\n".join(f"  | {line}" for line in lines) if lines else "  (nothing)"
