"""The order the suite runs in: its longest tests first, so that under ``pytest -n auto``
none of them starts last and leaves one worker running it alone while the others wait.

pytest-xdist hands the tests out in collection order, in chunks: its first chunk, a
quarter of a worker's share, would give every long test to the first worker. Here
(:func:`make_scheduler`) the long ones at the front go out one at a time, each to the
worker that is free, and the rest in xdist's chunks, which keep a module's tests (and its
module-scoped fixtures) together; a chunk never ends inside a module of :data:`WHOLE`. The
order changes when and where a test runs, never what it checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

__all__ = ["LONGEST", "WHOLE", "is_long", "kept_whole", "longest_first", "make_scheduler"]

# node id prefixes, longest first: measured with --durations on a fresh clone under
# `pytest -n auto` (seconds of one test, on a busy 2-core machine); tests whose module
# fixture is long (tests/test_entry_points.py) stay with their module
LONGEST: tuple[str, ...] = (
    "tests/hostile/test_hostile_big_bodies_load.py::test_a_load_of_1_mb_data_url_bodies",  # 118 (of 20,000; 8,000 now)
    "tests/test_programs.py::test_a_correct_client_passes_at_the_defaults",  # 64, 60 (sfmock check's budget)
    "tests/catalogue/test_program_catalogue.py::test_a_correct_program_passes_at_the_defaults",  # 63, 62
    "tests/test_load.py::test_load",  # 58
    "tests/test_fuzz_cli.py::test_schemathesis_cli_finds_nothing",  # 50, 39
    "tests/catalogue/test_catalogue.py::test_a_correct_client_passes_every_invariant[aiohttp_live-",  # 44
    "tests/test_checks_async.py::test_an_async_client_that_awaits_nothing_forever_ends_with_a_verdict",  # 30
    "tests/catalogue/test_catalogue.py::test_a_correct_client_passes_every_invariant[urllib3_pool_retry-",  # 26
    "tests/catalogue/test_catalogue.py::test_a_correct_client_passes_every_invariant[urllib_request_loop-",  # 25
    "tests/test_plugin.py::test_plugin_is_registered_and_the_marker_documented",  # 25
    "tests/catalogue/test_catalogue.py::test_a_flawed_client_is_caught_by_its_invariant_with_a_shrunk_schedule_"
    "that_replays[urllib_request_no_timeout-",  # 24
    "tests/hostile/test_hostile_every_route.py::test_arbitrary_json_at_every_route_then_every_read",  # 22, 13
    "tests/test_plugin.py::test_every_case_in_one_run",  # 22
    "tests/fidelity/test_fidelity_lifecycle.py::test_the_marker_retires_models",  # 20
    "tests/test_marker.py::test_every_config_key_works_through_the_marker",  # 17
    "tests/test_programs.py::test_a_flawed_client_is_caught_by_the_named_check",  # 16 .. 3
    "tests/test_readme.py::test_pytest_examples_pass",  # 15
    "tests/test_programs.py::test_the_cli_exits_0_when_the_client_passes",  # 14
    "tests/test_readme.py::test_shell_examples_run_as_written",  # 12
    "tests/test_sessions.py::test_parallel_tests_with_conflicting_scenarios_share_one_fake",  # 11
    "tests/catalogue/test_program_catalogue.py::test_a_flawed_program_is_judged_on_its_real_flaw",  # 10 .. 5
    "tests/test_imaging.py::test_the_fast_path_agrees_with_the_strict_decoder",  # 9
    # the other tests of modules that mostly wait in real time (program checks, their
    # budgets, hung downloads): 3 to 12 s each; in xdist's chunks one worker ran all of
    # test_programs' at the end, alone, for 30 s of a run of 2026-12-07
    "tests/test_programs.py::",
    "tests/catalogue/test_program_catalogue.py::",
    "tests/test_checks_download_stall.py::",
    "tests/test_checks_budget.py::",
)


# modules whose module-scoped fixture is long (servers, a browser): xdist's chunks would cut
# them between workers, and each worker would set the fixture up again (test_entry_points'
# ten seconds of CPU, twice in a run of 2026-12-07); their tests go to one worker together
WHOLE: tuple[str, ...] = (
    "tests/test_entry_points.py",  # sfmock serve for each group and entry point, a proxy, a pytest run
    "tests/test_page.py",  # Chromium
    "tests/test_portkey_gateway.py",  # the gateway's Node server
)


def rank(nodeid: str) -> int:
    """Where the test stands in :data:`LONGEST`; its length for one not named there."""
    return next((n for n, prefix in enumerate(LONGEST) if nodeid.startswith(prefix)), len(LONGEST))


def is_long(nodeid: str) -> bool:
    return rank(nodeid) < len(LONGEST)


def longest_first(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """``items`` with those :data:`LONGEST` names moved to the front, in its order; the
    rest keep theirs (pytest's, which groups a module's tests for its fixtures)."""
    return sorted(items, key=lambda item: rank(item.nodeid))  # stable: equal ranks keep their order


def kept_whole(pending: Sequence[str], count: int) -> int:
    """``count`` (tests to send from the head of ``pending``), raised so that the chunk does
    not end inside a module of :data:`WHOLE`."""
    count = min(count, len(pending))
    while 0 < count < len(pending) and _module(pending[count]) == _module(pending[count - 1]) in WHOLE:
        count += 1
    return count


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling, but the long tests at the front are handed out one at a time
    (a worker holds at most two waiting); ``None`` (xdist's own) for another ``--dist`` or
    when ``--maxschedchunk`` is given."""
    if config.getvalue("dist") != "load" or config.getoption("maxschedchunk") is not None:
        return None
    from xdist.scheduler import LoadScheduling

    class LongOnesOneAtATime(LoadScheduling):  # type: ignore[misc]
        spreading = False

        def schedule(self) -> None:
            if self.collection is not None:
                super().schedule()
                return
            # the first distribution: xdist gives each worker two tests in a row (here the two
            # longest to one worker); one each, then one more each, instead
            self.maxschedchunk, self.spreading = 1, True
            try:
                super().schedule()
            finally:
                self.spreading = False
            for node in self.nodes:
                if self.pending and len(self.node2pending[node]) < 2:
                    self._send_tests(node, 1)

        def _send_tests(self, node: Any, num: int) -> None:
            pending = [self.collection[index] for index in self.pending]
            super()._send_tests(node, kept_whole(pending, 1 if self.spreading else num))

        def check_schedule(self, node: Any, duration: float = 0) -> None:
            if self.maxschedchunk == 1 and self.pending and not is_long(self.collection[self.pending[0]]):
                self.maxschedchunk = len(self.collection)  # the long ones are out: xdist's chunks
            super().check_schedule(node, duration)

    return LongOnesOneAtATime(config, log)
