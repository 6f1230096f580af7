"""Validating generation requests against the contract, leniently or strictly.

The rules are the contract's JSON Schema; this module only adds the ``x-sfmock-*``
keywords the contract uses and turns the first violation into the 400 message the
fake answers with. Lenient mode behaves like the real service (fields meant for
another model are ignored); strict mode also applies ``x-sfmock-ignored`` and
``x-sfmock-strict``. The verdict comes first from the same rules compiled
(:mod:`sfmock.contract.compiled`); ``jsonschema`` runs only to explain a violation.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

from sfmock.contract.compiled import CompiledSchema
from sfmock.contract.openapi import FIELDS, REQUEST, Contract
from sfmock.imaging import probe_data_url

__all__ = ["RequestValidator", "is_verbatim", "message_of"]

VERBATIM = "x-sfmock-message"  # a rule's 400 message exactly as the service words it
_SIZE = re.compile(r"([0-9]+)x([0-9]+)")
_MESSAGE_LIMIT = 300


def _max_pixels(validator: Validator, limit: int, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    match = _SIZE.fullmatch(instance) if isinstance(instance, str) else None
    if match and int(match[1]) * int(match[2]) > limit:
        pixels = int(match[1]) * int(match[2])
        template = schema.get(VERBATIM)
        if template:  # the service's own words for this rule
            yield ValidationError(template.format(limit=limit, pixels=pixels, size=instance))
        else:
            yield ValidationError(f"{instance!r} has {pixels} pixels, more than the maximum of {limit}")


def _image_ref(validator: Validator, enabled: bool, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if enabled and isinstance(instance, str) and instance.startswith("data:"):
        try:
            probe_data_url(instance)
        except ValueError as exc:
            yield ValidationError(f"the data URL {exc}")


def _ignored(
    validator: Validator, fields: list[str], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    present = [field for field in fields if isinstance(instance, dict) and field in instance]
    if present:
        names = ", ".join(repr(field) for field in present)
        yield ValidationError(
            f"{names} not applicable to {instance.get('model')} "
            "(the real service ignores them; strict mode rejects them)",
            path=(present[0],),
        )


def _strict(validator: Any, subschema: Any, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    # Any: descend() is on every concrete validator class, but not on the Validator protocol
    yield from validator.descend(instance, subschema)


@functools.cache
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262, where $ is the very end; in Python $ also matches
    # before a final newline, so "1024x1024\n" would pass '^...$'
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _pattern(validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# extend() has no annotations in jsonschema's stubs
_Lenient = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"x-sfmock-max-pixels": _max_pixels, "x-sfmock-image-ref": _image_ref, "pattern": _pattern},
)
_Strict = validators.extend(  # type: ignore[no-untyped-call]
    _Lenient, {"x-sfmock-ignored": _ignored, "x-sfmock-strict": _strict}
)


class RequestValidator:
    """Checks generation request bodies against the contract."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        whole = contract.ref(REQUEST)
        self._modes: dict[bool, Validator] = {
            False: _Lenient(whole, registry=contract.registry),
            True: _Strict(whole, registry=contract.registry),
        }
        self._compiled = _compiled(contract)
        # the same rules with the model's branch picked up front: the whole schema tries
        # every model's `if`, which costs more than the rest of the request together
        self._by_model: dict[tuple[str, bool], Validator] = {}
        fields = contract.inline(contract.resolve(FIELDS))
        for model in contract.models:
            fields_and_rules = {"allOf": [fields, contract.inline(contract.resolve(contract.model_rules(model)))]}
            for strict, cls in ((False, _Lenient), (True, _Strict)):
                self._by_model[model, strict] = cls(fields_and_rules)

    def _validator(self, body: Any, strict: bool) -> Validator:
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and (model, strict) in self._by_model:
            return self._by_model[model, strict]
        return self._modes[strict]

    def is_valid(self, body: Any, *, strict: bool = False) -> bool:
        """Whether ``body`` keeps every rule: the compiled rules' verdict (the same as
        ``jsonschema``'s, which tests hold them to)."""
        model = body.get("model") if isinstance(body, dict) else None
        compiled = self._compiled.get((model, strict)) if isinstance(model, str) else None
        return (compiled or self._compiled[None, strict]).is_valid(body)

    def errors(self, body: Any, *, strict: bool = False) -> list[ValidationError]:
        """Every violation of the contract by ``body``."""
        return list(self._validator(body, strict).iter_errors(body))

    def first_error(self, body: Any, *, strict: bool = False) -> str | None:
        """The message of the most relevant violation, or ``None`` when ``body`` is valid."""
        if self.is_valid(body, strict=strict):
            return None
        validator = self._validator(body, strict)
        if validator.is_valid(body):
            return None
        errors = list(validator.iter_errors(body))
        # a rule that holds in both modes explains more than a strict-only one
        error = best_match([e for e in errors if not _strict_only(e)] or errors)
        return None if error is None else describe(error)

    def first_message(self, body: Any, *, strict: bool = False) -> str | None:
        """The 400 message for ``body``, or ``None`` when it is valid: the service's own words
        where the contract gives them (``x-sfmock-message``), else ``Invalid parameter: ...``."""
        error = self.first_violation(body, strict=strict)
        return None if error is None else message_of(error)

    def first_violation(self, body: Any, *, strict: bool = False) -> ValidationError | None:
        """The violation :meth:`first_message` words, or ``None`` when ``body`` is valid."""
        if self.is_valid(body, strict=strict):
            return None
        validator = self._validator(body, strict)
        if validator.is_valid(body):  # the compiled rules could not read it: jsonschema decides
            return None
        errors = list(validator.iter_errors(body))
        verbatim = [e for e in errors if is_verbatim(e)]
        if verbatim:
            return verbatim[0]
        best: ValidationError | None = best_match([e for e in errors if not _strict_only(e)] or errors)
        return best


