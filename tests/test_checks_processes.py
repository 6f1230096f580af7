"""Clients that hand work to other processes (issue 23: code nobody here wrote).

A child process is outside the check's virtual clock: a command's timeout
(``subprocess.run(timeout=)``) and a pool worker's answer (``multiprocessing.Pool``,
``ProcessPoolExecutor``, ``AsyncResult.get(timeout=)``, ``Future.result(timeout=)``) take real
time. Before, ``subprocess`` waited on the virtual clock and its timeout fired at once, and a
wait for a pool's answer jumped the clock to its deadline and timed out.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import subprocess
import sys
from typing import Any

import pytest
from process_workers import generate_in_child

from sfmock.checks import ClientCheckFailed, ClientContext, check_client


def _spawn() -> Any:
    return multiprocessing.get_context("spawn")


def via_pool(ctx: ClientContext, retries: int = 4) -> bytes:
    with _spawn().Pool(1) as pool:
        args = (ctx.live_base_url, ctx.api_key, dict(ctx.request), retries)
        return bytes(pool.apply_async(generate_in_child, args).get(timeout=120))


def via_executor(ctx: ClientContext) -> bytes:
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=_spawn()) as pool:
        future = pool.submit(generate_in_child, ctx.live_base_url, ctx.api_key, dict(ctx.request), 4)
        return bytes(future.result(timeout=120))


@pytest.mark.parametrize("client", [via_pool, via_executor], ids=["Pool.apply_async", "ProcessPoolExecutor"])
def test_a_pool_worker_that_generates_is_waited_for_in_real_time(client: Any) -> None:
    report = check_client(client, schedule=[], random_seed=0, invariants=["valid-requests", "returns-image"])
    assert report.examples == 1
    report = check_client(client, schedule=["503"], random_seed=0, invariants=["valid-requests", "retries"])
    assert report.examples == 1


def test_a_pool_worker_that_does_not_retry_is_caught() -> None:
    def no_retries(ctx: ClientContext) -> bytes:
        return via_pool(ctx, retries=0)

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(no_retries, schedule=["503"], random_seed=0, invariants=["valid-requests", "retries"])
    assert failed.value.invariant == "retries"


def test_a_commands_timeout_takes_real_time() -> None:
    outcomes: list[str] = []

    def with_a_command(ctx: ClientContext) -> bytes:
        try:  # a command that takes 0.3 s, with a generous timeout: it finishes
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"], timeout=60, check=True)
            outcomes.append("finished")
        except subprocess.TimeoutExpired:
            outcomes.append("timed out")
        http = ctx.http_client(timeout=60)
        answer = http.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
        return http.get(answer.json()["images"][0]["url"]).content

    check_client(with_a_command, schedule=[], random_seed=0, invariants=["returns-image"])
    assert outcomes == ["finished"]
