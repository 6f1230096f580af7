"""The ``ctx`` helpers behave as their libraries do, streaming included (issue 23).

One correct client per usage pattern, each checked at the defaults on two seeds: none is
accused (``tolerant`` least of all), and each meets a download cut short the way its
library reports one on a network.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3.exceptions
import yarl

from sfmock.checks import ClientCheckFailed, ClientContext, check_client
from sfmock.testing.images import whole_images
from sfmock.transports import Exchange

TRANSIENT = {429, 500, 502, 503, 504}
TIMEOUT = 60.0


class ApiError(Exception):
    def __init__(self, status: int, headers: Any) -> None:
        self.status_code = status
        self.retry_after = float(headers.get("retry-after", 0))
        trace = headers.get("x-siliconcloud-trace-id") or headers.get("x-amz-request-id")
        super().__init__(f"HTTP {status} (trace id {trace})")


Broken = tuple[type[Exception], ...]


def _retrying(generate: Callable[[], str], download: Callable[[str], bytes], broken: Broken) -> bytes:
    """Generation retried on transient answers; its image's download retried on its own."""
    failure: Exception = RuntimeError("not tried")
    for attempt in range(5):
        try:
            url = generate()
        except ApiError as exc:
            if exc.status_code not in TRANSIENT:
                raise
            failure = exc
            time.sleep(max(2.0**attempt, exc.retry_after))
            continue
        except (*broken, ValueError) as exc:
            failure = exc
            time.sleep(2.0**attempt)
            continue
        for turn in range(3):
            try:
                return download(url)
            except ApiError as exc:
                if exc.status_code not in TRANSIENT or turn == 2:
                    raise
            except broken:
                if turn == 2:
                    raise
            time.sleep(1)
    raise failure


def _auth(ctx: ClientContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.api_key}"}


# -- requests ------------------------------------------------------------------------------


def requests_iter_content(ctx: ClientContext) -> bytes:
    """requests, ``with session.post(...)``, then ``stream=True`` and ``iter_content``."""
    session = ctx.requests_session()

    def generate() -> str:
        with session.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers=_auth(ctx), timeout=TIMEOUT
        ) as r:
            if r.status_code != 200:
                raise ApiError(r.status_code, r.headers)
            return str(r.json()["images"][0]["url"])

    def download(url: str) -> bytes:
        with session.get(url, stream=True, timeout=TIMEOUT) as image:
            if image.status_code != 200:
                raise ApiError(image.status_code, image.headers)
            return b"".join(image.iter_content(chunk_size=1024))

    return _retrying(generate, download, (requests.RequestException,))


def requests_raw(ctx: ClientContext) -> bytes:
    """requests, ``stream=True`` and ``response.raw.read()`` (decoded), closed by hand."""
    session = ctx.requests_session()

    def generate() -> str:
        r = session.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=_auth(ctx), timeout=TIMEOUT)
        if r.status_code != 200:
            raise ApiError(r.status_code, r.headers)
        return str(r.json()["images"][0]["url"])

    def download(url: str) -> bytes:
        image = session.get(url, stream=True, timeout=TIMEOUT)
        try:
            if image.status_code != 200:
                raise ApiError(image.status_code, image.headers)
            data: bytes = image.raw.read(decode_content=True)
            return data
        finally:
            image.close()

    return _retrying(generate, download, (requests.RequestException, urllib3.exceptions.HTTPError))


# -- httpx ---------------------------------------------------------------------------------


def _httpx_generate(http: httpx.Client, ctx: ClientContext) -> str:
    r = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=_auth(ctx))
    if r.status_code != 200:
        raise ApiError(r.status_code, r.headers)
    return str(r.json()["images"][0]["url"])


def httpx_stream(ctx: ClientContext) -> bytes:
    """httpx.Client, ``with http.stream("GET", url)`` and ``iter_bytes``."""
    http = ctx.http_client(timeout=TIMEOUT)

    def generate() -> str:
        return _httpx_generate(http, ctx)

    def download(url: str) -> bytes:
        with http.stream("GET", url) as image:
            if image.status_code != 200:
                raise ApiError(image.status_code, image.headers)
            return b"".join(image.iter_bytes(chunk_size=1024))

    return _retrying(generate, download, (httpx.TransportError,))


