"""The bodies the fake answers with, as the real service words them.

Each error is built in one place so that handlers, faults and tests share the exact
text. JSON goes out as ``application/json; charset=utf-8``, like the real gateway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from xml.sax.saxutils import escape

import orjson
from starlette.responses import Response

from sfmock.errors import ApiError, DownloadDenied
from sfmock.service.tracing import STORE_HEADER

__all__ = [
    "DIALECTS",
    "INVALID_TOKEN",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "OBSERVED_429_CODES",
    "generation_response",
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


def generation_response(
    body: dict[str, Any], headers: dict[str, str] | None = None, *, content: bytes | None = None
) -> Response:
    """A generation's 200 body: the bytes :func:`json_response` gives, encoded by ``orjson``
    (``content``: :func:`generation_bytes` of ``body``, when made already).

    Its values (strings, integers, one float rounded to 3 decimals between 0.001 and a few
    thousand) are written the same way by both encoders (a test holds them to it); an
    integer past 64 bits goes through :func:`json_response`.
    """
    if content is None:
        content = generation_bytes(body)
    if content is None:
        return json_response(body, 200, headers)
    return _JsonAnswer(content, headers or {})


def generation_bytes(body: dict[str, Any]) -> bytes | None:
    """The bytes of a generation's 200 body, or ``None`` where ``orjson`` cannot write it."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return None


_JSON_TYPE = JSON_TYPE.encode("latin-1")
_OWN_HEADERS = frozenset(("content-length", "content-type"))


