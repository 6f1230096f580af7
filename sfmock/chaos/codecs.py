"""How journal entries and scenarios are written to a shared store, and read back.

Only a store that keeps bytes (Redis) uses these; the memory store keeps the objects.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from sfmock.chaos.faults import Scenario
from sfmock.chaos.journal import Entry

__all__ = ["ENTRIES", "SCENARIOS", "EntryCodec", "ScenarioCodec"]

_BYTES = ("raw_body", "raw_response")
_FIELDS = tuple(f.name for f in dataclasses.fields(Entry) if f.name != "id")  # as encode writes them
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


class EntryCodec:
    """A journal :class:`Entry` as a compact JSON array of its fields in the order of
    :data:`_FIELDS` (bodies in base64), its id kept apart: on every generation, so written
    without naming each field (an object naming them, as earlier versions wrote, is read too)."""

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
        return _DUMPS(data).encode("ascii")

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
