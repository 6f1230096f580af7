"""Two SiliconFlow clients to test the checks with: a naive one and a careful one.

``careful_generate(ctx, **flaws)`` can be given one flaw at a time, to show that each
invariant catches the mistake it is about (mutation testing of the checks).
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from sfmock.checks import ClientContext

TRANSIENT = {429, 500, 502, 503, 504}
KNOWN_FIELDS = {"images", "timings", "seed"}


class SiliconFlowError(Exception):
    """What the careful client raises: status, trace id and message, never the key."""

    def __init__(self, message: str, *, status: int | None = None, trace_id: str | None = None) -> None:
        self.status = status
        self.trace_id = trace_id
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{where}: {message} (trace id {trace_id})")


def naive_generate(ctx: ClientContext) -> bytes:
    """No retries, a strict reading of the answer, an error that leaks the key, a late download."""
    http = ctx.http_client()
    response = http.post(
        f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
    )
    if response.status_code != 200:
        raise RuntimeError(f"SiliconFlow call with key {ctx.api_key} failed: {response.text}")
    body = response.json()
    if set(body) - KNOWN_FIELDS - {"data", "created", "shared_id"}:
        raise ValueError(f"unexpected fields in the answer: {sorted(set(body) - KNOWN_FIELDS)}")
    url = body["images"][0]["url"]
    ctx.sleep(2 * 3600)  # the download job runs later, with the rest of the queue
    return http.get(url).content


def careful_generate(
    ctx: ClientContext,
    *,
    max_attempts: int = 4,
    base_delay: float = 1.0,
    reroll_seed: bool = False,
    steps_as_text: bool = False,
    no_backoff: bool = False,
    retry_everything: bool = False,
    auth_on_download: bool = False,
) -> bytes:
    """Retries transient failures with doubling back-off, resends the same body, downloads
    at once without the key, and raises errors with status and trace id."""
    http = ctx.http_client(timeout=30)
    headers = {"Authorization": f"Bearer {ctx.api_key}"}
    body = dict(ctx.request)
    body.setdefault("seed", random.randint(0, 9_999_999_999))
    if steps_as_text:
        body["num_inference_steps"] = "20"
    delay = base_delay
    failure = SiliconFlowError("not tried")
    for _attempt in range(max_attempts):
        if reroll_seed:
            body["seed"] = random.randint(0, 9_999_999_999)
        retry_after = 0.0
        try:
            response = http.post(f"{ctx.base_url}/images/generations", json=body, headers=headers)
            trace = response.headers.get("x-siliconcloud-trace-id")
            if response.status_code == 200:
                image, failure = _download(http, response, headers if auth_on_download else {})
                if image is not None:
                    return image
            elif response.status_code in TRANSIENT or retry_everything:
                failure = SiliconFlowError(_message(response), status=response.status_code, trace_id=trace)
                retry_after = float(response.headers.get("retry-after", 0))
            else:
                raise SiliconFlowError(_message(response), status=response.status_code, trace_id=trace)
        except httpx.TransportError as exc:
            failure = SiliconFlowError(f"transport error {type(exc).__name__}")
        ctx.sleep(0 if no_backoff else max(delay, retry_after))
        delay *= 2
    raise failure


def _download(
    http: httpx.Client, response: httpx.Response, headers: dict[str, str]
) -> tuple[bytes | None, SiliconFlowError]:
    """The image, or why there is none (a malformed answer, a refused download): ask again."""
    trace = response.headers.get("x-siliconcloud-trace-id")
    try:
        body = response.json()
        url = (body.get("images") or body.get("data"))[0]["url"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None, SiliconFlowError("malformed answer", status=200, trace_id=trace)
    image: httpx.Response | None = None
    for attempt in range(3):  # a transient download failure: the URL is still good, fetch it again
        try:
            image = http.get(url, headers=headers)
        except httpx.TransportError:
            image = None
            time.sleep(2**attempt)
            continue
        if image.status_code not in TRANSIENT:
            break
        time.sleep(2**attempt)
    else:
        status = image.status_code if image is not None else None
        request_id = image.headers.get("x-amz-request-id") if image is not None else None
        raise SiliconFlowError("image download kept failing", status=status, trace_id=request_id)
    assert image is not None
    if image.status_code == 200:
        return image.content, SiliconFlowError("ok")
    problem = SiliconFlowError(
        "image download refused", status=image.status_code, trace_id=image.headers.get("x-amz-request-id")
    )
    return None, problem


def _message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)
