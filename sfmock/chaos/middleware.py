"""Fault injection and journalling, as ASGI middleware around the fake.

For each request (the control API excepted) it buffers the body, asks the
:class:`~sfmock.chaos.faultsFaultEngine` for a fault (the ``X-Sfmock-Fault`` header forces
one), carries it out, and records the request and its outcome in the journal.

A body declared larger than the limit is answered 413 at once, unread (no ``100
Continue``). A request whose body never fully arrived (the client hung up or the read
timed out) is journaled as ``abandoned`` and goes no further: nothing is charged or
counted. The body is let go as soon as the request ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfmock.chaos.faults import FAULT_HEADER, Fault, RequestInfo, Scenario, parse_fault_header
from sfmock.chaos.journal import RESPONSE_CAP, Entry
from sfmock.chaos.metrics import Metrics
from sfmock.chaos.sessions import SESSION_PARAM, Answer, SessionError, Sessions, SessionState, session_name
from sfmock.clock import Clock
from sfmock.errors import ApiError, DownloadDenied
from sfmock.service.accounts import Authenticator
from sfmock.service.auth import bearer_token
from sfmock.service.imagehost import IMAGE_PREFIX
from sfmock.service.lifecycle import Lifecycle
from sfmock.service.responses import (
    OBSERVED_429_CODES,
    error_for_status,
    invalid_request,
    json_response,
    store_error,
    xml_error,
)
from sfmock.service.signing import expired_denial
from sfmock.state.store import StoreUnavailable

__all__ = ["STORE_PREFIX", "ChaosMiddleware"]

logger = logging.getLogger("sfmock")

Sleep = Callable[[float], Awaitable[None]]
STORE_PREFIX = IMAGE_PREFIX  # the default image_prefix
BODY_STATE = "body"  # request.state.body: the request body, as far as it was read
BEFORE_DROP = "before_drop"  # request.state.before_drop: callables run just before a connection is cut
SESSION_STATE = "session"  # request.state.session: the SessionState serving the request
ANSWER_CAP = 16_384  # bytes of each answer kept for the page
GENERATION_PATH = "/v1/images/generations"


class ChaosMiddleware:
    """Chooses and performs faults; records every request in the journal."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: Sessions,
        metrics: Metrics,
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
        self.sessions = sessions
        self.metrics = metrics
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
        started, began = self.clock.now(), time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        state = scope.setdefault("state", {})
        try:
            query = scope.get("query_string", b"")  # image URLs issued in a session name it
            params = dict(parse_qsl(query.decode("latin-1"))) if SESSION_PARAM.encode() in query else None
            session = self.sessions.get(session_name(headers, params))
        except SessionError as exc:
            await self._bad_header(scope, str(exc), "X-Sfmock-Session")(scope, receive, send)
            return
        state[SESSION_STATE] = session
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._unread(session, scope, headers, (started, began), send, self._too_large(scope))
            return
        body, complete = await _read_body(receive, self.max_body_bytes + 1)
        if not complete:
            self._record(session, scope, headers, body, (started, began), {"status": None, "kind": "abandoned"}, None)
            return
        try:
            await self._serve(scope, receive, send, headers, body, (started, began), session)
        finally:
            # the body, and the closures that hold it, go now: not at the next full collection
            for name in ("record", BODY_STATE):
                state.pop(name, None)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        body: bytes,
        times: tuple[float, float],
        session: SessionState,
    ) -> None:
        state = scope["state"]
        outcome: dict[str, Any] = {
            "status": None,
            "kind": "response",
            "recorded": False,
            "body": b"",
            "type": "",
            "answer": [],
        }
        fault: Fault | None = None
        body_sent = False

        def record() -> None:
            # before the client can see the end of the answer (or of the connection), so a
            # test that reads the journal right after its request finds the request there
            if not outcome["recorded"]:
                outcome["recorded"] = True
                self._record(session, scope, headers, body, times, outcome, fault)

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
                outcome["type"] = _content_type(message)
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if len(outcome["body"]) < RESPONSE_CAP:
                    outcome["body"] += chunk[: RESPONSE_CAP - len(outcome["body"])]
                _keep(outcome, chunk)
                if not message.get("more_body", False):
                    record()
            await send(message)

        session.activity.begin()
        try:
            try:
                forced = parse_fault_header(headers[FAULT_HEADER]) if FAULT_HEADER in headers else None
            except ValueError as exc:
                await self._bad_header(scope, f"X-Sfmock-Fault: {exc}", "X-Sfmock-Fault")(scope, replay, recording_send)
                return
            fault = session.engine.select(lambda scenario: self._info(scenario, scope, headers, body), forced)
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
            session.activity.end()

    def _record(
        self,
        session: SessionState,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        times: tuple[float, float],
        outcome: dict[str, Any],
        fault: Fault | None,
    ) -> None:
        started, began = times
        try:
            entry = self._journal(session, scope, headers, body, started, outcome, fault)
        except StoreUnavailable as exc:  # the answer went out (or goes now): only its entry is lost
            logger.warning("sfmock: %s %s not journaled: %s", scope["method"], scope["path"], exc)
            return
        answer = b"".join(outcome.get("answer", ()))
        status = entry.status
        images = _issued(answer) if status == 200 and scope["path"] == GENERATION_PATH else ()
        kind = outcome.get("type", "")
        session.remember(entry.id, Answer(status=status, content_type=kind, body=answer, images=images))
        self.metrics.observe(
            path=entry.path,
            method=entry.method,
            status=status,
            model=_model(scope, body, fault),
            fault=entry.fault,
            seconds=time.perf_counter() - began,
            images=len(images),
            answer=answer,
        )

    def _journal(
        self,
        session: SessionState,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        started: float,
        outcome: dict[str, Any],
        fault: Fault | None,
    ) -> Entry:
        return session.journal.record(
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
            headers=headers,
            response=outcome.get("body", b""),
        )

    async def _unread(
        self,
        session: SessionState,
        scope: Scope,
        headers: dict[str, str],
        times: tuple[float, float],
        send: Send,
        response: Response,
    ) -> None:
        """Answer without reading the body, and journal it so."""

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        self._record(session, scope, headers, b"", times, {"status": response.status_code, "kind": "response"}, None)
        await response(scope, nothing, send)

    def _too_large(self, scope: Scope) -> Response:
        """The refusal of a body declared too large; the connection closes after it (the body
        is never read, so the connection cannot carry another request)."""
        message = f"Request body too large: the limit is {self.max_body_bytes} bytes"
        if scope["path"].startswith(self.store_prefix):
            denied = DownloadDenied(400, "MaxMessageLengthExceeded", "Your request was too big.")
            response = xml_error(denied, scope["state"].get("trace_id", ""))
        else:
            response = json_response(invalid_request(message, status=413).body, 413)
        response.headers["connection"] = "close"
        return response

    def _bad_header(self, scope: Scope, message: str, header: str) -> Response:
        if scope["path"].startswith(self.store_prefix):
            denied = DownloadDenied(400, "InvalidArgument", message, ArgumentName=header)
            return xml_error(denied, scope["state"].get("trace_id", ""))
        return json_response(invalid_request(message).body, 400)

    def _info(self, scenario: Scenario, scope: Scope, headers: dict[str, str], body: bytes) -> RequestInfo:
        needs = scenario.needs
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
            if "retry_after" in spec:
                response.headers["Retry-After"] = str(spec["retry_after"])
            await response(scope, replay, send)
            return
        if action.expired_url and store:
            await xml_error(expired_denial(), scope["state"].get("trace_id", ""))(scope, replay, send)
            return
        rewrites = action.extra_fields or action.documented_body or action.malformed
        if action.truncate is None and action.slow_body is None and not rewrites:
            await self.app(scope, replay, send)
            return
        start, content = await _capture(self.app, scope, replay)
        if action.extra_fields:
            content = _with_extra_fields(content)
            MutableHeaders(scope=start)["content-length"] = str(len(content))
        if action.documented_body:
            content = _documented_only(content)
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
            offsets = range(0, len(content), size)
            for offset in offsets[:-1]:
                await send({"type": "http.response.body", "body": content[offset : offset + size], "more_body": True})
                await _sleep_unless_gone(self.sleep, interval, receive)
            content = content[offsets[-1] :] if offsets else b""
        await send({"type": "http.response.body", "body": content, "more_body": False})


