"""An async HTTP client kept from one event loop to the next (outsider report W5).

httpx keeps a finished request's connection for the next one, on the event loop it was opened
on; a client kept at module level and called through ``asyncio.run`` per call then fails on a
network with ``RuntimeError: Event loop is closed``. ``ctx.async_http_client()`` keeps its
connections the same way: the same client fails there as on a real socket, and the check
says why. The real stack is the yardstick: each in-process result is compared with a real
``httpx.AsyncClient`` on a real socket (``FakeServer``), run the same way.
"""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from sfmock.app import create_app
from sfmock.checks import ClientCheckFailed, ClientContext, check_client
from sfmock.clock import VirtualClock
from sfmock.config import Settings
from sfmock.server import FakeServer
from sfmock.transports import AsyncTransport, InProcess

REQUEST = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 1}
KEY = "sk-sfmock-loops-0123456789"
EXPIRY = 0.2  # a keep-alive expiry short enough to wait out for real


def _outcome(call: Callable[[], int]) -> str:
    try:
        return str(call())
    except RuntimeError as exc:
        # the one varying part of asyncio's words: an object's address
        return f"RuntimeError: {re.sub(r'0x[0-9a-f]+', '0x?', str(exc))}"


class _Stack:
    """One module-level AsyncClient posting generations, on a real socket or in-process."""

    def __init__(self, client: httpx.AsyncClient, base: str, requests: Callable[[], int]) -> None:
        self.client, self.base, self.requests = client, base, requests

    async def post(self) -> int:
        answer = await self.client.post(
            f"{self.base}/v1/images/generations", json=REQUEST, headers={"Authorization": f"Bearer {KEY}"}
        )
        return answer.status_code

    async def close(self) -> int:
        await self.client.aclose()
        return 0

    def asked(self, step: Callable[[], int]) -> tuple[str, int]:
        """The outcome of ``step`` and how many requests the server received meanwhile."""
        before = self.requests()
        outcome = _outcome(step)
        bound = time.monotonic() + 5  # the socket's server may record a request a moment later
        while self.requests() == before and time.monotonic() < bound and not outcome.startswith("RuntimeError"):
            time.sleep(0.01)
        if outcome.startswith("RuntimeError"):
            time.sleep(0.2)  # a request the client sent and then failed to read reaches the server
        return outcome, self.requests() - before


@contextmanager
def _real(limits: httpx.Limits | None = None) -> Iterator[_Stack]:
    with FakeServer(Settings(), image_port="same") as fake:
        stack = _Stack(
            httpx.AsyncClient(timeout=10, limits=limits or httpx.Limits()), fake.url, lambda: len(fake.journal)
        )
        try:
            yield stack
        finally:
            del stack.client
            with warnings.catch_warnings():  # a connection left on a closed loop cannot be closed: it is collected
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()


@contextmanager
def _inprocess(limits: httpx.Limits | None = None) -> Iterator[_Stack]:
    clock = VirtualClock(time.time())
    app = create_app(Settings(), clock=clock)
    inner = InProcess(app, clock)
    client = httpx.AsyncClient(timeout=10, transport=AsyncTransport(inner, limits=limits))
    yield _Stack(client, "http://sfmock.test", lambda: len(inner.transcript))


# a connection the real pool left on a closed loop cannot be closed: its socket is collected
LEAKS = pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
STACKS = [pytest.param(_real, id="real-socket", marks=LEAKS), pytest.param(_inprocess, id="in-process")]


def _run(coroutine: Callable[[], Coroutine[Any, Any, int]]) -> Callable[[], int]:
    return lambda: asyncio.run(coroutine())


@pytest.mark.parametrize("make", STACKS)
def test_a_client_kept_across_asyncio_runs_fails_every_other_call_after_sending(make: Any) -> None:
    with make() as stack:
        seen = [stack.asked(_run(stack.post)) for _ in range(4)]
    # the kept connection takes the request out, then reading its answer needs the closed loop
    assert seen == [("200", 1), ("RuntimeError: Event loop is closed", 1)] * 2


@pytest.mark.parametrize("make", STACKS)
def test_an_async_openai_client_kept_across_asyncio_runs_fails_as_on_a_network(make: Any) -> None:
    with make() as stack:
        sdk = openai.AsyncOpenAI(base_url=f"{stack.base}/v1", api_key=KEY, http_client=stack.client)

        async def generate() -> int:
            result = await sdk.images.generate(model=REQUEST["model"], prompt=REQUEST["prompt"])
            return len(result.model_extra["images"])  # type: ignore[index]

        seen = [stack.asked(_run(generate)) for _ in range(4)]
    # the SDK does not retry asyncio's RuntimeError: it comes out as is
    assert seen == [("1", 1), ("RuntimeError: Event loop is closed", 1)] * 2