class _JsonAnswer(Response):
    """``Response(content, 200, headers=headers, media_type=JSON_TYPE)``, its head built in
    one pass (on every generation); a test holds the two to the same bytes."""

    media_type = JSON_TYPE

    def __init__(self, content: bytes, headers: Mapping[str, str]) -> None:
        if headers and not _OWN_HEADERS.isdisjoint(name.lower() for name in headers):
            super().__init__(content, 200, headers=headers)
            return
        self.status_code = 200
        self.background = None
        self.body = content
        # no comprehension for no headers (a frame each on Python 3.11): the usual 200
        raw = (
            [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
            if headers
            else []
        )
        raw += ((b"content-length", str(len(content)).encode("latin-1")), (b"content-type", _JSON_TYPE))
        self.raw_headers = raw


def invalid_request(message: str, status: int = 400) -> ApiError:
    """The documented 400 of a request that breaks a rule (code 20012)."""
    return ApiError(status, {"code": INVALID_PARAMETER, "message": message, "data": None})


PARAMETER_INVALID = 20015
PARAMETER_INVALID_MESSAGE = "The parameter is invalid. Please check again."


def parameter_invalid() -> ApiError:
    """The 400 seen on the chat and embedding endpoints (code 20015, no field named); for
    images only 20012 is documented, so this one answers only by setting."""
    return ApiError(400, {"code": PARAMETER_INVALID, "message": PARAMETER_INVALID_MESSAGE, "data": None})


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
    """The 403 seen when the account may not use the model, or the model is retired."""
    return ApiError(403, {"code": 30003, "message": "Model disabled."})


BALANCE_CODE = 30001
MODEL_DISABLED_CODE = 30003


def insufficient_balance(status: int = 403) -> ApiError:
    """Code 30001 when the balance cannot pay: 403 on the error-code page, 402 also seen."""
    body = {"code": BALANCE_CODE, "message": "Sorry, your account balance is insufficient", "data": None}
    return ApiError(status, body)


DIALECTS = ("documented", "observed", "plain")
# the third 429 body quoted live (2024-25): no code, no Details [seen, older]
PLAIN_429 = "Request was rejected due to rate limiting. If you want more, please contact contact@siliconflow.cn"
# the codes live 429s carry [seen: TPM 50602, IPM 50604]; IPD and TPD by analogy [guess];
# a metric without a code answers the code-less observed body [seen]
OBSERVED_429_CODES: Mapping[str, int] = MappingProxyType({"TPM": 50602, "TPD": 50602, "IPM": 50604, "IPD": 50604})


def rate_limited(
    metric: str,
    trace_id: str,
    headers: dict[str, str] | None = None,
    *,
    dialect: str = "documented",
    codes: Mapping[str, int] = OBSERVED_429_CODES,
    code: int | None = None,
) -> ApiError:
    """The 429 of a limit reached; ``Details:`` names it.

    ``documented``: the reference page's body (the "contact" sentence, ``Details:`` with no
    space, ``data`` the trace id). ``observed``: what the live service sends, with a space
    after ``Details:``, ``data`` null and the metric's code from ``codes`` (or ``code``),
    if it has one. ``plain``: the third body seen live, the "contact" sentence alone.
    """
    metric = metric.upper()
    if dialect == "plain":  # names no metric: a client cannot tell which limit it met
        return ApiError(429, {"message": PLAIN_429, "data": None}, headers)
    if dialect == "observed":
        message = f"Request was rejected due to rate limiting. Details: {metric} limit reached."
        code = code if code is not None else codes.get(metric)
        body: dict[str, Any] = {"message": message, "data": None}
        if code is not None:
            body = {"code": code, **body}
        return ApiError(429, body, headers)
    message = (
        "Request was rejected due to rate limiting. If you want more, please contact "
        f"contact@siliconflow.cn. Details:{metric} limit reached."
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
    dialect: str = "documented",
    codes: Mapping[str, int] = OBSERVED_429_CODES,
) -> ApiError:
    """The API's answer for an injected error ``status``, as the real service words it.

    A 403 with code 30001 or 30003 is the balance or "Model disabled." body; a 429 is
    worded in ``dialect``.
    """
    if body is not _UNSET:
        return ApiError(status, body)
    if status == 400:
        error = invalid_request(message or "Invalid parameter")
        error.body["code"] = code if code is not None else INVALID_PARAMETER
        return error
    if status == 403 and code is not None and message is None and code in (BALANCE_CODE, MODEL_DISABLED_CODE):
        return insufficient_balance(403) if code == BALANCE_CODE else model_disabled()
    coded = {"code": code, "message": message or "", "data": None}
    # built on demand: only the one asked for (an injected error is answered on every run of a check)
    simple: dict[int, Callable[[], ApiError]] = {
        401: lambda: ApiError(401, message) if message else unauthorized(),  # e.g. "Api key is invalid" [seen]
        402: lambda: insufficient_balance(402),
        403: lambda: ApiError(403, coded) if code is not None else forbidden(),
        404: lambda: ApiError(404, NOT_FOUND),
        413: lambda: invalid_request(message or "Request body too large", 413),
        429: lambda: rate_limited(limit or "RPM", trace_id, dialect=dialect, codes=codes, code=code),
        500: lambda: ApiError(
            500, {"code": code or 50000, "message": message or "Internal Server Error", "data": None}
        ),
        502: lambda: ApiError(502, message or "Bad Gateway"),
        503: lambda: ApiError(503, {"code": code or 50505, "message": message or OVERLOADED, "data": trace_id}),
        504: lambda: ApiError(504, message or "Gateway Timeout"),
    }
    return simple[status]()


def store_error(status: int, message: str | None = None) -> DownloadDenied:
    """The image host's answer for an injected error ``status`` (S3 codes)."""
    # S3's code for each status; a client that reads it learns what to do (retry or not):
    # InternalError, "Please try again.", for a 400 said the opposite (outsider21)
    codes = {
        400: ("InvalidRequest", "Invalid Request"),
        401: ("AccessDenied", "Access Denied"),
        402: ("AccountProblem", "There is a problem with your account that prevents the operation from completing."),
        403: ("AccessDenied", "Access Denied"),
        404: ("NoSuchKey", "The specified key does not exist."),
        413: ("MaxMessageLengthExceeded", "Your request was too big."),
        429: ("SlowDown", "Please reduce your request rate."),
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
