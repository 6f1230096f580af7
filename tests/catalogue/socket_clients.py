"""Clients with their own HTTP stack on ``ctx.live_base_url``: urllib3 ``Retry``, a requests
Session with its own ``HTTPAdapter``, and ``urllib.request``.

urllib3's ``Retry`` waits nothing before the *first* retry (``get_backoff_time`` is 0 until
two errors in a row); a careful client raises that floor, a hasty one does not.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from time import sleep
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from catalogue.common import (
    READ_TIMEOUT,
    TRACE,
    TRANSIENT,
    ImageApiError,
    Transient,
    download_error,
    image_urls,
    status_error,
)
from sfmock.checks import ClientContext


class PatientRetry(Retry):
    """urllib3 Retry that waits ``backoff_factor`` seconds before the first retry too."""

    def get_backoff_time(self) -> float:
        return max(self.backoff_factor, super().get_backoff_time())


def _retry(cls: type[Retry] = PatientRetry, **overrides: Any) -> Retry:
    options: dict[str, Any] = {
        "total": 4,
        "backoff_factor": 1.0,
        "backoff_max": 20.0,
        "status_forcelist": sorted(TRANSIENT),
        "allowed_methods": None,  # POST too: a generation is safe to resend with the same seed
        "respect_retry_after_header": True,
        "raise_on_status": False,
        "redirect": 0,
    }
    return cls(**{**options, **overrides})


POOL_TIMEOUT = urllib3.Timeout(connect=5.0, read=READ_TIMEOUT)


def _pool_generate(ctx: ClientContext, retries: Retry) -> bytes:
    pool = urllib3.PoolManager(retries=retries, timeout=POOL_TIMEOUT)
    try:
        answer = pool.request(
            "POST",
            f"{ctx.live_base_url}/images/generations",
            body=json.dumps(ctx.request).encode(),
            headers={"Authorization": f"Bearer {ctx.api_key}", "Content-Type": "application/json"},
        )
    except urllib3.exceptions.HTTPError as exc:  # MaxRetryError and friends: no answer in the end
        raise ImageApiError(f"no answer from the image service: {type(exc).__name__}") from exc
    trace = answer.headers.get(TRACE)
    if answer.status != 200:
        raise status_error(answer.status, answer.headers, answer.data.decode(errors="replace"))
    url = image_urls(json.loads(answer.data))[0]
    try:
        image = pool.request("GET", url)  # no Authorization: the URL is pre-signed
    except urllib3.exceptions.HTTPError as exc:
        raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
    if image.status != 200:
        raise download_error(image.status, image.headers, image.data.decode(errors="replace"), trace)
    return image.data


def urllib3_pool_retry(ctx: ClientContext) -> bytes:
    """urllib3.PoolManager with a ``Retry`` (POST allowed, Retry-After respected, a first wait). Correct."""
    return _pool_generate(ctx, _retry())


def urllib3_default_methods(ctx: ClientContext) -> bytes:
    """urllib3.PoolManager with ``Retry(total=4, backoff_factor=1, status_forcelist=...)`` as in every blog post.
    Flaw: no retries for the generation (Retry's default ``allowed_methods`` leaves POST out)."""
    return _pool_generate(ctx, _retry(Retry, allowed_methods=Retry.DEFAULT_ALLOWED_METHODS))


def urllib3_first_retry_at_once(ctx: ClientContext) -> bytes:
    """urllib3.PoolManager with a plain ``Retry(backoff_factor=1, allowed_methods=None)``.
    Flaw: no back-off before the first retry of a 503 (urllib3 waits 0 s after one error)."""
    return _pool_generate(ctx, _retry(Retry))


def requests_adapter_retry(ctx: ClientContext) -> bytes:
    """requests.Session of its own with ``HTTPAdapter(max_retries=PatientRetry(...))`` on ``live_base_url``.
    Flaw: no retry of a 200 cut mid-body (requests reads the body after urllib3's Retry has returned)."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=_retry()))
    answer = session.post(
        f"{ctx.live_base_url}/images/generations",
        json=ctx.request,
        headers={"Authorization": f"Bearer {ctx.api_key}"},
        timeout=(5, READ_TIMEOUT),
    )
    trace = answer.headers.get(TRACE)
    if not answer.ok:
        raise status_error(answer.status_code, answer.headers, answer.text)
    image = session.get(image_urls(answer.json())[0], timeout=(5, READ_TIMEOUT))
    if image.status_code != 200:
        raise download_error(image.status_code, image.headers, image.text, trace)
    return image.content


def _urllib_ask(ctx: ClientContext, timeout: float | None) -> tuple[dict[str, Any], str | None]:
    request = urllib.request.Request(
        f"{ctx.live_base_url}/images/generations",
        data=json.dumps(ctx.request).encode(),
        headers={"Authorization": f"Bearer {ctx.api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, **({"timeout": timeout} if timeout else {})) as answer:
            text, trace = answer.read(), answer.headers.get(TRACE)
    except urllib.error.HTTPError as exc:
        raise status_error(exc.code, exc.headers, exc.read().decode(errors="replace")) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # timeouts, drops, cut bodies
        raise Transient(f"{type(exc).__name__} on the generation request") from exc
    try:
        return json.loads(text), trace
    except ValueError as exc:
        raise Transient("unreadable generation answer", status=200, trace_id=trace) from exc


def _urllib_fetch(url: str, trace: str | None, timeout: float | None) -> bytes:
    for attempt in range(3):
        try:
            with urllib.request.urlopen(url, **({"timeout": timeout} if timeout else {})) as image:
                return bytes(image.read())
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == 2:
                raise download_error(exc.code, exc.headers, exc.read().decode(errors="replace"), trace) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if attempt == 2:
                raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
        sleep(2.0**attempt)
    raise AssertionError("unreachable")


def _urllib_generate(ctx: ClientContext, timeout: float | None) -> bytes:
    delay = 1.0
    for attempt in range(5):
        try:
            answer, trace = _urllib_ask(ctx, timeout)
        except Transient as exc:
            if attempt == 4:
                raise
            wait = max(delay, exc.retry_after or 0.0)
            sleep(wait)
            delay = wait * 2
            continue
        return _urllib_fetch(image_urls(answer)[0], trace, timeout)
    raise AssertionError("unreachable")


def urllib_request_loop(ctx: ClientContext) -> bytes:
    """urllib.request on ``live_base_url``, ``urlopen(timeout=60)``, ``from time import sleep``. Correct."""
    return _urllib_generate(ctx, READ_TIMEOUT)


def urllib_request_no_timeout(ctx: ClientContext) -> bytes:
    """urllib.request on ``live_base_url`` with ``urlopen``'s default (no timeout). Flaw: no timeout at all."""
    return _urllib_generate(ctx, None)


CORRECT = [urllib3_pool_retry, urllib_request_loop]

FLAWED = {
    urllib3_default_methods: "retries",
    urllib3_first_retry_at_once: "backoff",
    requests_adapter_retry: "retries",
    urllib_request_no_timeout: "timeouts",
}
