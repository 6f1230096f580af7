"""A client check's budget of real time (issue 23): a client that waits where the virtual
clock does not reach (``select`` in C) is checked for at most ``budget`` real seconds, and
the check ends with a verdict that says so: the failure found by then, or a pass whose
note names the schedules run, the wait that cost the time and the outcomes never met.
"""

from __future__ import annotations

import select
import sys
import types
from collections.abc import Callable

import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, check_client
from sfmock.testing.arguments import ArgumentError
from sfmock.testing.budget import BUDGET
from sfmock.testing.watchdog import OutOfTime

TRANSIENT = {429, 500, 502, 503, 504}


def _pause(seconds: float) -> None:
    select.select([], [], [], seconds)  # in C: the virtual clock does not reach it


PAUSE_LINE = "select.select([], [], [], seconds)"


def _client(pause: float, *, first: float = 0.0, retry: bool = True) -> Callable[[ClientContext], bytes]:
    def generate(ctx: ClientContext) -> bytes:
        """Backs off ``pause`` real seconds in select (after ``first`` before the first attempt)."""
        if first:
            _pause(first)
        http, key = ctx.http_client(timeout=60), {"Authorization": f"Bearer {ctx.api_key}"}
        for attempt in range(5):
            try:
                answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=key)
            except httpx.TransportError:
                _pause(pause)
                continue
            if retry and answer.status_code in TRANSIENT and attempt < 4:
                _pause(pause)
                continue
            answer.raise_for_status()
            try:
                url = answer.json()["images"][0]["url"]
            except ValueError:
                _pause(pause)
                continue
            return http.get(url).raise_for_status().content
        raise RuntimeError("no answer after 5 attempts")

    return generate


def test_a_pass_cut_short_by_the_budget_says_so_and_names_the_wait() -> None:
    said: list[str] = []
    report = check_client(_client(0.3), seed=1, budget=2.0, progress=said.append)
    assert report.note and report.note == said[-1]
    assert "passed, but the budget of 2s of real time ran out after" in report.note
    assert f"{report.examples} schedule" in report.note
    assert "outside the virtual clock" in report.note and PAUSE_LINE in report.note
    # outsider20: a time.sleep kept in a partial made at import was "virtual" by the old wording
    assert (
        "a time.sleep taken before the check (a functools.partial, a default argument) keeps real time" in report.note
    )
    # it stopped at the budget, long before the 100 schedules of the search
    assert report.examples < 100 and report.elapsed < 2.0 + 3.0  # cut within a moment of the budget
    assert sum("slow in real time" in line for line in said) == 1  # said once
    assert all(outcome in report.note for outcome in report.unmet)


def test_a_run_under_way_when_the_budget_runs_out_is_cut_short_and_left_out() -> None:
    said: list[str] = []
    # every retry waits 30 real seconds: the first run that retries is cut at the budget
    report = check_client(_client(30.0), seed=1, budget=3.0, progress=said.append)
    assert report.examples >= 1 and report.elapsed < 30  # the 30 s wait did not run out
    assert "budget of 3s of real time ran out" in report.note and PAUSE_LINE in report.note
    assert "503" in report.unmet  # never met: the run that met it was cut, not judged


def test_no_run_within_the_budget_is_a_clear_failure() -> None:
    with pytest.raises(ClientCheckFailed) as failure:
        check_client(_client(0.1, first=30.0), seed=1, budget=1.0, progress=None)
    assert failure.value.invariant == "coverage"
    assert "no run finished within the budget of 1s of real time" in str(failure.value)
    assert "outside the virtual clock" in str(failure.value) and PAUSE_LINE in str(failure.value)


def test_a_failure_found_before_the_budget_ran_out_is_the_verdict() -> None:
    with pytest.raises(ClientCheckFailed) as failure:
        # gives up on a transient answer; every run waits a real second first: the failure is
        # found by the second run (['503']), and its replays run out of the budget
        check_client(_client(0.1, first=1.0, retry=False), seed=1, budget=3.5, progress=None)
    assert failure.value.invariant == "retries" and failure.value.schedule == ["503"]
    assert "budget of 3.5s of real time ran out: this schedule is the smallest found by then" in str(failure.value)
    assert "budget=3.5" in failure.value.replay  # the replay runs with the same budget


@pytest.mark.parametrize("budget", [0, -1, float("inf"), "60"])
def test_a_budget_no_check_can_run_with_is_refused(budget: object) -> None:
    with pytest.raises(ArgumentError, match=r"argument budget: expected a finite number of seconds, more than 0"):
        check_client(_client(0.1), budget=budget)  # type: ignore[arg-type]


def test_the_budget_is_the_one_of_sfmock_check() -> None:
    import inspect

    from sfmock.testing.program_check import check_program

    assert inspect.signature(check_client).parameters["budget"].default == BUDGET == 60.0
    assert inspect.signature(check_program).parameters["budget"].default == BUDGET


def test_the_watchdogs_stop_landing_in_a_callback_is_not_an_unraisable_error() -> None:
    # a fresh clone: the budget's OutOfTime, raised by the watchdog's signal while a WeakSet's
    # weakref callback ran, went to sys.unraisablehook, and pytest failed the test on it
    from sfmock.testing.watchdog import Watchdog

    seen: list[object] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    watchdog = Watchdog(lambda: None)
    try:
        with watchdog.watching():
            for error in (OutOfTime("budget"), ValueError("the client's own")):
                sys.unraisablehook(types.SimpleNamespace(exc_value=error))
    finally:
        watchdog.close()
        sys.unraisablehook = previous
    assert [type(u.exc_value) for u in seen] == [ValueError]  # type: ignore[attr-defined]
