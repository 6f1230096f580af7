"""Clients on the OpenAI Python SDK, sync and async: SiliconFlow is "OpenAI-compatible".

The SDK retries 408/409/429/5xx and connection errors itself (``max_retries``), honours
``Retry-After`` and backs off with a little jitter; the SiliconFlow-only fields (the seed,
``image_size``) go in ``extra_body``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai

from catalogue.common import READ_TIMEOUT, TRACE, ImageApiError, download_error
from sfmock.checks import ClientContext


def _arguments(request: dict[str, Any]) -> dict[str, Any]:
    """``images.generate`` keyword arguments that send ``request`` unchanged."""
    extra = {key: value for key, value in request.items() if key not in ("model", "prompt")}
    return {"model": request["model"], "prompt": request["prompt"], "extra_body": extra}


def _first_url(answer: Any) -> str:
    """``data`` when the answer has it, else the documented ``images`` (kept by the SDK as an extra field)."""
    if answer.data:
        return str(answer.data[0].url)
    return str(getattr(answer, "images")[0]["url"])  # noqa: B009  # an extra field, unknown to the type


def _download(http: httpx.Client, url: str, trace: str | None) -> bytes:
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


async def _adownload(http: httpx.AsyncClient, url: str, trace: str | None) -> bytes:
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


def openai_sync(ctx: ClientContext) -> bytes:
    """openai.OpenAI on ctx's httpx client, ``timeout=60``, ``max_retries=3``, the seed in extra_body. Correct."""
    http = ctx.http_client()
    client = openai.OpenAI(base_url=ctx.base_url, api_key=ctx.api_key, http_client=http, timeout=60.0, max_retries=3)
    raw = client.images.with_raw_response.generate(**_arguments(ctx.request))
    return _download(http, _first_url(raw.parse()), raw.headers.get(TRACE))


async def openai_async(ctx: ClientContext) -> bytes:
    """openai.AsyncOpenAI on ctx's async httpx client, ``timeout=60``, ``max_retries=3``. Correct."""
    http = ctx.async_http_client(timeout=READ_TIMEOUT)
    client = openai.AsyncOpenAI(
        base_url=ctx.base_url, api_key=ctx.api_key, http_client=http, timeout=60.0, max_retries=3
    )
    raw = await client.images.with_raw_response.generate(**_arguments(ctx.request))
    return await _adownload(http, _first_url(raw.parse()), raw.headers.get(TRACE))


def openai_no_retries(ctx: ClientContext) -> bytes:
    """openai.OpenAI with ``max_retries=0`` "because we retry in the job queue" (which never does).
    Flaw: no retries."""
    http = ctx.http_client()
    client = openai.OpenAI(base_url=ctx.base_url, api_key=ctx.api_key, http_client=http, timeout=60.0, max_retries=0)
    raw = client.images.with_raw_response.generate(**_arguments(ctx.request))
    return _download(http, _first_url(raw.parse()), raw.headers.get(TRACE))


def openai_reads_data(ctx: ClientContext) -> bytes:
    """openai.OpenAI, ``answer.data[0].url`` as in the OpenAI docs. Flaw: reads only ``data``."""
    http = ctx.http_client()
    client = openai.OpenAI(base_url=ctx.base_url, api_key=ctx.api_key, http_client=http, timeout=60.0, max_retries=3)
    raw = client.images.with_raw_response.generate(**_arguments(ctx.request))
    answer = raw.parse()
    return _download(http, str(answer.data[0].url), raw.headers.get(TRACE))  # type: ignore[index]


def openai_habits(ctx: ClientContext) -> bytes:
    """openai.OpenAI called the OpenAI way: ``images.generate(model, prompt, size=...)``.
    Flaw: drops the asked seed (only model and prompt reach the service, the size under OpenAI's name)."""
    http = ctx.http_client()
    client = openai.OpenAI(base_url=ctx.base_url, api_key=ctx.api_key, http_client=http, timeout=60.0, max_retries=3)
    raw = client.images.with_raw_response.generate(
        model=ctx.request["model"], prompt=ctx.request["prompt"], size="1024x1024"
    )
    return _download(http, _first_url(raw.parse()), raw.headers.get(TRACE))


async def openai_async_no_timeout(ctx: ClientContext) -> bytes:
    """openai.AsyncOpenAI with ``timeout=None`` "since images take long". Flaw: no timeout at all."""
    http = ctx.async_http_client(timeout=None)
    client = openai.AsyncOpenAI(
        base_url=ctx.base_url, api_key=ctx.api_key, http_client=http, timeout=None, max_retries=3
    )
    raw = await client.images.with_raw_response.generate(**_arguments(ctx.request))
    return await _adownload(http, _first_url(raw.parse()), raw.headers.get(TRACE))


CORRECT = [openai_sync, openai_async]

FLAWED = {
    openai_no_retries: "retries",
    openai_reads_data: "tolerant",
    openai_habits: "faithful-request",
    openai_async_no_timeout: "timeouts",
}
