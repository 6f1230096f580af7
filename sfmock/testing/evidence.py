"""What the client checks read out of a run: the image URLs the fake served and how a
download's URL differs from them, URL expiry, what a client returned, and the text of a
raised error with its causes. Plain functions over exchanges and exceptions.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import linecache
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import CodeType, TracebackType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from sfmock.service.legacy import is_generation
from sfmock.service.signing import UrlSigner
from sfmock.testing.images import whole_images
from sfmock.transports import Exchange

__all__ = [
    "GENERATE",
    "IMMEDIATE",
    "OUTSIDE_CLOCK",
    "STORE",
    "Run",
    "attribute_text",
    "chain",
    "changed_url",
    "digest",
    "downloaded_images",
    "error_texts",
    "expiry",
    "served_keys",
    "served_urls",
    "ttl",
    "url_key",
]

IMMEDIATE = 0.05  # a wait shorter than this before retrying a 429/503 is none (as `sfmock check` counts a gap)
# real seconds between an answer and the next request, with under IMMEDIATE of virtual time
# between them, that show a wait on a clock the checker does not control (trio, ``select``
# in C): well above what a busy machine takes to run a client's code between two requests
OUTSIDE_CLOCK = 0.2

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
    alarm_left: float | None = None  # seconds its SIGALRM timer had to go when it returned (valarm)
    logs: tuple[str, ...] = ()  # records any logger handled during the run (INFO and above), as text: logcapture
    random_seed: int = 0
    max_total_wait: float = 600.0
    earlier_urls: frozenset[str] = frozenset()  # image URLs served in earlier runs (see url_key)
    earlier_images: frozenset[bytes] = frozenset()  # the digests of images downloaded in earlier runs (digest)
    rerun: Callable[[int], Run] | None = field(default=None, repr=False, compare=False)

    # each invariant reads these, some many times: sorted out once per run, a fresh list per read
    @property
    def generations(self) -> list[Exchange]:
        return list(self._generations)

    @property
    def downloads(self) -> list[Exchange]:
        return list(self._downloads)

    @functools.cached_property
    def _generations(self) -> tuple[Exchange, ...]:
        return tuple(e for e in self.exchanges if e.method == "POST" and is_generation(e.path))

    @functools.cached_property
    def _downloads(self) -> tuple[Exchange, ...]:
        return tuple(
            e for e in self.exchanges if e.method == "GET" and (STORE in e.path or _TEMPORARY.fullmatch(e.path))
        )

    @functools.cached_property
    def _served(self) -> tuple[tuple[float, str, dict[str, str]], ...]:
        """Every image URL the fake gave out: (when its answer started, decoded path, decoded query)."""
        served = []
        for exchange in self._generations:
            if exchange.status != 200:
                continue
            # every whole URL in the body, even one cut short (a client may use what it got)
            for match in _URL_FIELD.finditer(exchange.body):
                try:
                    url = json.loads(b'"' + match.group(1) + b'"')
                except ValueError:
                    continue
                parts = urlsplit(url)
                served.append((exchange.started, unquote(parts.path), dict(parse_qsl(parts.query, True))))
        return tuple(served)

    @functools.cached_property
    def error_text(self) -> ErrorText | None:
        """What a person reads of the error raised, if one was (read once for every invariant)."""
        return ErrorText(self.error) if self.error is not None else None

    def outcome(self, attempt: int) -> str:
        """The scheduled outcome of generation attempt ``attempt`` (0-based)."""
        return self.schedule[attempt] if attempt < len(self.schedule) else "ok"

    def waits(self) -> list[float]:
        """Seconds between the end of each generation attempt and the start of the next: the
        virtual gap, or the real one where the client waited outside the virtual clock."""
        attempts = self.generations
        outside = self.outside_clock()
        return [outside.get(i + 1, attempts[i + 1].started - attempts[i].ended) for i in range(len(attempts) - 1)]

    def outside_clock(self) -> dict[int, float]:
        """Generation attempt (0-based) -> the real seconds waited before it, where the virtual
        gap was under :data:`IMMEDIATE` but the real one at least :data:`OUTSIDE_CLOCK`."""
        attempts = self.generations
        outside = {}
        for i in range(1, len(attempts)):
            before, after = attempts[i - 1], attempts[i]
            real = after.real_started - before.real_ended
            if after.started - before.ended < IMMEDIATE and before.real_ended and real >= OUTSIDE_CLOCK:
                outside[i] = real
        return outside


def served_urls(run: Run, before: float) -> dict[str, list[dict[str, str]]]:
    """Image URLs the fake gave out before ``before``: decoded path -> decoded queries."""
    served: dict[str, list[dict[str, str]]] = {}
    for started, path, query in run._served:
        if started <= before:
            served.setdefault(path, []).append(dict(query))
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


def digest(image: bytes) -> bytes:
    """An image as a member of :attr:`Run.earlier_images`."""
    return hashlib.sha256(image).digest()


def downloaded_images(run: Run) -> set[bytes]:
    """The :func:`digest` of every image ``run`` downloaded whole (in one answer or in parts)."""
    return {digest(image) for image in whole_images(run.downloads)}


def url_key(path: str, query: Mapping[str, str]) -> str:
    """One served URL as a set member: its decoded path and its decoded query, sorted."""
    return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))


def served_keys(run: Run) -> set[str]:
    """The :func:`url_key` of every image URL the fake gave out in ``run``."""
    return {url_key(path, query) for _, path, query in run._served}


def expiry(url: str) -> float | None:
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    try:
        return UrlSigner.issued_at(query) + int(query["X-Amz-Expires"])
    except (KeyError, ValueError, OverflowError):
        return None


def ttl(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("X-Amz-Expires", ["?"])[0]


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


# where a client's own deadline raises: asyncio.wait_for, asyncio.timeout, Future.result,
# queue.get with a timeout, anyio.fail_after
_DEADLINES = {"asyncio.tasks", "asyncio.timeouts", "concurrent.futures._base", "queue", "anyio._core._tasks"}


def own_deadline(error: BaseException) -> bool:
    """Whether ``error`` (or an error in its chain) is the client's own deadline running out,
    not an answer of the fake's: a ``TimeoutError`` (``queue.Empty``) raised where a wait
    with a timeout gives up."""
    for link in chain(error):
        if isinstance(link, TimeoutError) or type(link).__name__ == "Empty":
            tb = link.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None and tb.tb_frame.f_globals.get("__name__") in _DEADLINES:
                return True
    return False


def error_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """``(where, text)``: each link's message, repr, args and notes, then the whole traceback."""
    yield from _link_texts(error)
    yield "traceback", "".join(traceback.format_exception(error))


