"""Synchronous httpx clients: hand-rolled retry loops, as most SiliconFlow wrappers are written.

Each client's docstring names its style, its flaw (or "correct") and the invariant that
should catch it; ``CORRECT`` and ``FLAWED`` at the bottom are the table the tests read.
"""

from __future__ import annotations

import logging
import os
import random
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import sleep
from typing import Any

import httpx

from catalogue.common import (
    PLACEHOLDER_PNG,
    READ_TIMEOUT,
    TRACE,
    TRANSIENT,
    ImageApiError,
    Transient,
    download_error,
    image_urls,
    retry_after,
    status_error,
)
from sfmock.checks import ClientContext

log = logging.getLogger("catalogue.httpx")

TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=5.0)


def _ask(http: httpx.Client, ctx: ClientContext, body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """One generation request: the answer and its trace id, or a (transient) ImageApiError."""
    try:
        answer = http.post(
            f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
    except httpx.TransportError as exc:  # read timeouts, dropped connections, answers cut short
        raise Transient(f"{type(exc).__name__} on the generation request") from exc
    trace = answer.headers.get(TRACE)
    if answer.status_code != 200:
        raise status_error(answer.status_code, answer.headers, answer.text)
    try:
        return answer.json(), trace
    except ValueError as exc:  # a 200 whose body cannot be read is no answer at all
        raise Transient("unreadable generation answer", status=200, trace_id=trace) from exc


def _fetch(http: httpx.Client, url: str, trace: str | None) -> bytes:
    """Download a pre-signed URL as given, without the key; retry a 5xx or a cut body twice."""
    for attempt in range(3):
        try:
            image = http.get(url)
        except httpx.TransportError as exc:
            if attempt == 2:
                raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
        else:
            if image.status_code == 200:
                return image.content
            if image.status_code < 500 or attempt == 2:
                raise download_error(image.status_code, image.headers, image.text, trace)
        time.sleep(2.0**attempt)
    raise AssertionError("unreachable")


def httpx_loop(ctx: ClientContext) -> bytes:
    """httpx.Client, a for loop, doubling waits that honour Retry-After. Correct."""
    with ctx.http_client(timeout=TIMEOUT) as http:
        delay = 1.0
        for attempt in range(1, 6):
            try:
                answer, trace = _ask(http, ctx, ctx.request)
            except Transient as exc:
                if attempt == 5:
                    raise
                wait = max(delay, exc.retry_after or 0.0)
                time.sleep(wait)
                delay = wait * 2
                continue
            return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


WAITS = (1.0, 2.0, 4.0, 8.0)


def httpx_wait_table(ctx: ClientContext) -> bytes:
    """httpx, ``from time import sleep``, a fixed table of waits; Retry-After wins when longer. Correct."""
    http = ctx.http_client(timeout=TIMEOUT)
    for wait in (*WAITS, None):
        try:
            answer, trace = _ask(http, ctx, ctx.request)
        except Transient as exc:
            if wait is None:
                raise
            sleep(max(wait, exc.retry_after or 0.0))
        else:
            return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def httpx_full_jitter(ctx: ClientContext) -> bytes:
    """httpx, AWS-style full jitter with ``random.uniform`` under a doubling cap; Retry-After is a floor. Correct."""
    http = ctx.http_client(timeout=TIMEOUT)
    for attempt in range(5):
        try:
            answer, trace = _ask(http, ctx, ctx.request)
            return _fetch(http, image_urls(answer)[0], trace)
        except Transient as exc:
            if attempt == 4:
                raise
            time.sleep(max(random.uniform(0, min(20.0, 2.0 ** (attempt + 1))), exc.retry_after or 0.0))
    raise AssertionError("unreachable")


def threads_batch(ctx: ClientContext) -> bytes:
    """httpx, then a ThreadPoolExecutor downloads the whole batch at once; returns the first image. Correct."""
    http = ctx.http_client(timeout=TIMEOUT)
    delay = 1.0
    for attempt in range(5):
        try:
            answer, trace = _ask(http, ctx, ctx.request)
            break
        except Transient as exc:
            if attempt == 4:
                raise
            time.sleep(max(delay, exc.retry_after or 0.0))
            delay *= 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(lambda url: _fetch(http, url, trace), image_urls(answer)))
    return images[0]


def _retry_loop(ctx: ClientContext, http: httpx.Client, attempts: int = 5) -> tuple[dict[str, Any], str | None]:
    """The correct loop of ``httpx_loop``, for the clients whose flaw is elsewhere."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            return _ask(http, ctx, ctx.request)
        except Transient as exc:
            if attempt == attempts:
                raise
            wait = max(delay, exc.retry_after or 0.0)
            time.sleep(wait)
            delay = wait * 2
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- flawed clients


def httpx_no_retries(ctx: ClientContext) -> bytes:
    """httpx, one try and ``raise_for_status()``. Flaw: no retries (a single 503 fails the job)."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer = http.post(
        f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
    )
    answer.raise_for_status()
    image = http.get(answer.json()["images"][0]["url"])
    image.raise_for_status()
    return image.content


