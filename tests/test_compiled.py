"""The compiled validator (jsonschema-rs) gives jsonschema's verdicts, in both modes.

The hot path asks the compiled one first and ``jsonschema`` only for the message of an
invalid body, so the two must never disagree: on the strategies' valid and invalid
requests, on bodies built from any field and awkward values, on any JSON at all, and
on the contract's other request bodies.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from conftest import FIXTURES
from sfmock import load_contract
from sfmock.contract.compiled import CompiledSchema, derive
from sfmock.contract.fromschema import from_schema
from sfmock.contract.schemas import _conforms, _validator, load_yaml, schema
from sfmock.contract.validation import RequestValidator
from sfmock.strategies import generation_requests, invalid_generation_requests

CONTRACT = load_contract()
VALIDATOR = RequestValidator(CONTRACT)
MODES = [False, True]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# values at the edges of the rules: an ECMA-only "$", integers as floats and booleans,
# past 64 bits, too many pixels, data URLs that are not images
STRINGS = [
    "1024x1024",
    "1024x1024\n",
    "3000x3000",
    "1440x1441",
    "data:image/png;base64,aGVsbG8=",
    "https://a.example/x",
]
AWKWARD = st.sampled_from([*STRINGS, 1.0, 2.5, True, False, 0, -1, 5, 2**64, 10**30, "", None, [], {}])
FIELD = st.sampled_from([*CONTRACT.request_fields["properties"], "n", "size"])


def agree(body: Any, strict: bool) -> bool:
    """The compiled verdict, checked against jsonschema's."""
    verdict = VALIDATOR.is_valid(body, strict=strict)
    assert verdict == (not VALIDATOR.errors(body, strict=strict)), (body, strict)
    return verdict


@pytest.mark.parametrize("strict", MODES)
@SETTINGS
@given(data=st.data())
def test_valid_requests_of_either_mode(strict: bool, data: st.DataObject) -> None:
    request = data.draw(generation_requests(strict=data.draw(st.booleans())))
    agree(request, strict)


@pytest.mark.parametrize("strict", MODES)
@SETTINGS
@given(data=st.data())
def test_invalid_requests(strict: bool, data: st.DataObject) -> None:
    request, _ = data.draw(invalid_generation_requests(strict=strict))
    assert not agree(request, strict)


@pytest.mark.parametrize("strict", MODES)
@SETTINGS
@given(model=st.sampled_from([*CONTRACT.models, "no/such-model", 3]), fields=st.dictionaries(FIELD, AWKWARD | JSON))
def test_any_fields_with_awkward_values(strict: bool, model: Any, fields: dict[str, Any]) -> None:
    agree({"model": model, "prompt": "a lighthouse", **fields}, strict)
    agree({**fields, "model": model}, strict)


@pytest.mark.parametrize("strict", MODES)
@SETTINGS
@given(body=JSON)
def test_any_json(strict: bool, body: Any) -> None:
    agree(body, strict)


@pytest.mark.parametrize(
    ("body", "strict", "valid"),
    [
        ({"model": "Kwai-Kolors/Kolors", "prompt": "x", "image_size": "1024x1024\n"}, False, False),  # ECMA $
        ({"model": "Kwai-Kolors/Kolors", "prompt": "x", "seed": 1.0}, False, True),  # 1.0 is an integer
        ({"model": "Kwai-Kolors/Kolors", "prompt": "x", "seed": True}, False, False),  # true is not
        ({"model": "Kwai-Kolors/Kolors", "prompt": "x", "seed": 2**70}, False, False),
        ({"model": "Qwen/Qwen-Image", "prompt": "x", "image_size": "1440x1441"}, False, False),  # max-pixels
        ({"model": "Qwen/Qwen-Image", "prompt": "x", "batch_size": 2}, False, True),  # ignored...
        ({"model": "Qwen/Qwen-Image", "prompt": "x", "batch_size": 2}, True, False),  # ...unless strict
        ({"model": "Kwai-Kolors/Kolors", "prompt": "x"}, True, False),  # strict: image_size required
        ({"model": "Qwen/Qwen-Image-Edit", "prompt": "x", "image": "data:image/png;base64,aGVsbG8="}, False, False),
    ],
)
def test_the_edges_by_hand(body: dict[str, Any], strict: bool, valid: bool) -> None:
    assert agree(body, strict) is valid


