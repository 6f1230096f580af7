"""Carrying out a fault the engine chose: waits, hangs, drops, injected errors, and
answers rewritten, cut or sent slowly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfmock.chaos.faults import Fault
from sfmock.chaos.outcome import Outcome
from sfmock.chaos.rewrites import corrupt, documented_only, with_extra_fields
from sfmock.clock import Clock
from sfmock.service.lifecycle import Lifecycle
from sfmock.service.responses import error_for_status, json_response, store_error, xml_error
from sfmock.service.signing import expired_denial

__all__ = ["BEFORE_DROP", "ClientGone", "FaultInjector", "Sleep", "drop"]

Sleep = Callable[[float], Awaitable[None]]
BEFORE_DROP = "before_drop"  # request.state.before_drop: callables run just before a connection is cut


class ClientGone(Exception):
    """The client disconnected while a fault was waiting."""


class FaultInjector:
    """Performs one fault around the app: the app answers only where the fault lets it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        clock: Clock,
        sleep: Sleep,
        store_prefix: str,
        lifecycle: Lifecycle,
        dialect: str,
        rate_limit_codes: Mapping[str, int],
    ) -> None:
        self.app = app
        self.clock = clock
        self.sleep = sleep
        self.store_prefix = store_prefix
        self.lifecycle = lifecycle
        self.dialect = dialect
        self.rate_limit_codes = rate_limit_codes

    async def perform(
        self, fault: Fault, scope: Scope, replay: Receive, receive: Receive, send: Send, outcome: Outcome
    ) -> None:
        """Carry out ``fault`` (``replay`` gives the buffered body; ``receive`` notices a
        client that hangs up while the fault waits: :class:`ClientGone`)."""
        action = fault.action
        session = scope.get("state", {}).get("session")
        lifecycle = self.lifecycle if session is None else session.lifecycle
        for model in action.retire:  # in the session whose fault it is, not for everyone
            lifecycle.retire(model, self.clock.now())
        if fault.delay:
            await sleep_unless_gone(self.sleep, fault.delay, receive)
        if action.hang is not None or action.drop:
            if action.hang is not None:
                await sleep_unless_gone(self.sleep, action.hang, receive)
            outcome.kind = "dropped"
            await drop(scope)
            return
        store = scope["path"].startswith(self.store_prefix)
        if action.error is not None:
            await self._error(action.error, action.dialect, store, scope)(scope, replay, send)
            return
        if action.expired_url and store:
            await xml_error(expired_denial(), scope["state"].get("trace_id", ""))(scope, replay, send)
            return
        rewrites = action.extra_fields or action.documented_body or action.malformed
        if action.truncate is None and action.slow_body is None and not rewrites:
            await self.app(scope, replay, send)
            return
        start, content = await _capture(self.app, scope, replay)
        for wanted, rewrite in (
            (action.extra_fields, with_extra_fields),
            (action.documented_body, documented_only),
            (action.malformed, corrupt),
        ):
            if wanted:
                content = rewrite(content)
                MutableHeaders(scope=start)["content-length"] = str(len(content))
        await send(start)
        if action.truncate is not None:
            cut = content[: int(len(content) * action.truncate)]
            await send({"type": "http.response.body", "body": cut, "more_body": True})
            outcome.kind = "truncated"
            await drop(scope)
            return
        if action.slow_body is not None:
            size, interval = action.slow_body
            offsets = range(0, len(content), size)
            for offset in offsets[:-1]:
                await send({"type": "http.response.body", "body": content[offset : offset + size], "more_body": True})
                await sleep_unless_gone(self.sleep, interval, receive)
            content = content[offsets[-1] :] if offsets else b""
        await send({"type": "http.response.body", "body": content, "more_body": False})

    def _error(self, spec: Mapping[str, Any], dialect: str | None, store: bool, scope: Scope) -> Response:
        """The injected error answer: S3's XML on the image host, the API's JSON elsewhere."""
        trace_id = scope["state"].get("trace_id", "")
        if store:
            response = xml_error(store_error(spec["status"], spec.get("message")), trace_id)
        else:
            options = {k: spec[k] for k in ("code", "message", "limit", "body") if k in spec}
            codes = self.rate_limit_codes
            error = error_for_status(spec["status"], trace_id, dialect=dialect or self.dialect, codes=codes, **options)
            response = json_response(error.body, error.status)
        if "retry_after" in spec:
            response.headers["Retry-After"] = str(spec["retry_after"])
        return response


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


async def drop(scope: Scope) -> None:
    """Close the connection, or (in-process, no socket) mark the request as dropped."""
    state = scope.setdefault("state", {})
    state["dropped"] = True
    for hook in state.get(BEFORE_DROP, ()):
        hook()  # a Recorder notes the moment the client learns of it
    state["record"]()  # journal first: the client learns of the drop at once
    transport = state.get("transport")
    if transport is not None:
        transport.abort()
        await asyncio.sleep(0)  # let the server see the connection is gone before the app returns


async def sleep_unless_gone(sleep: Sleep, seconds: float, receive: Receive) -> None:
    """Sleep, but stop early if the client disconnects (a hung client frees the server)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # in-process under trio (a client check): no connection to lose
        await sleep(seconds)
        return
    sleeper = asyncio.ensure_future(sleep(seconds))
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        done, _ = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # a caller cancelled (a client's own timeout, in checks) leaves no sleeper behind
        for task in (sleeper, watcher):
            task.cancel()
    if sleeper in done:
        sleeper.result()  # a sleep that ended in an exception (a client's timeout, in checks) goes on up
    elif watcher in done:
        raise ClientGone()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
