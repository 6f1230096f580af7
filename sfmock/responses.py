"""The bodies the fake answers with, as the real service words them.

Each error is built in one place so that handlers, faults and tests share the exact
text. JSON goes out as ``application/json; charset=utf-8``, like the real gateway.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import Response

from .errors import ApiError, DownloadDenied
from .tracing import STORE_HEADER

__all__ = [
    "INVALID_TOKEN",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "invalid_request",
    "json_response",
    "unknown_model",
    "xml_error",
]

JSON_TYPE = "application/json; charset=utf-8"
INVALID_TOKEN = "Invalid token"
NOT_FOUND = "404 page not found"
METHOD_NOT_ALLOWED = "405 method not allowed"
INVALID_PARAMETER = 20012


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as compact UTF-8 JSON."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(content.encode("utf-8"), status, headers=headers, media_type=JSON_TYPE)


def invalid_request(message: str, status: int = 400) -> ApiError:
    """The documented 400 of a request that breaks a rule (code 20012)."""
    return ApiError(status, {"code": INVALID_PARAMETER, "message": message, "data": None})


def unknown_model() -> ApiError:
    """The documented 400 of a model name the service does not know."""
    return invalid_request("Model does not exist. Please check it carefully.")


def unauthorized() -> ApiError:
    """The documented 401 for a missing, malformed or unknown key."""
    return ApiError(401, INVALID_TOKEN)


def forbidden() -> ApiError:
    """The documented 403 of a disabled account or key."""
    return ApiError(403, "Forbidden")


def model_disabled() -> ApiError:
    """The 403 seen when the account may not use the model."""
    return ApiError(403, {"code": 30003, "message": "Model disabled."})


def insufficient_balance() -> ApiError:
    """The 402 seen when the balance cannot pay for the request."""
    return ApiError(402, {"code": 30001, "message": "Sorry, your account balance is insufficient", "data": None})


def rate_limited(metric: str, trace_id: str, headers: dict[str, str] | None = None) -> ApiError:
    """The documented 429; ``Details:`` names the limit reached."""
    message = (
        "Request was rejected due to rate limiting. If you want more, please contact "
        f"contact@siliconflow.cn. Details:{metric.upper()} limit reached."
    )
    return ApiError(429, {"message": message, "data": trace_id}, headers)


OVERLOADED = "Model service overloaded. Please try again later."
_UNSET: Any = object()


def error_for_status(
    status: int,
    trace_id: str,
    *,
    code: int | None = None,
    message: str | None = None,
    limit: str | None = None,
    body: Any = _UNSET,
) -> ApiError:
    """The API's answer for an injected error ``status``, as the real service words it."""
    if body is not _UNSET:
        return ApiError(status, body)
    if status == 400:
        error = invalid_request(message or "Invalid parameter")
        error.body["code"] = code if code is not None else INVALID_PARAMETER
        return error
    coded = {"code": code, "message": message or "", "data": None}
    simple: dict[int, ApiError] = {
        401: unauthorized(),
        402: insufficient_balance(),
        403: ApiError(403, coded) if code is not None else forbidden(),
        404: ApiError(404, NOT_FOUND),
        413: invalid_request(message or "Request body too large", 413),
        429: rate_limited(limit or "RPM", trace_id),
        500: ApiError(500, {"code": code or 50000, "message": message or "Internal Server Error", "data": None}),
        502: ApiError(502, message or "Bad Gateway"),
        503: ApiError(503, {"code": code or 50505, "message": message or OVERLOADED, "data": trace_id}),
        504: ApiError(504, message or "Gateway Timeout"),
    }
    return simple[status]


def store_error(status: int, message: str | None = None) -> DownloadDenied:
    """The image host's answer for an injected error ``status`` (S3 codes)."""
    codes = {
        403: ("AccessDenied", "Access Denied"),
        404: ("NoSuchKey", "The specified key does not exist."),
        500: ("InternalError", "We encountered an internal error. Please try again."),
        503: ("SlowDown", "Please reduce your request rate."),
    }
    code, default = codes.get(status, ("InternalError", "We encountered an internal error. Please try again."))
    return DownloadDenied(status, code, message or default)


def xml_error(denied: DownloadDenied, request_id: str) -> Response:
    """An object-storage ``<Error>`` document."""
    elements = {**denied.body, "RequestId": request_id, "HostId": request_id}
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in elements.items())
    content = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'
    headers = {STORE_HEADER: request_id}
    return Response(content, denied.status, headers=headers, media_type="application/xml")
