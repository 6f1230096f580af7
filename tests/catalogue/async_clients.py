"""asyncio clients: httpx.AsyncClient, asyncio.gather over a batch, aiohttp on a real socket."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import aiohttp
import httpx
import yarl

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

TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=5.0)


async def _ask(http: httpx.AsyncClient, ctx: ClientContext) -> tuple[dict[str, Any], str | None]:
    try:
        answer = await http.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
    except httpx.TransportError as exc:
        raise Transient(f"{type(exc).__name__} on the generation request") from exc
    trace = answer.headers.get(TRACE)
    if answer.status_code != 200:
        raise status_error(answer.status_code, answer.headers, answer.text)
    try:
        return answer.json(), trace
    except ValueError as exc:
        raise Transient("unreadable generation answer", status=200, trace_id=trace) from exc


async def _fetch(http: httpx.AsyncClient, url: str, trace: str | None) -> bytes:
    for attempt in range(3):
        try:
            image = await http.get(url)
        except httpx.TransportError as exc:
            if attempt == 2:
                raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
        else:
            if image.status_code == 200:
                return image.content
            if image.status_code < 500 or attempt == 2:
                raise download_error(image.status_code, image.headers, image.text, trace)
        await asyncio.sleep(2.0**attempt)
    raise AssertionError("unreachable")


async def httpx_async(ctx: ClientContext) -> bytes:
    """httpx.AsyncClient, ``await asyncio.sleep`` between tries, doubling waits, Retry-After honoured. Correct."""
    async with ctx.async_http_client(timeout=TIMEOUT) as http:
        delay = 1.0
        for attempt in range(5):
            try:
                answer, trace = await _ask(http, ctx)
            except Transient as exc:
                if attempt == 4:
                    raise
                wait = max(delay, exc.retry_after or 0.0)
                await asyncio.sleep(wait)
                delay = wait * 2
                continue
            return await _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


async def asyncio_gather_batch(ctx: ClientContext) -> bytes:
    """httpx.AsyncClient with full jitter, then ``asyncio.gather`` downloads the whole batch. Correct."""
    http = ctx.async_http_client(timeout=TIMEOUT)
    for attempt in range(5):
        try:
            answer, trace = await _ask(http, ctx)
            break
        except Transient as exc:
            if attempt == 4:
                raise
            await asyncio.sleep(max(random.uniform(0, min(30.0, 2.0 ** (attempt + 1))), exc.retry_after or 0.0))
    images = await asyncio.gather(*(_fetch(http, url, trace) for url in image_urls(answer)))
    await http.aclose()
    return images[0]


async def _aiohttp_ask(session: aiohttp.ClientSession, ctx: ClientContext) -> tuple[dict[str, Any], str | None]:
    try:
        async with session.post(
            f"{ctx.live_base_url}/images/generations",
            json=ctx.request,
            headers={"Authorization": f"Bearer {ctx.api_key}"},
        ) as answer:
            text = await answer.text()
            trace = answer.headers.get(TRACE)
            if answer.status != 200:
                raise status_error(answer.status, answer.headers, text)
    except (TimeoutError, aiohttp.ClientError) as exc:  # dropped, cut short, read timeout
        raise Transient(f"{type(exc).__name__} on the generation request") from exc
    try:
        return json.loads(text), trace
    except ValueError as exc:
        raise Transient("unreadable generation answer", status=200, trace_id=trace) from exc


async def _aiohttp_fetch(session: aiohttp.ClientSession, url: str, trace: str | None) -> bytes:
    for attempt in range(3):
        try:
            # encoded=True: the signed URL goes out byte for byte (yarl would decode its %2F)
            async with session.get(yarl.URL(url, encoded=True)) as image:
                body = await image.read()
                if image.status == 200:
                    return body
                if image.status < 500 or attempt == 2:
                    raise download_error(image.status, image.headers, body.decode(errors="replace"), trace)
        except (TimeoutError, aiohttp.ClientError) as exc:
            if attempt == 2:
                raise ImageApiError(f"image download failed: {type(exc).__name__}", trace_id=trace) from exc
        await asyncio.sleep(2.0**attempt)
    raise AssertionError("unreachable")


AIOHTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_read=READ_TIMEOUT)


async def aiohttp_live(ctx: ClientContext) -> bytes:
    """aiohttp.ClientSession on ``ctx.live_base_url``, ``sock_read`` timeout, doubling waits. Correct."""
    async with aiohttp.ClientSession(timeout=AIOHTTP_TIMEOUT) as session:
        delay = 1.0
        for attempt in range(5):
            try:
                answer, trace = await _aiohttp_ask(session, ctx)
            except Transient as exc:
                if attempt == 4:
                    raise
                wait = max(delay, exc.retry_after or 0.0)
                await asyncio.sleep(wait)
                delay = wait * 2
                continue
            return await _aiohttp_fetch(session, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


async def httpx_async_ignores_retry_after(ctx: ClientContext) -> bytes:
    """httpx.AsyncClient, ``await asyncio.sleep(0.5 * 2 ** attempt)``. Flaw: ignores Retry-After."""
    async with ctx.async_http_client(timeout=TIMEOUT) as http:
        for attempt in range(5):
            try:
                answer, trace = await _ask(http, ctx)
            except Transient:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            return await _fetch(http, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


async def aiohttp_session_auth(ctx: ClientContext) -> bytes:
    """aiohttp.ClientSession created with the key in its default headers, reused for the download.
    Flaw: sends the key on the download."""
    headers = {"Authorization": f"Bearer {ctx.api_key}"}
    async with aiohttp.ClientSession(timeout=AIOHTTP_TIMEOUT, headers=headers) as session:
        delay = 1.0
        for attempt in range(5):
            try:
                answer, trace = await _aiohttp_ask(session, ctx)
            except Transient as exc:
                if attempt == 4:
                    raise
                await asyncio.sleep(max(delay, exc.retry_after or 0.0))
                delay *= 2
                continue
            return await _aiohttp_fetch(session, image_urls(answer)[0], trace)
    raise AssertionError("unreachable")


CORRECT = [httpx_async, asyncio_gather_batch, aiohttp_live]

FLAWED = {
    httpx_async_ignores_retry_after: "backoff",
    aiohttp_session_auth: "downloads",
}
