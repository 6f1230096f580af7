"""In-process transports: httpx (sync and async), straight into the app (requests:
:mod:`sfmock.requests_transport`).

No socket is opened: each request becomes one ASGI call. The app answers requests to
``http://sfmock.test`` with image URLs on ``http://images.sfmock.test`` (its image host
on an origin of its own; ``image_port: same`` keeps one): the transports carry both. Faults still behave as a
client would see them over a network: a dropped or cut connection raises the
library's own protocol error, and a hang (or a delay longer than the request's read
timeout) raises its read timeout. Every exchange is kept in :attr:`InProcess.transcript`.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from starlette.types import ASGIApp, Message

from sfmock.clock import Clock, SystemClock, VirtualClock
from sfmock.exchanges import READ_TIMEOUT, REAL_MONOTONIC, Exchange, HangForever, Interrupted, TimedOut, failure_of
from sfmock.keepalive import KeptConnections, running_loop

__all__ = [
    "READ_TIMEOUT",
    "REAL_MONOTONIC",
    "AsyncTransport",
    "EitherTransport",
    "Exchange",
    "HangForever",
    "InProcess",
    "TimedOut",
    "Transport",
    "failure_of",
]

Latency = Callable[[Exchange], float]
_PORTS = {"http": 80, "https": 443}
# how a latency passes; it may return when a thread of the client's gave up waiting inside it
Wait = Callable[[float], Awaitable[float | None]]


class InProcess:
    """Calls an ASGI app in-process and records every exchange."""

    def __init__(
        self, app: ASGIApp, clock: Clock | None = None, *, latency: Latency | None = None, wait: Wait | None = None
    ) -> None:
        self.app = app
        self.clock = clock or SystemClock()
        self.latency = latency
        self.wait = wait  # how the latency passes (default: the clock moves at once)
        self.transcript: list[Exchange] = []
        # requests the app is answering now (their ids), and the thread each is answered on
        self.answering: dict[int, int] = {}
        self.calls: set[int] = set()  # requests sent and not yet recorded, their latency included (their ids)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # threads of one client take turns: each call is instant
        self._in_line: set[int] = set()  # threads waiting for their turn (their idents)
        self._holder: int | None = None  # the thread whose request holds the line
        self._passing: set[int] = set()  # threads in an answer's latency (the clock may move then)

    def call(
        self, method: str, url: str, headers: Sequence[tuple[bytes, bytes]], body: bytes, read_timeout: float | None
    ) -> Exchange:
        """Run one request to completion from synchronous code (any thread)."""
        if _loop_running():  # a blocking client called from async code: it blocks that loop, as on a network
            done: list[Exchange | BaseException] = []

            def serve() -> None:
                try:
                    done.append(self.call(method, url, headers, body, read_timeout))
                except BaseException as exc:  # handed to the caller's thread (a HangForever too)
                    done.append(exc)

            worker = threading.Thread(target=serve)
            worker.start()
            worker.join()
            if isinstance(done[0], BaseException):
                raise done[0]
            return done[0]
        queued, me = self.clock.now(), threading.get_ident()
        with self._open() as transcript:
            # counted from before it tries the line (next_in_line): between trying and taking it,
            # a request not counted as being answered let time jump past it on a busy machine
            self._in_line.add(me)
            try:
                # sent when it asked: where another thread's request held the line, it waited its turn
                waited = not self._lock.acquire(blocking=False)
                if waited:
                    self._lock.acquire()
                self._holder = me
            finally:
                self._in_line.discard(me)
            try:
                if self._loop is None:
                    # a plain loop of its own, whatever loop policy the caller's code has set
                    self._loop = asyncio.SelectorEventLoop()
                answer = self._answer(transcript, method, url, headers, body, read_timeout, queued if waited else None)
                try:
                    return self._loop.run_until_complete(answer)
                except Interrupted as due:  # recorded: the client's own handler, here in its thread
                    due.deliver()
                    raise
            finally:
                self._holder = None
                self._lock.release()

    def next_in_line(self) -> list[int]:
        """The threads whose request is being answered outside the app: the one holding the
        line before and after the app answers it (not in its latency, where the clock moves),
        or, the line free, those about to take it (a busy machine may not yet have run them)."""
        if not self._lock.locked():
            return list(self._in_line)
        holder = self._holder
        if holder is None or holder in self._passing or holder in self.answering.values():
            return []
        return [holder]

    async def acall(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        read_timeout: float | None,
        *,
        read: bool = True,
    ) -> Exchange:
        """Run one request to completion inside a running event loop (``read=False``: the
        client fails before it reads the answer, so no latency passes for it)."""
        with self._open() as transcript:
            return await self._answer(transcript, method, url, headers, body, read_timeout, read=read)

    @contextmanager
    def _open(self) -> Iterator[list[Exchange]]:
        """A request from when it is sent (before it waits its turn) until it is recorded: in
        the transcript current when it was sent, however late it ends (a request a client's
        thread gave up on is recorded in its own run, never in the next one)."""
        key = object()
        self.calls.add(id(key))
        try:
            yield self.transcript
        finally:
            self.calls.discard(id(key))

    async def _answer(
        self,
        transcript: list[Exchange],
        method: str,
        url: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        read_timeout: float | None,
        queued: float | None = None,
        *,
        read: bool = True,
    ) -> Exchange:
        parts = urlsplit(url)
        path = unquote(parts.path) or "/"
        host = [] if any(k.lower() == b"host" for k, _ in headers) else [(b"host", parts.netloc.encode("latin-1"))]
        state: dict[str, Any] = {}
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": parts.scheme or "http",
            "path": path,
            "raw_path": (parts.path or "/").encode("latin-1"),
            "query_string": parts.query.encode("latin-1"),
            "root_path": "",
            # a client library's transport may leave Host to the connection (requests does)
            "headers": [(k.lower(), v) for k, v in headers] + host,
            "client": ("127.0.0.1", 50000),
            "server": (parts.hostname or "sfmock.test", parts.port or 80),
            "state": state,
        }
        sent = False
        status: int | None = None
        response_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never goes away on its own
            return {"type": "http.disconnect"}  # pragma: no cover

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers.update((k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        started, real_started = self.clock.now(), REAL_MONOTONIC()
        token = READ_TIMEOUT.set(read_timeout)
        timed_out = False
        hung: HangForever | None = None
        cancelled: BaseException | None = None
        self.answering[id(state)] = threading.get_ident()
        try:
            await self.app(scope, receive, send)
        except TimedOut:
            timed_out = True
        except HangForever as exc:
            hung = exc
        except _cancellations() as exc:  # the client stopped waiting (wait_for, timeout, a TaskGroup, fail_after)
            cancelled = exc
        finally:
            READ_TIMEOUT.reset(token)
            self.answering.pop(id(state), None)
        failure, fault = failure_of(state, status, read_timeout)
        if timed_out or hung is not None:
            failure = "timeout"
        exchange = Exchange(
            method=method.upper(),
            url=url,
            path=path,
            request_headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers},
            request_body=body,
            status=None if failure in ("dropped", "timeout") else status,
            headers=response_headers,
            body=b"".join(chunks),
            failure=failure,
            fault=fault,
            started=started,
            ended=self.clock.now(),
            real_started=real_started,
            sent=queued if queued is not None and queued < started else None,
            endless=hung is not None and not isinstance(hung, Interrupted),
        )
        if cancelled is not None:  # sent, and it drew its scheduled outcome: it stays in the transcript
            transcript.append(replace(exchange, status=None, headers={}, body=b"", failure="cancelled"))
            raise cancelled
        if read and self.latency is not None and failure is None and isinstance(self.clock, VirtualClock):
            delay = self.latency(exchange)
            late = read_timeout is not None and delay > read_timeout  # the answer comes too late
            seconds = min(delay, read_timeout) if late and read_timeout is not None else delay
            begun, me = self.clock.now(), threading.get_ident()
            self._passing.add(me)
            stops: tuple[type[BaseException], ...] = (*_cancellations(), Interrupted)
            try:
                deadline = await self._pass(seconds)
            except stops as stopped:
                failure = "timeout" if isinstance(stopped, Interrupted) else "cancelled"  # its alarm, or a cancel
                transcript.append(
                    replace(exchange, status=None, headers={}, body=b"", failure=failure, ended=self.clock.now())
                )
                raise
            finally:
                self._passing.discard(me)
            if late:
                exchange = replace(exchange, status=None, failure="timeout", ended=self.clock.now())
            elif delay > 0:
                # at least the whole latency: a latency cut short by the run's end still took it
                exchange = replace(exchange, ended=max(self.clock.now(), begun + seconds), deadline=deadline)
        exchange = replace(exchange, real_ended=REAL_MONOTONIC())
        transcript.append(exchange)
        if hung is not None:
            raise hung
        return exchange

    async def _pass(self, seconds: float) -> float | None:
        """Let ``seconds`` of the answer's latency pass: as time the client can time out in;
        when a thread of the client's gave up waiting inside it, the time it did."""
        if seconds <= 0:
            return None
        if self.wait is not None:
            return await self.wait(seconds)
        if isinstance(self.clock, VirtualClock):
            self.clock.advance(seconds)
        return None

    def close(self) -> None:
        # a client's thread may close its httpx client while another thread's call is on the loop
        with self._lock:
            if self._loop is not None:
                self._loop.close()
                self._loop = None


