"""Hypothesis strategies from the JSON Schema subset the contract uses.

Read at run time from the contract, so a field or range added there changes what is
generated. Handles ``$ref``, ``const``, ``enum``, ``type`` (one or several), numeric
bounds, ``minLength``/``maxLength``, ``pattern``, arrays, objects (required and
optional properties), ``oneOf``/``anyOf``, and the ``x-sfmock-*`` string keywords.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from sfmock.contract.openapi import Contract
from sfmock.imaging import render_png

__all__ = ["from_schema", "image_refs", "image_sizes"]

_JSON_LEAVES = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)


def from_schema(schema: Any, contract: Contract) -> st.SearchStrategy[Any]:
    """Values valid under ``schema`` (``$ref`` resolved against ``contract``)."""
    schema = contract.flatten(schema)
    if schema is True or schema == {}:
        return _JSON_LEAVES
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return st.one_of([from_schema(branch, contract) for branch in schema[combinator]])
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return st.one_of([from_schema({**schema, "type": kind}, contract) for kind in kinds])
    if kinds is None and "properties" in schema:
        kinds = "object"
    builders: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
        "null": st.none,
        "boolean": st.booleans,
        "integer": lambda: _integers(schema),
        "number": lambda: _numbers(schema),
        "string": lambda: _strings(schema),
        "array": lambda: _arrays(schema, contract),
        "object": lambda: _objects(schema, contract),
    }
    if kinds not in builders:
        return _JSON_LEAVES
    return builders[kinds]()


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low = schema.get("minimum", schema["exclusiveMinimum"] + 1 if "exclusiveMinimum" in schema else None)
    high = schema.get("maximum", schema["exclusiveMaximum"] - 1 if "exclusiveMaximum" in schema else None)
    return st.integers(low, high)


def _numbers(schema: dict[str, Any]) -> st.SearchStrategy[float]:
    return st.floats(
        min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
        max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "x-sfmock-max-pixels" in schema:
        return image_sizes(schema)
    if schema.get("x-sfmock-image-ref"):
        return image_refs(schema)
    if "pattern" in schema:
        strategy = st.from_regex(schema["pattern"], fullmatch=False)
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        return strategy.filter(lambda s: len(s) >= low and (high is None or len(s) <= high))
    return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 40))


def image_sizes(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """``WxH`` strings under the schema's ``x-sfmock-max-pixels`` that match its pattern."""
    limit = int(schema["x-sfmock-max-pixels"])
    pattern = re.compile(schema.get("pattern", r"^\d+x\d+$"))

    @st.composite
    def sizes(draw: st.DrawFn) -> str:
        width = draw(st.integers(16, min(4096, limit // 16)))
        height = draw(st.integers(16, min(4096, limit // width)))
        return f"{width}x{height}"

    return sizes().filter(lambda s: pattern.search(s) is not None)


def image_refs(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """Data URLs of real little PNGs, or http(s) URLs (which the fake never fetches)."""
    pngs = st.builds(
        lambda seed, w, h: "data:image/png;base64," + base64.b64encode(render_png(seed, w, h)).decode(),
        st.binary(min_size=1, max_size=4),
        st.integers(8, 64),
        st.integers(8, 64),
    )
    urls = st.from_regex(r"\Ahttps?://[a-z]{1,10}\.example/[a-z0-9]{1,12}\.png\Z")
    return pngs | urls


def _arrays(schema: dict[str, Any], contract: Contract) -> st.SearchStrategy[list[Any]]:
    items = from_schema(schema.get("items", {}), contract)
    return st.lists(items, min_size=schema.get("minItems", 0), max_size=schema.get("maxItems", 4))


def _objects(schema: dict[str, Any], contract: Contract) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {name: from_schema(properties.get(name, {}), contract) for name in sorted(required)},
        optional={name: from_schema(sub, contract) for name, sub in properties.items() if name not in required},
    )
