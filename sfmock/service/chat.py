"""``POST /v1/chat/completions``: not faked, but answered as clients meet it.

Clients that route an image model to the chat endpoint meet the service's 400
``{"code":20012,"message":"Model does not exist. Please check it carefully.","data":null}``
[seen 2026: AstrBot#9192, banana-slides#205]; sfmock answers that. Any other model gets a
400 saying that sfmock fakes the image API only, so a chat client pointed at it by mistake
learns why at once (never a 200 it could mistake for an answer, never a bare 404).
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from sfmock.service.api import Api
from sfmock.service.payloads import read_json
from sfmock.service.responses import invalid_request, unknown_model

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
        """Check the key (401) and the body (400/413), then refuse as described above."""
        self.api.account(request)
        body = await read_json(request, self.api.max_body_bytes)
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model in self.api.contract.models:
            request.state.model = model  # for the metrics: an image model, asked the wrong way
            raise unknown_model()
        shown = repr(model[:100]) if isinstance(model, str) else "not given"
        raise invalid_request(IMAGES_ONLY.format(model=shown))
