"""Reading a JSON request body safely: bounded size, strict JSON, clear 4xx answers."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from sfmock.errors import ApiError
from sfmock.service.responses import invalid_request

__all__ = ["MAX_DEPTH", "read_json"]

MAX_DEPTH = 64  # arrays and objects inside each other; a generation request needs 2
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_reject_constant)


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body; 413 past ``limit`` bytes, 400 for anything that is not JSON.

    A body an outer layer already read (``request.state.body``) is not streamed again.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    raw = request.scope.get("state", {}).get("body")
    if raw is None:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        raw = b"".join(chunks)
    if len(raw) > limit:
        raise _too_large(limit)
    if not raw.strip():
        raise invalid_request("Request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259), nothing else
    except UnicodeDecodeError as exc:
        raise invalid_request(f"Invalid JSON body: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = _DECODER.decode(text)  # what json.loads(text, parse_float=..., ...) does, decoder built once
    except RecursionError:
        raise invalid_request("Invalid JSON body: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() past 4300 digits
        raise invalid_request(f"Invalid JSON body: {str(exc)[:200]}") from None
    # the full walk only when it can find something: more brackets than the depth limit,
    # or a \\uD800-\\uDFFF escape (a pair is fine, a lone half is not text)
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_DEPTH or _SURROGATE_ESCAPE.search(text):
        problem = plain_data_problem(value)
        if problem is not None:
            raise invalid_request(f"Invalid JSON body: {problem}")
    return value


def plain_data_problem(value: Any) -> str | None:
    """Why parsed JSON cannot be handled as text and data (deep nesting, a lone
    surrogate in a string), or ``None``. Iterative: any depth is safe to check."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, str):
            if not current.isascii():
                try:
                    current.encode("utf-8")
                except UnicodeEncodeError:
                    return "a string holds a lone surrogate (\\ud800-\\udfff), which is not text"
            continue
        if isinstance(current, dict | list):
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            items = current.items() if isinstance(current, dict) else ((None, v) for v in current)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))
    return None


def _too_large(limit: int) -> ApiError:
    return invalid_request(f"Request body too large: the limit is {limit} bytes", status=413)
