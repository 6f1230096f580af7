"""The busiest routes served without Starlette's router.

``POST /v1/images/generations`` and the image downloads (``GET {image_prefix}{object}``)
reach their handlers without Starlette's router and exception middleware (a tenth of the
app's time per request); the answer is the same: the handler's response, or an
:class:`~sfmock.errors.ApiError`'s JSON body as the app's exception handler writes it.
Every other request, and any app mounted under a root path, goes the usual way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sfmock.errors import ApiError
from sfmock.service.responses import json_response

__all__ = ["DirectRoute"]

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute:
    """Serves ``endpoint`` for ``methods`` on ``path``.

    With ``param``, ``path`` is a prefix and one path segment after it is the path
    parameter of that name (Starlette's ``{param}``: one or more characters, no ``/``);
    paths of ``shadowed`` (other routes' own) are left to the router.
    """

    def __init__(
        self,
        *,
        methods: Collection[str],
        path: str,
        endpoint: Endpoint,
        param: str | None = None,
        shadowed: Collection[str] = (),
    ) -> None:
        self.methods = frozenset(methods)
        self.path = path
        self.endpoint = endpoint
        self.param = param
        self.shadowed = frozenset(shadowed)

    def params(self, scope: Scope) -> dict[str, str] | None:
        """The path parameters when this route serves the request, else ``None``."""
        if scope["method"] not in self.methods or scope.get("root_path"):
            return None  # under a root path, the router knows how paths nest
        path: str = scope["path"]
        if self.param is None:
            return {} if path == self.path else None
        rest = path[len(self.path) :]
        if not path.startswith(self.path) or not rest or "/" in rest or path in self.shadowed:
            return None
        return {self.param: rest}

    async def serve(self, scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
        """Answer with the endpoint (``params``: what :meth:`params` found)."""
        response = await self.answer(scope, receive, send, params)
        if response is not None:
            # what Response.__call__ does for a plain HTTP answer, one frame less
            await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
            await send({"type": "http.response.body", "body": response.body})

    async def answer(self, scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> Response | None:
        """The endpoint's answer when it is a plain one (status, headers and a body, which the
        caller sends: :meth:`serve`, or a pipeline that knows what it sends); any other
        answer is sent here, and ``None`` returned."""
        scope["endpoint"], scope["path_params"] = self.endpoint, params
        request = _Request(scope, receive, send)
        try:
            response = await self.endpoint(request)
        except ApiError as exc:
            response = json_response(exc.body, exc.status, exc.headers)
        if type(response).__call__ is _PLAIN_CALL and response.background is None:
            return response
        await response(scope, receive, send)
        return None


_PLAIN_CALL = Response.__call__


class _Request(Request):
    """Starlette's ``Request(scope, receive, send)``, made in one call (on every generation
    and download); a test holds it to the same attributes."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._stream_consumed = False
        self._is_disconnected = False
        self._form = None
