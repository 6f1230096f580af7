"""Verdicts read as a person reads them, and reports that say what happened (issue 23):
ExceptionGroup members, the whole-batch promise, and the wording of the reports.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, Run, check_client
from sfmock.testing import invariants, programs

TRACE = "x-siliconcloud-trace-id"
BATCH = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42, "batch_size": 3}


class ApiError(Exception):
    """Carries the facts as attributes; its message is for people and says little."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.trace_id = response.headers.get(TRACE) or response.headers.get("x-amz-request-id")
        super().__init__("the image service refused")


def _post(http: httpx.Client, ctx: ClientContext) -> httpx.Response:
    return http.post(
        f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
    )


# -- ExceptionGroup members and their causes ---------------------------------------------


def _grouped(member: Any) -> Any:
    async def client(ctx: ClientContext) -> bytes:
        """Generates inside a TaskGroup: a failure reaches the caller as an ExceptionGroup."""

        async def generate(http: httpx.AsyncClient) -> bytes:
            response = await http.post(
                f"{ctx.base_url}/images/generations",
                json=ctx.request,
                headers={"Authorization": f"Bearer {ctx.api_key}"},
            )
            if response.status_code != 200:
                raise member(response)
            return (await http.get(response.json()["images"][0]["url"])).content

        async with ctx.async_http_client(timeout=60) as http, asyncio.TaskGroup() as group:
            task = group.create_task(generate(http))
        return task.result()

    return client


def _caused(response: httpx.Response) -> Exception:
    try:
        raise ApiError(response)
    except ApiError as cause:
        try:
            raise RuntimeError("could not make the picture") from cause
        except RuntimeError as error:
            return error


@pytest.mark.parametrize("member", [ApiError, _caused], ids=["member", "member's cause"])
def test_the_members_of_an_exception_group_carry_the_status_and_trace_id(member: Any) -> None:
    runs: list[Run] = []
    check_client(_grouped(member), schedule=["400"], random_seed=0, invariants=["errors", runs.append])  # type: ignore[list-item]
    assert isinstance(runs[0].error, ExceptionGroup)


def test_an_exception_group_whose_members_lack_the_facts_is_caught() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(
            _grouped(lambda response: RuntimeError("no picture")),
            schedule=["400"],
            random_seed=0,
            invariants=["errors"],
        )
    assert failed.value.invariant == "errors" and "lacks its status and trace id" in failed.value.problem


# -- the whole-batch promise ---------------------------------------------------------------


def _batch(*, keep_going: bool) -> Any:
    def client(ctx: ClientContext) -> list[bytes]:
        """Downloads every image of the batch, each retried once on a transient failure."""
        http = ctx.http_client(timeout=60)
        response = _post(http, ctx)
        if response.status_code != 200:
            raise ApiError(response)
        images = []
        for item in response.json()["images"]:
            for turn in range(2):
                image = http.get(item["url"])
                if image.status_code == 200:
                    images.append(image.content)
                    break
                if turn == 1 or image.status_code < 500:
                    if keep_going:
                        break  # the flaw: a failed image is left out and the rest returned as the batch
                    raise ApiError(image)
        return images

    return client