def httpx_unbounded(ctx: ClientContext) -> bytes:
    """httpx, ``while True`` with capped doubling waits. Flaw: unbounded retries (no attempt limit)."""
    http = ctx.http_client(timeout=TIMEOUT)
    delay = 1.0
    while True:
        try:
            answer, trace = _ask(http, ctx, ctx.request)
        except Transient as exc:
            time.sleep(max(delay, exc.retry_after or 0.0))
            delay = min(delay * 2, 30.0)
            continue
        return _fetch(http, image_urls(answer)[0], trace)


def httpx_no_backoff_on_503(ctx: ClientContext) -> bytes:
    """httpx, waits only when rate-limited. Flaw: no back-off on a 503 (retried at once)."""
    http = ctx.http_client(timeout=TIMEOUT)
    for attempt in range(5):
        try:
            answer, trace = _ask(http, ctx, ctx.request)
        except Transient as exc:
            if attempt == 4:
                raise
            if exc.status_code == 429:
                time.sleep(max(2.0**attempt, exc.retry_after or 0.0))
            continue
        return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def httpx_reroll_seed(ctx: ClientContext) -> bytes:
    """httpx loop that tries "another seed, maybe that one works" on retry. Flaw: rerolls the asked seed."""
    http = ctx.http_client(timeout=TIMEOUT)
    body = dict(ctx.request)
    for attempt in range(5):
        try:
            answer, trace = _ask(http, ctx, body)
        except Transient as exc:
            if attempt == 4:
                raise
            time.sleep(max(2.0**attempt, exc.retry_after or 0.0))
            body["seed"] = random.randint(0, 9_999_999_999)
            continue
        return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def httpx_named_fields(ctx: ClientContext) -> bytes:
    """httpx, a typed wrapper that copies the fields it knows. Flaw: drops the asked seed."""
    body = {key: ctx.request[key] for key in ("model", "prompt", "image_size", "batch_size") if key in ctx.request}
    http = ctx.http_client(timeout=TIMEOUT)
    for attempt in range(5):
        try:
            answer, trace = _ask(http, ctx, body)
        except Transient as exc:
            if attempt == 4:
                raise
            time.sleep(max(2.0**attempt, exc.retry_after or 0.0))
            continue
        return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def httpx_seed_per_attempt(ctx: ClientContext) -> bytes:
    """httpx, draws a seed "so the result can be reproduced" when none was asked, inside the loop.
    Flaw: each retry sends a different seed (run with a request that has no seed)."""
    http = ctx.http_client(timeout=TIMEOUT)
    for attempt in range(5):
        body = {**ctx.request, "seed": ctx.request.get("seed", random.randint(0, 9_999_999_999))}
        try:
            answer, trace = _ask(http, ctx, body)
        except Transient as exc:
            if attempt == 4:
                raise
            time.sleep(max(2.0**attempt, exc.retry_after or 0.0))
            continue
        return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def httpx_lighter_on_retry(ctx: ClientContext) -> bytes:
    """httpx, asks for fewer inference steps after an overload "to go easy on the server".
    Flaw: a retry sends a different body."""
    http = ctx.http_client(timeout=TIMEOUT)
    body = dict(ctx.request)
    for attempt in range(5):
        try:
            answer, trace = _ask(http, ctx, body)
        except Transient as exc:
            if attempt == 4:
                raise
            time.sleep(max(2.0**attempt, exc.retry_after or 0.0))
            body["num_inference_steps"] = 10
            continue
        return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def httpx_key_on_download(ctx: ClientContext) -> bytes:
    """httpx client with the key as a default header, reused for the download. Flaw: sends the key on the download."""
    http = ctx.http_client(timeout=TIMEOUT, headers={"Authorization": f"Bearer {ctx.api_key}"})
    answer, trace = _retry_loop(ctx, http)
    return _fetch(http, image_urls(answer)[0], trace)


