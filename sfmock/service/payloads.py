"""Reading a JSON request body safely: bounded size, strict JSON, clear 4xx answers."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from starlette.requests import Request

from sfmock.errors import ApiError
from sfmock.service.headers import first_header
from sfmock.service.responses import invalid_request
from sfmock.untrusted import MAX_DEPTH, Refused, Untrusted, check_data, finite_number, whole_number

__all__ = ["MAX_DEPTH", "read_json"]

# the walk of check_data runs only when the text shows something it could refuse: a
# \\uD800-\\uDFFF escape (a pair is fine, a lone half is not text), a constant, an
# exponent of 3 digits, or more brackets than MAX_DEPTH
# each with a literal first character, which re finds with a fast scan
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_EXPONENTS = (re.compile(r"e[-+]?\d{3}"), re.compile(r"E[-+]?\d{3}"))
# orjson reads an integer past 64 bits as a float where json keeps it whole: a body with
# a run of 19 digits (such an integer, or a long mantissa) goes to json. The run is found
# with every digit mapped to "0" (a regular expression takes 20 ms over a 1 MB body)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_NUMBER = b"0" * 19
_SCANNED_AT_ONCE = 4096  # bytes of a body scanned for a long number without walking its value first


def _reject_constant(name: str) -> Refused:
    return Refused(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_float=finite_number, parse_int=whole_number, parse_constant=_reject_constant)


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body; 413 past ``limit`` bytes, 400 for anything that is not JSON.

    A body an outer layer already read (``request.state.body``) is not streamed again.
    """
    declared = first_header(request.scope, "content-length") or ""
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
    if _more_brackets(text, MAX_DEPTH):
        return _checked(_decode(text))
    try:
        # json's value, at a tenth of the cost; orjson refuses all that check_data would
        # (NaN, Infinity, a number out of range, a lone surrogate), so json says why
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = _decode(text)
        return _checked(value) if _suspect(text) or _long_number(raw) else value
    # a float may be an integer orjson could not keep whole (a body with none, such as an
    # image's 1 MB data URL, is not scanned for one); a short body is scanned at once, as
    # the scan of its bytes in C costs less than the walk of its values in Python
    if (len(raw) <= _SCANNED_AT_ONCE or _holds_float(value)) and _long_number(raw):
        return _checked(_decode(text))  # json reads it; a number too long for Python is refused in words
    return value


def _long_number(raw: bytes) -> bool:
    return raw.translate(_DIGITS_AS_ZERO).find(_LONG_NUMBER) >= 0  # find: "in" tries an integer first


def _holds_float(value: Any, budget: int = 64) -> bool:
    """Whether ``value`` holds a float (``True`` too past ``budget`` values looked at: a
    big document is scanned rather than walked)."""
    pending = [value]
    while pending:
        budget -= 1
        if budget < 0:
            return True
        item = pending.pop()
        kind = type(item)
        if kind is float:
            return True
        if kind is dict or kind is list:
            if len(item) > budget:
                return True
            pending.extend(item.values() if kind is dict else item)
    return False


def _checked(value: Any) -> Any:
    try:
        check_data(value, max_integer=None)
    except Untrusted as exc:
        raise invalid_request(f"Invalid JSON body: {exc}") from None
    return value


def _decode(text: str) -> Any:
    """``text`` read by json, the 400 naming what is wrong with it."""
    try:
        return _DECODER.decode(text)  # what json.loads(text, parse_float=..., ...) does, decoder built once
    except RecursionError:
        raise invalid_request("Invalid JSON body: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() past 4300 digits
        raise invalid_request(f"Invalid JSON body: {str(exc)[:200]}") from None


def _suspect(text: str) -> bool:
    """Whether ``text`` holds a surrogate escape, ``NaN``, ``Infinity`` or a 3-digit exponent.

    What one regex of the four alternatives found, at a tenth of its cost on a big body
    (95 ms for 8 MB of one letter): alternatives without a literal first character made
    ``re`` try every position.
    """
    return (
        "NaN" in text
        or "Infinity" in text
        or _SURROGATE_ESCAPE.search(text) is not None
        or any(exponent.search(text) is not None for exponent in _EXPONENTS)
    )


def _more_brackets(text: str, limit: int) -> bool:
    """Whether ``text`` holds more than ``limit`` of ``[`` and ``{`` together.

    ``str.find`` of one character is a ``memchr``: 0.02 ms for a 1 MB body against 0.6 ms
    for two ``str.count``, and it stops at the ``limit``-th bracket.
    """
    if len(text) <= 4096:  # two counts cost less than the loop's calls on a short body
        return text.count("[") + text.count("{") > limit
    seen = 0
    for bracket in "[{":
        at = text.find(bracket)
        while at >= 0:
            seen += 1
            if seen > limit:
                return True
            at = text.find(bracket, at + 1)
    return False


def _too_large(limit: int) -> ApiError:
    return invalid_request(f"Request body too large: the limit is {limit} bytes", status=413)