def test_a_partial_batch_returned_as_whole_is_caught() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_batch(keep_going=True), request=BATCH, seed=1, max_examples=40, outcomes=["ok", "download-404"])
    assert failed.value.invariant == "whole-batch"
    assert "returned 2 of the 3 images" in failed.value.problem
    assert failed.value.schedule == ["download-404"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_whole_batch_or_an_error_passes(seed: int) -> None:
    check_client(_batch(keep_going=False), request=BATCH, seed=seed, max_examples=40, outcomes=["ok", "download-404"])


def test_a_batch_the_client_asks_for_itself_is_held_to_its_size() -> None:
    def variations(ctx: ClientContext) -> list[bytes]:
        """Asks for 2 variations itself; a download that fails is left out (the flaw)."""
        http = ctx.http_client(timeout=60)
        body = {**ctx.request, "batch_size": 2}
        answer = http.post(
            f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
        if answer.status_code != 200:
            raise ApiError(answer)
        images = [http.get(item["url"]) for item in answer.json()["images"]]
        return [image.content for image in images if image.status_code == 200]

    # ctx.request has no batch_size: the batch asked for is the one in the request sent (and answered 200)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(variations, schedule=["download-403"], invariants=["whole-batch"])
    assert "returned 1 of the 2 images asked for (batch_size=2)" in failed.value.problem
    check_client(variations, schedule=[], invariants=["whole-batch"])


# -- back-off that is no back-off ------------------------------------------------------------


def _backing_off(pause: Any) -> Any:
    def client(ctx: ClientContext) -> bytes:
        """Retries a 429/503 after ``pause()`` seconds."""
        http = ctx.http_client(timeout=60)
        for _ in range(5):
            response = _post(http, ctx)
            if response.status_code in (429, 503):
                time.sleep(pause())
                continue
            if response.status_code != 200:
                raise ApiError(response)
            return http.get(response.json()["images"][0]["url"]).content
        raise RuntimeError("gave up")

    return client


@pytest.mark.parametrize("seconds", [0.001, 0.01, 0.049])
def test_a_fixed_wait_under_50_ms_is_no_back_off(seconds: float) -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_backing_off(lambda: seconds), seed=1, invariants=["backoff"], outcomes=["ok", "503", "429"])
    assert failed.value.invariant == "backoff"
    assert f"after {seconds * 1000:.0f} ms (attempt 2), as soon under 4 other random states" in failed.value.problem


def test_a_jitter_that_is_always_under_50_ms_is_no_back_off() -> None:
    # outsider15 W4: random.uniform(0, 0.01) before retrying a 429 or 503 passed `backoff`
    # (the wait was not the same under another random state, so it was taken for full jitter)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(
            _backing_off(lambda: random.uniform(0, 0.01)), seed=1, invariants=["backoff"], outcomes=["ok", "503", "429"]
        )
    assert failed.value.invariant == "backoff"
    assert "as soon under 4 other random states" in failed.value.problem


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_short_waits_drawn_at_random_are_jitter_not_a_flaw(seed: int) -> None:
    # full jitter of a half-second base: one wait in ten is drawn under 50 ms, never all five
    # times a run is made (the check makes it again under four other random states to tell)
    draws: list[float] = []

    def pause() -> float:
        draws.append(random.uniform(0, 0.5))
        return draws[-1]

    check_client(_backing_off(pause), seed=seed, invariants=["backoff"], max_examples=40, outcomes=["ok", "503", "429"])
    assert any(draw < 0.05 for draw in draws)  # the short draws the test is about were made
    check_client(_backing_off(lambda: 0.05), seed=seed, invariants=["backoff"], max_examples=20)


def test_the_python_and_the_program_checks_count_the_same_gap_as_at_once() -> None:
    assert invariants.IMMEDIATE == programs.TIMINGS["immediate"]


# -- generations at once ----------------------------------------------------------------------


def _gathered(ctx: ClientContext) -> list[bytes]:
    async def both() -> list[bytes]:
        """Two generations at once with gather, for a request of one image."""
        async with ctx.async_http_client(timeout=60) as http:

            async def one() -> bytes:
                answer = await http.post(
                    f"{ctx.base_url}/images/generations",
                    json=ctx.request,
                    headers={"Authorization": f"Bearer {ctx.api_key}"},
                )
                return (await http.get(answer.raise_for_status().json()["images"][0]["url"])).content

            return list(await asyncio.gather(one(), one()))

    return asyncio.run(both())


def _threaded(ctx: ClientContext) -> list[bytes]:
    """Two generations at once from a thread pool sharing one client."""
    http = ctx.http_client(timeout=60)
    both = threading.Barrier(2)  # both sent at once, however late a busy machine starts the second

    def one(_: int) -> bytes:
        both.wait()
        answer = _post(http, ctx)
        return http.get(answer.raise_for_status().json()["images"][0]["url"]).raise_for_status().content

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, range(2)))


@pytest.mark.parametrize("client", [_gathered, _threaded], ids=["gather", "threads"])
def test_two_generations_at_once_for_one_image_are_not_called_a_retry(client: Any) -> None:
    # threads of one client take turns in the in-process transport: the second is still
    # sent at once, and the report and its transcript say so
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(client, schedule=[], random_seed=0, invariants=["retries"])
    assert failed.value.problem == (
        "sent 2 generations at once for one request of 1 image: that pays twice "
        "(several images come from one request with batch_size)"
    )
    posts = [line for line in str(failed.value).splitlines() if "POST /v1/images/generations" in line]
    assert len(posts) == 2
    if client is _threaded:
        assert "(sent at t+0.0s: it waited while another thread's request was answered)" in posts[1]
    assert "(sent at" not in posts[0]  # the first had the line to itself


# -- what the reports say ------------------------------------------------------------------


def test_a_parameter_added_to_the_presigned_url_is_named() -> None:
    def tracking(ctx: ClientContext) -> bytes:
        """Adds its own tracking parameter to the image URL."""
        http = ctx.http_client(timeout=60)
        url = _post(http, ctx).json()["images"][0]["url"]
        return http.get(url + "&utm_source=app").content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(tracking, schedule=[], random_seed=0, invariants=["downloads"])
    assert "parameters ['utm_source'] added" in failed.value.problem
    assert "[]" not in failed.value.problem


