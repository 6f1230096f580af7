"""The one pipeline every HTTP request goes through, in order.

1. a trace id (:mod:`~sfmock.service.tracing`), stamped on the answer as it leaves;
2. the control API goes straight to its routes; for anything else: the request's
   session and body (:mod:`~sfmock.chaos.inbound`), its fault
   (:mod:`~sfmock.chaos.matching`), carried out (:mod:`~sfmock.chaos.injection`);
3. the route's answer: the busiest routes straight to their handlers
   (:mod:`~sfmock.service.direct`), every other one through Starlette's router;
4. a failure anywhere answered as documented (:mod:`~sfmock.service.failures`): the
   500, or 503 for a lost store, unless the answer had begun;
5. the journal and the metrics (:mod:`~sfmock.chaos.outcome`), written just before the
   client sees the answer end.

Each concern lives in its module; this class only puts them in order, with one wrapper
around the server's ``send`` (the journal's, which stamps the trace id too, while a
request is journaled).

A body declared larger than the limit is answered 413 at once, unread (no ``100
Continue``). A request whose body never fully arrived (the client hung up or the read
timed out) is journaled as ``abandoned`` and goes no further: nothing is charged or
counted. The body is let go as soon as the request ends.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfmock.chaos.inbound import bad_header, header_map, read_body, repeated_own_header, session_of, too_large
from sfmock.chaos.injection import BEFORE_DROP, ClientGone, FaultInjector, Sleep
from sfmock.chaos.matching import FaultMatcher
from sfmock.chaos.metrics import Metrics
from sfmock.chaos.outcome import Exchange, JournalWriter, Outcome
from sfmock.chaos.sessions import SessionError, Sessions, SessionState
from sfmock.clock import Clock, serve_on, served
from sfmock.service.accounts import Authenticator
from sfmock.service.api import AHEAD_STATE
from sfmock.service.direct import DirectRoute
from sfmock.service.failures import failure_answer
from sfmock.service.headers import HEADERS_STATE
from sfmock.service.imagehost import IMAGE_PREFIX
from sfmock.service.lifecycle import Lifecycle
from sfmock.service.responses import OBSERVED_429_CODES, json_response
from sfmock.service.tracing import Outbound, uuid4_text
from sfmock.state.memory import MemoryStore
from sfmock.state.recheck import Stale, confirm
from sfmock.state.store import Store

__all__ = ["BEFORE_DROP", "STORE_PREFIX", "Pipeline", "Sleep"]

STORE_PREFIX = IMAGE_PREFIX  # the default image_prefix
BODY_STATE = "body"  # request.state.body: the request body, as far as it was read
SESSION_STATE = "session"  # request.state.session: the SessionState serving the request


class Pipeline:
    """Traces, chooses and performs faults, answers, handles failures, journals."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rng: random.Random,
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
        store: Store | None = None,
        direct: Sequence[DirectRoute] = (),
    ) -> None:
        """``app``: Starlette's router, for the routes not in ``direct``; ``rng``: where
        trace ids come from; ``store``: where the sessions keep their state (default:
        this process's memory)."""
        self.app = app
        self.rng = rng
        self.sessions = sessions
        self.store: Store = store if store is not None else MemoryStore()
        self.snapshots = not isinstance(self.store, MemoryStore)  # a memory store's is nothing to do
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.control_prefix = control_prefix
        self.store_prefix = store_prefix
        self.direct = tuple(direct)
        # the exact-path routes ahead of any with a parameter, found by one look-up (the
        # generation's, on every one); the first to match wins, as in the loop
        self.exact: dict[tuple[str, str], DirectRoute] = {}
        for route in self.direct:
            if route.param is not None:
                break
            for method in route.methods:
                self.exact.setdefault((method, route.path), route)
        lifecycle = lifecycle or Lifecycle((), started=clock.now())
        self.matcher = FaultMatcher(authenticator=authenticator, clock=clock, lifecycle=lifecycle)
        self.injector = FaultInjector(
            self._answer,
            clock=clock,
            sleep=sleep,
            store_prefix=store_prefix,
            lifecycle=lifecycle,
            dialect=dialect,
            rate_limit_codes=rate_limit_codes,
        )
        self.writer = JournalWriter(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        trace_id = state["trace_id"] = uuid4_text(self.rng.getrandbits(128))
        out = Outbound(send, state, trace_id)
        try:
            if scope["path"].startswith(self.control_prefix):
                repeated = repeated_own_header(scope, header_map(scope))  # a Host twice passes no guard
                if repeated is not None:
                    await json_response({"error": repeated}, 400)(scope, receive, out.send)  # the control API's
                    return
                await self._respond(scope, receive, out.send, out)
                return
            headers = header_map(scope)
            found = self._session(scope, headers)
            if not isinstance(found, SessionState):
                await found(scope, receive, out.send)  # the 400 of a malformed or repeated own header
            elif self.snapshots:  # a shared store's clocks and scenario, read at once
                with self.store.snapshot(found.name):
                    await self._arrived(scope, receive, out, headers, found)
            else:
                await self._arrived(scope, receive, out, headers, found)
        except Exception:  # a failure of the pipeline itself (faults, journal, sessions)
            answer = failure_answer(scope, self.store_prefix, began=out.started)
            if answer is None:
                raise
            await answer(scope, receive, out.send)

    def _session(self, scope: Scope, headers: dict[str, str]) -> SessionState | Response:
        """The session serving the request, or the 400 for a malformed ``X-Sfmock-Session``
        or an own header sent twice."""
        state = scope["state"]
        if len(headers) == len(scope["headers"]):
            state[HEADERS_STATE] = headers  # no name twice: the handlers read this map
        else:
            repeated = repeated_own_header(scope, headers)
            if repeated is not None:
                return bad_header(scope, repeated, repeated.partition(":")[0], self.store_prefix)
        try:
            session = session_of(self.sessions, scope, headers)
        except SessionError as exc:
            return bad_header(scope, str(exc), "X-Sfmock-Session", self.store_prefix)
        state[SESSION_STATE] = session
        return session

    async def _arrived(
        self, scope: Scope, receive: Receive, out: Outbound, headers: dict[str, str], session: SessionState
    ) -> None:
        state = scope["state"]
        token = serve_on(self.clock, session.clock)  # the session's time, for all it asks
        try:
            times = (self.clock.now(), time.perf_counter())
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                times = self._checked(times)
                response = too_large(scope, self.max_body_bytes, self.store_prefix)
                self.writer.record(session, scope, headers, b"", times, Outcome(status=response.status_code), None)
                await response(scope, _disconnected, out.send)
                return
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body, complete = message.get("body", b""), True  # the whole body in one message: most requests
            else:
                body, complete = await read_body(receive, self.max_body_bytes + 1, message)
            if not complete:
                times = self._checked(times)
                self.writer.record(session, scope, headers, body, times, Outcome("abandoned"), None)
                return
            try:
                await self._serve(
                    Exchange(self.writer, session, scope, headers, body, times, receive, out), receive, out
                )
            except Stale:  # what it was served on had changed (another process): once more, on the fresh
                times = (self.clock.now(), times[1])
                await self._serve(
                    Exchange(self.writer, session, scope, headers, body, times, receive, out), receive, out
                )
        finally:
            served(token)
            # the body, and the closures that hold it, go now: not at the next full collection
            state.pop("record", None)
            state.pop(AHEAD_STATE, None)
            state.pop(BODY_STATE, None)

    def _checked(self, times: tuple[float, float]) -> tuple[float, float]:
        """The arrival's ``times``, on the shared state as it is (:mod:`sfmock.state.recheck`)."""
        try:
            confirm()
        except Stale:
            return (self.clock.now(), times[1])
        return times

    async def _serve(self, exchange: Exchange, receive: Receive, out: Outbound) -> None:
        scope, session, state = exchange.scope, exchange.session, exchange.scope["state"]
        ahead = exchange.offer()
        if ahead is not None:
            state[AHEAD_STATE] = ahead  # the 200's entry written with the admission
        state[BODY_STATE] = exchange.body  # read once here; the handler need not stream it again
        session.activity.begin()
        try:
            try:
                forced = self.matcher.forced(exchange.headers)
            except ValueError as exc:
                answer = bad_header(scope, f"X-Sfmock-Fault: {exc}", "X-Sfmock-Fault", self.store_prefix)
                await answer(scope, exchange.receive, exchange.send)
                return
            fault = exchange.fault = self.matcher.choose(session.engine, scope, exchange.headers, exchange.body, forced)
            state["fault"] = fault
            try:
                if fault is None:
                    route, params = self._route(scope)
                    if route is not None:
                        await self._direct(route, params, exchange, out)
                    else:
                        await self._respond(scope, exchange.receive, exchange.send, out)
                else:
                    state["record"] = exchange.record  # a fault that drops the connection journals first
                    await self.injector.perform(
                        fault, scope, exchange.receive, receive, exchange.send, exchange.outcome
                    )
            except ClientGone:
                exchange.outcome.kind = "abandoned"  # the client hung up while the fault waited
        except Stale:
            exchange.outcome.recorded = True  # nothing went out: it is served again, and journaled then
            raise
        finally:
            exchange.record()
            session.activity.end()

    def _route(self, scope: Scope) -> tuple[DirectRoute | None, dict[str, str]]:
        """The busy route that serves the request (the generation's, a download's) and its
        path parameters, or ``None`` where Starlette's router does."""
        exact = self.exact.get((scope["method"], scope["path"]))
        if exact is not None and not scope.get("root_path"):
            return exact, {}
        for route in self.direct:
            params = route.params(scope)
            if params is not None:
                return route, params
        return None, {}

    async def _direct(self, route: DirectRoute, params: dict[str, str], exchange: Exchange, out: Outbound) -> None:
        """The answer of a busy route, sent as :meth:`_respond` and :meth:`Exchange.send`
        would send it, with its outcome known rather than watched: the trace id stamped on
        its head, the request journaled before its body goes."""
        scope, receive, send = exchange.scope, exchange.receive, exchange.send
        try:
            response = await route.answer(scope, receive, send, params)
        except Exception:
            answer = failure_answer(scope, self.store_prefix, began=out.started)
            if answer is None:
                raise
            await answer(scope, receive, send)
            return
        if response is None:  # not a plain answer: sent already
            return
        body = response.body if isinstance(response.body, bytes) else bytes(response.body)
        start = {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
        confirm()  # what the answer was made on still holds (else it is made again)
        exchange.outcome.answered(response.status_code, response.raw_headers, body)
        out.stamp(start)
        await out.server(start)
        exchange.record()  # before the client sees the answer end
        await out.server({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The route's answer as a fault sees it (it may capture or rewrite it)."""
        watched = Outbound(send, scope["state"])
        await self._respond(scope, receive, watched.send, watched)

    async def _respond(self, scope: Scope, receive: Receive, send: Send, began: Outbound) -> None:
        """The route's answer, or the documented one for its failure while nothing was sent
        (``began``: what notes the start of the answer)."""
        try:
            exact = self.exact.get((scope["method"], scope["path"]))
            if exact is not None and not scope.get("root_path"):
                await exact.serve(scope, receive, send, {})
                return
            for route in self.direct:
                params = route.params(scope)
                if params is not None:
                    await route.serve(scope, receive, send, params)
                    return
            await self.app(scope, receive, send)
        except Exception:
            answer = failure_answer(scope, self.store_prefix, began=began.started)
            if answer is None:
                raise
            await answer(scope, receive, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