def _link_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    for link in chain(error):
        yield "message", str(link)
        yield "repr", repr(link)
        yield "args", "\n".join(repr(arg) for arg in link.args)
        yield "notes", "\n".join(str(note) for note in getattr(link, "__notes__", ()))


class ErrorText:
    """The texts of :func:`error_texts` and :func:`attribute_text` of one error, each read once.

    Formatting a traceback is most of what reading an error costs (Python compiles each
    frame's line to place its carets), and most checks never need it: :meth:`find` formats
    it only when the text sought may be in it and in no other text.
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.parts = list(_link_texts(error))

    @functools.cached_property
    def traceback(self) -> str:
        return "".join(traceback.format_exception(self.error))

    @functools.cached_property
    def attributes(self) -> str:
        return attribute_text(self.error)

    def find(self, needle: str) -> str | None:
        """Where (as :func:`error_texts` names it) ``needle`` first occurs, or ``None``."""
        for where, text in self.parts:
            if needle in text:
                return where
        return "traceback" if self._in_traceback(needle) else None

    def holds(self, needle: str) -> bool:
        """Whether ``needle`` is in any text of the error, its traceback and its attributes'
        included: whatever a person reading the error would see."""
        return any(needle in text for _, text in self.parts) or needle in self.attributes or self._in_traceback(needle)

    def _in_traceback(self, needle: str) -> bool:
        return _traceback_may_hold(self._pieces, needle) and needle in self.traceback

    @functools.cached_property
    def _pieces(self) -> _Pieces:
        return _Pieces(self.error)


# the words a traceback adds around what it shows of the error and the code
_DECORATION = (
    "Traceback (most recent call last): File line in During handling of the above exception, another exception "
    "occurred: The above exception was the direct cause of the following exception: Previous line repeated more "
    "times sub-exception sub-exceptions and more exceptions ... (max_group_depth is ) Exception Group Traceback "
    "<exception str() failed> <note str() failed> Did you mean: Or did you forget to import"
)
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


class _Pieces:
    """What the formatted traceback of an error is made of, read once for every text sought
    in it: the file names, function names, line numbers and shown source lines of its frames,
    the exception types of its links; and how many frames and links it has (what bounds the
    counts a traceback prints: lines repeated, members). ``opaque``: a link shows more than
    these (a SyntaxError its own line, notes that are no list by their repr)."""

    def __init__(self, error: BaseException) -> None:
        self.opaque = False
        self.texts: list[str] = []
        self.numbers: list[str] = []
        self.counted = 0
        checked: set[str] = set()
        for link in chain(error):
            kind = type(link)
            if isinstance(link, SyntaxError) or not isinstance(getattr(link, "__notes__", []), list | tuple):
                self.opaque = True
                return
            self.texts += (kind.__module__, kind.__qualname__)
            self.counted += 1
            tb = link.__traceback__
            while tb is not None:
                self.counted += 1
                frame, code = tb.tb_frame, tb.tb_frame.f_code
                self.texts += (code.co_filename, code.co_name, code.co_qualname)
                if code.co_filename not in checked:  # the source, read as the traceback reads it
                    checked.add(code.co_filename)
                    linecache.lazycache(code.co_filename, frame.f_globals)
                    linecache.checkcache(code.co_filename)
                lines = _shown_lines(tb)
                self.numbers += (str(n) for n in lines)
                if lines:
                    self.texts += linecache.getlines(code.co_filename)[min(lines) - 1 : max(lines)]
                tb = tb.tb_next


def _traceback_may_hold(pieces: _Pieces, needle: str) -> bool:
    """Whether the formatted traceback of an error (made of ``pieces``) may hold ``needle``
    where its other texts do not: False only when ``needle`` is in none of the pieces and its
    own words and counts, and cannot be made by joining them: it is one token of letters,
    digits, ``_`` and ``-`` (a number, or a token with a letter that is no name a traceback
    might suggest)."""
    number = needle.isascii() and needle.isdigit()
    if (
        not _TOKEN.fullmatch(needle)
        or needle in _DECORATION
        or (not number and (needle.isidentifier() or not any(c.isalpha() for c in needle)))
    ):
        return True
    if pieces.opaque or any(needle in text for text in pieces.texts):
        return True
    if number and any(needle in n for n in pieces.numbers):
        return True
    # a group shows at most 15 members (numbered) and "and N more", at most 10 deep
    return number and int(needle) <= pieces.counted + 16


def _shown_lines(tb: TracebackType) -> list[int]:
    """The numbers of the source lines a traceback may show for ``tb``'s frame: its line, or
    (Python 3.13) every line of the expression that raised, from the first to the last."""
    numbers = [tb.tb_lineno] if tb.tb_lineno is not None else []
    if tb.tb_lasti >= 0:
        numbers += _expression_lines(tb.tb_frame.f_code, tb.tb_lasti)
    return numbers


@functools.lru_cache(maxsize=4096)
def _expression_lines(code: CodeType, lasti: int) -> tuple[int, ...]:
    """The first and last line of the expression at ``lasti`` in ``code``: found by walking
    its positions, one per instruction, so kept: the same frames raise on every run of a check."""
    positions = itertools.islice(code.co_positions(), lasti // 2, None)
    start, end, _, _ = next(positions, (None, None, None, None))
    return tuple(n for n in (start, end) if n is not None)


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
