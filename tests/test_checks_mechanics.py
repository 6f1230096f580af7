"""How a check runs a client: time, async, threads, sockets, verdicts that mean something.

Each client here is small and written the way people write them; each test names the
property of the checker it pins down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from time import sleep as imported_sleep
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfmock import Settings
from sfmock.checks import ClientCheckFailed, ClientContext, check_client

TRANSIENT = {429, 500, 502, 503, 504}
AUTH_KEY = "Authorization"


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def _post(http: httpx.Client, ctx: ClientContext, body: dict[str, Any] | None = None) -> httpx.Response:
    return http.post(
        f"{ctx.base_url}/images/generations", json=body or ctx.request, headers={AUTH_KEY: f"Bearer {ctx.api_key}"}
    )


def good_sync(ctx: ClientContext, *, sleeper: Any = None, timeout: float | None = 60) -> bytes:
    """Correct: retries transient failures with full jitter, honours Retry-After, checks the download."""
    pause = sleeper or imported_sleep  # looked up per call: a default argument would keep real time
    http = ctx.http_client(timeout=timeout)
    failure: Exception = RuntimeError("not tried")
    for attempt in range(5):
        try:
            response = _post(http, ctx)
            if response.status_code in TRANSIENT:
                failure = ApiError(response)
                pause(max(float(response.headers.get("retry-after", 0)), random.uniform(0.01, 2**attempt)))
                continue
            if response.status_code != 200:
                raise ApiError(response)
            url = response.json()["images"][0]["url"]
            return _download(http, url, pause)
        except (httpx.TransportError, ValueError) as exc:
            failure = exc
            pause(random.uniform(0.01, 2**attempt))
    raise failure


def _download(http: httpx.Client, url: str, pause: Any) -> bytes:
    """The image; a cut or a 5xx on the download is retried there (the URL is still good)."""
    for attempt in range(3):
        try:
            image = http.get(url)
        except httpx.TransportError:
            pause(2**attempt)
            continue
        if image.status_code in TRANSIENT and attempt < 2:
            pause(2**attempt)
            continue
        if image.status_code != 200:
            raise ApiError(image)
        return image.content
    raise RuntimeError("the image download kept failing")


def test_from_time_import_sleep_is_virtual() -> None:
    began = time.monotonic()
    report = check_client(good_sync, seed=1, max_examples=40)
    assert report.succeeded > 0 and "503" in report.outcomes and "timeout" in report.outcomes
    assert time.monotonic() - began < 60  # hours of back-off did not really pass


def test_time_monotonic_deadlines_are_virtual() -> None:
    def deadline_client(ctx: ClientContext) -> bytes:
        """Correct: retries until a 60-second deadline read from time.monotonic()."""
        end = time.monotonic() + 60
        http = ctx.http_client(timeout=60)
        attempt = 0
        while True:
            response = _post(http, ctx)
            if response.status_code == 200:
                return http.get(response.json()["images"][0]["url"]).raise_for_status().content
            if response.status_code not in TRANSIENT or time.monotonic() > end:
                raise ApiError(response)
            attempt += 1
            time.sleep(2**attempt)

    check_client(deadline_client, seed=2, outcomes=["ok", "503", "429"], max_examples=30)
    attempts: list[int] = []

    def count(run: Any) -> None:
        attempts.append(len(run.generations))

    # the deadline holds on the virtual clock: 503s at t=0, 2, 6, 14, 30, 62 s, then it gives up
    check_client(deadline_client, schedule=["503"] * 8, invariants=["retries", count])
    assert attempts == [6]


def test_async_clients_run_on_a_virtual_loop() -> None:
    async def good_async(ctx: ClientContext) -> bytes:
        """Correct: httpx.AsyncClient, asyncio.sleep back-off, an asyncio.wait_for deadline."""
        async with ctx.async_http_client(timeout=60) as http:
            for attempt in range(5):
                try:
                    response = await asyncio.wait_for(
                        http.post(
                            f"{ctx.base_url}/images/generations",
                            json=ctx.request,
                            headers={AUTH_KEY: f"Bearer {ctx.api_key}"},
                        ),
                        timeout=120,
                    )
                except (httpx.TransportError, TimeoutError):
                    await asyncio.sleep(2**attempt)
                    continue
                if response.status_code in TRANSIENT and attempt < 4:
                    await asyncio.sleep(max(float(response.headers.get("retry-after", 0)), 2**attempt))
                    continue
                if response.status_code != 200:
                    raise ApiError(response)
                try:
                    url = response.json()["images"][0]["url"]
                except ValueError:
                    await asyncio.sleep(1)
                    continue
                image = await http.get(url)
                if image.status_code != 200:
                    raise ApiError(image)
                return image.content
        raise RuntimeError("gave up after transport errors")

    began = time.monotonic()
    report = check_client(good_async, seed=3, max_examples=40)
    assert report.succeeded > 0 and time.monotonic() - began < 60


def test_an_asyncio_timeout_ends_a_hang_without_an_http_timeout() -> None:
    async def wait_for_only(ctx: ClientContext) -> bytes:
        """No httpx timeout, but asyncio.wait_for around each call: a hang ends after 30 s."""
        async with ctx.async_http_client(timeout=None) as http:
            for _ in range(3):
                try:
                    response = await asyncio.wait_for(
                        http.post(
                            f"{ctx.base_url}/images/generations",
                            json=ctx.request,
                            headers={AUTH_KEY: f"Bearer {ctx.api_key}"},
                        ),
                        timeout=30,
                    )
                except TimeoutError:
                    await asyncio.sleep(1)
                    continue
                url = response.json()["images"][0]["url"]
                return (await http.get(url)).content
        raise RuntimeError("gave up")

    check_client(wait_for_only, schedule=["timeout"], invariants=["timeouts", "retries", "returns-image"])


def test_a_client_without_a_timeout_would_hang_forever() -> None:
    def no_timeout(ctx: ClientContext) -> bytes:
        return good_sync(ctx, timeout=None)  # type: ignore[arg-type]

    began = time.monotonic()
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(no_timeout, seed=1, max_examples=20)
    assert failed.value.invariant == "timeouts" and failed.value.schedule == ["timeout"]
    assert "would hang forever" in failed.value.problem and "was stopped" in str(failed.value)
    assert time.monotonic() - began < 60


def test_a_timeout_shorter_than_a_normal_answer_is_caught() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(lambda ctx: good_sync(ctx, timeout=0.5), seed=1, max_examples=10)
    assert failed.value.invariant == "timeouts" and failed.value.schedule == []
    assert "shorter than a generation takes" in failed.value.problem


def test_threads_downloading_a_batch_work() -> None:
    def batch(ctx: ClientContext) -> list[bytes]:
        """Correct: four images, downloaded by four threads at once."""
        http = ctx.http_client(timeout=60)
        request = {**ctx.request, "batch_size": 4}
        for attempt in range(5):
            try:
                response = _post(http, ctx, request)
            except httpx.TransportError:
                time.sleep(2**attempt)
                continue
            if response.status_code in TRANSIENT:
                time.sleep(max(float(response.headers.get("retry-after", 0)), 2**attempt))
                continue
            if response.status_code != 200:
                raise ApiError(response)
            try:
                urls = [image["url"] for image in response.json()["images"]]
            except ValueError:
                time.sleep(1)
                continue
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                return list(pool.map(lambda url: http.get(url).raise_for_status().content, urls))
        raise RuntimeError("gave up")

    request = {"model": "Kwai-Kolors/Kolors", "prompt": "four lighthouses", "seed": 7}
    report = check_client(batch, request=request, seed=4, max_examples=30, invariants=["retries", "returns-image"])
    assert report.succeeded > 0


def test_any_http_stack_reaches_the_live_socket() -> None:
    def with_urllib(ctx: ClientContext) -> bytes:
        """Correct: the standard library on the live socket, retrying 429/5xx."""
        for attempt in range(5):
            request = urllib.request.Request(
                f"{ctx.live_base_url}/images/generations",
                data=json.dumps(ctx.request).encode(),
                headers={AUTH_KEY: f"Bearer {ctx.api_key}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    url = json.loads(answer.read())["images"][0]["url"]
                with urllib.request.urlopen(url, timeout=30) as image:
                    return bytes(image.read())
            except urllib.error.HTTPError as error:
                error.close()  # its status and headers stay readable
                if error.code not in TRANSIENT or attempt == 4:
                    raise  # urllib's HTTPError keeps the status and the headers: enough for `errors`
            time.sleep(2**attempt)
        raise AssertionError("unreachable")

    report = check_client(with_urllib, outcomes=["ok", "503", "429", "400"], seed=1, max_examples=15)
    assert report.succeeded > 0 and {"503", "400"} <= set(report.outcomes)


def test_a_client_that_never_reaches_the_fake_fails_loudly() -> None:
    def own_connection(ctx: ClientContext) -> bytes:
        with httpx.Client(timeout=1) as http:  # not ctx.http_client(): goes to the network
            return http.post(f"{ctx.base_url}/images/generations", json=ctx.request).content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(own_connection, seed=1, max_examples=5)
    assert failed.value.invariant == "coverage"
    assert "never reached the fake" in failed.value.problem and "ConnectError" in failed.value.problem


def adds_a_batch(ctx: ClientContext) -> bytes:
    """Adds ``batch_size: 2`` of its own: Qwen ignores it, strict mode refuses it."""
    ctx.request = {**ctx.request, "batch_size": 2}
    return good_sync(ctx)


def test_a_client_that_never_succeeds_is_not_a_pass() -> None:
    request = {"model": "Qwen/Qwen-Image", "prompt": "x", "image_size": "1328x1328"}
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(
            adds_a_batch, request=request, settings=Settings(strict=True), invariants=["retries"], max_examples=5
        )
    assert failed.value.invariant == "coverage" and "never succeeded" in failed.value.problem
    assert "400" in failed.value.problem


def test_valid_requests_judges_in_the_fakes_mode() -> None:
    request = {"model": "Kwai-Kolors/Kolors", "prompt": "x", "batch_size": 2, "image_size": "1024x1024"}
    qwen = {"model": "Qwen/Qwen-Image", "prompt": "x", "image_size": "1328x1328"}
    check_client(good_sync, request=request, settings=Settings(strict=True), seed=1, max_examples=10)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(adds_a_batch, request=qwen, settings=Settings(strict=True), schedule=[])
    assert failed.value.invariant == "valid-requests" and "strict contract" in failed.value.problem
    check_client(adds_a_batch, request=qwen, schedule=[])  # lenient: accepted and ignored


def test_the_image_returned_must_be_the_image_served() -> None:
    def returns_the_xml(ctx: ClientContext) -> bytes:
        """Flaw: never checks the download's status."""
        http = ctx.http_client(timeout=60)
        url = _post(http, ctx).json()["images"][0]["url"]
        return http.get(url).content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(returns_the_xml, outcomes=["ok", "download-403"], seed=1, invariants=["returns-image"])
    assert failed.value.schedule == ["download-403"]
    assert "bytes that are not the image (they begin b'<?xml" in failed.value.problem

    def returns_nothing(ctx: ClientContext) -> None:
        good_sync(ctx)

    with pytest.raises(ClientCheckFailed, match=r"returned None instead of the image"):
        check_client(returns_nothing, schedule=[])
    check_client(returns_nothing, schedule=[], returns_image=False)  # an explicit opt-out