async def _aretrying(
    generate: Callable[[], Awaitable[str]], download: Callable[[str], Awaitable[bytes]], broken: Broken
) -> bytes:
    """The async twin of :func:`_retrying`."""
    failure: Exception = RuntimeError("not tried")
    for attempt in range(5):
        try:
            url = await generate()
        except ApiError as exc:
            if exc.status_code not in TRANSIENT:
                raise
            failure = exc
            await asyncio.sleep(max(2.0**attempt, exc.retry_after))
            continue
        except (*broken, ValueError) as exc:
            failure = exc
            await asyncio.sleep(2.0**attempt)
            continue
        for turn in range(3):
            try:
                return await download(url)
            except ApiError as exc:
                if exc.status_code not in TRANSIENT or turn == 2:
                    raise
            except broken:
                if turn == 2:
                    raise
            await asyncio.sleep(1)
    raise failure


async def httpx_async_stream(ctx: ClientContext) -> bytes:
    """httpx.AsyncClient, ``async with http.stream(...)`` and ``aiter_bytes``."""
    async with ctx.async_http_client(timeout=TIMEOUT) as http:

        async def generate() -> str:
            r = await http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=_auth(ctx))
            if r.status_code != 200:
                raise ApiError(r.status_code, r.headers)
            return str(r.json()["images"][0]["url"])

        async def download(url: str) -> bytes:
            async with http.stream("GET", url) as image:
                if image.status_code != 200:
                    raise ApiError(image.status_code, image.headers)
                return b"".join([chunk async for chunk in image.aiter_bytes(1024)])

        return await _aretrying(generate, download, (httpx.TransportError,))


# -- aiohttp on the live socket ------------------------------------------------------------


async def aiohttp_iter_chunked(ctx: ClientContext) -> bytes:
    """aiohttp on ``ctx.live_base_url``, ``content.iter_chunked`` for the image."""
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def generate() -> str:
            url = f"{ctx.live_base_url}/images/generations"
            async with session.post(url, json=ctx.request, headers=_auth(ctx)) as r:
                body = await r.read()
                if r.status != 200:
                    raise ApiError(r.status, r.headers)
            return str(json.loads(body)["images"][0]["url"])

        async def download(url: str) -> bytes:
            async with session.get(yarl.URL(url, encoded=True)) as image:  # the signed URL byte for byte
                if image.status != 200:
                    raise ApiError(image.status, image.headers)
                return b"".join([chunk async for chunk in image.content.iter_chunked(1024)])

        return await _aretrying(generate, download, (aiohttp.ClientError, TimeoutError))


def _resuming(ctx: ClientContext, *, keep_the_start: bool) -> bytes:
    """httpx.Client streaming the image; a download cut short is resumed with ``Range`` from
    the bytes it has (206: the rest), or started over where the store sends it whole (200).
    ``keep_the_start=False`` is the flaw: on a 206 it keeps only the rest."""
    http = ctx.http_client(timeout=TIMEOUT)

    def generate() -> str:
        return _httpx_generate(http, ctx)

    def download(url: str) -> bytes:
        got = b""
        for turn in range(4):
            try:
                with http.stream("GET", url, headers={"Range": f"bytes={len(got)}-"} if got else {}) as image:
                    if image.status_code == 200 or (image.status_code == 206 and not keep_the_start):
                        got = b""
                    elif image.status_code != 206:
                        raise ApiError(image.status_code, image.headers)
                    for chunk in image.iter_bytes(chunk_size=1024):
                        got += chunk
                    return got
            except httpx.TransportError:
                if turn == 3:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")

    return _retrying(generate, download, (httpx.TransportError,))


def httpx_resuming(ctx: ClientContext) -> bytes:
    return _resuming(ctx, keep_the_start=True)


def httpx_resuming_keeps_only_the_rest(ctx: ClientContext) -> bytes:
    return _resuming(ctx, keep_the_start=False)


PATTERNS = [requests_iter_content, requests_raw, httpx_stream, httpx_async_stream, httpx_resuming]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("client", PATTERNS, ids=lambda c: c.__name__)
def test_a_correct_streaming_client_is_accused_of_nothing(client: Callable[[ClientContext], Any], seed: int) -> None:
    report = check_client(client, seed=seed, max_examples=40)
    assert report.succeeded > 0 and "download-cut" in report.outcomes


def test_a_correct_aiohttp_streaming_client_on_the_live_socket_passes() -> None:
    check_client(aiohttp_iter_chunked, schedule=[], random_seed=0)
    check_client(aiohttp_iter_chunked, schedule=["download-cut"], random_seed=0)


