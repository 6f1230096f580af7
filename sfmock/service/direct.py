"""The busiest route served straight from the middleware stack.

``POST /v1/images/generations`` reaches its handler without Starlette's router and
exception middleware (a tenth of the app's time per request); the answer is the same:
the handler's response, or an :class:`~sfmock.errors.ApiError`'s JSON body as the app's
exception handler writes it. Every other request, and any app mounted under a root
path, goes the usual way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sfmock.errors import ApiError
from sfmock.service.responses import json_response

__all__ = ["DirectRoute"]

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute:
    """Calls ``endpoint`` for ``method path``; passes everything else on to the app."""

    def __init__(self, app: ASGIApp, *, method: str, path: str, endpoint: Endpoint) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != self.method:
            await self.app(scope, receive, send)
            return
        if scope.get("root_path"):
            await self.app(scope, receive, send)  # the router knows how paths nest
            return
        scope["endpoint"], scope["path_params"] = self.endpoint, {}
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request)
        except ApiError as exc:
            response = json_response(exc.body, exc.status, exc.headers)
        await response(scope, receive, send)