def test_a_mangled_presigned_url_is_caught() -> None:
    def double_encodes(ctx: ClientContext) -> bytes:
        """Flaw: re-encodes the URL's query (%2F becomes %252F)."""
        http = ctx.http_client(timeout=60)
        url = _post(http, ctx).json()["images"][0]["url"]
        return http.get(url.replace("%2F", "%252F")).raise_for_status().content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(double_encodes, schedule=[])
    assert failed.value.invariant == "downloads" and "changed parameters ['X-Amz-Credential']" in str(failed.value)


def test_a_key_in_a_log_record_is_a_leak() -> None:
    log = logging.getLogger("my.client")

    def chatty(ctx: ClientContext) -> bytes:
        log.info("calling SiliconFlow with %s", ctx.api_key)
        return good_sync(ctx)

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(chatty, schedule=[])
    assert failed.value.invariant == "secrets" and "a log record contains the API key" in failed.value.problem
    assert ctx_key_hidden(failed.value.problem)


def test_the_check_opens_the_root_logger_to_info_and_shows_the_user_nothing_new() -> None:
    """The root logger is opened once for the whole check (not per run): every run still
    captures INFO records, a handler of the user's sees only what it saw before, and the
    logger is as it was afterwards."""
    root = logging.getLogger()
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.NOTSET)
    handler.emit = seen.append  # type: ignore[method-assign]
    root.addHandler(handler)
    level, before = root.level, list(root.handlers)
    root.setLevel(logging.WARNING)
    log = logging.getLogger("my.client")

    def chatty(ctx: ClientContext) -> bytes:
        log.info("calling %s", ctx.api_key)
        log.warning("a warning")
        return good_sync(ctx)

    try:
        for _ in range(2):  # a second check starts from the restored state
            with pytest.raises(ClientCheckFailed) as failed:
                check_client(chatty, seed=1, max_examples=5)
            assert failed.value.invariant == "secrets" and "a log record contains the API key" in failed.value.problem
        assert root.level == logging.WARNING and root.handlers == before
        assert seen and {record.levelno for record in seen} == {logging.WARNING}
        assert not handler.filters
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def ctx_key_hidden(text: str) -> bool:
    return "sk-sfmock-check" not in text and "<API KEY>" in text


