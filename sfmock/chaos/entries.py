"""One journal entry: what a request sent and got, kept as bytes with credentials masked,
summarised only when read (:class:`Entry`, the caps on what it holds and shows)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sfmock.scrubbing import is_secret_name, scrub_text
from sfmock.service.legacy import legacy_model

__all__ = [
    "ENTRY_CAP",
    "ENTRY_FIELDS",
    "RESPONSE_CAP",
    "STRING_CAP",
    "Entry",
    "key_facts",
    "key_hash",
    "mask_header",
    "mask_key",
    "secret_header",
]

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


def mask_key(key: str | None) -> str | None:
    """``sk-test-0123456789`` -> ``sk-t...6789``; short keys are fully hidden."""
    if key is None:
        return None
    return f"{key[:4]}...{key[-4:]}" if len(key) > 12 else "****"


def key_hash(key: str | None) -> str | None:
    """What the journal keeps to find a key's requests, without keeping the key."""
    return None if key is None else hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@functools.lru_cache(maxsize=1024)  # one per key in use: held in memory only, like the accounts'
def key_facts(token: str | None) -> tuple[str | None, str | None]:
    """(masked, hash) of a key: what each journal entry keeps of it."""
    return mask_key(token), key_hash(token)


secret_header = functools.lru_cache(maxsize=1024)(is_secret_name)  # the few header names in use


def mask_header(name: str, value: str) -> str:
    """A header as the journal shows it: a credential masked (its name says so, as
    :mod:`sfmock.scrubbing` decides for recordings too), any other value scrubbed."""
    if not secret_header(name):
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
