"""Clients written as scripts and old integrations (outsider15): a client that gives up with
``sys.exit(message)``, one on the 2024 route, and the error a client raises after retrying:
the last answer's, not an earlier one's.
"""

from __future__ import annotations

import random
import sys
import time

import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, check_client

TRACE = "x-siliconcloud-trace-id"
TRANSIENT = {429, 500, 502, 503, 504}
REQUEST = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42}


def _generate(path: str, give_up: str) -> object:
    """A careful client (jittered doubling back-off on transient answers) that posts to ``path``
    and, on an error it will not retry, gives up as ``give_up`` says: ``exit`` (sys.exit with the
    status and trace id), ``exit-bare`` (sys.exit(1): no facts), ``first`` (raises with the
    first failed answer's status and trace id: a flaw)."""

    def generate(ctx: ClientContext) -> bytes:
        model = ctx.request["model"]
        url = f"{ctx.base_url}/{model}/text-to-image" if path == "legacy" else f"{ctx.base_url}/images/generations"
        body = {k: v for k, v in ctx.request.items() if k != "model"} if path == "legacy" else ctx.request
        first = None
        with ctx.http_client(timeout=60) as http:
            for attempt in range(5):
                try:
                    answer = http.post(url, json=body, headers={"Authorization": f"Bearer {ctx.api_key}"})
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
                    continue
                if answer.status_code != 200:
                    first = first or answer
                if answer.status_code in TRANSIENT and attempt < 4:
                    time.sleep(random.uniform(0.5, 1.5) * 2**attempt)
                    continue
                if answer.status_code != 200:
                    shown = first if give_up == "first" else answer
                    facts = f"HTTP {shown.status_code} trace={shown.headers.get(TRACE)}"
                    if give_up == "exit-bare":
                        sys.exit(1)
                    if give_up.startswith("exit"):
                        sys.exit(f"generation failed: {facts}")
                    raise RuntimeError(facts)
                return http.get(answer.json()["images"][0]["url"]).raise_for_status().content
        raise AssertionError("unreachable")

    return generate


def test_a_client_that_gives_up_with_sys_exit_gets_a_verdict() -> None:
    # SystemExit went straight through check_client: no verdict, and the process exited
    check_client(_generate("main", "exit"), request=REQUEST, max_examples=40, seed=1)  # type: ignore[arg-type]
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_generate("main", "exit-bare"), request=REQUEST, max_examples=40, seed=1)  # type: ignore[arg-type]
    assert failed.value.invariant == "errors"
    assert "the SystemExit raised after a" in str(failed.value)


def test_a_client_on_the_2024_route_is_judged_as_on_the_main_one() -> None:
    # "[valid-requests] request 1 names a model the contract does not list: None": the old
    # route names the model in its path, and the body has none
    report = check_client(_generate("legacy", "raise"), request=REQUEST, max_examples=40, seed=1)  # type: ignore[arg-type]
    assert report.examples >= 20 and "faithful-request" in report.invariants


def test_an_error_raised_with_an_earlier_answers_facts_is_caught() -> None:
    # a 503, then a 400: the client raised with the 503's status and trace id and passed `errors`
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_generate("main", "first"), request=REQUEST, max_examples=60, seed=1)  # type: ignore[arg-type]
    assert failed.value.invariant == "errors"
    assert "lacks its" in str(failed.value)
