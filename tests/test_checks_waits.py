"""Blocking waits with a timeout follow the virtual clock (issue 23): a back-off made with
``Event.wait``, ``Condition.wait``, ``queue.get(timeout=)`` or ``Semaphore.acquire(timeout=)``
waits its seconds on the check's clock, and another thread of the client can still end it.
"""

from __future__ import annotations

import concurrent.futures
import queue
import select
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from catalogue.common import image_urls
from catalogue.httpx_clients import TIMEOUT, _retry_loop

from sfmock.checks import ClientContext, Run, check_client
from sfmock.testing import invariants
from sfmock.transports import Exchange

TRANSIENT = {429, 500, 502, 503, 504}


def _generate(ctx: ClientContext, pause: Callable[[float], None]) -> bytes:
    """One generation, retrying transient answers after ``pause(1.5 * 2**attempt)``."""
    http = ctx.http_client(timeout=60)
    for attempt in range(5):
        answer = http.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
        if answer.status_code in TRANSIENT and attempt < 4:
            pause(1.5 * 2**attempt)
            continue
        answer.raise_for_status()
        return http.get(answer.json()["images"][0]["url"]).raise_for_status().content
    raise RuntimeError("unreachable")


def _event(seconds: float) -> None:
    if threading.Event().wait(seconds):
        raise RuntimeError("stopped")


def _condition(seconds: float) -> None:
    condition = threading.Condition()
    with condition:
        if condition.wait(seconds):
            raise RuntimeError("notified by nobody")


def _wait_for(seconds: float) -> None:
    condition = threading.Condition()
    with condition:
        if condition.wait_for(lambda: False, seconds):
            raise RuntimeError("a predicate that never holds held")


def _queue(seconds: float) -> None:
    try:
        queue.Queue[str]().get(timeout=seconds)
    except queue.Empty:
        return
    raise RuntimeError("an empty queue gave an item")


def _semaphore(seconds: float) -> None:
    if threading.Semaphore(0).acquire(timeout=seconds):
        raise RuntimeError("a semaphore nobody released was acquired")


def _full_queue(seconds: float) -> None:
    full = queue.Queue[str](1)
    full.put("taken")
    try:
        full.put("another", timeout=seconds)
    except queue.Full:
        return
    raise RuntimeError("a full queue took an item")


def _barrier(seconds: float) -> None:
    try:
        threading.Barrier(2).wait(seconds)
    except threading.BrokenBarrierError:
        return
    raise RuntimeError("a barrier nobody else reached was passed")


def _future(seconds: float) -> None:
    try:
        concurrent.futures.Future[None]().result(timeout=seconds)
    except TimeoutError:
        return
    raise RuntimeError("a future nobody completed had a result")


def _futures_wait(seconds: float) -> None:
    if concurrent.futures.wait([concurrent.futures.Future[None]()], timeout=seconds).done:
        raise RuntimeError("a future nobody completed was done")


WAITS = {"Event.wait": _event, "Condition.wait": _condition, "Condition.wait_for": _wait_for}
WAITS |= {"Queue.get": _queue, "Queue.put": _full_queue, "Semaphore.acquire": _semaphore, "Barrier.wait": _barrier}
WAITS |= {"Future.result": _future, "futures.wait": _futures_wait}


def _waits_of(client: Callable[[ClientContext], Any], schedule: list[str]) -> list[float]:
    seen: list[list[float]] = []

    def record(run: Run) -> None:
        seen.append([round(wait, 6) for wait in run.waits()])

    check_client(client, schedule=schedule, invariants=[*_DEFAULT, record])
    return seen[-1]


_DEFAULT = ["retries", "backoff", "returns-image", "errors", "tolerant"]


@pytest.mark.parametrize("style", WAITS)
def test_a_back_off_made_with_a_blocking_wait_waits_on_the_virtual_clock(style: str) -> None:
    pause = WAITS[style]
    began = time.monotonic()
    # accused of "retried a 503 at once" while only time.sleep followed the clock
    assert _waits_of(lambda ctx: _generate(ctx, pause), ["503", "429", "503"]) == [1.5, 3.0, 6.0]
    assert time.monotonic() - began < 10.5  # the 10.5 s of back-off did not really pass


def test_a_worker_style_client_with_an_interruptible_back_off_passes_at_the_defaults() -> None:
    class Worker:
        def __init__(self, ctx: ClientContext) -> None:
            self.ctx = ctx
            self.stop = threading.Event()

        def backoff(self, seconds: float) -> None:
            if self.stop.wait(seconds):
                raise RuntimeError("stopped")

    def generate(ctx: ClientContext) -> bytes:
        """Correct: a daemon's worker, its back-off an Event.wait that a shutdown would end."""
        worker = Worker(ctx)
        try:
            return _generate(ctx, worker.backoff)
        except (httpx.TransportError, ValueError) as exc:
            raise RuntimeError("no image") from exc

    check_client(generate, seed=1, outcomes=["ok", "503", "429", "500", "400"], max_examples=20)


def test_a_thread_that_sets_the_event_ends_the_wait_before_its_timeout() -> None:
    def generate(ctx: ClientContext) -> bytes:
        """Correct: the generation runs on a thread; the caller waits for it with a timeout."""
        done = threading.Event()
        out: list[bytes] = []

        def work() -> None:
            out.append(_generate(ctx, _event))
            done.set()

        threading.Thread(target=work, daemon=True).start()
        began = time.monotonic()
        if not done.wait(300):
            raise TimeoutError("no image within 300 s")
        assert time.monotonic() - began < 300  # set by the worker, not timed out
        return out[0]

    assert _waits_of(generate, ["503", "503"]) == [1.5, 3.0]


