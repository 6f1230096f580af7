"""requests clients: a Session from ``ctx.requests_session()`` and a hand-rolled loop."""

from __future__ import annotations

import time
from typing import Any

import requests

from catalogue.common import (
    READ_TIMEOUT,
    TRACE,
    ImageApiError,
    Transient,
    download_error,
    image_urls,
    status_error,
)
from sfmock.checks import ClientContext

TIMEOUT = (5.0, READ_TIMEOUT)  # (connect, read)


def _ask(session: requests.Session, ctx: ClientContext, timeout: Any = TIMEOUT) -> tuple[dict[str, Any], str | None]:
    try:
        answer = session.post(
            f"{ctx.base_url}/images/generations",
            json=ctx.request,
            headers={"Authorization": f"Bearer {ctx.api_key}"},
            timeout=timeout,
        )
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise Transient(f"{type(exc).__name__} on the generation request") from exc
    trace = answer.headers.get(TRACE)
    if not answer.ok:
        raise status_error(answer.status_code, answer.headers, answer.text)
    try:
        return answer.json(), trace
    except requests.JSONDecodeError as exc:
        raise Transient("unreadable generation answer", status=200, trace_id=trace) from exc


def _fetch(session: requests.Session, url: str, trace: str | None, timeout: Any = TIMEOUT) -> bytes:
    for attempt in range(3):
        try:
            image = session.get(url, timeout=timeout)
        except requests.RequestException as exc:
            if attempt == 2:
                raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
        else:
            if image.status_code == 200:
                return image.content
            if image.status_code < 500 or attempt == 2:
                raise download_error(image.status_code, image.headers, image.text, trace)
        time.sleep(2.0**attempt)
    raise AssertionError("unreachable")


def requests_loop(ctx: ClientContext) -> bytes:
    """requests.Session, (connect, read) timeouts, doubling waits, Retry-After honoured. Correct."""
    session = ctx.requests_session()
    delay = 1.0
    for attempt in range(5):
        try:
            answer, trace = _ask(session, ctx)
        except Transient as exc:
            if attempt == 4:
                raise
            wait = max(delay, exc.retry_after or 0.0)
            time.sleep(wait)
            delay = wait * 2
            continue
        return _fetch(session, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def requests_no_timeout(ctx: ClientContext) -> bytes:
    """requests.Session with a careful loop, and requests' default of no timeout. Flaw: no timeout at all."""
    session = ctx.requests_session()
    delay = 1.0
    for attempt in range(5):
        try:
            answer, trace = _ask(session, ctx, timeout=None)
        except Transient as exc:
            if attempt == 4:
                raise
            time.sleep(max(delay, exc.retry_after or 0.0))
            delay *= 2
            continue
        return _fetch(session, image_urls(answer)[0], trace, timeout=None)
    raise AssertionError("unreachable")


def requests_retries_everything(ctx: ClientContext) -> bytes:
    """requests, ``if not response.ok: sleep and retry``. Flaw: retries a 400/401/402 too."""
    session = ctx.requests_session()
    delay = 1.0
    for attempt in range(5):
        try:
            answer, trace = _ask(session, ctx)
        except ImageApiError as exc:  # every failure, permanent ones included
            if attempt == 4:
                raise
            time.sleep(max(delay, getattr(exc, "retry_after", None) or 0.0))
            delay *= 2
            continue
        return _fetch(session, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def requests_hides_cause(ctx: ClientContext) -> bytes:
    """requests, ``raise_for_status()`` wrapped in a tidy ``RuntimeError(...) from None``.
    Flaw: the error keeps neither status nor trace id."""
    session = ctx.requests_session()
    delay = 1.0
    for attempt in range(5):
        try:
            answer = session.post(
                f"{ctx.base_url}/images/generations",
                json=ctx.request,
                headers={"Authorization": f"Bearer {ctx.api_key}"},
                timeout=TIMEOUT,
            )
            answer.raise_for_status()
            body = answer.json()
        except requests.HTTPError as exc:
            status = exc.response.status_code
            if status not in (429, 500, 502, 503, 504) or attempt == 4:
                raise RuntimeError("the image service refused the request") from None
            time.sleep(max(delay, float(exc.response.headers.get("retry-after", 0))))
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, ValueError):
            if attempt == 4:
                raise RuntimeError("the image service did not answer") from None
            time.sleep(delay)
        else:
            return _fetch(session, image_urls(body)[0], answer.headers.get(TRACE))
        delay *= 2
    raise AssertionError("unreachable")


CORRECT = [requests_loop]

FLAWED = {
    requests_no_timeout: "timeouts",
    requests_retries_everything: "retries",
    requests_hides_cause: "errors",
}
