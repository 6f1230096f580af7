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
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict, Unpack

from sfmock.globs import glob_matches
from sfmock.scrubbing import is_secret_name, scrub_body, scrub_query, scrub_text
from sfmock.service.auth import bearer_token
from sfmock.service.legacy import legacy_model
from sfmock.state.memory import MemoryLog
from sfmock.state.rider import Rider
from sfmock.state.store import Log

__all__ = ["ENTRY_FIELDS", "FILTERS", "Entry", "Journal", "mask_key"]

BODY_CAP = 65_536
RESPONSE_CAP = 4096  # the start of each answer's body is kept
STRING_CAP = 200
DEPTH_CAP = 32  # nesting kept in a body summary; deeper levels become a marker
ENTRY_CAP = 16_384  # characters of one entry's JSON; a larger body becomes a marker
TEXT_CAP = 1_024  # characters of raw text kept when a body is summarised as a marker
NODE_CAP = 2_000  # values walked to summarise one body; a larger one becomes a marker at once
ENTRY_FIELDS = (
    "id",
    "time",
    "method",
    "path",
    "query",
    "key",
    "authorization",
    "headers",
    "model",
    "body",
    "status",
    "outcome",
    "fault",
    "response_body",
    "trace_id",
)
FILTERS = ("method", "path", "status", "key", "model", "fault", "since", "limit", "after")


def mask_key(key: str | None) -> str | None:
    """``sk-test-0123456789`` -> ``sk-t...6789``; short keys are fully hidden."""
    if key is None:
        return None
    return f"{key[:4]}...{key[-4:]}" if len(key) > 12 else "****"


def key_hash(key: str | None) -> str | None:
    """What the journal keeps to find a key's requests, without keeping the key."""
    return None if key is None else hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@functools.lru_cache(maxsize=1024)  # one per key in use: held in memory only, like the accounts'
def _key_facts(token: str | None) -> tuple[str | None, str | None]:
    """(masked, hash) of a key: what each journal entry keeps of it."""
    return mask_key(token), key_hash(token)


_secret = functools.lru_cache(maxsize=1024)(is_secret_name)  # the few header names in use


