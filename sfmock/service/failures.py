"""When the fake itself fails: a 500 in the service's own shape, logged and journaled.

An exception escaping a handler would otherwise reach uvicorn, which answers a bare
``text/plain`` 500 with no trace id that the journal records as a dropped connection.
The pipeline (:mod:`sfmock.chaos.pipeline`) answers it with the API's JSON 500 (the image
host's S3 ``InternalError``), stamped with the trace id, journaled with status 500 and
logged by its trace id; a lost shared store is answered 503 the same way.

Fail closed: nothing is admitted, counted or charged while the store is away, and the
next request tries it again, so the server recovers by itself.
"""

from __future__ import annotations

import logging
import sys

from starlette.responses import Response
from starlette.types import Scope

from sfmock.service.responses import error_for_status, json_response, store_error, xml_error
from sfmock.state.store import StoreUnavailable

__all__ = ["failure_answer", "internal_error", "outage"]

logger = logging.getLogger("sfmock")


def failure_answer(scope: Scope, store_prefix: str, *, began: bool) -> Response | None:
    """The answer to the exception being handled: the 503 of a lost store, else the
    documented 500 (logged); ``None`` when the answer ``began`` already (the caller
    raises again, and the server closes the connection)."""
    exc = sys.exc_info()[1]
    if isinstance(exc, StoreUnavailable):
        return None if began else outage(scope, exc, store_prefix)
    if began:
        internal_error(scope)  # logged: too late for an answer
        return None
    return internal_error(scope, store_prefix)


def internal_error(scope: Scope, store_prefix: str | None = None) -> Response:
    """Log the exception being handled; the documented 500 for it (with ``store_prefix``)."""
    trace_id = scope.get("state", {}).get("trace_id", "")
    logger.exception("sfmock: internal error in %s %s (trace id %s)", scope["method"], scope["path"], trace_id)
    if store_prefix is not None and scope["path"].startswith(store_prefix):
        return xml_error(store_error(500), trace_id)
    return json_response(error_for_status(500, trace_id).body, 500)


def outage(scope: Scope, exc: StoreUnavailable, store_prefix: str) -> Response:
    """The 503 for a lost store: the API's JSON error (the image host's S3 ``SlowDown``)."""
    trace_id = scope.get("state", {}).get("trace_id", "")
    message = f"sfmock: {exc}; retry shortly"
    if scope["path"].startswith(store_prefix):
        return xml_error(store_error(503, message), trace_id)
    return json_response(error_for_status(503, trace_id, message=message).body, 503)