def httpx_strips_query(ctx: ClientContext) -> bytes:
    """httpx, keys its image cache by the URL without "tracking parameters" and downloads that.
    Flaw: strips the pre-signed URL's query."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    clean = image_urls(answer)[0].split("?", 1)[0]
    return _fetch(http, clean, trace)


def httpx_quotes_url(ctx: ClientContext) -> bytes:
    """httpx, "sanitises" the URL with ``urllib.parse.quote`` before the download.
    Flaw: double-encodes ``%2F`` as ``%252F``."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    return _fetch(http, urllib.parse.quote(image_urls(answer)[0], safe=":/?&="), trace)


def httpx_sorted_query(ctx: ClientContext) -> bytes:
    """httpx, rebuilds the URL with its parameters sorted (a canonical cache key); S3 sorts the
    query itself before it checks a signature, so the order is free. Correct."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    parts = urllib.parse.urlsplit(image_urls(answer)[0])
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parts.query)))
    return _fetch(http, urllib.parse.urlunsplit(parts._replace(query=query)), trace)


def httpx_unchecked_download(ctx: ClientContext) -> bytes:
    """httpx, returns whatever the image URL answered. Flaw: no download status check (returns S3's XML)."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, _trace = _retry_loop(ctx, http)
    return http.get(image_urls(answer)[0]).content


def httpx_forgets_return(ctx: ClientContext) -> bytes:
    """httpx, logs the size of the image it downloaded. Flaw: forgets to return it (returns None)."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    image = _fetch(http, image_urls(answer)[0], trace)
    log.info("generated %d bytes", len(image))
    return None  # type: ignore[return-value]  # the flaw: the caller gets nothing


def httpx_empty_on_error(ctx: ClientContext) -> bytes:
    """httpx, "never crash the caller": any error is logged and answered with ``b""``.
    Flaw: swallows errors and returns an empty image."""
    try:
        http = ctx.http_client(timeout=TIMEOUT)
        answer, trace = _retry_loop(ctx, http)
        return _fetch(http, image_urls(answer)[0], trace)
    except Exception:
        log.exception("image generation failed")
        return b""


def httpx_placeholder(ctx: ClientContext) -> bytes:
    """httpx, shows a placeholder picture when generation fails. Flaw: swallows errors, returns as if it succeeded."""
    http = ctx.http_client(timeout=TIMEOUT)
    try:
        answer, trace = _retry_loop(ctx, http)
        return _fetch(http, image_urls(answer)[0], trace)
    except ImageApiError as exc:
        log.warning("using the placeholder: %s", exc)
        return PLACEHOLDER_PNG


def httpx_keeps_partial(ctx: ClientContext) -> bytes:
    """httpx streaming download that "tolerates network blips" by keeping what arrived.
    Flaw: returns half a PNG when the download is cut."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    chunks: list[bytes] = []
    with http.stream("GET", image_urls(answer)[0]) as image:
        if image.status_code != 200:
            raise download_error(image.status_code, image.headers, image.read().decode(errors="replace"), trace)
        try:
            for chunk in image.iter_bytes():
                chunks.append(chunk)
        except httpx.TransportError:
            log.warning("download interrupted, keeping %d chunks", len(chunks))
    return b"".join(chunks)


def httpx_no_timeout(ctx: ClientContext) -> bytes:
    """httpx with ``timeout=None`` because "generation can be slow". Flaw: no timeout at all."""
    http = ctx.http_client(timeout=None)
    answer, trace = _retry_loop(ctx, http)
    return _fetch(http, image_urls(answer)[0], trace)


def httpx_short_timeout(ctx: ClientContext) -> bytes:
    """httpx with a snappy 0.5 s timeout. Flaw: read timeout shorter than a normal answer."""
    http = ctx.http_client(timeout=0.5)
    answer, trace = _retry_loop(ctx, http)
    return _fetch(http, image_urls(answer)[0], trace)


def httpx_key_in_message(ctx: ClientContext) -> bytes:
    """httpx, errors that say how to reproduce the call. Flaw: leaks the key in the exception message."""
    http = ctx.http_client(timeout=TIMEOUT)
    try:
        answer, trace = _retry_loop(ctx, http)
    except ImageApiError as exc:
        raise ImageApiError(
            f"{exc} -- reproduce with: curl -H 'Authorization: Bearer {ctx.api_key}' {ctx.base_url}/images/generations",
            status=exc.status_code,
            trace_id=exc.trace_id,
        ) from exc
    return _fetch(http, image_urls(answer)[0], trace)


def httpx_key_in_log(ctx: ClientContext) -> bytes:
    """httpx, logs each request with its headers at INFO for debugging. Flaw: leaks the key in a log record."""
    http = ctx.http_client(timeout=TIMEOUT)
    headers = {"Authorization": f"Bearer {ctx.api_key}", "Content-Type": "application/json"}
    delay = 1.0
    for attempt in range(5):
        log.info("POST %s/images/generations headers=%s", ctx.base_url, headers)
        try:
            answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=headers)
        except httpx.TransportError as exc:
            failure: ImageApiError = Transient(type(exc).__name__)
        else:
            if answer.status_code == 200:
                return _fetch(http, image_urls(answer.json())[0], answer.headers.get(TRACE))
            failure = status_error(answer.status_code, answer.headers, answer.text)
        if not isinstance(failure, Transient) or attempt == 4:
            raise failure
        time.sleep(max(delay, failure.retry_after or 0.0))
        delay *= 2
    raise AssertionError("unreachable")


