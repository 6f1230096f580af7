"""Loading the OpenAPI contract and reading the model catalogue out of it.

The document ships inside the package (``sfmock.contracts``); the repository keeps it
in ``contracts/``. Everything else in sfmock (request validation, the model list,
response checks, strategies) reads it through :class:`Contract`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import jsonschema_rs
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sfmock.contract.schemas import load_yaml
from sfmock.errors import ContractError

__all__ = ["CONTRACT_URI", "Contract", "ModelSpec", "load_contract"]

CONTRACT_URI = "urn:sfmock:contract"
REQUEST = "#/components/schemas/GenerationRequest"
FIELDS = "#/components/schemas/GenerationFields"


def parse_size(text: str) -> tuple[int, int]:
    """``"1024x768"`` -> ``(1024, 768)``."""
    width, _, height = text.partition("x")
    return int(width), int(height)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What the contract says about one image model."""

    id: str
    sub_type: str
    batch: bool
    default_size: tuple[int, int]
    sizes: tuple[str, ...]
    output_size: str  # "request": from image_size; "input": from the input image
    seconds_per_step: float
    price: Decimal  # of one image, CNY
    ignored: frozenset[str]


class Contract:
    """The parsed OpenAPI document, with helpers to reach into it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry: Registry[Any] = Registry().with_resource(
            CONTRACT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self._rules: dict[str, str] = {}
        self.models: Mapping[str, ModelSpec] = _read_models(self)
        self._validators: dict[str, Draft202012Validator] = {}
        self._compiled: dict[str, Any] = {}
        props = self.request_fields["properties"]
        self._defaults = MappingProxyType({name: prop["default"] for name, prop in props.items() if "default" in prop})

    def resolve(self, pointer: str) -> Any:
        """The node at a local JSON pointer such as ``#/components/schemas/X``."""
        node: Any = self.document
        for part in pointer.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                node = node[part]
            except (KeyError, TypeError) as exc:
                raise ContractError(f"contract has no {pointer}") from exc
        return node

    def flatten(self, schema: Any) -> Any:
        """A schema with its ``$ref`` replaced by the target, sibling keywords on top."""
        while isinstance(schema, dict) and "$ref" in schema:
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.resolve(schema["$ref"]), **siblings}
        return schema

    def inline(self, schema: Any) -> Any:
        """``schema`` with every local ``$ref`` replaced by its target (the request schemas
        have no cycles); validators of inlined schemas skip reference lookups."""
        if isinstance(schema, dict):
            flat = self.flatten(schema)
            return {key: self.inline(value) for key, value in flat.items()}
        if isinstance(schema, list):
            return [self.inline(item) for item in schema]
        return schema

    def validator(self, pointer: str) -> Draft202012Validator:
        """A JSON Schema validator for the schema at ``pointer`` (built once, then reused)."""
        found = self._validators.get(pointer)
        if found is None:
            found = Draft202012Validator(self.ref(pointer), registry=self.registry)
            self._validators[pointer] = found
        return found

    def conforms(self, pointer: str, instance: Any) -> bool:
        """The compiled (``jsonschema-rs``) verdict on ``instance`` against the schema at
        ``pointer``: ``True`` only when it keeps every rule. ``False`` is not a verdict:
        :meth:`validator` (``jsonschema``) then decides and explains, as the request
        rules do (:mod:`sfmock.contract.compiled`)."""
        if pointer not in self._compiled:
            try:
                fragment = quote(pointer, safe="#/~")  # a URI: {model} percent-encoded
                self._compiled[pointer] = jsonschema_rs.Draft202012Validator(
                    self.ref(fragment), registry=self._compiled_registry, validate_formats=False
                )
            except Exception:  # a schema it cannot read: jsonschema decides every time
                self._compiled[pointer] = None
        compiled = self._compiled[pointer]
        try:
            return compiled is not None and bool(compiled.is_valid(instance))
        except Exception:  # a value with no JSON form: jsonschema decides
            return False

    @functools.cached_property
    def _compiled_registry(self) -> Any:
        return jsonschema_rs.Registry([(CONTRACT_URI, self.document)])

    def ref(self, pointer: str) -> dict[str, Any]:
        """A schema that points at ``pointer`` inside the contract, for validators."""
        return {"$ref": CONTRACT_URI + pointer}

    @property
    def request_schema(self) -> dict[str, Any]:
        """The generation request schema: the fields, then the per-model rules."""
        schema: dict[str, Any] = self.resolve(REQUEST)
        return schema

    @property
    def request_fields(self) -> dict[str, Any]:
        """The schema of the generation request's fields (types, ranges, defaults)."""
        schema: dict[str, Any] = self.resolve(FIELDS)
        return schema

    def model_rules(self, model: str) -> str:
        """The pointer of ``model``'s own request schema."""
        return self._rules[model]

    def request_defaults(self) -> Mapping[str, Any]:
        """Field defaults of the generation request, as the contract declares them (read-only)."""
        return self._defaults


def _read_models(contract: Contract) -> dict[str, ModelSpec]:
    models: dict[str, ModelSpec] = {}
    for branch in contract.request_schema.get("allOf", []):
        if "if" not in branch:
            continue
        try:
            model_id = branch["if"]["properties"]["model"]["const"]
            contract._rules[model_id] = branch["then"]["$ref"]
            rules = contract.resolve(branch["then"]["$ref"])
            meta = rules["x-sfmock-model"]
            models[model_id] = ModelSpec(
                id=model_id,
                sub_type=meta["sub_type"],
                batch=bool(meta["batch"]),
                default_size=parse_size(meta["default_size"]),
                sizes=tuple(meta["sizes"]),
                output_size=meta["output_size"],
                seconds_per_step=float(meta["seconds_per_step"]),
                price=Decimal(str(meta["price"])),
                ignored=frozenset(rules.get("x-sfmock-ignored", ())),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ContractError(f"malformed per-model rule in GenerationRequest: {exc!r}") from exc
    if not models:
        raise ContractError("the contract declares no models")
    return models


@functools.cache
def load_contract() -> Contract:
    """The contract shipped with this installation (parsed once per process)."""
    text = resources.files("sfmock.contracts").joinpath("openapi.yaml").read_text("utf-8")
    return Contract(load_yaml(text))