@pytest.mark.parametrize("make", STACKS)
def test_a_kept_connection_that_expired_fails_closing_before_anything_is_sent(make: Any) -> None:
    with make(httpx.Limits(keepalive_expiry=EXPIRY)) as stack:
        seen = [stack.asked(_run(stack.post))]
        if make is _real:
            time.sleep(EXPIRY * 2)  # the only way a real pool's connection expires
        else:
            stack.client._transport.inner.clock.advance(EXPIRY * 2)  # type: ignore[attr-defined]
        seen += [stack.asked(_run(stack.post)), stack.asked(_run(stack.post))]
    assert seen == [("200", 1), ("RuntimeError: Event loop is closed", 0), ("200", 1)]


@pytest.mark.parametrize("make", STACKS)
def test_a_connection_of_a_loop_still_open_fails_on_another_loop(make: Any) -> None:
    first = asyncio.new_event_loop()  # never closed: the client's connection stays on it
    with make() as stack:
        try:
            seen = [stack.asked(lambda: first.run_until_complete(stack.post()))]
            seen += [stack.asked(_run(stack.post)), stack.asked(_run(stack.post))]
        finally:
            first.close()
    bound = "RuntimeError: <asyncio.locks.Event object at 0x? [unset]> is bound to a different event loop"
    assert seen == [("200", 1), (bound, 1), ("200", 1)]


@pytest.mark.parametrize("make", STACKS)
def test_closing_a_kept_client_on_another_loop_fails_and_one_loop_or_no_keep_alive_passes(make: Any) -> None:
    with make() as stack:
        asyncio.run(stack.post())
        assert _outcome(_run(stack.close)) == "RuntimeError: Event loop is closed"
    # no connection kept (max_keepalive_connections=0): closed on its own loop, nothing fails
    with make(httpx.Limits(max_keepalive_connections=0)) as stack:
        assert [_outcome(_run(stack.post)) for _ in range(3)] == ["200"] * 3
    with asyncio.Runner() as runner, make() as stack:  # one loop for every call
        assert [_outcome(lambda: runner.run(stack.post())) for _ in range(3)] == ["200"] * 3


# -- the check ----------------------------------------------------------------------------


def _module_level_openai() -> Callable[[ClientContext], bytes]:
    """The outsider's client: AsyncOpenAI made on the first call and kept, asyncio.run per call."""
    kept: list[openai.AsyncOpenAI] = []

    async def generate_async(ctx: ClientContext) -> bytes:
        if not kept:
            kept.append(
                openai.AsyncOpenAI(
                    base_url=ctx.base_url, api_key=ctx.api_key, max_retries=4, http_client=ctx.async_http_client()
                )
            )
        result = await kept[0].images.generate(
            model=ctx.request["model"], prompt=ctx.request["prompt"], extra_body={"seed": ctx.request["seed"]}
        )
        url = result.data[0].url if result.data else result.model_extra["images"][0]["url"]  # type: ignore[index]
        async with ctx.async_http_client(timeout=30) as http:
            return (await http.get(str(url))).raise_for_status().content

    return lambda ctx: asyncio.run(generate_async(ctx))


async def _careful(http: httpx.AsyncClient, ctx: ClientContext) -> bytes:
    """Retries a transient generation, then a transient download (its URL stays good), with
    doubling waits."""
    url = await _retried(lambda: _generation(http, ctx))
    return await _retried(lambda: http.get(url))


async def _generation(http: httpx.AsyncClient, ctx: ClientContext) -> httpx.Response:
    return await http.post(
        f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
    )


async def _retried(send: Callable[[], Coroutine[Any, Any, httpx.Response]]) -> Any:
    failure: Exception = RuntimeError("not tried")
    for attempt in range(5):
        try:
            answer = await send()
            if answer.status_code not in {429, 500, 502, 503, 504}:
                answer.raise_for_status()
                return answer.json()["images"][0]["url"] if answer.request.method == "POST" else answer.content
            trace = answer.headers.get("x-siliconcloud-trace-id") or answer.headers.get("x-amz-request-id")
            failure = RuntimeError(f"HTTP {answer.status_code} (trace id {trace})")
        except (httpx.TransportError, ValueError) as exc:
            failure = exc
        await asyncio.sleep(2.0**attempt)
    raise failure