def httpx_key_in_cause(ctx: ClientContext) -> bytes:
    """httpx, chains a dump of the failed request as the cause of its error.
    Flaw: ``raise ... from`` a cause whose message holds the key (shown in every traceback)."""
    http = ctx.http_client(timeout=TIMEOUT)
    headers = {"Authorization": f"Bearer {ctx.api_key}"}
    try:
        answer, trace = _retry_loop(ctx, http)
    except ImageApiError as exc:
        dump = RuntimeError(f"POST {ctx.base_url}/images/generations headers={headers} body={ctx.request}")
        raise ImageApiError(str(exc), status=exc.status_code, trace_id=exc.trace_id) from dump
    return _fetch(http, image_urls(answer)[0], trace)


def httpx_key_in_note(ctx: ClientContext) -> bytes:
    """httpx, adds a ready-to-paste curl command as a note on its errors. Flaw: leaks the key in the notes."""
    http = ctx.http_client(timeout=TIMEOUT)
    try:
        answer, trace = _retry_loop(ctx, http)
    except ImageApiError as exc:
        exc.add_note(f"curl -H 'Authorization: Bearer {ctx.api_key}' -d '{ctx.request}' {ctx.base_url}")
        raise
    return _fetch(http, image_urls(answer)[0], trace)


def httpx_reads_data(ctx: ClientContext) -> bytes:
    """httpx, written against the OpenAI shape: ``body["data"][0]["url"]``.
    Flaw: reads only ``data`` (breaks on a documented-only body)."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    return _fetch(http, answer["data"][0]["url"], trace)


@dataclass(frozen=True)
class GenerationAnswer:
    """The answer as this client's author saw it in the docs one day."""

    images: list[dict[str, str]]
    timings: dict[str, float]
    seed: int
    data: list[dict[str, str]] | None = None
    created: int | None = None
    shared_id: str | None = None


