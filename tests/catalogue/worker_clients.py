"""Styles of the third outside catalogue (issue 23): a daemon's worker whose back-off is an
interruptible ``Event.wait``, a job queue served by a thread of its own, a retry library
with a near-zero fixed interval, a helper that asks for its own batch, and one image asked
for twice at once.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from typing import Any

import backoff
import httpx

from catalogue.async_clients import _ask as _aask
from catalogue.async_clients import _fetch as _afetch
from catalogue.common import TRACE, TRANSIENT, ImageApiError, Transient, image_urls
from catalogue.httpx_clients import TIMEOUT, _ask, _fetch
from sfmock.checks import ClientContext

ATTEMPTS = 5


class _Worker:
    """A long-lived worker: ``stopping`` ends any back-off at once (a daemon's shutdown)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def pause(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise ImageApiError("the worker is stopping")


def event_wait_worker(ctx: ClientContext) -> bytes:
    """A daemon's worker: httpx.Client, jittered doubling back-off made with
    ``threading.Event.wait(delay)`` so that a shutdown ends it, Retry-After honoured. Correct."""
    worker = _Worker()
    with ctx.http_client(timeout=TIMEOUT) as http:
        for attempt in range(ATTEMPTS):
            try:
                answer, trace = _ask(http, ctx, ctx.request)
            except Transient as exc:
                if attempt == ATTEMPTS - 1:
                    raise
                worker.pause(max(random.uniform(0.5, 1.0) * 2**attempt, exc.retry_after or 0.0))
                continue
            return _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


def queue_served_by_a_thread(ctx: ClientContext) -> bytes:
    """A job on a ``queue.Queue``, served by a thread that backs off with ``get(timeout=)`` on
    its stop queue; the caller waits for the answer with ``results.get(timeout=900)``. Correct."""
    jobs: queue.Queue[dict[str, Any]] = queue.Queue()
    results: queue.Queue[bytes | BaseException] = queue.Queue()
    stop: queue.Queue[None] = queue.Queue()

    def pause(seconds: float) -> None:
        try:
            stop.get(timeout=seconds)
        except queue.Empty:
            return
        raise ImageApiError("the worker is stopping")

    def serve() -> None:
        body = jobs.get()
        try:
            with ctx.http_client(timeout=TIMEOUT) as http:
                delay = 1.0
                for attempt in range(ATTEMPTS):
                    try:
                        answer, trace = _ask(http, ctx, body)
                    except Transient as exc:
                        if attempt == ATTEMPTS - 1:
                            raise
                        pause(max(delay, exc.retry_after or 0.0))
                        delay *= 2
                        continue
                    results.put(_fetch(http, image_urls(answer)[0], trace))
                    return
        except Exception as exc:  # handed to the caller, who raises it
            results.put(exc)

    threading.Thread(target=serve, daemon=True).start()
    jobs.put(ctx.request)
    outcome = results.get(timeout=900)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def backoff_constant_ten_ms(ctx: ClientContext) -> bytes:
    """httpx with ``backoff.on_exception(backoff.constant, interval=0.01, jitter=None)``, 5
    tries. Flaw: 10 ms between attempts is no back-off: a 429 or 503 is retried at once."""
    with ctx.http_client(timeout=TIMEOUT) as http:

        @backoff.on_exception(backoff.constant, Transient, interval=0.01, jitter=None, max_tries=ATTEMPTS)
        def generate() -> tuple[dict[str, Any], str | None]:
            return _ask(http, ctx, ctx.request)

        answer, trace = generate()
        return _fetch(http, image_urls(answer)[0], trace)


async def two_variations_keeps_what_arrived(ctx: ClientContext) -> list[bytes]:
    """A "two variations" helper: adds ``batch_size: 2`` to the request itself, downloads both
    with ``asyncio.gather(return_exceptions=True)``, raises only when none arrived. Flaw: one
    image of the two it asked for is returned as if it were the batch."""
    body = {**ctx.request, "batch_size": 2}
    async with ctx.async_http_client(timeout=TIMEOUT) as http:
        urls: list[str] = []
        for attempt in range(ATTEMPTS):
            try:
                answer = await http.post(
                    f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"}
                )
                if answer.status_code not in TRANSIENT:
                    urls = image_urls(answer.raise_for_status().json())
                    trace = answer.headers.get(TRACE)
                    break
            except (httpx.TransportError, ValueError):
                pass  # dropped, cut short, unreadable: asked again
            if attempt == ATTEMPTS - 1:
                raise ImageApiError("no answer after 5 attempts")
            await asyncio.sleep(random.uniform(0.5, 1.0) * 2**attempt)
        got = await asyncio.gather(*(_afetch(http, url, trace) for url in urls), return_exceptions=True)
        images = [image for image in got if isinstance(image, bytes)]
        if not images:
            raise next(error for error in got if isinstance(error, BaseException))
        return images


async def two_generations_at_once(ctx: ClientContext) -> list[bytes]:
    """``asyncio.gather`` of two whole generations (each retried, each downloaded) behind a
    Semaphore, for one request of one image; returns both. Flaw: two generations for one
    request pay twice; several images come from one request with ``batch_size``."""
    limit = asyncio.Semaphore(2)
    async with ctx.async_http_client(timeout=TIMEOUT) as http:

        async def one() -> bytes:
            async with limit:
                for attempt in range(ATTEMPTS):
                    try:
                        answer, trace = await _aask(http, ctx)
                    except Transient as exc:
                        if attempt == ATTEMPTS - 1:
                            raise
                        await asyncio.sleep(max(random.uniform(0.5, 1.0) * 2**attempt, exc.retry_after or 0.0))
                        continue
                    return await _afetch(http, image_urls(answer)[0], trace)
            raise AssertionError("unreachable")

        return list(await asyncio.gather(one(), one()))


CORRECT = [event_wait_worker, queue_served_by_a_thread]

FLAWED = {
    backoff_constant_ten_ms: "backoff",
    two_variations_keeps_what_arrived: "whole-batch",
    two_generations_at_once: "retries",
}
