"""Async clients however they are run: cancelled requests, the answer's latency as time a
deadline can pass in, and event loops the client makes itself (issue 23).

Each check that could hang on a broken checker runs in a thread joined with a bound, so a
regression fails here instead of stopping the suite.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, Run, check_client

TRANSIENT = {429, 500, 502, 503, 504}
TRACE = "x-siliconcloud-trace-id"


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.retry_after = float(response.headers.get("retry-after", 0))
        self.download = response.request.method == "GET"
        trace = response.headers.get(TRACE) or response.headers.get("x-amz-request-id")
        super().__init__(f"HTTP {response.status_code} (trace id {trace})")


async def _generate(http: httpx.AsyncClient, ctx: ClientContext) -> bytes:
    response = await http.post(
        f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
    )
    if response.status_code != 200:
        raise ApiError(response)
    url = response.json()["images"][0]["url"]
    for attempt in range(3):  # a failed download is retried there: its URL is still good
        try:
            image = await http.get(url)
        except httpx.TransportError:
            if attempt == 2:
                raise
        else:
            if image.status_code == 200:
                return image.content
            if image.status_code not in TRANSIENT or attempt == 2:
                raise ApiError(image)
        await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def patient(ctx: ClientContext) -> bytes:
    """Retries a transient failure with doubling ``asyncio.sleep`` waits, each call bounded
    by ``asyncio.wait_for`` (30 s): a hang ends in the client's own TimeoutError."""
    async with ctx.async_http_client(timeout=None) as http:
        failure: Exception = RuntimeError("not tried")
        for attempt in range(5):
            asked = 0.0
            try:
                return await asyncio.wait_for(_generate(http, ctx), 30)
            except ApiError as exc:
                if exc.status_code not in TRANSIENT or exc.download:
                    raise
                failure, asked = exc, exc.retry_after
            except (TimeoutError, httpx.TransportError, ValueError) as exc:
                if isinstance(exc, httpx.TransportError) and exc.request.method == "GET":
                    raise  # the download's own retries are spent
                failure = exc
            await asyncio.sleep(max(2.0**attempt, asked))
        raise failure