@pytest.mark.parametrize("stream", [False, True])
def test_requests_reports_a_cut_body_as_it_does_on_a_network(stream: bool) -> None:
    seen: list[tuple[str, type[BaseException]]] = []

    def once(ctx: ClientContext) -> bytes:
        session = ctx.requests_session()
        r = session.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=_auth(ctx), timeout=TIMEOUT)
        url = r.json()["images"][0]["url"]
        stage = "headers"
        try:
            image = session.get(url, stream=stream, timeout=TIMEOUT)
            stage = "body"  # with stream=True the status line and headers come whole first
            assert image.status_code == 200 and image.raw is not None
            return b"".join(image.iter_content(512))
        except Exception as exc:
            seen.append((stage, type(exc)))
            raise

    check_client(once, schedule=["download-cut"], random_seed=0, invariants=["valid-requests"])
    assert seen == [("body" if stream else "headers", requests.exceptions.ChunkedEncodingError)]


@pytest.mark.parametrize("live", [False, True], ids=["in-process", "live-socket"])
def test_a_cut_body_read_from_raw_is_urllib3s_broken_connection_in_process_as_on_a_socket(live: bool) -> None:
    # the in-process body ends in a socket's error: urllib3 and urllib3-future (which niquests
    # installs under urllib3's name and which does not translate http.client's IncompleteRead)
    # both report it as ProtocolError, as a connection cut on a real socket is
    import urllib3

    seen: list[type[BaseException]] = []

    def once(ctx: ClientContext) -> bytes:
        session = requests.Session() if live else ctx.requests_session()
        base = ctx.live_base_url if live else ctx.base_url
        r = session.post(f"{base}/images/generations", json=ctx.request, headers=_auth(ctx), timeout=TIMEOUT)
        image = session.get(r.json()["images"][0]["url"], stream=True, timeout=TIMEOUT)
        try:
            return bytes(image.raw.read())
        except Exception as exc:
            seen.append(type(exc))
            raise

    check_client(once, schedule=["download-cut"], random_seed=0, invariants=["valid-requests"])
    assert len(seen) == 1 and issubclass(seen[0], urllib3.exceptions.ProtocolError), seen


def test_a_download_resumed_with_range_after_a_cut_is_the_image() -> None:
    resumed: list[int] = []
    original = httpx.Client.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = original(self, request, **kwargs)
        if "range" in request.headers:
            resumed.append(response.status_code)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.Client, "send", send)
        report = check_client(httpx_resuming, schedule=["download-cut"], random_seed=0)
    assert report.succeeded == 1 and resumed == [206]  # put together from the start it had and the rest


def test_a_resumed_download_that_keeps_only_the_rest_is_caught_by_returns_image() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(httpx_resuming_keeps_only_the_rest, seed=1, max_examples=40)
    assert failed.value.invariant == "returns-image"
    assert "download-cut" in failed.value.schedule


def _got(status: int, body: bytes, *, at: int = 0, size: int = 10, failure: str | None = None) -> Exchange:
    headers = {"content-length": str(size)} if status == 200 else {"content-range": f"bytes {at}-{size - 1}/{size}"}
    return Exchange(
        method="GET", url="http://x/o.png", path="/temporary/outputs/o.png", request_headers={}, request_body=b"",
        status=status, headers=headers, body=body, failure=failure, fault=None, started=0.0, ended=0.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("downloads", "images"),
    [
        ([_got(200, b"0123456789")], [b"0123456789"]),
        ([_got(200, b"0123", failure="truncated"), _got(206, b"456789", at=4)], [b"0123456789"]),
        ([_got(200, b"012", failure="truncated"), _got(206, b"3456", at=3, failure="truncated"),
          _got(206, b"789", at=7)], [b"0123456789"]),
        ([_got(200, b"0123", failure="truncated"), _got(206, b"6789", at=6)], []),  # a gap: bytes 4 and 5
        ([_got(206, b"456789", at=4)], []),  # the start never came
        ([_got(200, b"0123", failure="truncated"), _got(206, b"23456789", at=2)], [b"0123456789"]),  # overlap
    ],
)  # fmt: skip
def test_an_image_got_in_parts_is_whole_only_when_every_byte_came(
    downloads: list[Exchange], images: list[bytes]
) -> None:
    assert whole_images(downloads) == images
