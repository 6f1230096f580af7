"""Fault injection and journalling, as ASGI middleware around the fake.

For each request (the control API excepted) it buffers the body, asks the
:class:`~sfmock.chaos.faults.FaultEngine` for a fault (the ``X-Sfmock-Fault`` header forces
one), carries it out, and records the request and its outcome in the journal. The jobs
live apart: reading the request (:mod:`~sfmock.chaos.inbound`), choosing the fault
(:mod:`~sfmock.chaos.matching`), carrying it out (:mod:`~sfmock.chaos.injection`) and
journalling (:mod:`~sfmock.chaos.outcome`); this class only puts them in order.

A body declared larger than the limit is answered 413 at once, unread (no ``100
Continue``). A request whose body never fully arrived (the client hung up or the read
timed out) is journaled as ``abandoned`` and goes no further: nothing is charged or
counted. The body is let go as soon as the request ends.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfmock.chaos.inbound import bad_header, header_map, read_body, session_of, too_large
from sfmock.chaos.injection import BEFORE_DROP, ClientGone, FaultInjector, Sleep
from sfmock.chaos.matching import FaultMatcher
from sfmock.chaos.metrics import Metrics
from sfmock.chaos.outcome import Exchange, JournalWriter, Outcome
from sfmock.chaos.sessions import SessionError, Sessions, SessionState
from sfmock.clock import Clock, serving
from sfmock.service.accounts import Authenticator
from sfmock.service.imagehost import IMAGE_PREFIX
from sfmock.service.lifecycle import Lifecycle
from sfmock.service.responses import OBSERVED_429_CODES
from sfmock.state.memory import MemoryStore
from sfmock.state.store import Store

__all__ = ["BEFORE_DROP", "STORE_PREFIX", "ChaosMiddleware", "Sleep"]

STORE_PREFIX = IMAGE_PREFIX  # the default image_prefix
BODY_STATE = "body"  # request.state.body: the request body, as far as it was read
SESSION_STATE = "session"  # request.state.session: the SessionState serving the request


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
        store: Store | None = None,
    ) -> None:
        """``store``: where the sessions keep their state (default: this process's memory)."""
        self.app = app
        self.sessions = sessions
        self.store: Store = store if store is not None else MemoryStore()
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.control_prefix = control_prefix
        self.store_prefix = store_prefix
        lifecycle = lifecycle or Lifecycle((), started=clock.now())
        self.matcher = FaultMatcher(authenticator=authenticator, clock=clock, lifecycle=lifecycle)
        self.injector = FaultInjector(
            app,
            clock=clock,
            sleep=sleep,
            store_prefix=store_prefix,
            lifecycle=lifecycle,
            dialect=dialect,
            rate_limit_codes=rate_limit_codes,
        )
        self.writer = JournalWriter(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.control_prefix):
            await self.app(scope, receive, send)
            return
        headers = header_map(scope)
        state = scope.setdefault("state", {})
        try:
            session = session_of(self.sessions, scope, headers)
        except SessionError as exc:
            await bad_header(scope, str(exc), "X-Sfmock-Session", self.store_prefix)(scope, receive, send)
            return
        state[SESSION_STATE] = session
        # a shared store's clocks and scenario, read at once; the session's time, for all it asks
        with self.store.snapshot(session.name), serving(self.clock, session.clock):
            await self._arrived(scope, receive, send, headers, session)

    async def _arrived(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], session: SessionState
    ) -> None:
        state = scope["state"]
        times = (self.clock.now(), time.perf_counter())
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            response = too_large(scope, self.max_body_bytes, self.store_prefix)
            self.writer.record(session, scope, headers, b"", times, Outcome(status=response.status_code), None)
            await response(scope, _disconnected, send)
            return
        body, complete = await read_body(receive, self.max_body_bytes + 1)
        if not complete:
            self.writer.record(session, scope, headers, body, times, Outcome("abandoned"), None)
            return
        try:
            await self._serve(Exchange(self.writer, session, scope, headers, body, times, receive, send), receive)
        finally:
            # the body, and the closures that hold it, go now: not at the next full collection
            state.pop("record", None)
            state.pop(BODY_STATE, None)

    async def _serve(self, exchange: Exchange, receive: Receive) -> None:
        scope, session = exchange.scope, exchange.session
        scope["state"]["record"] = exchange.record
        scope["state"][BODY_STATE] = exchange.body  # read once here; the handler need not stream it again
        session.activity.begin()
        try:
            try:
                forced = self.matcher.forced(exchange.headers)
            except ValueError as exc:
                answer = bad_header(scope, f"X-Sfmock-Fault: {exc}", "X-Sfmock-Fault", self.store_prefix)
                await answer(scope, exchange.receive, exchange.send)
                return
            fault = exchange.fault = self.matcher.choose(session.engine, scope, exchange.headers, exchange.body, forced)
            scope["state"]["fault"] = fault
            try:
                if fault is None:
                    await self.app(scope, exchange.receive, exchange.send)
                else:
                    await self.injector.perform(
                        fault, scope, exchange.receive, receive, exchange.send, exchange.outcome
                    )
            except ClientGone:
                exchange.outcome.kind = "abandoned"  # the client hung up while the fault waited
        finally:
            exchange.record()
            session.activity.end()


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
