"""The client checks catch a naive client for the right reasons and pass a careful one."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest
from demo_clients import careful_generate, naive_generate

from sfmock.checks import INVARIANTS, ClientCheckFailed, ClientContext, Run, check_client


def test_the_careful_client_passes_every_invariant() -> None:
    report = check_client(careful_generate, max_examples=150, seed=1)
    assert report.examples >= 150 and set(report.invariants) == set(INVARIANTS)


@pytest.mark.parametrize(
    ("invariant", "schedule", "phrase"),
    [
        ("retries", ["503"], "gave up after a transient 503 on attempt 1"),
        ("downloads", [], "after its URL expired"),
        ("secrets", ["503"], "contains the API key (in its message)"),
        ("tolerant", ["extra-fields"], "on a successful answer with unknown fields"),
    ],
)
def test_the_naive_client_fails_each_invariant_with_a_shrunk_schedule(
    invariant: str, schedule: list[str], phrase: str
) -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(naive_generate, invariants=[invariant], outcomes=["ok", "503", "extra-fields"], seed=3)
    assert failed.value.invariant == invariant
    assert failed.value.schedule == schedule  # shrunk to the smallest
    assert phrase in failed.value.problem


@pytest.mark.parametrize(
    ("flaw", "invariant", "schedule", "phrase"),
    [
        ("steps_as_text", "valid-requests", [], "breaks the contract: num_inference_steps"),
        ("reroll_seed", "faithful-request", [], "sent seed="),
        ("no_backoff", "backoff", ["503"], "retried a 503 at once"),
        ("retry_everything", "retries", ["400"], "retried after a permanent 400"),
        ("auth_on_download", "downloads", [], "with the Authorization header"),
    ],
)
def test_each_flaw_of_a_careful_client_is_caught(flaw: str, invariant: str, schedule: list[str], phrase: str) -> None:
    flawed = functools.partial(careful_generate, **{flaw: True})
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(flawed, seed=5)
    assert failed.value.invariant == invariant
    assert failed.value.schedule == schedule
    assert phrase in failed.value.problem


def test_a_rerolled_seed_is_shown_as_a_difference() -> None:
    flawed = functools.partial(careful_generate, reroll_seed=True)
    request = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn"}  # no seed asked
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(flawed, request=request, seed=5)
    assert failed.value.invariant == "same-body" and failed.value.schedule == ["503"]
    assert "attempt 2 sent a different body than attempt 1: seed: " in failed.value.problem


def test_too_many_attempts_is_caught() -> None:
    eager = functools.partial(careful_generate, max_attempts=10)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(eager, invariants=["retries"], seed=1)
    assert "at most 6 are reasonable" in failed.value.problem
    assert len(failed.value.schedule) == 6 and all(o not in ("ok", "slow") for o in failed.value.schedule)


def test_shrinking_backoff_is_caught() -> None:
    def shrinking(ctx: ClientContext) -> bytes:
        waits = iter([4.0, 1.0, 1.0, 1.0, 1.0])
        original = ctx.sleep
        ctx.sleep = lambda seconds: original(next(waits))  # type: ignore[method-assign]
        return careful_generate(ctx)

    with pytest.raises(ClientCheckFailed, match=r"back-off shrank: waited 4\.00s \(attempt 2\), then 1\.00s") as failed:
        check_client(shrinking, invariants=["backoff"], outcomes=["ok", "503"], seed=2)
    # a drop in the last wait is not enough: it stays down in the next
    assert len(failed.value.schedule) == 3


@pytest.mark.parametrize(
    "pattern", [[1.0, 0.5, 1.0, 0.5, 1.0], [2.0, 0.5, 1.0, 2.0, 0.5]], ids=["alternating", "reset"]
)
def test_a_back_off_that_resets_and_grows_again_is_not_shrinking(pattern: list[float]) -> None:
    # two layers of retries: urllib3's Retry (0.5 s, then more) inside a loop of the client's
    # own that waits longer; outsider19's c03d (1.0 s, then 0.5 s) was accused of shrinking
    def layered(ctx: ClientContext) -> bytes:
        waits = iter(pattern)
        original = ctx.sleep
        ctx.sleep = lambda seconds: original(next(waits))  # type: ignore[method-assign]
        return careful_generate(ctx)

    check_client(layered, invariants=["backoff"], outcomes=["ok", "503", "500"], seed=2)


def test_the_report_has_transcript_seed_and_replay() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(naive_generate, invariants=["retries"], seed=9)
    report = str(failed.value)
    assert "smallest schedule: ['503'] (random seed 0;" in report and "seed 9)" in report
    assert "POST /v1/images/generations -> 503 [schedule: error=503] trace=" in report
    assert "replay: check_client(naive_generate, schedule=['503'], random_seed=0, request={" in report
    assert "invariants=['retries'])" in report
    assert isinstance(failed.value, AssertionError)


def test_replay_runs_exactly_one_schedule() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(naive_generate, invariants=["retries"], schedule=["503"])
    assert "schedule: ['503'] (random seed 0; after 1 schedule)" in str(failed.value)
    check_client(careful_generate, schedule=["503", "timeout", "dropped", "429"])


def test_same_seed_same_result() -> None:
    def failure(seed: int) -> str:
        with pytest.raises(ClientCheckFailed) as failed:
            check_client(functools.partial(careful_generate, no_backoff=True), seed=seed)
        return str(failed.value)

    assert failure(4) == failure(4)


def test_user_invariants() -> None:
    def at_most_two_requests(run: Run) -> str | None:
        return "more than two requests" if len(run.exchanges) > 2 else None

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(careful_generate, invariants=[at_most_two_requests], seed=1)
    assert failed.value.invariant == "at_most_two_requests" and failed.value.schedule == ["503"]


def test_unknown_invariant_name() -> None:
    with pytest.raises(ValueError, match="unknown invariant 'speed'"):
        check_client(careful_generate, invariants=["speed"])


def test_time_sleep_is_virtual_during_a_check() -> None:
    def sleepy(ctx: ClientContext) -> Any:
        time.sleep(3600)  # an SDK's own back-off: must not really sleep
        return careful_generate(ctx)

    began = time.monotonic()
    check_client(sleepy, schedule=[])
    assert time.monotonic() - began < 60  # an hour of sleeping did not happen


def test_requests_clients_work_too() -> None:
    def with_requests(ctx: ClientContext) -> bytes:
        session = ctx.requests_session()
        response = session.post(
            f"{ctx.base_url}/images/generations",
            json=ctx.request,
            headers={"Authorization": f"Bearer {ctx.api_key}"},
            timeout=30,
        )
        response.raise_for_status()
        content: bytes = session.get(response.json()["images"][0]["url"], timeout=30).content
        return content

    check_client(with_requests, invariants=["valid-requests", "downloads", "same-body"], max_examples=30)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(with_requests, invariants=["retries"], seed=1)
    assert failed.value.schedule == ["503"]


def test_openai_sdk_under_the_checks() -> None:
    import openai

    def with_sdk(ctx: ClientContext, retries: int = 2) -> bytes:
        client = openai.OpenAI(
            base_url=ctx.base_url, api_key=ctx.api_key, http_client=ctx.http_client(), max_retries=retries
        )
        result = client.images.generate(
            model=ctx.request["model"], prompt=ctx.request["prompt"], extra_body={"seed": ctx.request["seed"]}
        )
        # the documented body has only `images`; the SDK reads `data`, which the service adds
        images = result.data or [item for item in getattr(result, "images", None) or []]
        url = images[0].url if result.data else images[0]["url"]
        assert url is not None
        return ctx.http_client().get(url).raise_for_status().content

    # the SDK retries 429, 5xx and transport errors twice with growing waits, resends the
    # same body and keeps the key out of its errors: it passes every invariant
    check_client(with_sdk, max_examples=60, seed=1)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(functools.partial(with_sdk, retries=0), seed=1)
    assert failed.value.invariant == "retries" and failed.value.schedule == ["503"]
