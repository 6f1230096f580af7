"""Fault injection and journalling, as ASGI middleware around the fake.

For each request (the control API excepted) it buffers the body, asks the
:class:`~sfmock.faults.FaultEngine` for a fault (the ``X-Sfmock-Fault`` header forces
one), carries it out, and records the request and its outcome in the journal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Authenticator, bearer_token
from .clock import Clock
from .errors import ApiError, DownloadDenied
from .faults import FAULT_HEADER, Fault, FaultEngine, RequestInfo, parse_fault_header
from .imagehost import IMAGE_PREFIX
from .journal import Journal
from .lifecycle import Lifecycle
from .responses import OBSERVED_429_CODES, error_for_status, invalid_request, json_response, store_error, xml_error
from .signing import expired_denial

__all__ = ["STORE_PREFIX", "ChaosMiddleware"]

Sleep = Callable[[float], Awaitable[None]]
STORE_PREFIX = IMAGE_PREFIX  # the default image_prefix
BODY_STATE = "body"  # request.state.body: the request body, as far as it was read


class ChaosMiddleware:
    """Chooses and performs faults; records every request in the journal."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        engine: FaultEngine,
        journal: Journal,
        clock: Clock,
        authenticator: Authenticator,
        sleep: Sleep,
        max_body_bytes: int,
        control_prefix: str,
        store_prefix: str = STORE_PREFIX,
        lifecycle: Lifecycle | None = None,
        dialect: str = "documented",
        rate_limit_codes: Mapping[str, int] = OBSERVED_429_CODES,
    ) -> None:
        self.app = app
        self.engine = engine
        self.journal = journal
        self.clock = clock
        self.authenticator = authenticator
        self.sleep = sleep
        self.max_body_bytes = max_body_bytes
        self.control_prefix = control_prefix
        self.store_prefix = store_prefix
        self.lifecycle = lifecycle or Lifecycle((), started=clock.now())
        self.dialect = dialect
        self.rate_limit_codes = rate_limit_codes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.control_prefix):
            await self.app(scope, receive, send)
            return
        started = self.clock.now()
        body = await _read_body(receive, self.max_body_bytes + 1)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        state = scope.setdefault("state", {})
        outcome: dict[str, Any] = {"status": None, "kind": "response", "recorded": False}
        fault: Fault | None = None
        body_sent = False

        def record() -> None:
            # before the client can see the end of the answer (or of the connection), so a
            # test that reads the journal right after its request finds the request there
            if not outcome["recorded"]:
                outcome["recorded"] = True
                self._record(scope, headers, body, started, outcome, fault)

        state["record"] = record
        state[BODY_STATE] = body  # read once here; the handler need not stream it again

        async def replay() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        try:
            forced = parse_fault_header(headers[FAULT_HEADER]) if FAULT_HEADER in headers else None
        except ValueError as exc:
            await self._bad_header(scope, str(exc))(scope, replay, recording_send)
            return
        fault = self.engine.select(self._info(scope, headers, body), forced)
        state["fault"] = fault
        try:
            if fault is None:
                await self.app(scope, replay, recording_send)
            else:
                await self._perform(fault, scope, replay, receive, recording_send, outcome)
        except _ClientGone:
            outcome["kind"] = "abandoned"  # the client hung up while the fault waited
        finally:
            record()

    def _record(
        self,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        started: float,
        outcome: dict[str, Any],
        fault: Fault | None,
    ) -> None:
        self.journal.record(
            time=started,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            authorization=headers.get("authorization"),
            body=body,
            status=outcome["status"] if outcome["kind"] == "response" else None,
            outcome=outcome["kind"],
            fault=fault.describe() if fault else None,
            trace_id=scope["state"].get("trace_id", ""),
        )

    def _bad_header(self, scope: Scope, problem: str) -> Response:
        message = f"X-Sfmock-Fault: {problem}"
        if scope["path"].startswith(self.store_prefix):
            denied = DownloadDenied(400, "InvalidArgument", message, ArgumentName="X-Sfmock-Fault")
            return xml_error(denied, scope["state"].get("trace_id", ""))
        return json_response(invalid_request(message).body, 400)

    def _info(self, scope: Scope, headers: dict[str, str], body: bytes) -> RequestInfo:
        needs = self.engine.scenario.needs
        account = model = None
        if "account" in needs:
            try:
                account = self.authenticator.authenticate(headers.get("authorization")).id
            except ApiError:
                account = None
        if "model" in needs:
            try:
                parsed = json.loads(body)
                model = parsed.get("model") if isinstance(parsed, dict) else None
            except ValueError:
                model = None
        return RequestInfo(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            key=bearer_token(headers.get("authorization")),
            account=account,
            model=model if isinstance(model, str) else None,
            elapsed=self.clock.now() - self.lifecycle.started if "after" in needs else 0.0,
        )

    async def _perform(
        self, fault: Fault, scope: Scope, replay: Receive, receive: Receive, send: Send, outcome: dict[str, Any]
    ) -> None:
        action = fault.action
        store = scope["path"].startswith(self.store_prefix)
        for model in action.retire:
            self.lifecycle.retire(model, self.clock.now())
        if fault.delay:
            await _sleep_unless_gone(self.sleep, fault.delay, receive)
        if action.hang is not None or action.drop:
            if action.hang is not None:
                await _sleep_unless_gone(self.sleep, action.hang, receive)
            outcome["kind"] = "dropped"
            await _drop(scope)
            return
        if action.error is not None:
            spec = action.error
            trace_id = scope["state"].get("trace_id", "")
            if store:
                response = xml_error(store_error(spec["status"], spec.get("message")), trace_id)
            else:
                options = {k: spec[k] for k in ("code", "message", "limit", "body") if k in spec}
                dialect = action.dialect or self.dialect
                error = error_for_status(
                    spec["status"], trace_id, dialect=dialect, codes=self.rate_limit_codes, **options
                )
                response = json_response(error.body, error.status)
            await response(scope, replay, send)
            return
        if action.expired_url and store:
            await xml_error(expired_denial(), scope["state"].get("trace_id", ""))(scope, replay, send)
            return
        if action.truncate is None and not action.malformed and action.slow_body is None and not action.extra_fields:
            await self.app(scope, replay, send)
            return
        start, content = await _capture(self.app, scope, replay)
        if action.extra_fields:
            content = _with_extra_fields(content)
            MutableHeaders(scope=start)["content-length"] = str(len(content))
        if action.malformed:
            content = _corrupt(content)
            MutableHeaders(scope=start)["content-length"] = str(len(content))
        await send(start)
        if action.truncate is not None:
            await send(
                {
                    "type": "http.response.body",
                    "body": content[: int(len(content) * action.truncate)],
                    "more_body": True,
                }
            )
            outcome["kind"] = "truncated"
            await _drop(scope)
            return
        if action.slow_body is not None:
            size, interval = action.slow_body
            for offset in range(0, len(content), size):
                await send({"type": "http.response.body", "body": content[offset : offset + size], "more_body": True})
                await _sleep_unless_gone(self.sleep, interval, receive)
            content = b""
        await send({"type": "http.response.body", "body": content, "more_body": False})


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
    start: Message = {}
    chunks: list[bytes] = []

    async def collect(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, collect)
    return start, b"".join(chunks)