def _bounded(check: Callable[[], Any], seconds: float = 120) -> Any:
    """Run ``check`` in a thread; fail (instead of hanging the suite) if it does not end."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = check()
        except BaseException as exc:  # handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the check did not end within {seconds} real seconds"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _runs(into: list[Run]) -> Callable[[Run], None]:
    def keep(run: Run) -> None:
        into.append(run)

    return keep


# -- requests the client cancels stay in the transcript ---------------------------------


def test_a_request_cancelled_by_wait_for_is_in_the_transcript_marked_cancelled() -> None:
    async def gives_up_after_a_hang(ctx: ClientContext) -> bytes:
        """Retries one 503, then gives up when its wait_for deadline ends a hang."""
        async with ctx.async_http_client(timeout=None) as http:
            try:
                return await asyncio.wait_for(_generate(http, ctx), 30)
            except ApiError:
                await asyncio.sleep(1)
            return await asyncio.wait_for(_generate(http, ctx), 30)

    runs: list[Run] = []
    schedule = ["503", "timeout"]
    check_client(gives_up_after_a_hang, schedule=schedule, invariants=["errors", _runs(runs)], min_attempts=2)
    (run,) = runs
    assert [e.status or e.failure for e in run.generations] == [503, "cancelled"]
    assert run.generations[1].fault is not None and "hang" in run.generations[1].fault
    assert isinstance(run.error, TimeoutError)
    assert "cancelled" in run.generations[1].describe()


def test_a_request_cancelled_by_a_task_group_is_in_the_transcript() -> None:
    async def raced(ctx: ClientContext) -> bytes:
        """A TaskGroup races the generation against a 20 s watchdog that raises."""

        async def watchdog() -> None:
            await asyncio.sleep(20)
            raise TimeoutError("the generation took longer than 20 s")

        async with ctx.async_http_client(timeout=None) as http:
            async with asyncio.TaskGroup() as group:
                group.create_task(watchdog())
                group.create_task(_generate(http, ctx))
        raise AssertionError("unreachable: the watchdog always raises")

    runs: list[Run] = []
    check_client(raced, schedule=["timeout"], random_seed=0, invariants=[_runs(runs)])
    (run,) = runs
    assert [e.failure for e in run.generations] == ["cancelled"]
    assert run.generations[0].ended - run.generations[0].started == pytest.approx(20, abs=0.01)


def test_errors_never_blames_a_bare_timeout_on_an_earlier_503() -> None:
    check_client(patient, seed=1, max_examples=60)


# -- the answer's latency is time a client's deadline can pass in ------------------------


@pytest.mark.parametrize("style", ["asyncio.timeout", "wait_for", "httpx read timeout"])
def test_a_deadline_shorter_than_the_answer_fires_and_is_caught(style: str) -> None:
    async def hasty(ctx: ClientContext) -> bytes:
        """Allows one second for a generation that takes about two."""
        if style == "httpx read timeout":
            async with ctx.async_http_client(timeout=1.0) as http:
                return await _generate(http, ctx)
        async with ctx.async_http_client(timeout=None) as http:
            if style == "wait_for":
                return await asyncio.wait_for(_generate(http, ctx), 1.0)
            async with asyncio.timeout(1.0):
                return await _generate(http, ctx)

    request = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42, "batch_size": 2}
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(hasty, request=request, schedule=[], invariants=["timeouts"])
    assert failed.value.invariant == "timeouts"
    assert "shorter than a generation takes" in failed.value.problem
    assert "after 1.0s" in failed.value.problem


def test_a_generous_deadline_waits_out_the_answer() -> None:
    async def unhurried(ctx: ClientContext) -> bytes:
        """Allows sixty seconds for the whole generation."""
        async with ctx.async_http_client(timeout=None) as http, asyncio.timeout(60):
            return await _generate(http, ctx)

    runs: list[Run] = []
    request = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42, "batch_size": 2}
    check_client(unhurried, request=request, schedule=[], invariants=["timeouts", "returns-image", _runs(runs)])
    generation = runs[0].generations[0]
    assert generation.ended - generation.started > 1.0  # the latency passed on the clock


# -- any way of running async code ------------------------------------------------------


def _sync_asyncio_run(ctx: ClientContext) -> bytes:
    """A plain function around ``asyncio.run``."""
    return asyncio.run(patient(ctx))


def _sync_anyio_run(ctx: ClientContext) -> bytes:
    """A plain function around ``anyio.run``."""
    return anyio.run(patient, ctx)


def _sync_loop_in_a_thread(ctx: ClientContext) -> bytes:
    """A plain function that runs the async client on a loop in a thread of its own."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(patient(ctx))
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    image: bytes = outcome["value"]
    return image


def _sync_new_event_loop(ctx: ClientContext) -> bytes:
    """A plain function with a loop of its own, ``run_until_complete`` and close."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(patient(ctx))
    finally:
        loop.close()


OWN_LOOPS = [_sync_asyncio_run, _sync_anyio_run, _sync_loop_in_a_thread, _sync_new_event_loop]


@pytest.mark.parametrize("client", OWN_LOOPS, ids=lambda c: c.__name__)
def test_a_sync_client_running_its_own_loop_is_checked_on_virtual_time(client: Callable[[ClientContext], Any]) -> None:
    runs: list[Run] = []
    # three 503s: 1 + 2 + 4 s of asyncio.sleep, which a loop on real time would wait forever for
    _bounded(lambda: check_client(client, schedule=["503", "503", "503"], invariants=[*_ALL, _runs(runs)]))
    assert [e.status for e in runs[0].generations] == [503, 503, 503, 200]
    report = _bounded(lambda: check_client(client, seed=2, max_examples=40))
    assert report.succeeded > 0 and "timeout" in report.outcomes


_ALL = ["valid-requests", "timeouts", "retries", "backoff", "returns-image", "errors"]


def test_a_sync_client_with_async_openai_in_asyncio_run_is_checked() -> None:
    openai = pytest.importorskip("openai")

    def sdk(ctx: ClientContext) -> bytes:
        """``asyncio.run`` around AsyncOpenAI's raw POST, its own retries and a 60 s timeout."""

        async def go() -> bytes:
            async with ctx.async_http_client() as http:
                api = openai.AsyncOpenAI(
                    api_key=ctx.api_key, base_url=ctx.base_url, http_client=http, max_retries=4, timeout=60
                )
                body = await api.post("/images/generations", body=ctx.request, cast_to=httpx.Response)
                image = await http.get(body.json()["images"][0]["url"])
                image.raise_for_status()
                return image.content

        return asyncio.run(go())

    runs: list[Run] = []
    _bounded(lambda: check_client(sdk, schedule=["503", "429"], random_seed=0, invariants=[*_ALL, _runs(runs)]))
    assert [e.status for e in runs[0].generations] == [503, 429, 200]


