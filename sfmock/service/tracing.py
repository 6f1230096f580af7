"""Every response carries a unique request id, like the real gateway and object store.

API responses get ``x-siliconcloud-trace-id``. The image host stamps the same id as
``x-amz-request-id`` itself (object storage answers those in production), and this
middleware leaves such responses alone. The id is in ``request.state.trace_id``.
"""

from __future__ import annotations

import random
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["STORE_HEADER", "TRACE_HEADER", "TraceIdMiddleware"]

TRACE_HEADER = "x-siliconcloud-trace-id"
STORE_HEADER = "x-amz-request-id"
_TRACE, _STORE = TRACE_HEADER.encode(), STORE_HEADER.encode()


class TraceIdMiddleware:
    """Stamps a fresh id on each HTTP response; ids come from a seedable generator."""

    def __init__(self, app: ASGIApp, rng: random.Random) -> None:
        self.app = app
        self.rng = rng

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        scope.setdefault("state", {})["trace_id"] = trace_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(name == _STORE for name, _ in headers):
                    headers.append((_TRACE, trace_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)