def test_a_url_kept_from_an_earlier_run_is_called_kept() -> None:
    kept: list[str] = []

    def caching(ctx: ClientContext) -> bytes:
        """Draws a seed per call; keeps the first image URL it ever got and downloads that one ever after."""
        http = ctx.http_client(timeout=60)
        body = {**ctx.request, "seed": random.randrange(2**31)}
        answer = http.post(
            f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
        kept.append(answer.json()["images"][0]["url"])
        return http.get(kept[0]).content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(caching, seed=1, max_examples=10, outcomes=["ok"], invariants=["downloads"])
    assert "kept from an earlier run" in failed.value.problem
    assert "rebuilt" not in failed.value.problem and "re-encoded" not in failed.value.problem
    # its replay line runs the schedule with nothing kept, so the report says it needs the earlier runs
    assert "depends on earlier runs: request 2 downloaded an image URL" in str(failed.value)
    kept.clear()
    run = failed.value.run
    assert run is not None
    check_client(caching, schedule=run.schedule, random_seed=run.random_seed, outcomes=["ok"], invariants=["downloads"])


def test_a_key_deep_in_a_log_record_is_shown_where_it_is() -> None:
    def chatty(ctx: ClientContext) -> bytes:
        """Logs a long line with the key near its end."""
        logging.getLogger("chatty").warning("%s headers=%s", "x" * 400, {"Authorization": f"Bearer {ctx.api_key}"})
        http = ctx.http_client(timeout=60)
        return http.get(_post(http, ctx).json()["images"][0]["url"]).content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(chatty, schedule=[], random_seed=0, invariants=["secrets"])
    assert "<API KEY>" in failed.value.problem and failed.value.invariant == "secrets"


def test_a_client_that_raised_is_not_said_to_have_raised_raised() -> None:
    def elsewhere(ctx: ClientContext) -> bytes:
        """Never reaches the fake."""
        raise RuntimeError("no network here")

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(elsewhere, seed=1, max_examples=5)
    assert "it raised RuntimeError: no network here" in str(failed.value)
    assert "raised raised" not in str(failed.value)


def test_a_bare_error_is_named_without_a_dangling_colon() -> None:
    async def hasty(ctx: ClientContext) -> bytes:
        """Allows one second for a generation that takes about two."""
        async with ctx.async_http_client(timeout=None) as http, asyncio.timeout(1.0):
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            response = await http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            return (await http.get(response.json()["images"][0]["url"])).content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(hasty, request=BATCH, schedule=[], random_seed=0, invariants=["timeouts"])
    assert "the client raised TimeoutError\n" in str(failed.value)


def at_most_two_attempts(run: Run) -> str | None:
    """A custom invariant of the caller's own."""
    return "more than two attempts" if len(run.generations) > 2 else None


def test_a_replay_line_with_a_custom_invariant_runs_as_printed() -> None:
    def stubborn(ctx: ClientContext) -> bytes:
        """Retries every failure at once, five times."""
        http = ctx.http_client(timeout=60)
        for _ in range(5):
            response = _post(http, ctx)
            if response.status_code == 200:
                return http.get(response.json()["images"][0]["url"]).content
        raise ApiError(response)

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(
            stubborn,
            seed=1,
            max_examples=30,
            outcomes=["ok", "500"],
            invariants=["valid-requests", at_most_two_attempts],
        )
    replay = failed.value.replay
    assert "invariants=['valid-requests', at_most_two_attempts]" in replay
    with pytest.raises(ClientCheckFailed) as replayed:
        eval(replay, {"check_client": check_client, "stubborn": stubborn, "at_most_two_attempts": at_most_two_attempts})
    assert replayed.value.invariant == "at_most_two_attempts" and replayed.value.schedule == failed.value.schedule


def test_a_verdict_that_does_not_replay_says_what_differed() -> None:
    calls = [0]

    def racy(ctx: ClientContext) -> bytes:
        """Skips the download once, late in the search (a race, a cache...)."""
        calls[0] += 1
        http = ctx.http_client(timeout=60)
        url = _post(http, ctx).json()["images"][0]["url"]
        if calls[0] == 5:
            return b""
        return http.get(url).content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(racy, seed=1, max_examples=20, outcomes=["ok"])
    note = str(failed.value)
    assert "failed 1 of 3 replays" in note
    assert "one run made 1 requests, another 2" in note
    assert "threads, real time, its own RNG, or state it keeps between calls" in note


# -- aiohttp's own error and the key ----------------------------------------------------------


def _aiohttp_client(*, own_error: bool) -> Any:
    import aiohttp

    class ImageApiError(Exception):
        def __init__(self, status: int, trace_id: str | None, text: str) -> None:
            self.status = status
            self.trace_id = trace_id
            super().__init__(f"HTTP {status} (trace id {trace_id}): {text[:200]}")

    async def client(ctx: ClientContext) -> bytes:
        """aiohttp on the live socket; a refused generation raises aiohttp's error, or one of its own."""
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {ctx.api_key}"}
            async with session.post(f"{ctx.live_base_url}/images/generations", json=ctx.request, headers=headers) as a:
                if own_error and a.status >= 400:  # the docs' fix
                    raise ImageApiError(a.status, a.headers.get(TRACE), await a.text())
                a.raise_for_status()
                url = (await a.json())["images"][0]["url"]
            async with session.get(url) as image:
                return await image.read()

    return client


def test_aiohttps_own_error_carries_the_key_and_the_docs_fix_does_not() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_aiohttp_client(own_error=False), schedule=["400"], invariants=["secrets"])
    assert "the ClientResponseError raised to the caller contains the API key" in failed.value.problem
    check_client(_aiohttp_client(own_error=True), schedule=["400"], invariants=["secrets", "errors"])


