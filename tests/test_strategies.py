"""Strategies derived from the contract: valid, broken-by-one-rule, responses, schedules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfmock import Contract, ContractViolation, check_response, load_contract
from sfmock.contract.validation import RequestValidator
from sfmock.strategies import (
    OUTCOMES,
    generation_requests,
    invalid_generation_requests,
    responses,
    schedules,
)

GEN = "/v1/images/generations"

VALIDATOR = RequestValidator(load_contract())


@settings(max_examples=200)
@given(generation_requests())
def test_valid_requests_are_valid(request: dict[str, Any]) -> None:
    assert VALIDATOR.first_error(request) is None
    assert request["model"] in load_contract().models


@settings(max_examples=200)
@given(generation_requests(strict=True))
def test_strict_requests_are_valid_in_strict_mode(request: dict[str, Any]) -> None:
    assert VALIDATOR.first_error(request, strict=True) is None
    ignored = load_contract().models[request["model"]].ignored
    assert not ignored & set(request)


@pytest.mark.parametrize("model", sorted(load_contract().models))
def test_requests_for_one_model(model: str) -> None:
    @settings(max_examples=25)
    @given(generation_requests(model))
    def check(request: dict[str, Any]) -> None:
        assert request["model"] == model and VALIDATOR.first_error(request) is None

    check()


@pytest.mark.parametrize("strict", [False, True])
def test_invalid_requests_break_exactly_the_rule_they_name(strict: bool) -> None:
    labels: set[str] = set()

    @settings(max_examples=300, derandomize=True)  # the coverage claims below must not flake
    @given(invalid_generation_requests(strict=strict))
    def check(pair: tuple[dict[str, Any], str]) -> None:
        request, label = pair
        field, rule = label.split(": ")
        errors = VALIDATOR.errors(request, strict=strict)
        assert errors, f"{label} was not rejected: {request}"
        assert {str(e.validator) for e in errors} == {rule}
        assert {".".join(map(str, e.absolute_path)) or field for e in errors} == {field}
        labels.add(label)

    check()
    assert len(labels) >= 15  # many different rules, not one over and over
    assert {"seed: minimum", "prompt: required"} <= labels
    if strict:
        assert any(label.endswith("x-sfmock-ignored") for label in labels)


@settings(max_examples=150)
@given(responses())
def test_responses_conform_to_the_contract(pair: tuple[int, Any]) -> None:
    import json

    status, body = pair
    headers = {"content-type": "application/json", "x-siliconcloud-trace-id": "t"}
    # a 429 may be drawn in any dialect; the body must be exactly one dialect's
    passed = []
    for dialect in ("documented", "observed", "plain"):
        try:
            check_response("POST", GEN, status, headers, json.dumps(body).encode(), dialect=dialect)
            passed.append(dialect)
        except ContractViolation:
            pass
    assert len(passed) == (1 if status == 429 else 3), (status, body, passed)


def test_responses_cover_every_documented_status() -> None:
    seen: set[int] = set()

    @settings(max_examples=300, derandomize=True)
    @given(responses())
    def collect(pair: tuple[int, Any]) -> None:
        seen.add(pair[0])

    collect()
    documented = {int(s) for s in load_contract().document["paths"]["/v1/images/generations"]["post"]["responses"]}
    assert seen == documented


def test_responses_for_one_status() -> None:
    @settings(max_examples=30)
    @given(responses(401))
    def check(pair: tuple[int, Any]) -> None:
        assert pair[0] == 401 and pair[1] in ("Invalid token", "Api key is invalid")  # the second: [seen]

    check()
    with pytest.raises(ValueError, match="not documented"):
        responses(418)


def test_schedules_shrink_to_all_success() -> None:
    from hypothesis import find

    assert find(schedules(), lambda s: True) == []
    assert find(schedules(), lambda s: len(s) >= 2) == ["ok", "ok"]
    assert find(schedules(), lambda s: any(o != "ok" for o in s)) == ["503"]
    with pytest.raises(ValueError, match="unknown outcome"):
        schedules(["teapot"])
    assert next(iter(OUTCOMES)) == "ok"


def test_the_contract_drives_generation() -> None:
    # a new field with a range, added to the contract only, is generated within its range
    import sfmock.testing.strategies as strategies

    document = copy.deepcopy(load_contract().document)
    document["components"]["schemas"]["GenerationFields"]["properties"]["sharpness"] = {
        "type": "integer",
        "minimum": 3,
        "maximum": 5,
    }
    contract = Contract(document)
    original = strategies.load_contract
    strategies.load_contract = lambda: contract  # type: ignore[assignment]
    try:
        seen: set[int] = set()

        @settings(max_examples=200, derandomize=True)
        @given(generation_requests("Kwai-Kolors/Kolors"), st.data())
        def check(request: dict[str, Any], data: st.DataObject) -> None:
            if "sharpness" in request:
                seen.add(request["sharpness"])

        check()
    finally:
        strategies.load_contract = original  # type: ignore[assignment]
    assert seen == {3, 4, 5}
