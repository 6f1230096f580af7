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


class EntryCodec:
    """A journal :class:`Entry` as compact JSON (bodies in base64), its id kept apart."""

    def encode(self, item: Entry) -> bytes:
        data: dict[str, Any] = {f.name: getattr(item, f.name) for f in dataclasses.fields(item) if f.name != "id"}
        for name in _BYTES:
            data[name] = base64.b64encode(data[name]).decode("ascii")
        data["headers"] = dict(item.headers)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def decode(self, data: bytes, item_id: int) -> Entry:
        fields = json.loads(data)
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