def httpx_strict_model(ctx: ClientContext) -> bytes:
    """httpx, parses the answer into a dataclass with ``GenerationAnswer(**body)``.
    Flaw: breaks on unknown fields."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    parsed = GenerationAnswer(**answer)
    return _fetch(http, parsed.images[0]["url"], trace)


def httpx_missing_break(ctx: ClientContext) -> bytes:
    """httpx, a retry loop that stores the image but has no ``break``. Flaw: asks again after a successful answer."""
    http = ctx.http_client(timeout=TIMEOUT)
    image = None
    for attempt in range(3):
        try:
            answer, trace = _ask(http, ctx, ctx.request)
            image = _fetch(http, image_urls(answer)[0], trace)
        except Transient as exc:
            if attempt == 2:
                raise
            time.sleep(max(2.0**attempt, exc.retry_after or 0.0))
    assert image is not None
    return image


def httpx_regenerates(ctx: ClientContext) -> bytes:
    """httpx, generates again when the download fails "because the URL may be bad".
    Flaw: asks again after a successful answer."""
    http = ctx.http_client(timeout=TIMEOUT)
    for attempt in range(4):
        answer, trace = _retry_loop(ctx, http)
        image = http.get(image_urls(answer)[0])
        if image.status_code == 200:
            return image.content
        if attempt == 3:
            raise download_error(image.status_code, image.headers, image.text, trace)
        time.sleep(1.0)
    raise AssertionError("unreachable")


def httpx_late_download(ctx: ClientContext) -> bytes:
    """httpx, generation now, download by the hourly sync job. Flaw: downloads after the URL expired."""
    http = ctx.http_client(timeout=TIMEOUT)
    answer, trace = _retry_loop(ctx, http)
    time.sleep(3600)  # the sync job runs once an hour
    return _fetch(http, image_urls(answer)[0], trace)


def httpx_bare_exception(ctx: ClientContext) -> bytes:
    """httpx, retries well but gives up with ``raise Exception("image generation failed")``.
    Flaw: a bare exception with no status or trace id."""
    http = ctx.http_client(timeout=TIMEOUT)
    delay = 1.0
    for attempt in range(5):
        try:
            answer = http.post(
                f"{ctx.base_url}/images/generations",
                json=ctx.request,
                headers={"Authorization": f"Bearer {ctx.api_key}"},
            )
        except httpx.TransportError:
            status = None
        else:
            if answer.status_code == 200:
                return _fetch(http, image_urls(answer.json())[0], answer.headers.get(TRACE))
            status = answer.status_code
            if status not in TRANSIENT:
                raise Exception("image generation failed")  # the flaw under test
        if attempt == 4:
            raise Exception("image generation failed")
        time.sleep(max(delay, retry_after(answer.headers) or 0.0) if status else delay)
        delay *= 2
    raise AssertionError("unreachable")


GATEWAY = os.environ.get("CATALOGUE_GATEWAY_URL", "http://127.0.0.1:9/v1")  # the team's local gateway


def httpx_own_client(ctx: ClientContext) -> bytes:
    """A careful loop on an ``httpx.Client`` of its own, aimed at the team's gateway, not at ``ctx``.
    Flaw: never reaches the fake (so nothing was tested: the verdict must not be a pass)."""
    http = httpx.Client(timeout=TIMEOUT)
    delay = 1.0
    for attempt in range(5):
        try:
            answer = http.post(
                f"{GATEWAY}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
            )
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(delay)
            delay *= 2
            continue
        if answer.status_code != 200:
            raise status_error(answer.status_code, answer.headers, answer.text)
        return _fetch(http, image_urls(answer.json())[0], answer.headers.get(TRACE))
    raise AssertionError("unreachable")


CORRECT = [httpx_sorted_query, httpx_loop, httpx_wait_table, httpx_full_jitter, threads_batch]

FLAWED = {
    httpx_no_retries: "retries",
    httpx_unbounded: "retries",
    httpx_no_backoff_on_503: "backoff",
    httpx_reroll_seed: "same-body",  # the first attempt asks the seed asked; a retry re-rolls it (the docs: same-body)
    httpx_named_fields: "faithful-request",
    httpx_seed_per_attempt: "same-body",
    httpx_lighter_on_retry: "same-body",
    httpx_key_on_download: "downloads",
    httpx_strips_query: "downloads",
    httpx_quotes_url: "downloads",
    httpx_late_download: "downloads",
    httpx_unchecked_download: "returns-image",
    httpx_forgets_return: "returns-image",
    httpx_empty_on_error: "returns-image",
    httpx_placeholder: "returns-image",
    httpx_keeps_partial: "returns-image",
    httpx_no_timeout: "timeouts",
    httpx_short_timeout: "timeouts",
    httpx_key_in_message: "secrets",
    httpx_key_in_log: "secrets",
    httpx_key_in_cause: "secrets",
    httpx_key_in_note: "secrets",
    httpx_reads_data: "tolerant",
    httpx_strict_model: "tolerant",
    httpx_missing_break: "retries",
    httpx_regenerates: "retries",
    httpx_bare_exception: "errors",
    httpx_own_client: "coverage",
}
