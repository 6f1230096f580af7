"""How journal entries and scenarios are written to a shared store, and read back.

Only a store that keeps bytes (Redis) uses these; the memory store keeps the objects.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import orjson

from sfmock.chaos.faults import Scenario
from sfmock.chaos.journal import Entry, entry_fields

__all__ = ["ENTRIES", "SCENARIOS", "EntryCodec", "ScenarioCodec"]

_BYTES = ("raw_body", "raw_response")
_FIELDS = tuple(f.name for f in dataclasses.fields(Entry) if f.name != "id")  # as encode writes them
_IN_BASE64 = tuple(_FIELDS.index(name) for name in _BYTES)
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def _dumps(data: list[Any]) -> bytes:
    """``data`` as compact JSON: by orjson (a fifth of the json module's CPU), or by the
    json module where orjson refuses (a lone surrogate, which a path can decode to)."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        return _DUMPS(data).encode("ascii")


class EntryCodec:
    """A journal :class:`Entry` as a compact JSON array of its fields in the order of
    :data:`_FIELDS` (bodies in base64), its id kept apart: on every generation, so written
    without naming each field (an object naming them, as earlier versions wrote, is read too)."""

    def encode_built(self, build: Callable[[int], Entry]) -> bytes:
        """:meth:`encode` of the entry ``build`` makes, from its makings where the journal
        kept them (:func:`~sfmock.chaos.journal.entry_fields`): the entry is not made."""
        fields = entry_fields(build)
        if fields is None:
            return self.encode(build(0))
        for index in _IN_BASE64:
            fields[index] = base64.b64encode(fields[index]).decode("ascii")
        return _dumps(fields)

    def encode(self, item: Entry) -> bytes:
        b64 = base64.b64encode
        data = [
            item.time,
            item.method,
            item.path,
            item.query,
            item.key,
            item.key_hash,
            item.authorization,
            dict(item.headers),
            b64(item.raw_body).decode("ascii"),
            item.status,
            item.outcome,
            item.fault,
            b64(item.raw_response).decode("ascii"),
            item.trace_id,
        ]
        return _dumps(data)

    def decode(self, data: bytes, item_id: int) -> Entry:
        held = json.loads(data)
        fields: dict[str, Any] = dict(zip(_FIELDS, held, strict=True)) if isinstance(held, list) else held
        for name in _BYTES:
            fields[name] = base64.b64decode(fields[name])
        return Entry(id=item_id, **fields)


class ScenarioCodec:
    """A :class:`Scenario` as the document it came from, with its name and description."""

    def encode(self, item: Scenario) -> bytes:
        data = {"name": item.name, "description": item.description, "document": dict(item.source)}
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    def decode(self, data: bytes) -> Scenario:
        fields = json.loads(data)
        if not fields["document"]:
            return Scenario(name=fields["name"], description=fields["description"])
        loaded = Scenario.from_document(fields["document"], "scenario")
        return dataclasses.replace(loaded, name=fields["name"], description=fields["description"])


ENTRIES = EntryCodec()
SCENARIOS = ScenarioCodec()
