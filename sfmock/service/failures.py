"""When the fake itself fails: a 500 in the service's own shape, logged and journaled.

An exception escaping a handler would otherwise reach uvicorn, which answers a bare
``text/plain`` 500 with no trace id that the journal records as a dropped connection.
This middleware sits inside the journal's: it answers the API's JSON 500 (the image
host's S3 ``InternalError``), which the trace-id middleware stamps, the journal records
with status 500, and the log names by its trace id.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfmock.service.responses import error_for_status, json_response, store_error, xml_error

__all__ = ["InternalErrorMiddleware"]

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
        except Exception:
            trace_id = scope.get("state", {}).get("trace_id", "")
            logger.exception("sfmock: internal error in %s %s (trace id %s)", scope["method"], scope["path"], trace_id)
            if started:
                raise  # too late for an answer: the server closes the connection
            if scope["path"].startswith(self.store_prefix):
                response = xml_error(store_error(500), trace_id)
            else:
                response = json_response(error_for_status(500, trace_id).body, 500)
            await response(scope, receive, send)
