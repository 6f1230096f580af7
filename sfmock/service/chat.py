"""``POST /v1/chat/completions``: not faked, but answered as clients meet it.

Clients that route an image model to the chat endpoint meet the service's 400
``{"code":20012,"message":"Model does not exist. Please check it carefully.","data":null}``
[seen 2026: AstrBot#9192, banana-slides#205]; sfmock answers that. Any other request gets a
404 whose body says that sfmock fakes the image API only, so a chat client pointed at it by
mistake learns why at once (never a 200 it could mistake for an answer, never a bare 404).
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from sfmock.errors import ApiError
from sfmock.service.api import Api
from sfmock.service.payloads import read_json
from sfmock.service.responses import unknown_model

__all__ = ["CHAT_PATH", "IMAGES_ONLY", "ChatRoute"]

CHAT_PATH: Final = "/v1/chat/completions"
IMAGES_ONLY: Final = (
    "sfmock fakes SiliconFlow's image API only: POST /v1/chat/completions is not faked "
    "(model {model}); send chat requests to the real service"
)


class ChatRoute:
    """The chat endpoint's refusals, with the API's key check and body limits."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def complete(self, request: Request) -> Response:
        """Check the key (401) and the body (400/413), then refuse as described above (a 404
        is the route's own, not the gateway's: the path exists, the service does not)."""
        self.api.account(request)
        body = await read_json(request, self.api.max_body_bytes)
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model in self.api.contract.models:
            request.state.model = model  # for the metrics: an image model, asked the wrong way
            raise unknown_model()
        shown = repr(model[:100]) if isinstance(model, str) else "not given"
        raise ApiError(404, {"message": IMAGES_ONLY.format(model=shown), "data": None})
