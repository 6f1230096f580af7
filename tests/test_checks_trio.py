"""trio and anyio's trio backend on the virtual clock (issue 23): a ``trio.run`` the client
calls during a check keeps the check's time, so ``trio.sleep`` back-offs cost nothing and
``trio.fail_after`` falls inside a generation's latency as ``asyncio.timeout`` does.
"""

from __future__ import annotations

import gc
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
import trio

from sfmock.checks import ClientCheckFailed, ClientContext, Run, check_client

TRANSIENT = {429, 500, 502, 503, 504}


async def _generate(
    ctx: ClientContext,
    http: httpx.AsyncClient,
    *,
    base: str,
    pause: Callable[[int], float],
    deadline: float = 90.0,
    sleep: Callable[[float], Awaitable[None]] = trio.sleep,
    fail_after: Callable[[float], Any] = trio.fail_after,
    too_slow: type[BaseException] = trio.TooSlowError,
) -> bytes:
    """Retries transient answers and deadlines after ``pause(attempt)`` seconds."""
    for attempt in range(6):
        last = attempt == 5
        try:
            with fail_after(deadline):
                answer = await http.post(
                    f"{base}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
                )
        except (httpx.TransportError, too_slow):
            if last:
                raise
            await sleep(pause(attempt))
            continue
        if answer.status_code in TRANSIENT and not last:
            await sleep(pause(attempt))
            continue
        answer.raise_for_status()
        try:
            url = answer.json()["images"][0]["url"]
        except ValueError:
            if last:
                raise
            await sleep(pause(attempt))
            continue
        return (await http.get(url)).raise_for_status().content
    raise AssertionError("unreachable")


def _doubling(attempt: int) -> float:
    return 1.5 * 2**attempt


def _jitter(attempt: int) -> float:
    return random.uniform(0.5, 2**attempt)


def trio_client(ctx: ClientContext) -> bytes:
    """Correct: trio.run around httpx on trio, fail_after(90) per attempt, doubling trio.sleep."""

    async def main() -> bytes:
        async with ctx.async_http_client(timeout=60) as http:
            return await _generate(ctx, http, base=ctx.base_url, pause=_doubling)

    return trio.run(main)


def _waits(client: Callable[[ClientContext], Any], schedule: list[str]) -> tuple[list[float], dict[int, float]]:
    seen: list[Run] = []
    check_client(client, schedule=schedule, invariants=["retries", "backoff", "returns-image", seen.append])
    return [round(wait, 6) for wait in seen[-1].waits()], seen[-1].outside_clock()


def test_a_trio_sleep_back_off_waits_on_the_virtual_clock() -> None:
    began = time.monotonic()
    waits, outside = _waits(trio_client, ["503", "429", "503", "500"])
    # exact virtual seconds; a real trio.sleep showed 0 virtual seconds and a real gap instead
    assert waits == [1.5, 3.0, 6.0, 12.0]
    assert outside == {}
    assert time.monotonic() - began < 22.5  # the 22.5 s of back-off did not really pass


def test_a_correct_trio_client_passes_at_the_defaults() -> None:
    report = check_client(trio_client, seed=1)
    assert report.succeeded > 0 and "503" in report.outcomes


def test_a_trio_client_with_no_back_off_is_caught_by_backoff() -> None:
    def no_back_off(ctx: ClientContext) -> bytes:
        """Flaw: retries at once (a trio.sleep(0) checkpoint between attempts)."""

        async def main() -> bytes:
            async with ctx.async_http_client(timeout=60) as http:
                return await _generate(ctx, http, base=ctx.base_url, pause=lambda attempt: 0.0)

        return trio.run(main)

    with pytest.raises(ClientCheckFailed, match=r"\[backoff\] retried a (503|429|500|502|504) at once") as failure:
        check_client(no_back_off, seed=1, invariants=["retries", "backoff"])
    assert failure.value.invariant == "backoff"


def _short_deadline(live: bool) -> Callable[[ClientContext], bytes]:
    def short_deadline(ctx: ClientContext) -> bytes:
        """Flaw: trio.fail_after(1) around a generation that takes ~1.9 s (timings.inference)."""

        async def main() -> bytes:
            http = httpx.AsyncClient(timeout=60) if live else ctx.async_http_client(timeout=60)
            async with http:
                base = ctx.live_base_url if live else ctx.base_url
                return await _generate(ctx, http, base=base, pause=_jitter, deadline=1.0)

        return trio.run(main)

    return short_deadline


@pytest.mark.parametrize("live", [False, True], ids=["in-process", "live socket"])
def test_a_trio_deadline_shorter_than_the_latency_is_caught_by_timeouts(live: bool) -> None:
    with pytest.raises(ClientCheckFailed) as failure:
        check_client(_short_deadline(live), seed=1, invariants=["timeouts"], max_examples=5)
    assert failure.value.invariant == "timeouts"
    assert failure.value.schedule == []  # every normal answer is late for it
    # ended by the client's deadline inside the latency, not by a read timeout of its own
    assert "cancelled by the client after 1.0s" in str(failure.value) or "timed out after 1.9s" in str(failure.value)