def _module_level_httpx() -> Callable[[ClientContext], bytes]:
    kept: list[httpx.AsyncClient] = []

    async def generate_async(ctx: ClientContext) -> bytes:
        if not kept:
            kept.append(ctx.async_http_client(timeout=30))
        return await _careful(kept[0], ctx)

    return lambda ctx: asyncio.run(generate_async(ctx))


@pytest.mark.parametrize("make", [_module_level_openai, _module_level_httpx], ids=["AsyncOpenAI", "httpx"])
def test_the_check_fails_a_client_kept_across_asyncio_runs_and_says_why(make: Any) -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(make())
    assert failed.value.invariant == "coverage"
    text = str(failed.value)
    assert "raised RuntimeError: Event loop is closed" in text
    assert "asyncio.run closed that loop" in text and "a circuit breaker" not in text


def test_a_client_kept_across_the_asyncio_runs_of_one_call_fails_on_the_answer_it_sent_for() -> None:
    def generate(ctx: ClientContext) -> bytes:
        """A client per call, but a new loop per attempt: the retry reuses the first loop's connection."""
        http = ctx.async_http_client(timeout=30)
        for attempt in range(5):
            answer = asyncio.run(_generation(http, ctx))
            if answer.status_code not in {429, 500, 502, 503, 504}:
                break
            time.sleep(2.0**attempt)
        url = answer.raise_for_status().json()["images"][0]["url"]
        with ctx.http_client(timeout=30) as download:
            return download.get(url).raise_for_status().content

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(generate, schedule=["503"])
    # the retry went out (the fake answered it) and its answer could not be read
    assert [e.status for e in failed.value.run.generations] == [503, 200]
    assert "raised RuntimeError: Event loop is closed" in str(failed.value)
    assert "asyncio.run closed that loop" in str(failed.value)


def _per_call() -> Callable[[ClientContext], bytes]:
    async def generate_async(ctx: ClientContext) -> bytes:
        async with ctx.async_http_client(timeout=30) as http:
            return await _careful(http, ctx)

    return lambda ctx: asyncio.run(generate_async(ctx))


def _openai_per_call() -> Callable[[ClientContext], bytes]:
    async def generate_async(ctx: ClientContext) -> bytes:
        client = openai.AsyncOpenAI(
            base_url=ctx.base_url, api_key=ctx.api_key, max_retries=4, http_client=ctx.async_http_client(timeout=30)
        )
        async with client:
            result = await client.images.generate(
                model=ctx.request["model"], prompt=ctx.request["prompt"], extra_body={"seed": ctx.request["seed"]}
            )
        url = result.data[0].url if result.data else result.model_extra["images"][0]["url"]  # type: ignore[index]
        async with ctx.async_http_client(timeout=30) as http:
            return (await http.get(str(url))).raise_for_status().content

    return lambda ctx: asyncio.run(generate_async(ctx))


Closing = Callable[[], None]


def _kept_runner() -> tuple[Callable[[ClientContext], bytes], Closing]:
    """A module-level client on one loop for every call: an asyncio.Runner kept."""
    runner = asyncio.Runner()
    kept: list[httpx.AsyncClient] = []

    def generate(ctx: ClientContext) -> bytes:
        if not kept:
            kept.append(ctx.async_http_client(timeout=30))
        result: bytes = runner.run(_careful(kept[0], ctx))
        return result

    return generate, runner.close


def _loop_in_a_thread() -> tuple[Callable[[ClientContext], bytes], Closing]:
    """A module-level client on one loop that a thread of its own runs for as long as it lives."""
    kept: list[Any] = []

    def generate(ctx: ClientContext) -> bytes:
        if not kept:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, daemon=True)
            thread.start()
            kept.extend([loop, thread, ctx.async_http_client(timeout=30)])
        result: bytes = asyncio.run_coroutine_threadsafe(_careful(kept[2], ctx), kept[0]).result()
        return result

    def close() -> None:
        loop, thread, _ = kept
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    return generate, close


def _alone(make: Callable[[], Callable[[ClientContext], bytes]]) -> Callable[[], tuple[Any, Closing]]:
    return lambda: (make(), lambda: None)


@pytest.mark.parametrize(
    "make",
    [_alone(_per_call), _alone(_openai_per_call), _kept_runner, _loop_in_a_thread],
    ids=["per-call", "openai", "runner", "thread"],
)
def test_the_check_passes_a_client_made_per_loop_or_kept_on_one_loop(make: Any) -> None:
    generate, close = make()
    try:
        report = check_client(generate)
    finally:
        close()
    assert report.reached == report.examples and report.succeeded > 0