def test_a_stateless_client_is_not_said_to_depend_on_earlier_runs() -> None:
    # the same request answers with the same URL in every run: downloading the URL this run
    # was given is not keeping one from an earlier run (outsider7's probe_note.py)
    def hasty(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=60)
        for _ in range(4):
            answer = _post(http, ctx)
            if answer.status_code == 429:
                time.sleep(0.01)  # far too short a back-off: caught by backoff
                continue
            return http.get(answer.json()["images"][0]["url"]).content
        raise RuntimeError("no image")

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(hasty, seed=1, max_examples=30, outcomes=["ok", "429"], invariants=["backoff"])
    assert failed.value.invariant == "backoff"
    assert "depends on earlier runs" not in str(failed.value)


# -- what a client returns: bytes, a path, a data URL, a Pillow image ---------------------


def _returning(shape: Any) -> Any:
    def client(ctx: ClientContext) -> Any:
        http = ctx.http_client(timeout=30)
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        for attempt in range(5):
            answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            if answer.status_code == 200:
                try:
                    image = http.get(answer.json()["images"][0]["url"])
                except (httpx.TransportError, ValueError, KeyError):
                    time.sleep(2**attempt)
                    continue
                if image.status_code == 200:
                    return shape(image.content)
            elif answer.status_code < 500 and answer.status_code != 429:
                answer.raise_for_status()
            time.sleep(2**attempt)
        raise RuntimeError("gave up")

    return client


def _pillow(content: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def _data_url(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode()


@pytest.mark.parametrize(
    "shape", [_pillow, _data_url, lambda c: _pillow(c).convert("RGB")], ids=["pil", "data-url", "pil-rgb"]
)
def test_the_image_returned_as_a_pillow_image_or_a_data_url_is_the_image(shape: Any) -> None:
    # outsider21: both were accused "instead of the image it downloaded" though they were it
    check_client(_returning(shape), schedule=[], random_seed=0, invariants=["returns-image"])


@pytest.mark.parametrize(
    "shape",
    [lambda c: _pillow(c).rotate(90), lambda c: _data_url(c[: len(c) // 2]), lambda c: "data:image/png;base64,@@"],
    ids=["pil-rotated", "data-url-half", "data-url-broken"],
)
def test_another_picture_or_a_cut_data_url_is_not_the_image(shape: Any, request: pytest.FixtureRequest) -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_returning(shape), schedule=[], random_seed=0, invariants=["returns-image"])
    assert failed.value.invariant == "returns-image" and "instead of the image it downloaded" in failed.value.problem
    if "pil" in request.node.name:  # outsider22: "returned a Image ('<PIL.Image...')"
        assert (
            "a Pillow image (1024x1024, " in failed.value.problem
            and "whose pixels are not the image's" in failed.value.problem
        )


def test_a_client_that_never_asks_for_a_generation_is_told_what_it_asked_instead() -> None:
    # outsider21: "generation answers seen: ;" after 131 schedules, nothing to go on
    def wrong_path(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=30)
        answer = http.post(
            f"{ctx.base_url}/image/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
        answer.raise_for_status()
        return http.get(answer.json()["images"][0]["url"]).content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(wrong_path, seed=1, max_examples=10)
    problem = failed.value.problem
    assert failed.value.invariant == "coverage" and "never sent a generation request" in problem
    assert "what it asked instead: POST /v1/image/generations -> 404" in problem
