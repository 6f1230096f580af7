"""Styles the first catalogue lacked (issue 23): asyncio deadlines (``asyncio.timeout``,
``wait_for``), TaskGroups, a sync entry point around ``asyncio.run`` (and ``trio.run``), and
streaming downloads with requests and httpx.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import requests
import trio

from catalogue.async_clients import _ask  # the same generation request, asked in a new style
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

ATTEMPTS = 5


Sleep = Callable[[float], Awaitable[None]]


async def _fetch(http: httpx.AsyncClient, url: str, trace: str | None, sleep: Sleep = asyncio.sleep) -> bytes:
    for attempt in range(3):
        try:
            async with http.stream("GET", url) as image:
                body = b"".join([chunk async for chunk in image.aiter_bytes()])
        except httpx.TransportError as exc:
            if attempt == 2:
                raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
        else:
            if image.status_code == 200:
                return body
            if image.status_code < 500 or attempt == 2:
                raise download_error(image.status_code, image.headers, body.decode(errors="replace"), trace)
        await sleep(2.0**attempt)
    raise AssertionError("unreachable")


async def _with_retries(
    attempt_once: Callable[[], Awaitable[bytes]],
    *,
    retry_timeouts: bool = True,
    sleep: Sleep = asyncio.sleep,
    too_slow: type[Exception] = TimeoutError,
) -> bytes:
    """Doubling waits, Retry-After honoured; a client deadline that ends an attempt is transient."""
    delay = 1.0
    for attempt in range(ATTEMPTS):
        try:
            return await attempt_once()
        except Transient as exc:
            if attempt == ATTEMPTS - 1:
                raise
            wait = max(delay, exc.retry_after or 0.0)
        except too_slow as exc:
            if not retry_timeouts or attempt == ATTEMPTS - 1:
                raise ImageApiError("no answer before the deadline") from exc
            wait = delay
        await sleep(wait)
        delay *= 2
    raise AssertionError("unreachable")


async def _generation(http: httpx.AsyncClient, ctx: ClientContext) -> tuple[dict[str, Any], str | None]:
    for attempt in range(ATTEMPTS):
        try:
            return await _ask(http, ctx)
        except Transient as exc:
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(max(2.0**attempt, exc.retry_after or 0.0))
    raise AssertionError("unreachable")


async def asyncio_timeout_per_attempt(ctx: ClientContext) -> bytes:
    """httpx.AsyncClient without its own timeout; ``async with asyncio.timeout(60)`` bounds each
    generation, a streamed download after it. Flaw: nothing bounds the download (outside the
    deadline, ``timeout=None``): an image host that stalls hangs it (the ``download-timeout``
    outcome, 2026-12-07)."""
    async with ctx.async_http_client(timeout=None) as http:

        async def once() -> bytes:
            async with asyncio.timeout(READ_TIMEOUT):
                answer, trace = await _ask(http, ctx)
            return await _fetch(http, image_urls(answer)[0], trace)

        return await _with_retries(once)


async def wait_for_one_second(ctx: ClientContext) -> bytes:
    """``asyncio.wait_for(..., 1.0)`` around each generation, retried on TimeoutError.
    Flaw: a deadline shorter than a generation takes."""
    async with ctx.async_http_client(timeout=None) as http:

        async def once() -> bytes:
            answer, trace = await asyncio.wait_for(_ask(http, ctx), 1.0)
            return await _fetch(http, image_urls(answer)[0], trace)

        return await _with_retries(once)


async def taskgroup_batch(ctx: ClientContext) -> list[bytes]:
    """Generation retried, then the whole batch downloaded in an ``asyncio.TaskGroup``; any
    failed image fails the call. Correct."""
    async with ctx.async_http_client(timeout=httpx.Timeout(READ_TIMEOUT, connect=5.0)) as http:
        answer, trace = await _generation(http, ctx)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_fetch(http, url, trace)) for url in image_urls(answer)]
        return [task.result() for task in tasks]


async def gather_keeps_what_arrived(ctx: ClientContext) -> list[bytes]:
    """``asyncio.gather(..., return_exceptions=True)`` over the batch, failures left out (all
    failed: the first error raised). Flaw: returns a partial batch as if it were whole."""
    async with ctx.async_http_client(timeout=httpx.Timeout(READ_TIMEOUT, connect=5.0)) as http:
        answer, trace = await _generation(http, ctx)
        got = await asyncio.gather(*(_fetch(http, url, trace) for url in image_urls(answer)), return_exceptions=True)
        images = [image for image in got if isinstance(image, bytes)]
        if not images:
            raise next(error for error in got if isinstance(error, BaseException))
        return images


async def taskgroup_bare_errors(ctx: ClientContext) -> bytes:
    """Retries in a TaskGroup task; a permanent HTTP error raises ``RuntimeError("generation
    failed")``. Flaw: that error carries neither the status nor the trace id."""
    async with ctx.async_http_client(timeout=httpx.Timeout(READ_TIMEOUT, connect=5.0)) as http:

        async def once() -> bytes:
            try:
                answer, trace = await _ask(http, ctx)
            except Transient:
                raise
            except ImageApiError:
                raise RuntimeError("generation failed") from None
            return await _fetch(http, image_urls(answer)[0], trace)

        async with asyncio.TaskGroup() as group:
            task = group.create_task(_with_retries(once))
        return task.result()


def sync_around_asyncio_run(ctx: ClientContext) -> bytes:
    """A plain function: ``asyncio.run`` around an httpx.AsyncClient with retries and a read
    timeout. Correct."""

    async def main() -> bytes:
        async with ctx.async_http_client(timeout=httpx.Timeout(READ_TIMEOUT, connect=5.0)) as http:

            async def once() -> bytes:
                answer, trace = await _ask(http, ctx)
                return await _fetch(http, image_urls(answer)[0], trace)

            return await _with_retries(once)

    return asyncio.run(main())


def sync_around_trio_run(ctx: ClientContext) -> bytes:
    """A plain function: ``trio.run`` around an httpx.AsyncClient (httpx runs on trio too),
    ``trio.fail_after(60)`` around each generation, ``trio.sleep`` back-offs. Flaw: the
    download is outside the deadline and the client has no timeout of its own (``timeout=None``):
    an image host that stalls hangs it (the ``download-timeout`` outcome, 2026-12-07)."""

    async def main() -> bytes:
        async with ctx.async_http_client(timeout=None) as http:

            async def once() -> bytes:
                with trio.fail_after(READ_TIMEOUT):
                    answer, trace = await _ask(http, ctx)
                return await _fetch(http, image_urls(answer)[0], trace, sleep=trio.sleep)

            return await _with_retries(once, sleep=trio.sleep, too_slow=trio.TooSlowError)

    return trio.run(main)


def sync_asyncio_run_deadline_no_retry(ctx: ClientContext) -> bytes:
    """A plain function: ``asyncio.run`` with ``asyncio.timeout(30)`` around one attempt; a
    transient answer is retried but a deadline gives up. Flaw: gives up after one timeout."""

    async def main() -> bytes:
        async with ctx.async_http_client(timeout=None) as http:

            async def once() -> bytes:
                async with asyncio.timeout(30):
                    answer, trace = await _ask(http, ctx)
                return await _fetch(http, image_urls(answer)[0], trace)

            return await _with_retries(once, retry_timeouts=False)

    return asyncio.run(main())


def _requests_ask(session: requests.Session, ctx: ClientContext) -> tuple[dict[str, Any], str | None]:
    try:
        with session.post(
            f"{ctx.base_url}/images/generations",
            json=ctx.request,
            headers={"Authorization": f"Bearer {ctx.api_key}"},
            timeout=(5.0, READ_TIMEOUT),
        ) as answer:
            trace = answer.headers.get(TRACE)
            if not answer.ok:
                raise status_error(answer.status_code, answer.headers, answer.text)
            return answer.json(), trace
    except requests.JSONDecodeError as exc:
        raise Transient("unreadable generation answer", status=200) from exc
    except requests.RequestException as exc:
        raise Transient(f"{type(exc).__name__} on the generation request") from exc


def _requests_generation(session: requests.Session, ctx: ClientContext) -> tuple[dict[str, Any], str | None]:
    delay = 1.0
    for attempt in range(ATTEMPTS):
        try:
            return _requests_ask(session, ctx)
        except Transient as exc:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(max(delay, exc.retry_after or 0.0))
            delay *= 2
    raise AssertionError("unreachable")


def requests_stream_download(ctx: ClientContext) -> bytes:
    """requests.Session; the image with ``stream=True`` and ``iter_content`` in a ``with`` block,
    retried on a cut or a 5xx. Correct."""
    session = ctx.requests_session()
    answer, trace = _requests_generation(session, ctx)
    url = image_urls(answer)[0]
    for attempt in range(3):
        try:
            with session.get(url, stream=True, timeout=(5.0, READ_TIMEOUT)) as image:
                if image.status_code == 200:
                    return b"".join(image.iter_content(chunk_size=8192))
                if image.status_code < 500 or attempt == 2:
                    raise download_error(image.status_code, image.headers, image.text, trace)
        except requests.RequestException as exc:
            if attempt == 2:
                raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
        time.sleep(2.0**attempt)
    raise AssertionError("unreachable")


def requests_stream_keeps_partial(ctx: ClientContext) -> bytes:
    """requests.Session; the image streamed with ``iter_content``, a broken stream ends the loop
    quietly. Flaw: returns part of the image when the download is cut."""
    session = ctx.requests_session()
    answer, trace = _requests_generation(session, ctx)
    with session.get(image_urls(answer)[0], stream=True, timeout=(5.0, READ_TIMEOUT)) as image:
        if image.status_code != 200:
            raise download_error(image.status_code, image.headers, image.text, trace)
        chunks: list[bytes] = []
        try:
            for chunk in image.iter_content(chunk_size=1024):
                chunks.append(chunk)
        except requests.exceptions.ChunkedEncodingError:
            pass  # the connection ended: keep what came
        return b"".join(chunks)


def httpx_stream_download(ctx: ClientContext) -> bytes:
    """httpx.Client; the image through ``with http.stream("GET", url)`` into a buffer, retried on
    a transport error or a 5xx. Correct."""
    with ctx.http_client(timeout=httpx.Timeout(READ_TIMEOUT, connect=5.0)) as http:
        delay = 1.0
        for attempt in range(ATTEMPTS):
            try:
                answer = http.post(
                    f"{ctx.base_url}/images/generations",
                    json=ctx.request,
                    headers={"Authorization": f"Bearer {ctx.api_key}"},
                )
                if answer.status_code != 200:
                    raise status_error(answer.status_code, answer.headers, answer.text)
                body, trace = answer.json(), answer.headers.get(TRACE)
                break
            except (Transient, httpx.TransportError, ValueError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(max(delay, getattr(exc, "retry_after", None) or 0.0))
                delay *= 2
        for turn in range(3):
            try:
                with http.stream("GET", image_urls(body)[0]) as image:
                    data = image.read()
            except httpx.TransportError as exc:
                if turn == 2:
                    raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
            else:
                if image.status_code == 200:
                    return data
                if image.status_code < 500 or turn == 2:
                    raise download_error(image.status_code, image.headers, data.decode(errors="replace"), trace)
            time.sleep(2.0**turn)
    raise AssertionError("unreachable")


CORRECT = [
    taskgroup_batch,
    sync_around_asyncio_run,
    requests_stream_download,
    httpx_stream_download,
]

FLAWED = {
    wait_for_one_second: "timeouts",
    gather_keeps_what_arrived: "whole-batch",
    taskgroup_bare_errors: "errors",
    sync_asyncio_run_deadline_no_retry: "retries",
    sync_around_trio_run: "timeouts",
    asyncio_timeout_per_attempt: "timeouts",
    requests_stream_keeps_partial: "returns-image",
}
