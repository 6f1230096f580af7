"""What a client keeps from one run of a check to the next, in its process (outsider12):
a rate limiter's window, a cache of images. The runs of a check share the process, as the
calls of a real application do; the client's clock never goes back between them, and an
image it kept is not taken for a wrong one.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from sfmock import Settings
from sfmock.checks import ClientCheckFailed, ClientContext, check_client
from sfmock.testing.runclock import first_start

REQUEST = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42}
TRANSIENT = {429, 500, 502, 503, 504}


class _Window:
    """At most ``count`` requests in any ``seconds``, for the whole process (on ``clock``)."""

    def __init__(self, count: int, seconds: float, clock: str = "monotonic") -> None:
        # the clock looked up when read: a function kept as a value keeps real time (documented)
        self.count, self.seconds, self.clock = count, seconds, lambda: getattr(time, clock)()
        self.sent: collections.deque[float] = collections.deque()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                while self.sent and now - self.sent[0] >= self.seconds:
                    self.sent.popleft()
                if len(self.sent) < self.count:
                    self.sent.append(now)
                    return
                wait = self.seconds - (now - self.sent[0])
            time.sleep(wait)


def _limited(window: _Window, starts: list[float]) -> Callable[[ClientContext], bytes]:
    def generate(ctx: ClientContext) -> bytes:
        """A limiter the process shares (the lowest tier's IPM 2, say), in front of a jittered
        doubling back-off. Correct."""
        starts.append(window.clock())
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        with ctx.http_client(timeout=30) as http:
            for attempt in range(5):
                window.acquire()
                try:
                    answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    answer = None
                if answer is not None and (answer.status_code not in TRANSIENT or attempt == 4):
                    trace = answer.headers.get("x-siliconcloud-trace-id")
                    if answer.status_code != 200:
                        raise RuntimeError(f"HTTP {answer.status_code}, trace id {trace}: {answer.text[:200]}")
                    url = answer.json()["images"][0]["url"]
                    return http.get(url).raise_for_status().content
                time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
        raise AssertionError("unreachable")

    return generate


def test_the_clients_monotonic_clock_never_goes_back_between_runs() -> None:
    # each run began at the same monotonic time again: a limiter's window kept the last run's
    # requests "in the future", and its waits (32.5 s, then 27.5 s) were called a back-off that shrank
    starts: list[float] = []
    window = _Window(2, 60.0)
    report = check_client(_limited(window, starts), request=REQUEST, max_examples=40, seed=1)
    assert report.examples == len(starts) >= 20
    # each run begins a day after the last began (to a float's step at Unix-time magnitudes)
    assert all(later - earlier >= 86_400 - 1e-3 for earlier, later in itertools.pairwise(starts))


def test_a_window_on_the_wall_clock_kept_across_runs_sees_the_runs_a_day_apart() -> None:
    # outsider13 R7 (the limits package, "30/hour" on time.time): each run began at the same fake
    # time, the earlier runs filled the hour, and the wait for a free slot was called a back-off
    # ("waited 7221s in all between attempts")
    starts: list[float] = []
    window = _Window(30, 3600.0, clock="time")
    report = check_client(_limited(window, starts), request=REQUEST, max_examples=40, seed=1)
    assert len(starts) >= report.examples >= 20
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # a day on each time, and at the same time of day: a daily quota meets every run alike
    assert all(abs(gap - 86_400) < 1e-3 for gap in gaps), gaps


_DOWNLOADED: dict[str, bytes] = {}


def _download_cached_by_url(ctx: ClientContext) -> bytes:
    """Generates every time and keeps each download by its URL for the whole process (as
    ``functools.lru_cache`` on ``download(url)`` or ``requests_cache`` do): each generation
    has a URL of its own on the service, so a hit is the same object. Correct."""
    with ctx.http_client(timeout=30) as http:
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        for attempt in range(5):
            try:
                answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
                continue
            if answer.status_code not in TRANSIENT or attempt == 4:
                break
            time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
        url = answer.raise_for_status().json()["images"][0]["url"]
        if url not in _DOWNLOADED:
            for attempt in range(5):
                try:
                    image = http.get(url)
                    if image.status_code not in TRANSIENT or attempt == 4:
                        _DOWNLOADED[url] = image.raise_for_status().content
                        break
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
        return _DOWNLOADED[url]


def test_a_download_cache_keyed_by_url_is_not_accused() -> None:
    # outsider14 W1: every run of a check was given the same image URL (the same object name
    # and X-Amz-Date), so a cache keyed by URL hit in the second run for an image it had
    # really downloaded in the first: "[downloads] returned without downloading the image"
    _DOWNLOADED.clear()
    report = check_client(_download_cached_by_url, request=REQUEST, outcomes=["ok"], max_examples=10, seed=1)
    assert report.examples == len(_DOWNLOADED) >= 5  # each run's generation a URL of its own


def test_a_retirement_at_a_set_time_moves_with_the_runs() -> None:
    # the runs are days apart: a model retired at a set time an hour after the fake's start is
    # live for the first hour of every run, not retired from the second run on
    statuses: list[int] = []

    def generate(ctx: ClientContext) -> bytes:
        with ctx.http_client(timeout=30) as http:
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            statuses.append(answer.status_code)
            return http.get(answer.raise_for_status().json()["images"][0]["url"]).raise_for_status().content

    start = first_start()  # the check's first run begins there
    retired = Settings(retire=[{"model": REQUEST["model"], "at": start + 3600}])
    report = check_client(generate, request=REQUEST, outcomes=["ok"], settings=retired, max_examples=8, seed=1)
    assert report.examples == len(statuses) >= 3
    assert set(statuses) == {200}


_CACHE: dict[str, bytes] = {}


def _cached(ctx: ClientContext) -> bytes:
    """Keeps each image by its request (model, prompt, seed: the same image every time), for the
    whole process. Correct."""
    key = json.dumps(ctx.request, sort_keys=True)
    if key not in _CACHE:
        with ctx.http_client(timeout=30) as http:
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            for attempt in range(5):
                answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
                if answer.status_code not in TRANSIENT or attempt == 4:
                    break
                time.sleep(2.0**attempt)
            url = answer.raise_for_status().json()["images"][0]["url"]
            _CACHE[key] = http.get(url).raise_for_status().content
    return _CACHE[key]


def test_an_image_a_client_kept_from_an_earlier_run_is_the_image() -> None:
    # "returned 5596 bytes that are not the image ... (an error swallowed?)": a cache hit
    _CACHE.clear()
    report = check_client(_cached, request=REQUEST, max_examples=20, seed=1)
    assert 0 < report.reached < report.examples
    assert f"{report.examples - report.reached} runs of {report.examples} returned without a request" in report.note
    # a later check of the same process: the image was not served by this check, which says why it cannot judge it
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_cached, request=REQUEST, max_examples=5, seed=1)
    assert failed.value.invariant == "returns-image"
    assert "not one this check served: kept from an earlier check or process (a cache?)" in str(failed.value)


_ASKED: list[bool] = []


def test_a_run_without_a_request_that_returns_other_bytes_is_still_caught() -> None:
    def placeholder(ctx: ClientContext) -> bytes:
        """Returns bytes without asking once it has asked: no image at all."""
        if _ASKED:
            return b"not an image"
        _ASKED.append(True)
        return _cached(ctx)

    _CACHE.clear()
    _ASKED.clear()
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(placeholder, request=REQUEST, max_examples=10, seed=1, invariants=["returns-image"])
    assert "not the image" in str(failed.value)


def test_a_client_that_stops_asking_after_its_first_call_is_not_passed() -> None:
    # outsider13: a breaker that never closes, a module-level aiohttp session tied to the first
    # call's event loop: every call after the first raised without a request, and the check passed
    calls: list[int] = []

    def breaker_never_closes(ctx: ClientContext) -> bytes:
        """Refuses every call after its first. Flaw: it never generates again."""
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("circuit open: not calling the image API")
        return _cached_fresh(ctx)

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(breaker_never_closes, request=REQUEST, max_examples=10, seed=1)
    assert failed.value.invariant == "coverage"
    message = str(failed.value)
    assert "runs of" in message and "made no request to the fake, after earlier runs had" in message
    assert "the first raised RuntimeError" in message and "circuit open" in message
    assert "its replay line, in a fresh process, may pass" in message


def _cached_fresh(ctx: ClientContext) -> bytes:
    _CACHE.clear()
    return _cached(ctx)


@pytest.mark.parametrize("clock", ["time", "monotonic", "perf_counter"])
def test_a_spacing_stamped_before_the_check_on_any_clock_is_not_accused(clock: str) -> None:
    # outsider15 W2: a stamp taken on time.time at import lay 11 months ahead of the fake's clock
    # (2026-01-01), and the spacing waited for it ("[coverage] no run finished within the budget");
    # W1: on time.perf_counter (real) a poll with time.sleep (virtual) ran the clock on by
    # thousands of seconds while real time reached the half second ("[backoff] waited 1102s")
    read = getattr(time, clock)
    last = [read()]

    def space() -> None:
        while getattr(time, clock)() - last[0] < 0.5:
            time.sleep(0.01)
        last[0] = getattr(time, clock)()

    def generate(ctx: ClientContext) -> bytes:
        """The lowest tier's IPM 2 kept as half a second between requests, with a jittered
        doubling back-off. Correct."""
        with ctx.http_client(timeout=30) as http:
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            for attempt in range(5):
                space()
                try:
                    answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
                    continue
                if answer.status_code not in TRANSIENT or attempt == 4:
                    break
                time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
            url = answer.raise_for_status().json()["images"][0]["url"]
            space()
            return http.get(url).raise_for_status().content

    report = check_client(generate, request=REQUEST, max_examples=30, seed=1, budget=30)
    assert report.examples >= 20 and not report.note


def test_asyncio_timers_still_come_due_when_the_monotonic_clock_has_run_on_for_years() -> None:
    # runs a day apart, checks one after another: the virtual monotonic clock reaches months and
    # years; at 3e7 s asyncio's 1 ns resolution is below a float's step, and a timer at the loop's
    # own time never came due (a wait_for over a hang span select(0) until the budget ran out)
    from sfmock.testing import runclock

    runclock.reached(0.0, time.monotonic() + 40 * 365 * 86_400)

    async def gives_up_on_a_hang(ctx: ClientContext) -> bytes:
        """Gives up on a hang with its own 30 s wait_for."""
        async with ctx.async_http_client(timeout=None) as http:
            await asyncio.sleep(1)
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            answer = await asyncio.wait_for(
                http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth), 30
            )
            return answer.content

    with pytest.raises(ClientCheckFailed) as failed:  # it does not retry a hang: caught, in good time
        check_client(gives_up_on_a_hang, request=REQUEST, schedule=["timeout"], invariants=["retries"], budget=20)
    assert failed.value.invariant == "retries"
