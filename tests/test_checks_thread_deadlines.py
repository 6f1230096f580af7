"""A client's deadline on a thread fires inside an answer's latency (issue 23).

A request made on one thread and waited for on another with a timeout
(``Future.result(timeout=)``, ``queue.get(timeout=)``, ``asyncio.wait_for`` around
``asyncio.to_thread``) times out when the answer takes longer than that timeout, as it
would on a network; ``timeouts`` then names the deadline. The request the client gave up
on is finished and recorded in its own run, never in a later one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import select
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, Run, check_client

REQUEST = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42}
TRANSIENT = {429, 500, 502, 503, 504}


def _post(ctx: ClientContext, http: httpx.Client) -> httpx.Response:
    auth = {"Authorization": f"Bearer {ctx.api_key}"}
    return http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)


def _with_future(timeout: float) -> Callable[[ClientContext], bytes]:
    def generate(ctx: ClientContext) -> bytes:
        """Posts on a pool thread and waits ``timeout`` seconds for it; retries transient answers."""
        http = ctx.http_client(timeout=60)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            for attempt in range(4):
                answer = pool.submit(_post, ctx, http).result(timeout=timeout)
                if answer.status_code in TRANSIENT and attempt < 3:
                    ctx.sleep(2.0 * 2**attempt)
                    continue
                url = answer.raise_for_status().json()["images"][0]["url"]
                return http.get(url).raise_for_status().content
        raise RuntimeError("unreachable")

    return generate


def _with_queue(ctx: ClientContext) -> bytes:
    """Posts on a thread of its own that puts the answer in a queue; waits 1 s for it."""
    http = ctx.http_client(timeout=60)
    answers: queue.Queue[httpx.Response] = queue.Queue()
    threading.Thread(target=lambda: answers.put(_post(ctx, http)), daemon=True).start()
    url = answers.get(timeout=1.0).raise_for_status().json()["images"][0]["url"]
    return http.get(url).raise_for_status().content


def _with_event(ctx: ClientContext) -> bytes:
    """Posts on a thread of its own that sets an event when answered; waits 1 s for it."""
    http = ctx.http_client(timeout=60)
    answered, answers = threading.Event(), []
    threading.Thread(target=lambda: (answers.append(_post(ctx, http)), answered.set()), daemon=True).start()
    if not answered.wait(1.0):
        raise TimeoutError("no answer within 1 s")
    url = answers[0].raise_for_status().json()["images"][0]["url"]
    return http.get(url).raise_for_status().content


async def _with_to_thread(ctx: ClientContext) -> bytes:
    """Runs a blocking post on a worker thread and gives it 1 s (asyncio.wait_for)."""
    http = ctx.http_client(timeout=60)
    answer = await asyncio.wait_for(asyncio.to_thread(_post, ctx, http), 1.0)
    url = answer.raise_for_status().json()["images"][0]["url"]
    return (await asyncio.to_thread(http.get, url)).raise_for_status().content


def _runs(into: list[Run]) -> Callable[[Run], None]:
    return into.append


@pytest.mark.parametrize(
    "client",
    [_with_future(1.0), _with_queue, _with_event, _with_to_thread],
    ids=["Future.result(timeout=1.0)", "queue.get(timeout=1.0)", "Event.wait(1.0)", "wait_for(to_thread, 1.0)"],
)
def test_a_thread_deadline_shorter_than_the_answer_fires_and_is_caught_by_timeouts(client: Any) -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(client, request=REQUEST, schedule=[])  # a normal answer; every invariant
    assert failed.value.invariant == "timeouts", failed.value
    assert "stopped waiting for it after 1.0s" in failed.value.problem
    assert "shorter than a generation takes" in failed.value.problem


def test_a_searched_check_finds_the_thread_deadline_and_replays_it() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_with_future(1.0), request=REQUEST, seed=1, max_examples=8)
    assert failed.value.invariant == "timeouts", failed.value
    assert "stopped waiting for it after 1.0s" in failed.value.problem
    assert "flaky" not in str(failed.value)
    assert failed.value.schedule == []  # the smallest schedule: a normal answer


def test_a_thread_deadline_longer_than_the_answer_passes() -> None:
    runs: list[Run] = []
    check_client(_with_future(5.0), request=REQUEST, seed=1, max_examples=12, invariants=["timeouts", _runs(runs)])
    answered = [g for run in runs for g in run.generations if g.failure is None and b'"inference"' in g.body]
    assert answered and all(g.ended - g.started > 1.0 for g in answered)  # the latency passed on the clock
    assert all(g.deadline is None for run in runs for g in run.generations)


def test_a_request_given_up_on_is_in_its_own_runs_transcript() -> None:
    """The abandoned request is answered on a thread nobody waits for (to_thread's pool is
    not joined): it is recorded in the run that made it, never in the next."""
    runs: list[Run] = []

    async def impatient_then_patient(ctx: ClientContext) -> bytes:
        """Gives the first try 1 s, the second 30 s."""
        http = ctx.http_client(timeout=60)
        try:
            answer = await asyncio.wait_for(asyncio.to_thread(_post, ctx, http), 1.0)
        except TimeoutError:
            answer = await asyncio.wait_for(asyncio.to_thread(_post, ctx, http), 30)
        url = answer.raise_for_status().json()["images"][0]["url"]
        return (await asyncio.to_thread(http.get, url)).raise_for_status().content

    for _ in range(5):
        check_client(impatient_then_patient, request=REQUEST, schedule=[], invariants=["returns-image", _runs(runs)])
    for run in runs:
        first, second = run.generations
        assert first.deadline is not None and first.deadline - first.started == pytest.approx(1.0)
        assert first.status == 200 and first.ended - first.started > 1.0  # answered, in its own time
        # the fake answers one request at a time: the second is answered once the first is
        assert second.deadline is None and second.started == first.ended
        assert [d.status for d in run.downloads] == [200]


# -- what the report says a client gave up after ----------------------------------------


async def _retry_within(ctx: ClientContext, budget: float, per_attempt: float | None) -> bytes:
    """Retries transient answers after 2 s, 4 s...; the whole within ``budget`` seconds,
    each attempt within ``per_attempt`` (None: no limit of its own)."""
    async with ctx.async_http_client(timeout=None) as http, asyncio.timeout(budget):
        for attempt in range(5):
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            post = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            answer = await asyncio.wait_for(post, per_attempt)
            if answer.status_code in TRANSIENT and attempt < 4:
                await asyncio.sleep(2.0 * 2**attempt)
                continue
            url = answer.raise_for_status().json()["images"][0]["url"]
            return (await http.get(url)).raise_for_status().content
    raise RuntimeError("unreachable")


def test_a_client_that_gives_up_on_its_own_budget_after_a_502_is_told_so() -> None:
    async def generate(ctx: ClientContext) -> bytes:
        """A 3 s budget for the whole: it runs out in the back-off after the second 502."""
        return await _retry_within(ctx, 3.0, None)

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(generate, request=REQUEST, schedule=["502", "502"], invariants=["retries", "errors"])
    assert failed.value.invariant == "retries"
    assert failed.value.problem == (
        "gave up after its own timeout (TimeoutError) following a transient 502 on attempt 2 "
        "(expected at least 3 attempts)"
    )
    # the TimeoutError is its own deadline's, not its report of the 502
    check_client(generate, request=REQUEST, schedule=["502", "502"], invariants=["errors"])


def test_a_client_whose_last_attempt_ended_on_its_own_deadline_is_told_so() -> None:
    async def generate(ctx: ClientContext) -> bytes:
        """Each attempt within 1 s: the second, a normal answer of about 1.9 s, is cut."""
        return await _retry_within(ctx, 60.0, 1.0)

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(generate, request=REQUEST, schedule=["502"], invariants=["retries"])
    assert failed.value.problem == (
        "gave up after its own timeout (it stopped waiting after 1.0s) on attempt 2 (expected at least 3 attempts)"
    )


def test_another_threads_wait_timing_out_inside_the_latency_is_not_the_clients_deadline() -> None:
    def generate(ctx: ClientContext) -> bytes:
        """Waits 5 s for the answer while a heartbeat thread wakes every 0.5 s; uses the answer,
        then fails on a step of its own (an error, not a deadline)."""
        http = ctx.http_client(timeout=60)
        done = threading.Event()
        beats: list[int] = []

        def heartbeat() -> None:
            while not done.wait(0.5):
                beats.append(1)

        threading.Thread(target=heartbeat, daemon=True).start()
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                answer = pool.submit(_post, ctx, http).result(timeout=5.0)
            url = answer.raise_for_status().json()["images"][0]["url"]
            http.get(url).raise_for_status()
            raise RuntimeError("could not store the image")
        finally:
            done.set()

    runs: list[Run] = []
    check_client(generate, request=REQUEST, schedule=[], invariants=["timeouts", _runs(runs)])
    generation = runs[0].generations[0]
    assert generation.deadline is not None  # the heartbeat's waits timed out inside the latency
    assert runs[0].error is not None and runs[0].downloads


# -- time.sleep on one thread while another's request is answered (outsider9) -------------


def _careful_work(ctx: ClientContext) -> bytes:
    """Generates with retries of transient answers (backing off), then downloads."""
    http = ctx.http_client(timeout=60)
    for attempt in range(4):
        answer = _post(ctx, http)
        if answer.status_code in TRANSIENT and attempt < 3:
            time.sleep(2.0 * 2**attempt)
            continue
        url = answer.raise_for_status().json()["images"][0]["url"]
        return http.get(url).raise_for_status().content
    raise RuntimeError("unreachable")


def _polling(ctx: ClientContext) -> bytes:
    """Works on a pool thread; the caller polls every 0.1 s and gives up after 300 s."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        work = pool.submit(_careful_work, ctx)
        began = time.monotonic()
        while not work.done():
            if time.monotonic() - began > 300:
                raise TimeoutError("image generation took more than 300 s")
            time.sleep(0.1)
        return work.result()


