"""Clients that let a retry library do the retrying: tenacity, backoff and stamina."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import backoff
import httpx
import requests
import stamina
import tenacity
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_exponential_jitter,
    wait_random_exponential,
)

from catalogue.common import (
    READ_TIMEOUT,
    TRACE,
    Transient,
    download_error,
    image_urls,
    retry_after,
    status_error,
)
from catalogue.httpx_clients import TIMEOUT, _ask, _fetch
from sfmock.checks import ClientContext

log = logging.getLogger("catalogue.retrylibs")


class wait_retry_after(tenacity.wait.wait_base):  # named like tenacity's own waits
    """tenacity wait: the server's ``Retry-After`` (from our error or httpx's) when longer than ``fallback``."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        assert retry_state.outcome is not None
        failure = retry_state.outcome.exception()
        asked = getattr(failure, "retry_after", None)
        if asked is None and isinstance(failure, httpx.HTTPStatusError):
            asked = retry_after(failure.response.headers)
        return max(asked or 0.0, self.fallback(retry_state))


def tenacity_jitter_deadline(ctx: ClientContext) -> bytes:
    """httpx + tenacity: ``wait_random_exponential`` (full jitter), Retry-After as a floor,
    ``stop_after_attempt(5) | stop_after_delay(300)``, retries logged at INFO. Correct."""
    http = ctx.http_client(timeout=TIMEOUT)

    @retry(
        retry=retry_if_exception_type(Transient),
        wait=wait_retry_after(wait_random_exponential(multiplier=1, max=20)),
        stop=stop_after_attempt(5) | stop_after_delay(300),
        before_sleep=tenacity.before_sleep_log(log, logging.INFO),
        reraise=True,
    )
    def generate() -> tuple[dict[str, Any], str | None]:
        return _ask(http, ctx, ctx.request)

    answer, trace = generate()
    return _fetch(http, image_urls(answer)[0], trace)


def _requests_ask(session: requests.Session, ctx: ClientContext) -> requests.Response:
    try:
        answer = session.post(
            f"{ctx.base_url}/images/generations",
            json=ctx.request,
            headers={"Authorization": f"Bearer {ctx.api_key}"},
            timeout=(5, READ_TIMEOUT),
        )
        answer.json()  # a 200 cut short or garbled is retried like a dropped connection
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise Transient(type(exc).__name__) from exc
    except requests.JSONDecodeError as exc:
        if answer.ok:
            raise Transient("unreadable answer", status=200, trace_id=answer.headers.get(TRACE)) from exc
    if not answer.ok:
        raise status_error(answer.status_code, answer.headers, answer.text)
    return answer


def tenacity_requests(ctx: ClientContext) -> bytes:
    """requests + tenacity: ``wait_exponential_jitter(initial=1, max=20)``, Retry-After as a floor,
    ``stop_after_attempt(4)``. Correct."""
    session = ctx.requests_session()
    retrying = tenacity.Retrying(
        retry=retry_if_exception_type(Transient),
        wait=wait_retry_after(wait_exponential_jitter(initial=1, max=20, jitter=1)),
        stop=stop_after_attempt(4),
        reraise=True,
    )
    answer = retrying(_requests_ask, session, ctx)
    trace = answer.headers.get(TRACE)
    image = session.get(image_urls(answer.json())[0], timeout=(5, READ_TIMEOUT))
    if image.status_code != 200:
        raise download_error(image.status_code, image.headers, image.text, trace)
    return image.content


def expo_honouring_retry_after(base: float = 1.0, cap: float = 30.0) -> Generator[float, Any, None]:
    """A backoff wait generator: doubling waits, or the server's Retry-After when longer."""
    failure = yield  # type: ignore[misc]  # backoff primes the generator with None
    wait = base
    while True:
        asked = getattr(failure, "retry_after", None) or 0.0
        failure = yield max(wait, asked)
        wait = min(wait * 2, cap)


def backoff_decorated(ctx: ClientContext) -> bytes:
    """httpx + backoff: ``@backoff.on_exception`` with a wait generator that honours Retry-After,
    ``max_tries=5``, permanent errors given up at once. Correct."""
    http = ctx.http_client(timeout=TIMEOUT)

    @backoff.on_exception(expo_honouring_retry_after, Transient, max_tries=5, jitter=None)
    def generate() -> tuple[dict[str, Any], str | None]:
        return _ask(http, ctx, ctx.request)

    answer, trace = generate()
    return _fetch(http, image_urls(answer)[0], trace)


def _transient_or_retry_after(failure: Exception) -> bool | float:
    """stamina backoff hook: retry transient failures, after the server's Retry-After when it sent one."""
    if isinstance(failure, Transient):
        return failure.retry_after or True
    return False


def stamina_hook(ctx: ClientContext) -> bytes:
    """httpx + stamina: ``@stamina.retry(on=hook, attempts=5, timeout=300)``, the hook returning
    Retry-After as the wait when the server sent one (else stamina's jittered exponential back-off). Correct."""
    http = ctx.http_client(timeout=TIMEOUT)

    @stamina.retry(on=_transient_or_retry_after, attempts=5, timeout=300.0, wait_initial=1.0, wait_max=20.0)
    def generate() -> tuple[dict[str, Any], str | None]:
        return _ask(http, ctx, ctx.request)

    answer, trace = generate()
    return _fetch(http, image_urls(answer)[0], trace)


def tenacity_ignores_retry_after(ctx: ClientContext) -> bytes:
    """httpx + tenacity ``wait_exponential(multiplier=0.5, max=10)``. Flaw: ignores Retry-After."""
    http = ctx.http_client(timeout=TIMEOUT)

    @retry(
        retry=retry_if_exception_type(Transient),
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    def generate() -> tuple[dict[str, Any], str | None]:
        return _ask(http, ctx, ctx.request)

    answer, trace = generate()
    return _fetch(http, image_urls(answer)[0], trace)


def tenacity_retries_http_errors(ctx: ClientContext) -> bytes:
    """httpx + tenacity ``retry_if_exception_type(httpx.HTTPError)`` around ``raise_for_status()``.
    Flaw: retries a 400/401/402 (HTTPStatusError is an HTTPError too)."""
    http = ctx.http_client(timeout=TIMEOUT)

    @retry(
        retry=retry_if_exception_type(httpx.HTTPError),
        wait=wait_retry_after(wait_random_exponential(multiplier=1, max=20)),
        stop=stop_after_attempt(4),
        reraise=True,
    )
    def generate() -> httpx.Response:
        answer = http.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
        answer.raise_for_status()
        answer.json()
        return answer

    answer = generate()
    return _fetch(http, image_urls(answer.json())[0], answer.headers.get(TRACE))


def backoff_max_time_only(ctx: ClientContext) -> bytes:
    """httpx + backoff with ``max_time=300`` and no ``max_tries``. Flaw: unbounded retries (no attempt limit)."""
    http = ctx.http_client(timeout=TIMEOUT)

    @backoff.on_exception(expo_honouring_retry_after, Transient, max_time=300, jitter=None)
    def generate() -> tuple[dict[str, Any], str | None]:
        return _ask(http, ctx, ctx.request)

    answer, trace = generate()
    return _fetch(http, image_urls(answer)[0], trace)


CORRECT = [tenacity_jitter_deadline, tenacity_requests, backoff_decorated, stamina_hook]

FLAWED = {
    tenacity_ignores_retry_after: "backoff",
    tenacity_retries_http_errors: "retries",
    backoff_max_time_only: "retries",
}
