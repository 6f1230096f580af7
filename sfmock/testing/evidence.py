"""What the client checks read out of a run: the image URLs the fake served and how a
download's URL differs from them, URL expiry, what a client returned, and the text of a
raised error with its causes. Plain functions over exchanges and exceptions.
"""

from __future__ import annotations

import json
import math
import os
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from sfmock.service.legacy import is_generation
from sfmock.service.signing import UrlSigner
from sfmock.transports import Exchange

__all__ = [
    "GENERATE",
    "STORE",
    "Run",
    "as_images",
    "attribute_text",
    "chain",
    "changed_url",
    "describe",
    "error_texts",
    "expiry",
    "served_keys",
    "served_urls",
    "ttl",
    "url_key",
]

GENERATE = "/v1/images/generations"
STORE = "/outputs/"  # image objects live under {prefix}/outputs/ on the object store
# ... or under /temporary/<segment>/ (/temporary/None/ seen in 2026, the image_prefix setting)
_TEMPORARY = re.compile(r"/temporary/[^/]+/[^/]+")


@dataclass(frozen=True, kw_only=True)
class Run:
    """One run of the client under one schedule: what it sent, got, returned or raised."""

    schedule: tuple[str, ...]
    exchanges: tuple[Exchange, ...]
    result: Any
    error: BaseException | None
    api_key: str
    max_attempts: int
    min_attempts: int
    request: Mapping[str, Any] = field(default_factory=dict)  # what the client was asked to send
    strict: bool = False  # the fake's validation mode
    returns_image: bool = True
    hung: str | None = None  # why the run was stopped as endless, if it was
    logs: tuple[str, ...] = ()  # log records emitted during the run (INFO and above)
    random_seed: int = 0
    max_total_wait: float = 600.0
    earlier_urls: frozenset[str] = frozenset()  # image URLs served in earlier runs (see url_key)
    rerun: Callable[[int], Run] | None = field(default=None, repr=False, compare=False)

    @property
    def generations(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST" and is_generation(e.path)]

    @property
    def downloads(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "GET" and (STORE in e.path or _TEMPORARY.fullmatch(e.path))]

    def outcome(self, attempt: int) -> str:
        """The scheduled outcome of generation attempt ``attempt`` (0-based)."""
        return self.schedule[attempt] if attempt < len(self.schedule) else "ok"

    def waits(self) -> list[float]:
        """Seconds between the end of each generation attempt and the start of the next."""
        attempts = self.generations
        return [attempts[i + 1].started - attempts[i].ended for i in range(len(attempts) - 1)]


def served_urls(run: Run, before: float) -> dict[str, list[dict[str, str]]]:
    """Image URLs the fake gave out before ``before``: decoded path -> decoded queries."""
    served: dict[str, list[dict[str, str]]] = {}
    for exchange in run.generations:
        if exchange.status != 200 or exchange.started > before:
            continue
        # every whole URL in the body, even one cut short (a client may use what it got)
        for match in _URL_FIELD.finditer(exchange.body):
            try:
                url = json.loads(b'"' + match.group(1) + b'"')
            except ValueError:
                continue
            parts = urlsplit(url)
            served.setdefault(unquote(parts.path), []).append(dict(parse_qsl(parts.query, True)))
    return served


_URL_FIELD = re.compile(rb'"url"\s*:\s*"((?:[^"\\]|\\.)*)"')


def changed_url(url: str, served: dict[str, list[dict[str, str]]], earlier: frozenset[str] = frozenset()) -> str | None:
    """How a download's URL differs from every URL served before it (``earlier``: the
    :func:`url_key` of each served in earlier runs of the check), or None when it is one of them."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    name = path.rsplit("/", 1)[-1]
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if path in served and query in served[path]:
        return None
    if url_key(path, query) in earlier:
        return (
            f"downloaded {name} by a URL kept from an earlier run and reused: download the URLs of "
            "this answer (a kept URL expires, and its image may be another request's)"
        )
    if path not in served:
        return f"downloaded {name}, a URL the fake never gave out (the client rebuilt or re-encoded the path)"
    expected = served[path][-1]
    missing = sorted(set(expected) - set(query))
    if missing:
        return f"downloaded {name} without the signed parameters {missing}: the pre-signed URL was cut"
    added = sorted(set(query) - set(expected))
    if added:
        return f"downloaded {name} with parameters {added} added to the pre-signed URL: use it exactly as given"
    changed = sorted(k for k in expected if query.get(k) != expected[k])
    return f"downloaded {name} with changed parameters {changed} (re-encoded?): use the pre-signed URL as given"


def url_key(path: str, query: Mapping[str, str]) -> str:
    """One served URL as a set member: its decoded path and its decoded query, sorted."""
    return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))


def served_keys(run: Run) -> set[str]:
    """The :func:`url_key` of every image URL the fake gave out in ``run``."""
    return {url_key(path, query) for path, queries in served_urls(run, math.inf).items() for query in queries}


def expiry(url: str) -> float | None:
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    try:
        return UrlSigner.issued_at(query) + int(query["X-Amz-Expires"])
    except (KeyError, ValueError, OverflowError):
        return None


def ttl(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("X-Amz-Expires", ["?"])[0]


def as_images(result: Any) -> list[bytes] | None:
    if isinstance(result, bytes | bytearray | memoryview):
        return [bytes(result)]
    if isinstance(result, os.PathLike) or (isinstance(result, str) and 0 < len(result) < 4096):
        try:
            with open(result, "rb") as file:
                return [file.read()]
        except (OSError, ValueError):
            return None
    if isinstance(result, list | tuple) and result:
        images = [as_images(item) for item in result]
        if all(image is not None and len(image) == 1 for image in images):
            return [image[0] for image in images if image]
    return None


def describe(result: Any, served: list[bytes]) -> str:
    if result is None:
        return "None"
    if isinstance(result, bytes | bytearray | memoryview):
        data = bytes(result)
        if not data:
            return 'b""'
        if any(image.startswith(data) for image in served):
            whole = next(len(image) for image in served if image.startswith(data))
            return f"part of the image ({len(data)} of {whole} bytes)"
        return f"{len(data)} bytes that are not the image (they begin {data[:24]!r})"
    return f"a {type(result).__name__} ({str(result)[:60]!r})"


def chain(error: BaseException) -> Iterator[BaseException]:
    """The error and its causes, as a traceback shows them (``from None`` ends the chain),
    with the members of an ``ExceptionGroup`` (a TaskGroup's) and their causes in turn."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current: BaseException | None = pending.pop()
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            yield current
            if isinstance(current, BaseExceptionGroup):
                pending.extend(reversed(current.exceptions))
            if current.__cause__ is not None:
                current = current.__cause__
            else:
                current = None if current.__suppress_context__ else current.__context__


def error_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    for link in chain(error):
        yield "message", str(link)
        yield "repr", repr(link)
        yield "args", "\n".join(repr(arg) for arg in link.args)
        yield "notes", "\n".join(str(note) for note in getattr(link, "__notes__", ()))
    yield "traceback", "".join(traceback.format_exception(error))


def attribute_text(error: BaseException) -> str:
    parts = []
    for link in chain(error):
        for value in vars(link).values():
            if isinstance(value, str | int):
                parts.append(str(value))
            elif callable(getattr(value, "items", None)):  # dicts, header maps, email.message.Message
                parts.extend(str(v) for _, v in value.items() if isinstance(v, str | int))
        for holder in (link, getattr(link, "response", None)):
            headers: Any = getattr(holder, "headers", None)
            if callable(getattr(headers, "items", None)):
                parts.extend(str(v) for _, v in headers.items())
        response = getattr(link, "response", None)
        for status in (getattr(response, "status_code", None), getattr(response, "status", None)):
            if status is not None:
                parts.append(str(status))
        parts.extend(str(getattr(link, name)) for name in ("status_code", "status", "code") if hasattr(link, name))
    return "\n".join(parts)