def _cancellations() -> tuple[type[BaseException], ...]:
    """What stops a request whose client stopped waiting: asyncio's CancelledError, or trio's
    Cancelled where the client uses trio (looked up, never imported)."""
    cancelled = getattr(sys.modules.get("trio"), "Cancelled", None)
    if isinstance(cancelled, type) and issubclass(cancelled, BaseException):
        return asyncio.CancelledError, cancelled
    return (asyncio.CancelledError,)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout", {})
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


def _to_httpx(exchange: Exchange, request: httpx.Request) -> httpx.Response:
    if exchange.failure == "timeout":
        raise httpx.ReadTimeout("timed out: the server did not answer (sfmock fault)", request=request)
    if exchange.failure == "dropped":
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    assert exchange.status is not None
    if exchange.failure == "truncated":  # the headers and the first part come; then the connection ends
        return httpx.Response(
            exchange.status,
            headers=list(exchange.headers.items()),
            stream=_CutStream(exchange.body, request),
            request=request,
        )
    return httpx.Response(
        exchange.status,
        headers=list(exchange.headers.items()),
        stream=httpx.ByteStream(exchange.body),
        request=request,
    )


class _CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that ends early: what arrived, then the protocol error a cut connection raises."""

    def __init__(self, part: bytes, request: httpx.Request) -> None:
        self.part = part
        self.request = request

    def _cut(self) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body (sfmock fault)", request=self.request
        )

    def __iter__(self) -> Iterator[bytes]:
        if self.part:
            yield self.part
        raise self._cut()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.part:
            yield self.part
        raise self._cut()


class Transport(httpx.BaseTransport):
    """An httpx transport into the app: ``httpx.Client(transport=Transport(app))``."""

    def __init__(self, app: ASGIApp | InProcess, clock: Clock | None = None) -> None:
        self.inner = app if isinstance(app, InProcess) else InProcess(app, clock)

    def close(self) -> None:
        self.inner.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        exchange = self.inner.call(
            request.method, str(request.url), request.headers.raw, request.read(), _read_timeout(request)
        )
        return _to_httpx(exchange, request)


class AsyncTransport(httpx.AsyncBaseTransport):
    """The async twin: ``httpx.AsyncClient(transport=AsyncTransport(app))``.

    It keeps connections as httpx's own pool does (``limits``: httpx's, its defaults unless
    given), each on the event loop it was opened on: a client kept from one ``asyncio.run``
    to the next fails there as on a network (see :mod:`sfmock.keepalive`)."""

    def __init__(
        self, app: ASGIApp | InProcess, clock: Clock | None = None, *, limits: httpx.Limits | None = None
    ) -> None:
        self.inner = app if isinstance(app, InProcess) else InProcess(app, clock)
        self.kept = KeptConnections(self.inner.clock, limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = running_loop()
        body = await request.aread()
        if loop is None:  # trio: its runs are not modelled
            exchange = await self.inner.acall(
                request.method, str(request.url), request.headers.raw, body, _read_timeout(request)
            )
            return _to_httpx(exchange, request)
        url = request.url
        connection = self.kept.take((url.scheme, url.host, url.port or _PORTS.get(url.scheme, 80)), loop)
        keep = False
        try:
            exchange = await self.inner.acall(
                request.method,
                str(url),
                request.headers.raw,
                body,
                _read_timeout(request),
                read=connection.loop is loop,
            )
            self.kept.check(connection, loop)  # the answer is read on the connection's loop
            closes = "close" in (request.headers.get("connection", "") + exchange.headers.get("connection", "")).lower()
            keep = exchange.failure is None and not closes
            return _to_httpx(exchange, request)
        finally:
            self.kept.give_back(connection, keep=keep)

    async def aclose(self) -> None:
        self.kept.close_all()


class EitherTransport(Transport, AsyncTransport):
    """:class:`Transport` and :class:`AsyncTransport` in one object: serves ``httpx.Client``
    and ``httpx.AsyncClient`` alike."""

    def __init__(self, app: ASGIApp | InProcess, clock: Clock | None = None) -> None:
        AsyncTransport.__init__(self, app, clock)