def _with_extra_fields(content: bytes) -> bytes:
    """Add fields no contract lists, at the top and in each image, as services grow them."""
    try:
        body = json.loads(content)
    except ValueError:
        return content
    if isinstance(body, dict):
        body["sfmock_unlisted"] = {"note": "a field this client does not know", "n": 1}
        for key in ("images", "data"):
            for item in body.get(key) or []:
                if isinstance(item, dict):
                    item["revised_prompt"] = None
    return json.dumps(body, separators=(",", ":")).encode()


def _corrupt(content: bytes) -> bytes:
    """Cut the body in the middle: never valid JSON, never a whole PNG."""
    return content[: max(1, len(content) // 2)] if content else b"{"


async def _drop(scope: Scope) -> None:
    """Close the connection, or (in-process, no socket) mark the request as dropped."""
    state = scope.setdefault("state", {})
    state["dropped"] = True
    state["record"]()  # journal first: the client learns of the drop at once
    transport = state.get("transport")
    if transport is not None:
        transport.abort()
        await asyncio.sleep(0)  # let the server see the connection is gone before the app returns


async def _sleep_unless_gone(sleep: Sleep, seconds: float, receive: Receive) -> None:
    """Sleep, but stop early if the client disconnects (a hung client frees the server)."""
    sleeper = asyncio.ensure_future(sleep(seconds))
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    done, pending = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if watcher in done and sleeper not in done:
        raise _ClientGone()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _ClientGone(Exception):
    """The client disconnected while a fault was waiting."""
