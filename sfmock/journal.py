"""The request journal: what clients sent and what they got, bounded in size.

Entries keep the raw body (capped) and are summarised only when read, so recording
costs little on the hot path. Keys are masked; long strings (data URLs, huge prompts)
are shortened in the summary.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .auth import bearer_token

__all__ = ["Entry", "Journal", "mask_key"]

BODY_CAP = 65_536
STRING_CAP = 200


def mask_key(key: str | None) -> str | None:
    """``sk-test-0123456789`` -> ``sk-t...6789``; short keys are fully hidden."""
    if key is None:
        return None
    return f"{key[:4]}...{key[-4:]}" if len(key) > 12 else "****"


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One request and its outcome."""

    id: int
    time: float
    method: str
    path: str
    query: str
    key: str | None  # masked
    authorization: bool  # whether an Authorization header was sent at all
    raw_body: bytes = field(repr=False)
    status: int | None  # None: no response (dropped)
    outcome: str  # "response", "dropped", "truncated"
    fault: str | None
    trace_id: str

    @property
    def body(self) -> Any:
        """The request body: parsed JSON with long strings shortened, or text."""
        if not self.raw_body:
            return None
        try:
            return _shorten(json.loads(self.raw_body))
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
            return _shorten(self.raw_body.decode("utf-8", "replace"))

    @property
    def model(self) -> str | None:
        body = self.body
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "key": self.key,
            "authorization": self.authorization,
            "model": self.model,
            "body": self.body,
            "status": self.status,
            "outcome": self.outcome,
            "fault": self.fault,
            "trace_id": self.trace_id,
        }


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
    ) -> Entry:
        with self._lock:
            entry = Entry(
                id=self._next_id,
                time=time,
                method=method,
                path=path,
                query=query,
                key=mask_key(bearer_token(authorization)),
                authorization=authorization is not None,
                raw_body=body[:BODY_CAP],
                status=status,
                outcome=outcome,
                fault=fault,
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
        """Entries that match every filter given (``path`` is a glob, ``key`` unmasked)."""
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
        masked = mask_key(key)
        for entry in self._entries:
            if method is not None and entry.method != method.upper():
                continue
            if path is not None and not fnmatch.fnmatchcase(entry.path, path):
                continue
            if status is not None and entry.status != status:
                continue
            if key is not None and entry.key != masked:
                continue
            if fault is not None and (entry.fault is None or not entry.fault.startswith(fault)):
                continue
            if since is not None and entry.time < since:
                continue
            yield entry

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0