def test_errors_may_carry_the_facts_in_their_chain() -> None:
    class AppError(Exception):
        pass

    def wraps(ctx: ClientContext) -> bytes:
        """Correct: an application error raised from the HTTP error, which has the facts."""
        try:
            return good_sync(ctx)
        except ApiError as exc:
            raise AppError("could not make the picture") from exc

    check_client(wraps, outcomes=["ok", "400", "403"], seed=1, max_examples=20)

    def bare(ctx: ClientContext) -> bytes:
        try:
            return good_sync(ctx)
        except ApiError:
            raise AppError("could not make the picture") from None

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(bare, outcomes=["ok", "400"], seed=1, max_examples=20)
    assert failed.value.invariant == "errors" and "lacks its status and trace id" in failed.value.problem


def fixed_one_second(ctx: ClientContext) -> bytes:
    return good_sync(ctx, sleeper=lambda _seconds: time.sleep(1))


def test_retry_after_must_be_honoured_where_the_settings_send_it() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(fixed_one_second, seed=1, max_examples=30, settings=Settings(rate_limit_headers=True))
    assert failed.value.invariant == "backoff" and failed.value.schedule in (["429-retry-after"], ["503-retry-after"])
    assert "ignored Retry-After" in failed.value.problem


def test_a_header_the_service_never_sends_is_not_drawn_by_default() -> None:
    # the real service sends no Retry-After: a client that never reads it is not accused
    report = check_client(fixed_one_second, seed=1, max_examples=30)
    assert not {"429-retry-after", "503-retry-after", "429-observed"} & set(report.outcomes)
    with pytest.raises(ClientCheckFailed) as failed:  # named, they run whatever the settings
        check_client(fixed_one_second, seed=1, max_examples=30, outcomes=["ok", "503-retry-after"])
    assert failed.value.invariant == "backoff" and failed.value.schedule == ["503-retry-after"]