def test_a_pool_worker_backs_off_on_the_virtual_clock_while_the_caller_waits_on_its_future() -> None:
    def generate(ctx: ClientContext) -> bytes:
        """Correct: the generation on a thread pool, its back-off a queue.get(timeout=)."""
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            return pool.submit(_generate, ctx, _queue).result(timeout=120)

    assert _waits_of(generate, ["503", "503", "429"]) == [1.5, 3.0, 6.0]


def test_of_two_threads_waiting_the_earlier_deadline_comes_first() -> None:
    def generate(ctx: ClientContext) -> bytes:
        """The worker's 5 s wait ends first and sets what the caller waits 10 s for."""
        ready = threading.Event()

        def worker() -> None:
            threading.Event().wait(5)
            ready.set()

        began = time.monotonic()
        threading.Thread(target=worker, daemon=True).start()
        if not ready.wait(10):
            raise TimeoutError("the worker's 5 s wait ended after the caller's 10 s one")
        assert abs(time.monotonic() - began - 5) < 0.01, time.monotonic() - began
        return _generate(ctx, _event)

    check_client(generate, schedule=[], invariants=["returns-image"])


def test_the_waits_are_real_again_after_the_check() -> None:
    original = threading.Condition.wait
    check_client(lambda ctx: _generate(ctx, _event), schedule=["503"], invariants=["backoff"])
    assert threading.Condition.wait is original
    began = time.monotonic()
    assert not threading.Event().wait(0.05)
    assert time.monotonic() - began >= 0.05


def _attempt(status: int, started: float, ended: float, real_started: float, real_ended: float) -> Exchange:
    return Exchange(
        method="POST",
        url="http://sfmock.test/v1/images/generations",
        path="/v1/images/generations",
        request_headers={},
        request_body=b"{}",
        status=status,
        headers={},
        body=b"{}",
        failure=None,
        fault=None,
        started=started,
        ended=ended,
        real_started=real_started,
        real_ended=real_ended,
    )


def _two_attempts(real_gap: float) -> Run:
    """A 503, then a retry with no virtual time between them and ``real_gap`` real seconds."""
    exchanges = (_attempt(503, 0.0, 1.0, 100.0, 100.01), _attempt(200, 1.0, 2.0, 100.01 + real_gap, 100.5 + real_gap))
    return Run(
        schedule=("503",), exchanges=exchanges, result=b"", error=None, api_key="k", max_attempts=6, min_attempts=1
    )


def test_a_wait_outside_the_virtual_clock_is_judged_by_the_real_time_it_took() -> None:
    # trio.sleep, select.select in C: the virtual gap is 0 but the client waited 0.9 s
    waited = _two_attempts(0.9)
    assert waited.waits() == [pytest.approx(0.9)]
    assert invariants.backoff(waited) is None
    # a real gap of a busy machine's scheduling is no wait: still at once
    at_once = _two_attempts(0.01)
    assert at_once.waits() == [0.0]
    assert invariants.backoff(at_once) == "retried a 503 at once, without backing off (attempt 2)"


def test_a_back_off_slept_in_c_code_is_not_called_at_once() -> None:
    def generate(ctx: ClientContext) -> bytes:
        """Correct: its back-off waits in select(), which the virtual clock does not reach."""
        return _generate(ctx, lambda seconds: select.select([], [], [], 0.3))

    seen: list[Run] = []
    check_client(generate, schedule=["503"], invariants=[*_DEFAULT, lambda run: seen.append(run)])
    assert seen[-1].waits()[0] >= 0.3  # the real wait (a virtual one of 0 before)


# --- a wait with no timeout on the client's own thread, for a thread that may die ---


def _download_in_a_thread(ctx: ClientContext, *, passes_errors: bool) -> bytes:
    """The catalogue's correct retry loop for the generation, then its image downloaded by a
    thread of its own while the caller waits on a queue with no timeout. ``passes_errors``:
    the thread puts its exception on the queue too (the caller raises it); else it dies with
    it, and the caller waits for a result that never comes (outsider19's f19)."""
    http = ctx.http_client(timeout=TIMEOUT)
    url = image_urls(_retry_loop(ctx, http)[0])[0]
    results: queue.Queue[Any] = queue.Queue()

    def download() -> None:
        try:
            results.put(http.get(url).raise_for_status().content)
        except Exception as exc:
            if not passes_errors:
                raise
            results.put(exc)

    threading.Thread(target=download, daemon=True).start()
    got = results.get()
    if isinstance(got, Exception):
        raise got
    return bytes(got)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread that dies
def test_a_caller_waiting_with_no_timeout_for_a_thread_that_died_would_hang_forever() -> None:
    # before: the run waited in real time until the check's budget ran out (60 s, as the
    # watchdog's bound), and a run cut by the budget is not judged: the client passed
    started = time.monotonic()
    with pytest.raises(AssertionError) as failed:
        check_client(lambda ctx: _download_in_a_thread(ctx, passes_errors=False), invariants=["timeouts"], seed=1)
    report = str(failed.value)
    assert "[timeouts]" in report and "never comes" in report, report
    assert time.monotonic() - started < 55, report  # found at the first such run, not at the budget's end


def test_a_caller_whose_thread_hands_back_its_error_passes() -> None:
    check_client(lambda ctx: _download_in_a_thread(ctx, passes_errors=True), invariants=["timeouts"], seed=1)