def is_verbatim(error: ValidationError) -> bool:
    """Whether ``error`` is worded as the service words it (``x-sfmock-message``)."""
    return isinstance(error.schema, dict) and VERBATIM in error.schema


def message_of(error: ValidationError) -> str:
    """The 400 message of a violation: the service's own words, else ``Invalid parameter: ...``."""
    return error.message if is_verbatim(error) else f"Invalid parameter: {describe(error)}"


_COMPILED: weakref.WeakKeyDictionary[Contract, dict[tuple[str | None, bool], CompiledSchema]]
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(contract: Contract) -> dict[tuple[str | None, bool], CompiledSchema]:
    """The request rules of ``contract`` compiled, per model (``None``: the whole request
    schema) and mode; once per contract, as compiling takes milliseconds and apps are many."""
    found = _COMPILED.get(contract)
    if found is None:
        found = {}
        fields = contract.inline(contract.resolve(FIELDS))
        for strict in (False, True):
            found[None, strict] = CompiledSchema(contract.inline(contract.resolve(REQUEST)), strict=strict)
            for model in contract.models:
                rules = contract.inline(contract.resolve(contract.model_rules(model)))
                found[model, strict] = CompiledSchema({"allOf": [fields, rules]}, strict=strict)
        _COMPILED[contract] = found
    return found


def describe(error: ValidationError) -> str:
    """A 400 message naming the field and the rule: ``batch_size: 5 is ... (rule: maximum)``."""
    field = ".".join(str(part) for part in error.absolute_path)
    text = error.message
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 3] + "..."
    rule = str(error.validator)
    if _strict_only(error):
        rule += ", strict mode"
    return f"{field}: {text} (rule: {rule})" if field else f"{text} (rule: {rule})"


def _strict_only(error: ValidationError) -> bool:
    return error.validator == "x-sfmock-ignored" or "x-sfmock-strict" in error.absolute_schema_path