def test_a_default_check_meets_every_outcome_it_draws() -> None:
    from sfmock.strategies import drawn_outcomes

    report = check_client(good_sync, seed=1, max_examples=1)
    assert set(report.outcomes) == set(drawn_outcomes())
    observed = check_client(good_sync, seed=1, max_examples=1, settings=Settings(dialect="observed"))
    assert "429-observed" in observed.outcomes and "429-retry-after" not in observed.outcomes


def test_unbounded_retries_are_found_every_time() -> None:
    def forever(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=60)
        while True:
            response = _post(http, ctx)
            if response.status_code == 200:
                return http.get(response.json()["images"][0]["url"]).content
            time.sleep(1)

    for seed in range(5):
        with pytest.raises(ClientCheckFailed) as failed:
            check_client(forever, seed=seed, max_examples=5, outcomes=["ok", "503", "500", "502"])
        assert failed.value.invariant == "retries" and "at most 6 are reasonable" in failed.value.problem


def test_jitter_is_explored_reproducibly() -> None:
    draws: list[float] = []

    def records_its_jitter(ctx: ClientContext) -> bytes:
        draws.append(random.random())
        return good_sync(ctx)

    check_client(records_its_jitter, seed=1, max_examples=30)
    assert len(set(draws)) > 10  # each run sees another random state
    first = list(draws)
    draws.clear()
    check_client(records_its_jitter, seed=1, max_examples=30)
    assert draws == first  # and the same ones again under the same seed