def _with_heartbeat(ctx: ClientContext) -> bytes:
    """Beats every 0.1 s on a thread of its own while it works; the beat stopped and joined."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            time.sleep(0.1)

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        return _careful_work(ctx)
    finally:
        stop.set()
        beating.join()


@pytest.mark.parametrize("work", [_polling, _with_heartbeat], ids=["polling", "heartbeat"])
def test_a_sleep_loop_on_another_thread_does_not_run_the_clock_ahead_of_a_request(work: Any) -> None:
    # the sleeps of a loop wait on the clock with the request's latency, the earliest first:
    # as on a network, the whole call takes seconds, not the minutes the loop's sleeps add up to
    spent: list[float] = []

    def timed(ctx: ClientContext) -> bytes:
        """The client, its time on the check's clock noted."""
        began = time.monotonic()
        try:
            return work(ctx)  # type: ignore[no-any-return]
        finally:
            spent.append(time.monotonic() - began)

    for schedule in ([], ["503"], ["503", "503"]):
        spent.clear()
        check_client(timed, schedule=schedule, random_seed=0, invariants=["backoff", "downloads", "tolerant"])
        waits = sum(2.0 * 2**n for n in range(len(schedule)))  # its back-off: 2 s, then 4 s
        # the back-off, and each answer's latency (a few seconds at most), nothing more
        assert waits < spent[0] < waits + 10 * (len(schedule) + 1), (schedule, spent)


