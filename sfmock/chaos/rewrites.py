"""Answers rewritten by a fault: fields no contract lists, only the documented fields, or
a body cut in the middle."""

from __future__ import annotations

import json

__all__ = ["DOCUMENTED_FIELDS", "corrupt", "documented_only", "with_extra_fields"]

DOCUMENTED_FIELDS = ("images", "timings", "seed")


def with_extra_fields(content: bytes) -> bytes:
    """Add fields no contract lists, at the top and in each image, as services grow them."""
    try:
        body = json.loads(content)
    except ValueError:
        return content
    if isinstance(body, dict):
        body["sfmock_unlisted"] = {"note": "a field this client does not know", "n": 1}
        for key in ("images", "data"):
            for item in body.get(key) or []:
                if isinstance(item, dict):
                    item["revised_prompt"] = None
    return json.dumps(body, separators=(",", ":")).encode()


def documented_only(content: bytes) -> bytes:
    """Keep only the fields the API reference documents for a 200 (no ``data``, ...)."""
    try:
        body = json.loads(content)
    except ValueError:
        return content
    if isinstance(body, dict) and "images" in body:
        body = {key: body[key] for key in DOCUMENTED_FIELDS if key in body}
    return json.dumps(body, separators=(",", ":")).encode()


def corrupt(content: bytes) -> bytes:
    """Cut the body in the middle: never valid JSON, never a whole PNG."""
    return content[: max(1, len(content) // 2)] if content else b"{"
