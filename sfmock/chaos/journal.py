"""The request journal: what clients sent and what they got, bounded in size.

Entries keep the bodies (capped at :data:`BODY_CAP` bytes, credentials masked) and are summarised only
when read, so recording costs little on the hot path. Keys are masked (and kept as a
hash, to filter on the real key); long strings (data URLs, huge prompts) are shortened
in the summary. The journal is bounded twice: by entries (``size``) and by the bytes of
the bodies it holds (``max_bytes``); what either bound pushes out is counted in
:attr:`Journal.dropped`. Whatever a client sent, an entry always serialises: a body
that is not plain JSON (NaN, ``1e400``, lone surrogates, deep nesting) is kept as
escaped text, and an entry's serialised form is capped at :data:`ENTRY_CAP` characters.

One shape in Python and over HTTP: an :class:`Entry` has the fields of
:data:`ENTRY_FIELDS` as attributes and as items (``entry.status == entry["status"]``),
and ``GET /_sfmock/journal`` sends the same fields.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NotRequired, TypedDict, Unpack

from sfmock.chaos.entries import (
    BODY_CAP,
    ENTRY_CAP,
    ENTRY_FIELDS,
    RESPONSE_CAP,
    STRING_CAP,
    Entry,
    key_facts,
    key_hash,
    mask_header,
    mask_key,
    secret_header,
)
from sfmock.globs import glob_matches
from sfmock.scrubbing import scrub_body, scrub_query, scrub_text
from sfmock.service.auth import bearer_token
from sfmock.state.memory import MemoryLog
from sfmock.state.rider import Rider
from sfmock.state.store import Log

__all__ = ["ENTRY_CAP", "ENTRY_FIELDS", "FILTERS", "RESPONSE_CAP", "STRING_CAP", "Entry", "Journal", "mask_key"]

FILTERS = ("method", "path", "status", "key", "model", "fault", "since", "limit", "after")


class Recorded(TypedDict):
    """What :meth:`Journal.record` keeps of one request and its answer."""

    time: float  # its arrival, on the clock
    method: str
    path: str
    query: str
    authorization: str | None  # the header, as sent
    body: bytes
    status: int | None  # None: no answer
    outcome: str
    fault: str | None
    trace_id: str
    headers: NotRequired[Mapping[str, str] | None]
    response: NotRequired[bytes]  # the answer's body (its start is kept)


# Recorded's fields in its order, every one given
Row = tuple[float, str, str, str, str | None, bytes, int | None, str, str | None, str, Mapping[str, str] | None, bytes]


class Journal:
    """The last ``size`` requests, holding at most ``max_bytes`` of bodies, oldest first; thread-safe."""

    def __init__(self, size: int = 1000, *, max_bytes: int = 16 * 1024 * 1024, log: Log[Entry] | None = None) -> None:
        """``log`` keeps the entries (default: in this process's memory; see :mod:`sfmock.state`)."""
        self.size = size
        self.max_bytes = max_bytes
        self._log: Log[Entry] = log if log is not None else MemoryLog(size, max_bytes)
        self._lock = threading.Lock()
        self._texts: dict[int, str] = {}  # id -> serialised entry, filled when first read

    def release(self) -> None:
        """Empty it for good: its session is gone (a memory log stops counting in the
        server's total; a shared store drops the session's keys itself)."""
        if isinstance(self._log, MemoryLog):
            self._log.release()

    @property
    def held_bytes(self) -> int:
        """Bytes of request bodies held now."""
        return self._log.held_bytes()

    @property
    def dropped(self) -> int:
        """Entries pushed out by either bound since the last clear."""
        return self._log.dropped()

    def record(self, **fields: Unpack[Recorded]) -> int:
        """Add one request (:class:`Recorded`); returns its id. Its :class:`Entry` is built
        when first read; until then only what builds it is kept, with secrets masked
        already: the key (masked, and its hash), secret-named headers, the query's secret
        parameters, the body's (by the rules of :func:`sfmock.scrubbing.scrub_body`)."""
        return self.add(*_positional(fields))

    def add(
        self,
        time: float,
        method: str,
        path: str,
        query: str,
        authorization: str | None,
        body: bytes,
        status: int | None,
        outcome: str,
        fault: str | None,
        trace_id: str,
        headers: Mapping[str, str] | None,
        response: bytes,
    ) -> int:
        """:meth:`record` with its fields in :class:`Recorded`'s order (no keywords: the
        pipeline journals every request)."""
        build, size = _makings(
            time, method, path, query, authorization, body, status, outcome, fault, trace_id, headers, response
        )
        entry_id = self._log.append(build, size)
        if len(self._texts) > self.size:
            self._forget_texts()
        return entry_id

    @property
    def ahead(self) -> bool:
        """Whether an entry can be written ahead, with its request's admission (:meth:`rider`)."""
        return self._log.ahead

    def rider(self, *row: *Row) -> Rider | None:
        """The entry :meth:`add` would add with these fields, made for the request's
        admission to write in the same call to the store (:mod:`sfmock.state.rider`), or
        ``None`` where it cannot. Once the admission wrote it, :meth:`written` or
        :meth:`rewrite` finishes it."""
        build, size = _makings(*row)
        return self._log.rider(build, size, row[-1][:RESPONSE_CAP])

    def written(self, rider: Rider) -> int:
        """The id of the entry ``rider`` wrote, its answer having gone out as made."""
        assert rider.entry_id is not None
        rider.log.settle(rider.over)
        self._forget_texts()
        return rider.entry_id

    def rewrite(self, rider: Rider, **fields: Unpack[Recorded]) -> int:
        """The entry ``rider`` wrote, written again with ``fields``: its answer went out
        otherwise than made (a failure after the admission)."""
        entry_id = self.written(rider)
        build, size = _makings(*_positional(fields))
        rider.log.rewrite(entry_id, build, size)
        with self._lock:
            self._texts.pop(entry_id, None)
        return entry_id

    def _forget_texts(self) -> None:
        """Forget the texts of entries pushed out."""
        if len(self._texts) > self.size:
            oldest = self._log.oldest_id()
            with self._lock:
                self._texts = {k: v for k, v in self._texts.items() if k >= oldest}

    def entries(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        key: str | None = None,
        model: str | None = None,
        fault: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> list[Entry]:
        """Entries that match every filter given.

        ``path`` is a glob; ``key`` is the real key (matched on its hash, shown masked);
        ``fault`` is a glob over the rule's name or the whole fault text (``*`` is any
        fault, ``header`` the ``X-Sfmock-Fault`` ones, ``*error=503*``); ``after`` keeps
        those with a larger id (paging); ``limit`` keeps the last N.
        """
        found = list(self._filter(self._log.items(), method, path, status, key, fault, since))
        if after is not None:
            found = [e for e in found if e.id > after]
        if model is not None:
            found = [e for e in found if e.model == model]
        return found[-limit:] if limit else found

    def serialise(self, entries: list[Entry], max_chars: int) -> tuple[list[str], int | None]:
        """The JSON texts of ``entries``, oldest first, up to about ``max_chars`` in all
        (at least one), and the id to page on from (``after``) when some were left out.

        Each entry is serialised once and kept while it is in the journal. Slow for
        large bodies: call it off the event loop.
        """
        texts: list[str] = []
        total = 0
        for index, entry in enumerate(entries):
            text = self._texts.get(entry.id)
            if text is None:
                text = entry.serialised()
                with self._lock:
                    self._texts[entry.id] = text
            if texts and total + len(text) > max_chars:
                return texts, entries[index - 1].id
            texts.append(text)
            total += len(text) + 1
        return texts, None

    def _filter(
        self,
        held: list[Entry],
        method: str | None,
        path: str | None,
        status: int | None,
        key: str | None,
        fault: str | None,
        since: float | None,
    ) -> Iterator[Entry]:
        wanted = key_hash(key)
        for entry in held:
            if method is not None and entry.method != method.upper():
                continue
            if path is not None and not glob_matches(entry.path, path):
                continue
            if status is not None and entry.status != status:
                continue
            if key is not None and entry.key_hash != wanted:
                continue
            if fault is not None and not _fault_matches(entry.fault, fault):
                continue
            if since is not None and entry.time < since:
                continue
            yield entry

    def __len__(self) -> int:
        """How many entries it holds."""
        return self._log.count()

    def clear(self) -> None:
        self._log.clear()
        with self._lock:
            self._texts.clear()


def _positional(fields: Recorded) -> Row:
    """``fields`` in the order of :meth:`Journal.add`."""
    return (
        *(fields[name] for name in _REQUIRED),  # type: ignore[literal-required]
        fields.get("headers"),
        fields.get("response", b""),
    )


_REQUIRED = ("time", "method", "path", "query", "authorization", "body", "status", "outcome", "fault", "trace_id")


def _makings(
    time: float,
    method: str,
    path: str,
    query: str,
    authorization: str | None,
    body: bytes,
    status: int | None,
    outcome: str,
    fault: str | None,
    trace_id: str,
    headers: Mapping[str, str] | None,
    response: bytes,
) -> tuple[functools.partial[Entry], int]:
    """What builds the entry, secrets masked, and the bytes it counts against the cap."""
    if authorization is None or len(authorization) <= _CACHED_CHARS:
        token, masked, hashed = _authorization_facts(authorization)
    else:
        token = bearer_token(authorization)
        masked, hashed = key_facts(token)
    held = dict(headers) if headers else {}
    for name in _secret_names(tuple(held)):
        value = held[name]
        held[name] = _masked_header(name, value) if len(value) <= _CACHED_CHARS else mask_header(name, value)
    if query:
        query = scrub_query(query)
    # the body's secrets (secret-named keys, keys in a prompt, the request's own key) masked
    # before it is kept: a shared store holds what is kept, not what is shown
    raw_body = body[:BODY_CAP]
    if (raw_body, token) not in _CLEAN:  # a body sent again with the same key, found clean before
        raw_body = _scrubbed(raw_body, token)
    answer = response[:RESPONSE_CAP]
    has_key = authorization is not None
    made = (  # in Entry's order, as entry_fields gives them
        time,
        method,
        path,
        query,
        masked,
        hashed,
        has_key,
        held,
        raw_body,
        status,
        outcome,
        fault,
        answer,
        trace_id,
    )
    # one tuple and one partial per entry held: a closure would hold a cell per value
    build = functools.partial(_build, made)
    return build, len(raw_body)


# each of these keeps what it was given in memory only, as the accounts keep the keys (the
# few keys and headers in use: a client sends the same on every request); short values only
_CACHED_CHARS = 512


@functools.lru_cache(maxsize=1024)
def _authorization_facts(authorization: str | None) -> tuple[str | None, str | None, str | None]:
    """(token, masked key, its hash) of an ``Authorization`` header."""
    token = bearer_token(authorization)
    return (token, *key_facts(token))


def _scrubbed(body: bytes, token: str | None) -> bytes:
    """``body`` as kept, its secrets masked (noted where it has none and is short: clients
    send the same body with the same key again and again)."""
    scrubbed = scrub_body(body, () if token is None else (token,))
    if scrubbed is body and len(body) <= _CLEAN_BYTES:
        if len(_CLEAN) >= _CLEAN_KEPT:
            _CLEAN.clear()
        _CLEAN.add((body, token))
    return scrubbed


_CLEAN: set[tuple[bytes, str | None]] = set()  # (body, the request's key) that scrub_body leaves as they are
_CLEAN_KEPT, _CLEAN_BYTES = 256, 1024


@functools.lru_cache(maxsize=256)
def _secret_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Which of a request's header names hold a credential."""
    return tuple(name for name in names if secret_header(name))


_masked_header = functools.lru_cache(maxsize=1024)(mask_header)


def _shown(held: dict[str, str]) -> dict[str, str]:
    """The headers as an entry shows them: the secret-named masked already (:func:`_makings`),
    the others scrubbed now."""
    shown: dict[str, str] = {}
    for name, value in held.items():  # a loop: on Python 3.11 a comprehension is a frame more
        if secret_header(name):
            shown[name] = value
        else:  # masking a name that is not secret scrubs its value: the short ones cached
            shown[name] = _masked_header(name, value) if len(value) <= _CACHED_CHARS else scrub_text(value)
    return shown


def entry_fields(build: Callable[[int], Entry]) -> list[Any] | None:
    """The fields of the entry ``build`` makes, but its id, in :class:`Entry`'s order,
    without making it (a store that keeps bytes encodes them): ``None`` unless
    :meth:`Journal.record` made ``build``."""
    if type(build) is not functools.partial or build.func is not _build:
        return None
    fields = list(build.args[0])  # the makings are in Entry's order
    fields[7] = _shown(fields[7])
    return fields


def _build(recorded: tuple[Any, ...], entry_id: int) -> Entry:
    """The entry :meth:`Journal.record` kept the makings of (the other headers scrubbed now)."""
    time, method, path, query, key, hashed, authorization, held, raw_body, status, outcome, fault, answer, trace = (
        recorded
    )
    return Entry(
        id=entry_id,
        time=time,
        method=method,
        path=path,
        query=query,
        key=key,
        key_hash=hashed,
        authorization=authorization,
        headers=_shown(held),
        raw_body=raw_body,
        status=status,
        outcome=outcome,
        fault=fault,
        raw_response=answer,
        trace_id=trace,
    )


def _fault_matches(text: str | None, pattern: str) -> bool:
    if text is None:
        return False
    rule = text.partition(": ")[0]
    return glob_matches(rule, pattern) or glob_matches(text, pattern)