# -- a thread that starts the next one (outsider12) ------------------------------------


class _LateTimer(threading.Timer):
    """A ``threading.Timer`` whose thread a busy machine runs 0.1 s after it was started."""

    def _bootstrap(self) -> None:  # the new thread's first step, before it has an id
        select.select([], [], [], 0.1)  # real time: as the machine's scheduler makes it wait
        super()._bootstrap()  # type: ignore[misc]


def _timer_chain(ctx: ClientContext) -> bytes:
    """Each retry on a Timer 1, 2, 4, 8 s after the last answer; the caller waits up to 300 s
    for the chain's last answer. Correct: the chain waits 15 s at most."""
    http = ctx.http_client(timeout=30)
    done, answers = threading.Event(), []

    def attempt(n: int) -> None:
        answer = _post(ctx, http)
        if answer.status_code == 200 or n == 4:
            answers.append(answer)
            done.set()
        else:
            _LateTimer(2.0**n, attempt, args=(n + 1,)).start()

    attempt(0)
    if not done.wait(timeout=300):
        raise TimeoutError("no answer within 300 s")
    url = answers[0].raise_for_status().json()["images"][0]["url"]
    return http.get(url).raise_for_status().content


def test_a_thread_started_and_not_yet_running_holds_the_clock() -> None:
    # the caller's 300 s deadline fired while the next Timer's thread was started but not yet
    # run (it has no id until then): it was taken for a thread that is not there
    runs: list[Run] = []
    check_client(_timer_chain, request=REQUEST, schedule=["503", "503", "503"], invariants=["errors", _runs(runs)])
    starts = [g.started - runs[0].generations[0].started for g in runs[0].generations]
    assert starts == pytest.approx([0.0, 1.0, 3.0, 7.0], abs=0.01)


_POOL = concurrent.futures.ThreadPoolExecutor(2)


def test_a_deadline_that_makes_a_worker_generate_twice_is_named_in_the_retry_verdict() -> None:
    # outsider20: the worker downloaded too, so this read only "asked again after a successful answer"
    def work(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=30)
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
        answer.raise_for_status()
        return http.get(answer.json()["images"][0]["url"]).content

    def impatient(ctx: ClientContext) -> bytes:
        for attempt in range(4):
            try:
                return _POOL.submit(work, ctx).result(timeout=1.0)
            except concurrent.futures.TimeoutError:
                time.sleep(2**attempt)
        raise RuntimeError("gave up")

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(impatient, schedule=[], random_seed=0)
    problem = failed.value.problem
    assert failed.value.invariant == "retries" and "asked again after a successful answer" in problem
    assert "stopped waiting for it after 1.0s" in problem and "shorter than a generation takes" in problem


def test_a_worker_thread_left_waiting_forever_by_its_callers_deadline_is_caught_by_timeouts() -> None:
    # outsider22: func_timeout's join(30) gave up on a worker whose request had no read timeout;
    # the verdict blamed retries for what the checker's own stop of that thread caused
    def joined(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=None)
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        for attempt in range(4):
            got: list[httpx.Response] = []

            def post(into: list[httpx.Response] = got) -> None:
                into.append(http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth))

            worker = threading.Thread(target=post)
            worker.start()
            worker.join(30)
            if got and got[0].status_code == 200:
                return http.get(got[0].json()["images"][0]["url"], timeout=30).content
            time.sleep(2**attempt)
        raise RuntimeError("gave up")

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(joined, schedule=["timeout"], random_seed=0)
    problem = failed.value.problem
    assert failed.value.invariant == "timeouts"
    assert "request 1 (POST generations) got no answer and had no read timeout" in problem
    assert "set a read timeout" in problem
