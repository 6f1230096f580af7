"""When the fake itself fails: a 500 in the service's own shape, logged and journaled.

An exception escaping a handler would otherwise reach uvicorn, which answers a bare
``text/plain`` 500 with no trace id that the journal records as a dropped connection.
This middleware sits inside the journal's: it answers the API's JSON 500 (the image
host's S3 ``InternalError``), which the trace-id middleware stamps, the journal records
with status 500, and the log names by its trace id.
"""

from __future__ import annotations

import logging

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfmock.service.responses import error_for_status, json_response, store_error, xml_error
from sfmock.service.tracing import STARTED_STATE
from sfmock.state.store import StoreUnavailable

__all__ = ["InternalErrorMiddleware", "StoreOutageMiddleware"]

logger = logging.getLogger("sfmock")


class InternalErrorMiddleware:
    """Turns an unexpected exception into the documented 500 (if nothing was sent yet)."""

    def __init__(self, app: ASGIApp, *, store_prefix: str) -> None:
        self.app = app
        self.store_prefix = store_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except StoreUnavailable as exc:
            if started:
                raise
            await outage(scope, exc, self.store_prefix)(scope, receive, send)
        except Exception:
            if started:
                internal_error(scope)
                raise  # too late for an answer: the server closes the connection
            await internal_error(scope, self.store_prefix)(scope, receive, send)


def internal_error(scope: Scope, store_prefix: str | None = None) -> Response:
    """Log the exception being handled; the documented 500 for it (with ``store_prefix``)."""
    trace_id = scope.get("state", {}).get("trace_id", "")
    logger.exception("sfmock: internal error in %s %s (trace id %s)", scope["method"], scope["path"], trace_id)
    if store_prefix is not None and scope["path"].startswith(store_prefix):
        return xml_error(store_error(500), trace_id)
    return json_response(error_for_status(500, trace_id).body, 500)


class StoreOutageMiddleware:
    """Answers 503 when the shared store is lost outside a handler (faults, journal), and
    the documented 500 for any other failure there (never the server's bare one).

    It sits just inside :class:`~sfmock.service.tracing.TraceIdMiddleware`, which notes when
    the answer begins (one wrapper of ``send`` fewer on every request).

    Fail closed: nothing is admitted, counted or charged while the store is away, and
    the next request tries it again, so the server recovers by itself.
    """

    def __init__(self, app: ASGIApp, *, store_prefix: str) -> None:
        self.app = app
        self.store_prefix = store_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except StoreUnavailable as exc:
            # the trace-id middleware, just outside this one, notes when the answer began
            if scope["type"] != "http" or scope["state"].get(STARTED_STATE):
                raise
            await outage(scope, exc, self.store_prefix)(scope, receive, send)
        except Exception:  # a fault of the layers between here and InternalErrorMiddleware
            if scope["type"] != "http" or scope["state"].get(STARTED_STATE):
                raise
            await internal_error(scope, self.store_prefix)(scope, receive, send)


def outage(scope: Scope, exc: StoreUnavailable, store_prefix: str) -> Response:
    """The 503 for a lost store: the API's JSON error (the image host's S3 ``SlowDown``)."""
    trace_id = scope.get("state", {}).get("trace_id", "")
    message = f"sfmock: {exc}; retry shortly"
    if scope["path"].startswith(store_prefix):
        return xml_error(store_error(503, message), trace_id)
    return json_response(error_for_status(503, trace_id, message=message).body, 503)