def test_a_failure_seen_once_is_reported_as_flaky() -> None:
    calls = [0, 0]

    def fails_once(ctx: ClientContext) -> bytes:
        """Flaw that shows once: one answer, late in the search, is junk (a race, a cache...)."""
        calls[0] += 1
        image = good_sync(ctx, sleeper=lambda _: imported_sleep(2))  # no jitter: no reruns
        if calls[0] >= 20 and not calls[1]:
            calls[1] = 1
            return b"junk"
        return image

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(fails_once, seed=1, max_examples=60, outcomes=["ok", "503", "500"])
    assert failed.value.invariant == "returns-image"
    assert "flaky: this schedule failed 1 of 3 replays with the same random seed" in str(failed.value)


@settings(max_examples=3, suppress_health_check=[HealthCheck.nested_given], deadline=None)
@given(st.sampled_from(["Kwai-Kolors/Kolors", "Qwen/Qwen-Image"]))
def test_usable_inside_a_given_test(model: str) -> None:
    request = {"model": model, "prompt": "a lighthouse", "seed": 1}
    check_client(good_sync, request=request, seed=1, max_examples=10)


def test_the_hypothesis_profile_sets_the_number_of_examples() -> None:
    seen: list[int] = []

    def counting(ctx: ClientContext) -> bytes:
        seen.append(1)
        return good_sync(ctx)

    inner = settings(max_examples=12, database=None)
    settings.register_profile("sfmock-test-12", inner)
    previous = settings.get_current_profile_name()
    settings.load_profile("sfmock-test-12")
    try:
        report = check_client(counting, seed=1)
    finally:
        settings.load_profile(previous)
    from sfmock.strategies import drawn_outcomes

    systematic = 1 + (len(drawn_outcomes()) - 1) + 1  # happy path, each outcome once, one long transient run
    # the runs judged: the systematic cases and the profile's 12 (a rerun that tells jitter
    # from a deterministic back-off is not judged, so `seen` may count a few more)
    assert systematic <= report.examples <= systematic + 12 <= len(seen) + 12


def test_a_process_gevent_patched_is_refused_saying_why(tmp_path: Path) -> None:
    # outsider13: after gevent's monkey.patch_all() a check crashed inside the harness (TypeError
    # from gevent's own locks) or hung past its budget; unpatched gevent clients pass
    script = tmp_path / "patched.py"
    script.write_text(
        "from gevent import monkey\nmonkey.patch_all()\n"
        "from sfmock.checks import check_client\n"
        "try:\n    check_client(lambda ctx: b'')\nexcept ValueError as exc:\n    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    assert "refused: argument client: gevent's monkey.patch_all() has replaced threading and time" in done.stdout


def test_a_check_gives_the_caller_its_random_state_back() -> None:
    # each run seeds Python's global RNG (a client's jitter is replayable); the check left it
    # seeded afterwards, so every later `random` call of the process drew the same numbers in
    # every pytest-xdist worker: the suite's workers picked the same "random" ports for their
    # servers, and a README example met another test's server on its port
    def gives_up(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=60)
        response = _post(http, ctx).raise_for_status()
        return http.get(response.json()["images"][0]["url"]).raise_for_status().content

    for client, fails in ((good_sync, False), (gives_up, True)):
        random.seed(2026)
        before = random.getstate()
        try:
            check_client(client, max_examples=30)
        except ClientCheckFailed:
            assert fails
        else:
            assert not fails
        assert random.getstate() == before