def test_an_async_client_that_awaits_nothing_forever_ends_with_a_verdict() -> None:
    calls: list[int] = []

    def stuck(ctx: ClientContext) -> bytes:
        """Waits on an event nobody sets, inside asyncio.run."""
        calls.append(1)

        async def go() -> bytes:
            await asyncio.Event().wait()
            return b""

        return asyncio.run(go())

    with pytest.raises(ClientCheckFailed) as failed:
        _bounded(lambda: check_client(stuck, schedule=[], random_seed=0))
    assert failed.value.invariant == "timeouts" and "never comes" in failed.value.problem
    # the line it awaits at, as a thread's wait names its own (it named none: outsider20)
    assert "it awaits at" in failed.value.problem and "(await asyncio.Event().wait())" in failed.value.problem
    # seen once, it is the verdict: each replay would wait its 10 real seconds again
    assert len(calls) == 1 and "flaky" not in str(failed.value)


def test_a_blocking_client_called_from_async_code_still_reaches_the_fake() -> None:
    async def blocking_inside(ctx: ClientContext) -> bytes:
        """An ``async def`` that calls a blocking httpx.Client (it blocks its loop, as on a network)."""
        http = ctx.http_client(timeout=60)
        response = http.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
        await asyncio.sleep(0)
        return http.get(response.json()["images"][0]["url"]).content

    check_client(blocking_inside, schedule=[], random_seed=0, invariants=["returns-image", "tolerant"])


def test_a_live_request_is_in_flight_until_its_last_byte_is_handed_over() -> None:
    from sfmock.clock import VirtualClock
    from sfmock.testing.recorder import Recorder

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"end", "more_body": False})

    recorder = Recorder(app, VirtualClock())
    seen: list[tuple[int, int]] = []  # (in flight, recorded) as each message goes out

    async def send(message: Any) -> None:
        seen.append((recorder.in_flight, len(recorder.exchanges)))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    asyncio.run(recorder(scope, receive, send))
    # the exchange is recorded before the last byte goes (a client's next run never races it),
    # and it stays in flight while that byte is on its way (the client's clock must not jump)
    assert seen == [(1, 0), (1, 0), (1, 1)]
    assert recorder.in_flight == 0 and len(recorder.exchanges) == 1


def test_a_client_blocked_where_the_checker_cannot_see_is_stopped_with_a_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sfmock.testing import watchdog

    monkeypatch.setattr(watchdog, "STALL", 1.0)

    def deadlocked(ctx: ClientContext) -> bytes:
        """Waits on a worker thread's event that the worker never sets."""
        ready = threading.Event()
        threading.Thread(target=lambda: None, daemon=True).start()
        ready.wait()
        return b""

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(deadlocked, schedule=[], random_seed=0)
    assert failed.value.invariant == "timeouts"
    assert "made no progress for 1 real seconds" in failed.value.problem and "ready.wait()" in failed.value.problem


