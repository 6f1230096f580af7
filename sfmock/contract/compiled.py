"""The contract's request rules compiled (``jsonschema-rs``), for the hot path.

The rules stay those of the contract: each schema is derived from the same document, its
``x-sfmock-*`` keywords turned into standard JSON Schema (``x-sfmock-strict`` and
``x-sfmock-ignored`` in strict mode) or into custom keywords with the same code as
:mod:`sfmock.contract.validation` (``x-sfmock-max-pixels``, ``x-sfmock-image-ref``).
Only the verdict comes from here: an invalid body is explained by ``jsonschema``, which
also has the last word on anything this one cannot read. Patterns are ECMA-262 in both
(``$`` is the very end), formats are annotations in both, ``$ref`` is inlined.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs

from sfmock.imaging import probe_data_url

__all__ = ["CompiledSchema", "derive"]

_SIZE = re.compile(r"([0-9]+)x([0-9]+)")
_MAX_PIXELS = "x-max-pixels"
_IMAGE_REF = "x-image-ref"


def derive(schema: Any, *, strict: bool) -> Any:
    """``schema`` (``$ref``-free) with sfmock's keywords in standard or custom form."""
    if isinstance(schema, list):
        return [derive(item, strict=strict) for item in schema]
    if not isinstance(schema, dict):
        return schema
    plain = {key: derive(value, strict=strict) for key, value in schema.items() if not key.startswith("x-sfmock-")}
    if "x-sfmock-max-pixels" in schema:
        plain[_MAX_PIXELS] = schema["x-sfmock-max-pixels"]
    if schema.get("x-sfmock-image-ref"):
        plain[_IMAGE_REF] = True
    more = []
    if strict and "x-sfmock-strict" in schema:
        more.append(derive(schema["x-sfmock-strict"], strict=strict))
    if strict and schema.get("x-sfmock-ignored"):
        more.append({"properties": {name: False for name in schema["x-sfmock-ignored"]}})
    return {"allOf": [plain, *more]} if more else plain


class _MaxPixels:
    """``x-sfmock-max-pixels``: a ``WIDTHxHEIGHT`` string of at most this many pixels."""

    def __init__(self, parent: dict[str, Any], value: int, path: list[str | int]) -> None:
        self.limit = value

    def validate(self, instance: Any) -> None:
        match = _SIZE.fullmatch(instance) if isinstance(instance, str) else None
        if match and int(match[1]) * int(match[2]) > self.limit:
            raise ValueError(f"{instance!r} has more than {self.limit} pixels")


class _ImageRef:
    """``x-sfmock-image-ref``: a ``data:`` URL must decode to an image."""

    def __init__(self, parent: dict[str, Any], value: bool, path: list[str | int]) -> None:
        self.enabled = value

    def validate(self, instance: Any) -> None:
        if self.enabled and isinstance(instance, str) and instance.startswith("data:"):
            probe_data_url(instance)  # ValueError when it is not an image


class CompiledSchema:
    """One derived schema, compiled: :meth:`is_valid` is the verdict on a body."""

    def __init__(self, schema: Any, *, strict: bool) -> None:
        self.schema = derive(schema, strict=strict)
        self._validator = jsonschema_rs.Draft202012Validator(
            self.schema, validate_formats=False, keywords={_MAX_PIXELS: _MaxPixels, _IMAGE_REF: _ImageRef}
        )

    def is_valid(self, instance: Any) -> bool:
        """Whether ``instance`` keeps every rule (``False`` also when it cannot be read as JSON
        data: the caller's ``jsonschema`` then decides)."""
        try:
            return bool(self._validator.is_valid(instance))
        except Exception:  # a value with no JSON form (the caller's reference validator decides)
            return False
