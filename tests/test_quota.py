"""Sliding-window rate limits as a pure function of usage and time."""

from __future__ import annotations

import math

import pytest

from sfmock.service.quota import METRICS, Limits, RateLimiter, Usage

T0 = 1_000_000.0


def test_presets_and_overlay() -> None:
    assert Limits.from_config("realistic") == Limits(ipm=2, ipd=400)
    assert Limits.from_config({"preset": "realistic", "ipm": 5, "rpm": 10}) == Limits(ipm=5, ipd=400, rpm=10)
    assert Limits.from_config("unlimited") == Limits()
    assert Limits(rpm=1).over(Limits(rpm=5, ipm=2)) == Limits(rpm=1, ipm=2)
    assert list(Limits(tpm=3, rpm=1).items()) == [("rpm", 1), ("tpm", 3)]  # checking order


def fill(limiter: RateLimiter, limits: Limits, usage: Usage, now: float, times: int) -> None:
    for _ in range(times):
        assert limiter.check("a", "m", limits, usage, now) is None
        limiter.record("a", "m", limits, usage, now)


@pytest.mark.parametrize(("metric", "unit", "span"), [(m, u, s) for m, (u, s) in METRICS.items()])
def test_each_metric_fills_and_lifts_after_its_window(metric: str, unit: str, span: int) -> None:
    limiter = RateLimiter()
    limits = Limits(**{metric: 3})
    usage = Usage(**{unit: 1})
    fill(limiter, limits, usage, T0, 3)
    refused = limiter.check("a", "m", limits, usage, T0 + span - 1)
    assert refused is not None and refused.metric == metric and refused.limit == 3
    assert refused.retry_after == pytest.approx(1)
    assert limiter.check("a", "m", limits, usage, T0 + span) is None


def test_window_slides_rather_than_resetting() -> None:
    limiter, limits, usage = RateLimiter(), Limits(rpm=2), Usage()
    fill(limiter, limits, usage, T0, 1)
    fill(limiter, limits, usage, T0 + 30, 1)
    assert limiter.check("a", "m", limits, usage, T0 + 59) is not None
    assert limiter.check("a", "m", limits, usage, T0 + 60) is None  # the first one left the window
    fill(limiter, limits, usage, T0 + 60, 1)
    refused = limiter.check("a", "m", limits, usage, T0 + 61)
    assert refused is not None and refused.retry_after == pytest.approx(29)


def test_images_count_by_amount() -> None:
    limiter, limits = RateLimiter(), Limits(ipm=4)
    fill(limiter, limits, Usage(images=3), T0, 1)
    assert limiter.check("a", "m", limits, Usage(images=1), T0) is None
    assert limiter.check("a", "m", limits, Usage(images=2), T0) is not None


def test_a_request_larger_than_the_limit_never_passes() -> None:
    refused = RateLimiter().check("a", "m", Limits(ipm=2), Usage(images=4), T0)
    assert refused is not None and math.isinf(refused.retry_after)


def test_first_limit_reached_is_reported() -> None:
    limiter, limits = RateLimiter(), Limits(rpm=10, ipm=2)
    fill(limiter, limits, Usage(images=2), T0, 1)
    refused = limiter.check("a", "m", limits, Usage(images=1), T0)
    assert refused is not None and refused.metric == "ipm"


def test_accounts_and_models_are_counted_apart() -> None:
    limiter, limits, usage = RateLimiter(), Limits(rpm=1), Usage()
    limiter.record("a", "m", limits, usage, T0)
    assert limiter.check("a", "m", limits, usage, T0) is not None
    assert limiter.check("b", "m", limits, usage, T0) is None
    assert limiter.check("a", "other", limits, usage, T0) is None


def test_check_alone_counts_nothing() -> None:
    limiter, limits, usage = RateLimiter(), Limits(rpm=1), Usage()
    for _ in range(5):
        assert limiter.check("a", "m", limits, usage, T0) is None


def test_state_and_reset() -> None:
    limiter, limits = RateLimiter(), Limits(ipm=5, rpd=100)
    limiter.record("a", "m", limits, Usage(images=2), T0)
    state = limiter.state("a", "m", limits, T0 + 10)
    assert (state["ipm"].limit, state["ipm"].remaining, state["ipm"].reset) == (5, 3, 50)
    assert state["rpd"].remaining == 99
    limiter.reset()
    assert limiter.state("a", "m", limits, T0 + 10)["ipm"].remaining == 5


def test_same_instant_entries_are_merged() -> None:
    limiter, limits = RateLimiter(), Limits(rpm=10_000)
    fill(limiter, limits, Usage(), T0, 1000)
    assert len(limiter.windows._windows["a"]["m|rpm"].times) == 1
