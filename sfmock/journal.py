"""The request journal: what clients sent and what they got, bounded in size.

Entries keep the raw bodies (capped) and are summarised only when read, so recording
costs little on the hot path. Keys are masked (and kept as a hash, to filter on the
real key); long strings (data URLs, huge prompts) are shortened in the summary.

One shape in Python and over HTTP: an :class:`Entry` has the fields of
:data:`ENTRY_FIELDS` as attributes and as items (``entry.status == entry["status"]``),
and ``GET /_sfmock/journal`` sends the same fields.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import bearer_token

__all__ = ["ENTRY_FIELDS", "FILTERS", "Entry", "Journal", "mask_key"]

BODY_CAP = 65_536
RESPONSE_CAP = 4096  # the start of each answer's body is kept
STRING_CAP = 200
# headers whose values are secrets: recorded masked
SECRET_HEADERS = frozenset({"authorization", "x-sfmock-token", "cookie", "proxy-authorization", "x-api-key"})
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
FILTERS = ("method", "path", "status", "key", "model", "fault", "since", "limit")


def mask_key(key: str | None) -> str | None:
    """``sk-test-0123456789`` -> ``sk-t...6789``; short keys are fully hidden."""
    if key is None:
        return None
    return f"{key[:4]}...{key[-4:]}" if len(key) > 12 else "****"


def key_hash(key: str | None) -> str | None:
    """What the journal keeps to find a key's requests, without keeping the key."""
    return None if key is None else hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _mask_header(name: str, value: str) -> str:
    if name not in SECRET_HEADERS:
        return value
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
            return _shorten(json.loads(self.raw_response))
        except ValueError:
            try:
                return _shorten(self.raw_response.decode("utf-8"))
            except UnicodeDecodeError:
                return None

    @property
    def body(self) -> Any:
        """The request body: parsed JSON with long strings shortened, or text."""
        if not self.raw_body:
            return None
        try:
            return _shorten(json.loads(self.raw_body))
        except ValueError:
            return _shorten(self.raw_body.decode("utf-8", "replace"))

    @property
    def model(self) -> str | None:
        body = self.body
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    def to_json(self) -> dict[str, Any]:
        """The entry as the HTTP journal sends it: every field of :data:`ENTRY_FIELDS`."""
        return {name: dict(self.headers) if name == "headers" else getattr(self, name) for name in ENTRY_FIELDS}


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > STRING_CAP:
        return f"{value[:64]}... ({len(value)} chars)"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    return value


class Journal:
    """The last ``size`` requests, oldest first; thread-safe."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._entries: deque[Entry] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._next_id = 1
        self.dropped = 0  # entries pushed out by the bound

    def record(
        self,
        *,
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
        headers: Mapping[str, str] | None = None,
        response: bytes = b"",
    ) -> Entry:
        """Add one request; ``headers`` are stored with their secrets masked."""
        token = bearer_token(authorization)
        shown = {name: _mask_header(name, value) for name, value in (headers or {}).items()}
        with self._lock:
            entry = Entry(
                id=self._next_id,
                time=time,
                method=method,
                path=path,
                query=query,
                key=mask_key(token),
                key_hash=key_hash(token),
                authorization=authorization is not None,
                headers=shown,
                raw_body=body[:BODY_CAP],
                status=status,
                outcome=outcome,
                fault=fault,
                raw_response=response[:RESPONSE_CAP],
                trace_id=trace_id,
            )
            self._next_id += 1
            if len(self._entries) == self.size:
                self.dropped += 1
            self._entries.append(entry)
            return entry

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
    ) -> list[Entry]:
        """Entries that match every filter given.

        ``path`` is a glob; ``key`` is the real key (matched on its hash, shown masked);
        ``fault`` is a glob over the rule's name or the whole fault text (``*`` is any
        fault, ``header`` the ``X-Sfmock-Fault`` ones, ``*error=503*``); ``limit`` keeps
        the last N.
        """
        with self._lock:
            found = list(self._filter(method, path, status, key, fault, since))
        if model is not None:
            found = [e for e in found if e.model == model]
        return found[-limit:] if limit else found

    def _filter(
        self,
        method: str | None,
        path: str | None,
        status: int | None,
        key: str | None,
        fault: str | None,
        since: float | None,
    ) -> Iterator[Entry]:
        wanted = key_hash(key)
        for entry in self._entries:
            if method is not None and entry.method != method.upper():
                continue
            if path is not None and not fnmatch.fnmatchcase(entry.path, path):
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
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0


def _fault_matches(text: str | None, pattern: str) -> bool:
    if text is None:
        return False
    rule = text.partition(": ")[0]
    return fnmatch.fnmatchcase(rule, pattern) or fnmatch.fnmatchcase(text, pattern)
