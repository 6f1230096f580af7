"""A broken request rule in the live service's words, where clients have quoted them.

The reference page documents one 400 for every broken rule: code 20012 naming the field.
Clients quote others from the live service (``siliconflow-api.md``, "Observed in 2026,
second look"), each behind a setting of its own:

- ``range_errors: observed``: a range violation answers code 20015 with the field first,
  ``seed: Must be greater than or equal to 0`` [seen 2026]. The wording is that of the Go
  library gojsonschema (``FIELD: DESCRIPTION``), so a type violation is worded as that
  library words it, ``seed: Invalid type. Expected: integer, given: string`` [guess].
- ``size_errors: observed``: an empty or malformed ``image_size`` answers code 20026
  ``Image size format should be like 512x512.`` [seen 2025].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from jsonschema.exceptions import ValidationError

from sfmock.errors import ApiError

__all__ = ["RANGE_CODE", "RULE_WORDINGS", "SIZE_FORMAT_CODE", "SIZE_FORMAT_MESSAGE", "RuleWording"]

RULE_WORDINGS: Final = ("documented", "observed")
RANGE_CODE: Final = 20015
SIZE_FORMAT_CODE: Final = 20026
SIZE_FORMAT_MESSAGE: Final = "Image size format should be like 512x512."

_BOUNDS: Final = {
    "minimum": "Must be greater than or equal to {}",
    "maximum": "Must be less than or equal to {}",
    "exclusiveMinimum": "Must be greater than {}",
    "exclusiveMaximum": "Must be less than {}",
}
_TYPES: Final = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


@dataclass(frozen=True)
class RuleWording:
    """Which broken rules answer in the live service's words (the two settings)."""

    range_errors: str = "documented"
    size_errors: str = "documented"

    @property
    def documented(self) -> bool:
        return self.range_errors == "documented" and self.size_errors == "documented"

    def error(self, violation: ValidationError) -> ApiError | None:
        """The observed 400 for ``violation``, or ``None`` where the documented one answers."""
        field = ".".join(str(part) for part in violation.absolute_path)
        if not field:
            return None  # a broken rule of the whole body (a required field): no words quoted
        if self.size_errors == "observed" and field == "image_size" and violation.validator == "pattern":
            return ApiError(400, {"code": SIZE_FORMAT_CODE, "message": SIZE_FORMAT_MESSAGE, "data": None})
        if self.range_errors != "observed":
            return None
        if violation.validator in _BOUNDS:
            text = _BOUNDS[str(violation.validator)].format(_number(violation.validator_value))
        elif violation.validator == "type":
            expected, given = _expected(violation.validator_value), _given(violation.instance)
            text = f"Invalid type. Expected: {expected}, given: {given}"
        else:
            return None
        return ApiError(400, {"code": RANGE_CODE, "message": f"{field}: {text}"})  # as quoted: no data


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _expected(value: Any) -> str:
    return "/".join(value) if isinstance(value, list) else str(value)


def _given(instance: Any) -> str:
    if isinstance(instance, list):
        return "array"
    if isinstance(instance, dict):
        return "object"
    if isinstance(instance, float) and instance.is_integer():
        return "integer"  # JSON has one number type; 3.0 is an integer to the library
    return _TYPES.get(type(instance), "unknown")
