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
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


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