def _mask_header(name: str, value: str) -> str:
    """A header as the journal shows it: a credential masked (its name says so, as
    :mod:`sfmock.scrubbing` decides for recordings too), any other value scrubbed."""
    if not _secret(name):
        return scrub_text(value)
    scheme, space, token = value.partition(" ")
    if space and scheme.lower() == "bearer":
        return f"{scheme} {mask_key(token.strip())}"
    return mask_key(value) or ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One request and its outcome."""

    id: int
    time: float
    method: str
    path: str
    query: str
    key: str | None  # masked
    key_hash: str | None = field(repr=False)  # sha256 of the real key, for the key filter
    authorization: bool  # whether an Authorization header was sent at all
    headers: Mapping[str, str]  # lower-case names; secrets masked
    raw_body: bytes = field(repr=False)
    status: int | None  # None: no response (dropped)
    outcome: str  # "response", "dropped", "truncated", "abandoned"
    fault: str | None
    raw_response: bytes = field(repr=False)  # the start of the answer's body
    trace_id: str

    def __getitem__(self, name: str) -> Any:
        """``entry["status"]``: the same fields as the attributes and the HTTP journal."""
        if name not in ENTRY_FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def keys(self) -> tuple[str, ...]:
        """The documented fields (so ``dict(entry)`` is the HTTP journal's entry)."""
        return ENTRY_FIELDS

    @property
    def response_body(self) -> Any:
        """The answer's body (its first 4 KiB): parsed JSON with long strings shortened,
        text, or ``None`` for none and for binary content such as a PNG."""
        if not self.raw_response:
            return None
        try:
            parsed = json.loads(self.raw_response, parse_float=_finite, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            try:
                return _shorten(self.raw_response.decode("utf-8"), 0, [NODE_CAP])
            except UnicodeDecodeError:
                return None
        try:
            return _shorten(parsed, 0, [NODE_CAP])
        except _TooBig:
            return {"sfmock_summary": "answer too complex to show in full", "bytes": len(self.raw_response)}

    @property
    def body(self) -> Any:
        """The request body: parsed JSON with long strings shortened, or (escaped) text."""
        return self._summary()[1]

    @property
    def model(self) -> str | None:
        return self._summary()[0]

    def _summary(self) -> tuple[str | None, Any]:
        """(model, shortened body), from one parse of the raw body."""
        if not self.raw_body:
            return None, None
        try:
            parsed = json.loads(self.raw_body, parse_float=_finite, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            return None, _shorten(_text(self.raw_body), 0, [NODE_CAP])
        model = parsed.get("model") if isinstance(parsed, dict) else None
        model = legacy_model(self.path) or model  # the old route names it in the path
        model = _clean(model) if isinstance(model, str) else None
        try:
            return model, _shorten(parsed, 0, [NODE_CAP])
        except _TooBig:
            return model, self._marker()

    def _marker(self) -> dict[str, Any]:
        return {
            "sfmock_summary": "body too large or too complex to show in full",
            "bytes": len(self.raw_body),
            "text": _text(self.raw_body[:TEXT_CAP]),
        }

    def to_json(self) -> dict[str, Any]:
        """The entry as the HTTP journal sends it: every field of :data:`ENTRY_FIELDS`."""
        model, body = self._summary()
        computed = {"model": model, "body": body, "headers": dict(self.headers)}
        return {name: computed[name] if name in computed else getattr(self, name) for name in ENTRY_FIELDS}

    def serialised(self) -> str:
        """:meth:`to_json` as compact JSON, at most about :data:`ENTRY_CAP` characters; never fails."""
        data = self.to_json()
        text = _dumps(data)
        if text is None or len(text) > ENTRY_CAP:
            data["body"] = self._marker()
            text = _dumps(data) or _dumps({**data, "body": None}) or "{}"
        return text


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(raw: bytes) -> str:
    """Bytes as text that always encodes: invalid UTF-8 replaced."""
    return raw.decode("utf-8", "replace")


def _clean(text: str) -> str:
    """A string that encodes as UTF-8: lone surrogates become ``\\udXXX`` escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _dumps(data: Any) -> str | None:
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, RecursionError):
        return None


class _TooBig(Exception):
    """A body with more values than :data:`NODE_CAP`: summarised as a marker instead."""


def _shorten(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig()
    if isinstance(value, str):
        value = _clean(value)
        return f"{value[:64]}... ({len(value)} chars)" if len(value) > STRING_CAP else value
    if isinstance(value, dict | list) and depth >= DEPTH_CAP:
        return f"... (nested deeper than {DEPTH_CAP} levels)"
    if isinstance(value, dict):
        if len(value) > budget[0]:
            raise _TooBig()
        return {_clean(k): _shorten(v, depth + 1, budget) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > budget[0]:
            raise _TooBig()
        return [_shorten(v, depth + 1, budget) for v in value]
    return value


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
        build, size = self._makings(fields)
        entry_id = self._log.append(build, size)
        self._forget_texts()
        return entry_id

    @property
    def ahead(self) -> bool:
        """Whether an entry can be written ahead, with its request's admission (:meth:`rider`)."""
        return self._log.ahead

    def rider(self, **fields: Unpack[Recorded]) -> Rider | None:
        """The entry :meth:`record` would add with these ``fields``, made for the request's
        admission to write in the same call to the store (:mod:`sfmock.state.rider`), or
        ``None`` where it cannot. Once the admission wrote it, :meth:`written` or
        :meth:`rewrite` finishes it."""
        build, size = self._makings(fields)
        return self._log.rider(build, size, fields.get("response", b"")[:RESPONSE_CAP])

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
        build, size = self._makings(fields)
        rider.log.rewrite(entry_id, build, size)
        with self._lock:
            self._texts.pop(entry_id, None)
        return entry_id

    @staticmethod
    def _makings(fields: Recorded) -> tuple[functools.partial[Entry], int]:
        """What builds the entry, secrets masked, and the bytes it counts against the cap."""
        authorization = fields["authorization"]
        token = bearer_token(authorization)
        masked, hashed = _key_facts(token)
        headers = fields.get("headers") or {}
        held = {name: _mask_header(name, value) if _secret(name) else value for name, value in headers.items()}
        query = scrub_query(fields["query"])
        # the body's secrets (secret-named keys, keys in a prompt, the request's own key) masked
        # before it is kept: a shared store holds what is kept, not what is shown
        raw_body = scrub_body(fields["body"][:BODY_CAP], () if token is None else (token,))
        recorded = (fields["time"], fields["method"], fields["path"], query, masked, hashed, authorization is not None)
        answer = fields.get("response", b"")[:RESPONSE_CAP]
        made = (*recorded, held, raw_body, fields["status"], fields["outcome"], fields["fault"], answer)
        # one tuple and one partial per entry held: a closure would hold a cell per value
        build = functools.partial(_build, (*made, fields["trace_id"]))
        return build, len(raw_body)

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
        headers={name: value if _secret(name) else scrub_text(value) for name, value in held.items()},
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
