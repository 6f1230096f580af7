"""How a check's clocks run from one run to the next and from one check to the next: each run
a day after the last began, each check a day or more after the real time and after the
process's earlier checks, and never a jump smaller than a float's step.
"""

from __future__ import annotations

import math
import time

__all__ = ["BETWEEN_RUNS", "MIN_STEP", "first_monotonic", "first_start", "min_step", "reached"]

# seconds from one run of a check to the next: each run begins a day after the last began (or
# as many whole days as it ran), at the same time of day; what a client keeps across runs in
# one process (a rate limiter's window on time.time or time.monotonic, a cache keyed by image
# URL, a cache's expiry) sees a day pass, as between two calls of a program run a day apart,
# not the clock going back to where the last run began
BETWEEN_RUNS = 86_400.0

MIN_STEP = 1e-6  # the smallest jump of the clock an async loop makes

# the latest wall-clock and monotonic times any check of this process has shown its client:
# the next check begins after them, so neither clock ever goes back for a client of the process
_reached = [0.0, 0.0]


# how far ahead of the real clocks the checks of a process may take theirs before the next
# check starts over from the real time (floats keep their microseconds up to year 2200 or so)
MAX_AHEAD = 50 * 365 * BETWEEN_RUNS


def _ahead(real: float, reached: float) -> float:
    return reached if reached - real < MAX_AHEAD else real


def first_start() -> float:
    """When a new check's fake clock (``time.time``) starts: the first midnight (UTC) at least
    :data:`BETWEEN_RUNS` after the real time and after what earlier checks of this process
    showed: what a client stamped before (at import, in an earlier check) lies a day or more
    in its past, and every check's runs begin at the same time of day."""
    now = time.time()
    after = max(now, _ahead(now, _reached[0])) + BETWEEN_RUNS
    return (math.floor(after / BETWEEN_RUNS) + 1) * BETWEEN_RUNS


def min_step(now: float) -> float:
    """The smallest jump of the clock from ``now`` that moves it: :data:`MIN_STEP`, or a few
    of a float's steps where they are larger."""
    return max(MIN_STEP, 4 * math.ulp(now))


def first_monotonic() -> float:
    """Where a new check's virtual monotonic clock starts: a day after the real one, and after
    what earlier checks of this process showed."""
    real = time.monotonic()
    return max(real, _ahead(real, _reached[1])) + BETWEEN_RUNS


def reached(wall: float, monotonic: float) -> None:
    """A run of a check showed its client these times: the next check begins after them."""
    _reached[0] = max(_reached[0], wall)
    _reached[1] = max(_reached[1], monotonic)