def test_formats_are_annotations_in_both() -> None:
    schema = {"type": "string", "format": "uri"}
    assert CompiledSchema(schema, strict=False).is_valid("not a uri")
    assert Draft202012Validator(schema).is_valid("not a uri")


def test_strict_keywords_apply_only_in_strict_mode() -> None:
    schema = {"type": "object", "x-sfmock-ignored": ["cfg"], "x-sfmock-strict": {"required": ["image_size"]}}
    assert derive(schema, strict=False) == {"type": "object"}
    assert CompiledSchema(schema, strict=False).is_valid({"cfg": 1})
    assert not CompiledSchema(schema, strict=True).is_valid({"cfg": 1, "image_size": "1x1"})
    assert not CompiledSchema(schema, strict=True).is_valid({})
    assert CompiledSchema(schema, strict=True).is_valid({"image_size": "1x1"})
    # like jsonschema's x-sfmock-ignored, the fields' ban holds only for objects
    assert CompiledSchema({"x-sfmock-ignored": ["cfg"]}, strict=True).is_valid("not an object")


def _request_bodies() -> list[tuple[str, Any]]:
    found = []
    for path, item in CONTRACT.document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "requestBody" in operation:
                for content in operation["requestBody"]["content"].values():
                    found.append((f"{method.upper()} {path}", content["schema"]))
    return found