def test_a_deadline_longer_than_the_latency_lets_the_answer_in() -> None:
    seen: list[Run] = []
    check_client(trio_client, schedule=[], invariants=["timeouts", seen.append])
    (generation,) = seen[-1].generations
    assert generation.status == 200 and generation.ended - generation.started == pytest.approx(1.9, abs=0.3)


def test_a_trio_client_on_the_live_socket_backs_off_on_the_virtual_clock() -> None:
    def live(ctx: ClientContext) -> bytes:
        """Correct: httpx on trio over a real socket (as an outside catalogue wrote it)."""

        async def main() -> bytes:
            async with httpx.AsyncClient(timeout=60) as http:
                return await _generate(ctx, http, base=ctx.live_base_url, pause=_doubling)

        return trio.run(main)

    waits, outside = _waits(live, ["503", "503"])
    assert waits == [1.5, 3.0] and outside == {}


def anyio_trio_client(ctx: ClientContext) -> bytes:
    """Correct: anyio.run(..., backend="trio"), anyio.fail_after and anyio.sleep."""

    async def main() -> bytes:
        async with ctx.async_http_client(timeout=60) as http:
            return await _generate(
                ctx,
                http,
                base=ctx.base_url,
                pause=_doubling,
                sleep=anyio.sleep,
                fail_after=anyio.fail_after,
                too_slow=TimeoutError,
            )

    return anyio.run(main, backend="trio")


def test_anyio_on_the_trio_backend_waits_on_the_virtual_clock() -> None:
    waits, outside = _waits(anyio_trio_client, ["503", "502", "504"])
    assert waits == [1.5, 3.0, 6.0] and outside == {}
    check_client(anyio_trio_client, seed=2, max_examples=30)


def test_trio_keeps_real_time_outside_a_check_and_a_clock_of_the_clients_own() -> None:
    check_client(trio_client, schedule=["503"], invariants=["backoff"])

    async def nap() -> float:
        began = trio.current_time()
        await trio.sleep(0.05)
        return trio.current_time() - began

    began = time.monotonic()
    assert trio.run(nap) >= 0.05
    assert time.monotonic() - began >= 0.05

    mock = trio.testing.MockClock(autojump_threshold=0)

    def own_clock(ctx: ClientContext) -> bytes:
        """Its own MockClock: kept, not replaced (the back-off then is not the checker's to see)."""

        async def main() -> bytes:
            assert trio.lowlevel.current_clock() is mock
            async with ctx.async_http_client(timeout=60) as http:
                return await _generate(ctx, http, base=ctx.base_url, pause=_doubling)

        return trio.run(main, clock=mock)

    check_client(own_clock, schedule=["503"], invariants=["returns-image"])


def test_a_check_of_a_client_that_does_not_use_trio_does_not_import_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        from sfmock.checks import check_client

        def generate(ctx):
            with ctx.http_client(timeout=60) as http:
                answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request,
                                   headers={"Authorization": f"Bearer {ctx.api_key}"})
                return http.get(answer.json()["images"][0]["url"]).content

        check_client(generate, schedule=[], invariants=["returns-image"])
        print("trio" in sys.modules, "anyio._backends._trio" in sys.modules)
        """
    )
    # trio's Hypothesis plugin would import it with Hypothesis: not the checker's doing
    env = {**os.environ, "HYPOTHESIS_NO_PLUGINS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_a_trio_run_cut_short_by_the_budget_is_cancelled_cleanly() -> None:
    def waits_on_a_silent_socket(ctx: ClientContext) -> bytes:
        """Waits, before any request, on a socket nobody writes to (a wait no clock ends)."""

        async def main() -> bytes:
            quiet, other = socket.socketpair()
            with quiet, other:
                await trio.lowlevel.wait_readable(quiet)
            raise AssertionError("a socket nobody wrote to was readable")

        return trio.run(main)

    with pytest.raises(ClientCheckFailed) as failure:
        check_client(waits_on_a_silent_socket, seed=1, budget=2.0, progress=None)
    assert failure.value.invariant == "coverage"
    assert "no run finished within the budget of 2s of real time" in str(failure.value)
    gc.collect()  # an abandoned trio run (tasks never finished) would complain here, failing the test


def test_a_trio_client_awaiting_what_never_comes_is_stopped_as_endless() -> None:
    def awaits_an_event_nobody_sets(ctx: ClientContext) -> bytes:
        """Flaw: waits, with no deadline, for an event nothing will set."""

        async def main() -> bytes:
            await trio.Event().wait()
            raise AssertionError("an event nobody set was set")

        return trio.run(main)

    with pytest.raises(ClientCheckFailed) as failure:
        check_client(awaits_an_event_nobody_sets, schedule=[], invariants=["timeouts"], progress=None)
    assert failure.value.invariant == "timeouts"
    assert "awaits something that never comes, with no timeout" in failure.value.problem
    assert "it awaits at" in failure.value.problem and "(await trio.Event().wait())" in failure.value.problem
    gc.collect()  # its tasks were cancelled, not abandoned
