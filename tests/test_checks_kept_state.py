"""What a client keeps from one run of a check to the next, in its process (outsider12):
a rate limiter's window, a cache of images. The runs of a check share the process, as the
calls of a real application do; the client's clock never goes back between them, and an
image it kept is not taken for a wrong one.
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, check_client

REQUEST = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42}
TRANSIENT = {429, 500, 502, 503, 504}


class _Window:
    """At most ``count`` requests in any ``seconds``, for the whole process (time.monotonic)."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count, self.seconds = count, seconds
        self.sent: collections.deque[float] = collections.deque()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                while self.sent and now - self.sent[0] >= self.seconds:
                    self.sent.popleft()
                if len(self.sent) < self.count:
                    self.sent.append(now)
                    return
                wait = self.seconds - (now - self.sent[0])
            time.sleep(wait)


def _limited(window: _Window, starts: list[float]) -> Callable[[ClientContext], bytes]:
    def generate(ctx: ClientContext) -> bytes:
        """The lowest tier's IPM 2 kept by a limiter the process shares, in front of a jittered
        doubling back-off. Correct."""
        starts.append(time.monotonic())
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
    assert all(later - earlier >= 86_400 for earlier, later in itertools.pairwise(starts))


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