@pytest.mark.parametrize(("sock_read", "caught"), [(1.0, True), (60.0, False)])
def test_an_aiohttp_read_timeout_on_the_live_socket_meets_the_answers_latency(sock_read: float, caught: bool) -> None:
    import json

    import aiohttp
    import yarl

    async def live(ctx: ClientContext) -> bytes:
        """aiohttp on the live socket with a ``sock_read`` timeout."""
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=sock_read)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            async with session.post(f"{ctx.live_base_url}/images/generations", json=ctx.request, headers=auth) as r:
                body = json.loads(await r.read())
            async with session.get(yarl.URL(body["images"][0]["url"], encoded=True)) as image:
                return await image.read()

    request = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42, "batch_size": 2}
    runs: list[Run] = []
    invariants = ["timeouts", "returns-image", _runs(runs)]
    if not caught:
        check_client(live, request=request, schedule=[], random_seed=0, invariants=invariants)
        generation = runs[0].generations[0]
        assert generation.ended - generation.started > 1.0  # the latency passed on the clock
        return
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(live, request=request, schedule=[], random_seed=0, invariants=invariants)
    assert failed.value.invariant == "timeouts" and "shorter than a generation takes" in failed.value.problem
    assert "flaky" not in str(failed.value)


def test_a_stall_seen_once_is_the_verdict_not_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    from sfmock.testing import watchdog

    monkeypatch.setattr(watchdog, "STALL", 1.0)
    stalls: list[int] = []

    def deadlocked_on_retry(ctx: ClientContext) -> bytes:
        """A non-reentrant lock taken again on the retry path (each stall costs STALL real seconds)."""
        lock = threading.Lock()
        http = ctx.http_client(timeout=60)
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        with lock:
            answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            if answer.status_code == 503:
                stalls.append(1)
                with lock:
                    pass
            url = answer.raise_for_status().json()["images"][0]["url"]
        return http.get(url).raise_for_status().content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(deadlocked_on_retry, outcomes=["ok", "503"], seed=1, max_examples=10)
    assert failed.value.invariant == "timeouts" and "made no progress" in failed.value.problem
    assert len(stalls) == 1  # paid once: not again for a replay, a shrink or a flakiness check


_HELD = threading.Lock()  # made at import, as a module's lock is: the checker cannot see its waits


def _waiting_between_attempts(wait: Callable[[int], None]) -> Callable[[ClientContext], bytes]:
    """A client that generates and downloads, and between attempts calls ``wait(attempt)``."""

    def client(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=60)
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        for attempt in range(4):
            answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            if answer.status_code == 200:
                return http.get(answer.json()["images"][0]["url"]).raise_for_status().content
            wait(attempt)
        raise RuntimeError("gave up")

    return client


def _deadlocked(attempt: int) -> None:
    """A non-reentrant module-level lock taken again on the retry path: hangs forever."""
    with _HELD, _HELD:
        time.sleep(1)


def _busy(attempt: int) -> None:
    """A back-off that polls time.monotonic: it spins forever on a clock that moves only in waits."""
    end = time.monotonic() + 2**attempt
    while time.monotonic() < end:
        pass


def test_a_deadlock_on_a_lock_the_checker_cannot_see_is_judged_within_the_budget() -> None:
    deadlocked_on_retry = _waiting_between_attempts(_deadlocked)
    # at 60 s each, the budget cut the stalled run first, and a run cut is not judged: it passed
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(deadlocked_on_retry, outcomes=["ok", "503"], seed=1, max_examples=10, budget=20)
    problem = failed.value.problem
    assert failed.value.invariant == "timeouts" and "made no progress for 10 real seconds" in problem
    assert "half the check's budget" in problem and "test_checks_async.py" in problem


@pytest.mark.parametrize(("budget", "stall"), [(60.0, 30.0), (300.0, 60.0), (4.0, 10.0)])
def test_a_stall_is_stopped_at_half_the_budget_between_10_and_60_seconds(budget: float, stall: float) -> None:
    from sfmock.testing.watchdog import Watchdog

    dog = Watchdog(lambda: None)
    dog.within(123.0, budget)
    assert dog.deadline == 123.0 and dog.stall == stall


def test_a_loop_spinning_on_the_clock_is_told_so_not_called_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    from sfmock.testing import watchdog

    monkeypatch.setattr(watchdog, "STALL", 1.0)

    busy_backoff = _waiting_between_attempts(_busy)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(busy_backoff, schedule=["503"], random_seed=0)
    problem = failed.value.problem
    assert failed.value.invariant == "timeouts" and "spinning on the CPU at" in problem  # outsider22: "blocked"
    assert "(while time.monotonic() < end:)" in problem and "sleep in the loop" in problem
