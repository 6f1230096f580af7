"""The one boundary for data from outside: what sfmock refuses before it keeps anything.

Every value that arrives from outside (a JSON body, a control document, a scenario or
config file, a header, a query parameter, a command-line value, an environment
variable) passes one of the readers here before any part of sfmock keeps, compares,
encodes or prints it. They refuse what sfmock cannot do all four with:

- a lone surrogate (``"\\ud800"``) in any string or key, at any depth: not text, it
  cannot be encoded as UTF-8, so it would break every later answer that shows it;
- a number that is not finite (``NaN``, ``Infinity``, ``1e400``);
- an integer beyond :data:`MAX_INTEGER` (what a store's counters hold: 64-bit signed);
- nesting deeper than :data:`MAX_DEPTH`;
- a URL that does not parse (``http://[x``), has no host, or names another scheme.

Each refusal is an :class:`Untrusted` (a ``ValueError``) naming the field (``rules[0].name``,
``seed``, ``--read-timeout``) and the problem; the HTTP edges answer it with a 400, the
command line with exit 2.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MAX_DEPTH",
    "MAX_INTEGER",
    "Refused",
    "Untrusted",
    "check_data",
    "check_text",
    "finite_number",
    "parse_url",
    "read_environment",
    "whole_number",
]

MAX_DEPTH = 64  # arrays and objects inside each other; no request or document needs 10
MAX_INTEGER = 2**63 - 1  # a Redis counter (INCRBY) and most stores hold 64-bit signed integers
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class Untrusted(ValueError):
    """A value from outside that sfmock refuses: ``field`` says where, ``problem`` why."""

    def __init__(self, field: str, problem: str, path: tuple[Any, ...] = ()) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem
        self.path = path  # the keys and indexes down to the field, for data


class Refused:
    """What a JSON parser hook returns for a number it cannot give (``NaN``, ``1e400``):
    the walk of :func:`check_data` then names the field it stands in."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


# Python turns at most 4,300 digits into an int (a guard against quadratic time); a JSON
# number that long is no value any field of sfmock's takes, whatever the field
MAX_DIGITS = 4300


def finite_number(text: str) -> float | Refused:
    """A JSON parser's ``parse_float``: ``1e400`` is refused, not read as infinity."""
    value = float(text)
    if not math.isfinite(value):  # refused by check_data, which names the field
        return Refused(f"number {text[:40]} is out of range")
    return value


def whole_number(text: str) -> int | Refused:
    """A JSON parser's ``parse_int``: an integer too long for Python is refused in words
    (``int()`` would raise its own message, naming ``sys.set_int_max_str_digits``)."""
    if len(text) > MAX_DIGITS:
        return Refused(f"integer of {len(text.lstrip('-'))} digits is out of range")
    return int(text)


def _segment(key: Any) -> str:
    if isinstance(key, int):
        return f"[{key}]"
    if _NAME.fullmatch(key):
        return f".{key}"
    return "[" + printable(key, 40) + "]"


def _where(path: tuple[Any, ...]) -> str:
    return "".join(_segment(key) for key in path).lstrip(".") or "(top level)"


def printable(text: str, limit: int = 60) -> str:
    """``text`` quoted and shortened, with every character that is not printable ASCII
    escaped: safe to put in any message, whatever the text holds."""
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")


def _string_problem(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (\\ud800-\\udfff), which is not text"
    return None


def check_text(text: str, field: str) -> str:
    """``text`` if it can be stored and printed (no lone surrogate), else :class:`Untrusted`."""
    problem = _string_problem(text)
    if problem is not None:
        raise Untrusted(field, f"the text {problem}")
    return text


def check_data(value: Any, *, max_integer: int | None = MAX_INTEGER) -> None:
    """Refuse (:class:`Untrusted`, naming the field) parsed data sfmock cannot keep: see
    the module docstring. Iterative, so data of any depth is safe to check.

    ``max_integer=None``: any integer passes (a generation body's integers reach no store:
    the contract's bounds refuse them, in the service's own words)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        current, path = stack.pop()
        if isinstance(current, str):
            problem = _string_problem(current)
            if problem is not None:
                raise Untrusted(_where(path), f"the text {problem}", path)
        elif isinstance(current, bool) or current is None:
            continue
        elif isinstance(current, int):
            if max_integer is not None and not -max_integer <= current <= max_integer:
                raise Untrusted(_where(path), f"the integer is beyond +-{max_integer} (what sfmock can store)", path)
        elif isinstance(current, float):
            if not math.isfinite(current):
                raise Untrusted(_where(path), f"{current!r} is not a finite number", path)
        elif isinstance(current, Refused):
            raise Untrusted(_where(path), current.problem, path)
        elif isinstance(current, dict | list):
            if len(path) >= MAX_DEPTH:
                raise Untrusted(_where(path), f"nested more than {MAX_DEPTH} levels deep", path)
            if isinstance(current, list):
                stack.extend((item, (*path, index)) for index, item in enumerate(current))
                continue
            for key, item in current.items():
                if isinstance(key, str) and _string_problem(key) is not None:
                    problem = f"the key {printable(key)} holds a lone surrogate, which is not text"
                    raise Untrusted(_where(path), problem, path)
                stack.append((item, (*path, key)))


def read_environment(name: str, *, url: bool = False) -> str | None:
    """The environment variable ``name`` (``None`` when unset or empty), checked as text
    and, with ``url``, as an http(s) URL; :class:`Untrusted` naming the variable otherwise."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    field = f"environment: {name}"
    check_text(value, field)
    return parse_url(value, field) if url else value


def parse_url(text: str, field: str, *, schemes: Iterable[str] | None = ("http", "https")) -> str:
    """``text`` if it is a URL sfmock can use (one of ``schemes``, a host, a valid port),
    else :class:`Untrusted` saying what is wrong with it. ``schemes=None``: only that it
    parses (the caller checks the rest, in its own words)."""
    check_text(text, field)
    try:
        parts = urlsplit(text)
        host = parts.hostname  # raises on "http://[x"
    except ValueError as exc:  # the URL is not shown: it may hold a password
        raise Untrusted(field, f"not a valid URL ({exc})") from None
    if schemes is None:
        return text
    shown = printable(text if parts.password is None else text.replace(parts.password, "***"))
    try:
        parts.port  # noqa: B018  # raises on ":99999" or ":x"
    except ValueError as exc:
        raise Untrusted(field, f"{shown} is not a valid URL ({exc})") from None
    allowed = tuple(schemes)
    if parts.scheme.lower() not in allowed:
        expected = " or ".join(f"{scheme}://" for scheme in allowed)
        raise Untrusted(field, f"{shown} is not a valid URL: expected {expected}HOST[:PORT]")
    if not host:
        raise Untrusted(field, f"{shown} is not a valid URL: it names no host")
    return text