def _model(scope: Scope, body: bytes, fault: Fault | None) -> str | None:
    """The model a request named: as the API read it, or (a fault answered instead) from the body."""
    model = scope["state"].get("model")
    if model is None and fault is not None and scope["path"] == GENERATION_PATH:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return None
        model = parsed.get("model") if isinstance(parsed, dict) else None
    return model if isinstance(model, str) else None


def _content_type(start: Message) -> str:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return str(value.decode("latin-1"))
    return ""


def _keep(outcome: dict[str, Any], chunk: bytes) -> None:
    """Keep the start of a non-image answer, for the page and the metrics."""
    if outcome["type"].startswith("image/"):
        return
    kept: list[bytes] = outcome["answer"]
    room = ANSWER_CAP - sum(len(part) for part in kept)
    if room > 0 and chunk:
        kept.append(chunk[:room])


def _issued(answer: bytes) -> tuple[str, ...]:
    """The image URLs of a generation's 200 answer."""
    try:
        images = json.loads(answer).get("images") or []
        return tuple(str(image["url"]) for image in images if isinstance(image, dict) and "url" in image)
    except (ValueError, AttributeError, TypeError):
        return ()


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes, and whether it arrived (``False``: the client left)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            return b"".join(chunks), True


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


DOCUMENTED_FIELDS = ("images", "timings", "seed")


def _documented_only(content: bytes) -> bytes:
    """Keep only the fields the API reference documents for a 200 (no ``data``, ...)."""
    try:
        body = json.loads(content)
    except ValueError:
        return content
    if isinstance(body, dict) and "images" in body:
        body = {key: body[key] for key in DOCUMENTED_FIELDS if key in body}
    return json.dumps(body, separators=(",", ":")).encode()


def _corrupt(content: bytes) -> bytes:
    """Cut the body in the middle: never valid JSON, never a whole PNG."""
    return content[: max(1, len(content) // 2)] if content else b"{"


async def _drop(scope: Scope) -> None:
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


async def _sleep_unless_gone(sleep: Sleep, seconds: float, receive: Receive) -> None:
    """Sleep, but stop early if the client disconnects (a hung client frees the server)."""
    sleeper = asyncio.ensure_future(sleep(seconds))
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    done, pending = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if sleeper in done:
        sleeper.result()  # a sleep that ended in an exception (a client's timeout, in checks) goes on up
    elif watcher in done:
        raise _ClientGone()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _ClientGone(Exception):
    """The client disconnected while a fault was waiting."""
