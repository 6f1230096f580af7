"""A request's headers as the handlers read them, without Starlette's ``Headers``.

The pipeline reads every request's headers into one map (:func:`header_map`); where no
name came twice it leaves the map in ``request.state.headers`` (:data:`HEADERS_STATE`),
and the handlers look a header up there rather than walk the raw list again (several
times on every generation).
"""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["HEADERS_STATE", "first_header", "header_map", "header_values"]

HEADERS_STATE = "headers"  # request.state.headers: the header map of a request with no name repeated


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of a repeated one wins)."""
    # a loop, not a comprehension (a frame more), and each name decoded once per process:
    # a third fewer instructions for a client's four headers
    names = _NAMES.get
    found: dict[str, str] = {}
    for raw, value in scope["headers"]:
        found[names(raw) or _name(raw)] = value.decode("latin-1")
    return found


def _name(raw: bytes) -> str:
    """A header name as the map keys it, kept for the next request (a bounded number of
    short ones)."""
    name = raw.decode("latin-1").lower()
    if len(raw) <= _NAME_CHARS:
        if len(_NAMES) >= _NAMES_KEPT:
            _NAMES.clear()
        _NAMES[raw] = name
    return name


_NAMES: dict[bytes, str] = {}  # raw name -> lower-case text; names are not secrets
_NAMES_KEPT, _NAME_CHARS = 256, 64


def header_values(scope: Scope, name: str) -> list[str]:
    """Every value of header ``name`` (lower case), as ``request.headers.getlist`` gives them."""
    single: dict[str, str] | None = scope.get("state", {}).get(HEADERS_STATE)
    if single is not None:
        value = single.get(name)
        return [] if value is None else [value]
    raw = name.encode("latin-1")
    return [value.decode("latin-1") for key, value in scope["headers"] if key.lower() == raw]


def first_header(scope: Scope, name: str) -> str | None:
    """The first value of header ``name`` (lower case), or ``None``."""
    single: dict[str, str] | None = scope.get("state", {}).get(HEADERS_STATE)
    if single is not None:
        return single.get(name)
    raw = name.encode("latin-1")
    return next((value.decode("latin-1") for key, value in scope["headers"] if key.lower() == raw), None)