def _names(schema: Any, found: set[str]) -> set[str]:
    if isinstance(schema, dict):
        found.update(schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else ())
        for value in schema.values():
            _names(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _names(value, found)
    return found


# the generation request's own x-sfmock keywords are jsonschema extensions: tested above
BODIES = [(operation, schema) for operation, schema in _request_bodies() if "images/generations" not in operation]


def test_the_contract_has_other_request_bodies() -> None:
    assert {"PUT /_sfmock/scenario", "POST /_sfmock/clock", "POST /_sfmock/verify"} <= dict(BODIES).keys()


@pytest.mark.parametrize(("operation", "schema"), BODIES, ids=[operation for operation, _ in BODIES])
def test_every_request_body_of_the_contract(operation: str, schema: Any) -> None:
    inlined = CONTRACT.inline(schema)
    compiled = CompiledSchema(inlined, strict=False)
    reference = Draft202012Validator(inlined)
    keys = sorted(_names(inlined, set())) or ["x"]
    seen = {True: 0, False: 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(from_schema(schema, CONTRACT), st.dictionaries(st.sampled_from(keys), JSON | AWKWARD), JSON))
    def check(body: Any) -> None:
        verdict = compiled.is_valid(body)
        assert verdict == reference.is_valid(body), (operation, body)
        seen[verdict] += 1

    check()
    assert seen[True] and seen[False], seen  # both verdicts were put to the test


# --- the compiled verdict elsewhere: responses (check_response) and sfmock's own schemas
# (config, scenario, a fault header's action). There the compiled "valid" ends the check
# and jsonschema decides everything else, so a compiled "valid" must never pass what
# jsonschema refuses. Their patterns are Python's (``$`` also before a final newline), so a
# compiled "invalid" may be jsonschema's "valid": that case still goes to jsonschema.


def _response_schemas() -> dict[str, str]:
    """Each JSON response the contract documents, once (many routes share one), by the
    pointer check_response reads it at, named after the first answer that uses it."""
    found: dict[str, str] = {}
    for path, item in CONTRACT.document["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items() if isinstance(operation, dict) else ():
                where = "/".join(part.replace("~", "~0").replace("/", "~1") for part in (path, method))
                pointer = f"#/paths/{where}/responses/{status}"
                while "$ref" in response:
                    pointer = response["$ref"]
                    response = CONTRACT.resolve(pointer)
                for media, content in response.get("content", {}).items():
                    if media.endswith("json") and "schema" in content:
                        escaped = media.replace("~", "~0").replace("/", "~1")
                        found.setdefault(f"{pointer}/content/{escaped}/schema", f"{method.upper()} {path} {status}")
    return found


RESPONSES = _response_schemas()


def test_the_contract_has_many_json_responses() -> None:
    assert len(RESPONSES) >= 25, len(RESPONSES)


@pytest.mark.parametrize("pointer", list(RESPONSES), ids=list(RESPONSES.values()))
def test_every_json_response_of_the_contract(pointer: str) -> None:
    schema = CONTRACT.resolve(pointer)
    reference = CONTRACT.validator(pointer)
    keys = sorted(_names(CONTRACT.inline(schema), set())) or ["x"]
    seen = {True: 0, False: 0}
    fast = []

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(from_schema(schema, CONTRACT), st.dictionaries(st.sampled_from(keys), JSON | AWKWARD), JSON))
    def check(body: Any) -> None:
        verdict = CONTRACT.conforms(pointer, body)
        expected = reference.is_valid(body)
        assert verdict <= expected, (RESPONSES[pointer], body)  # "valid" only where jsonschema says so
        seen[expected] += 1
        fast.append(verdict)

    check()
    assert seen[True] and seen[False], seen  # both verdicts were put to the test
    assert any(fast)  # and the compiled one ended some checks (it compiled)


def _own(name: str) -> Any:
    return load_yaml((FIXTURES / name).read_text("utf-8"))


OWN = {
    "config": [_own(name) for name in ("accounts.yaml", "open.yaml", "realistic-limits.yaml", "live-2026.yaml")],
    "scenario": [_own(f"scenarios/{path.name}") for path in sorted((FIXTURES / "scenarios").glob("*.yaml"))],
}


def _mutated(document: Any, keys: list[str]) -> st.SearchStrategy[Any]:
    """``document`` with one part anywhere in it replaced, removed or added to."""

    def parts(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [path]
        if isinstance(node, dict):
            for key, value in node.items():
                found += parts(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found += parts(value, (*path, index))
        return found

    def change(choice: tuple[tuple[Any, ...], str, Any, str]) -> Any:
        path, how, value, key = choice
        changed = copy.deepcopy(document)
        if not path:
            return value
        parent = changed
        for part in path[:-1]:
            parent = parent[part]
        if how == "replace":
            parent[path[-1]] = value
        elif how == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[key] = value
        return changed

    hows = st.sampled_from(["replace", "remove", "add"])
    return st.tuples(st.sampled_from(parts(document)), hows, AWKWARD | JSON, st.sampled_from(keys)).map(change)


@pytest.mark.parametrize("name", sorted(OWN))
def test_sfmock_s_own_schemas(name: str) -> None:
    reference = _validator(name, None)
    keys = sorted(_names(schema(name), set()))
    seen = {True: 0, False: 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(*(_mutated(document, keys) for document in OWN[name]), JSON))
    def check(values: Any) -> None:
        verdict = _conforms(name, None, values)
        expected = reference.is_valid(values)
        assert verdict <= expected, (name, values)
        seen[expected] += verdict or not expected  # a compiled "valid", or a refusal

    for document in OWN[name]:
        assert _conforms(name, None, document), document  # the shipped files take the fast path
    check()
    assert seen[True] and seen[False], seen


def test_a_fault_action() -> None:
    reference = _validator("scenario", "action")

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(st.sampled_from(["error", "delay", "drop", "hang", "status", "x"]), AWKWARD | JSON))
    def check(action: Any) -> None:
        assert _conforms("scenario", "action", action) <= reference.is_valid(action), action

    assert _conforms("scenario", "action", {"error": 503})
    check()
