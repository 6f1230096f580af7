"""``sfmock contract diff``: small contract pairs, each with one change."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sfmock import Contract, load_contract
from sfmock.cli import main
from sfmock.fidelity.contractdiff import diff_contracts, read_contract

GEN = "POST /v1/images/generations"
Edit = Callable[[dict[str, Any]], None]


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"]
    return found


def changed(edit: Edit) -> list[tuple[str, str]]:
    old = load_contract().document
    new = copy.deepcopy(old)
    edit(new)
    return [(b.where, b.kind) for b in diff_contracts(Contract(old), Contract(new))]


def test_the_same_contract_breaks_nothing() -> None:
    assert changed(lambda doc: None) == []


def _drop_created(doc: dict[str, Any]) -> None:
    del schemas(doc)["GenerationResponse"]["properties"]["created"]


def _narrow_batch(doc: dict[str, Any]) -> None:
    schemas(doc)["GenerationFields"]["properties"]["batch_size"]["maximum"] = 2


def _require_negative_prompt(doc: dict[str, Any]) -> None:
    schemas(doc)["GenerationFields"]["required"].append("negative_prompt")


def _drop_model(doc: dict[str, Any]) -> None:
    schemas(doc)["GenerationFields"]["properties"]["model"]["enum"].remove("Tongyi-MAI/Z-Image-Turbo")


def _seed_as_string(doc: dict[str, Any]) -> None:
    seed = schemas(doc)["GenerationResponse"]["properties"]["seed"]
    seed.clear()
    seed["type"] = "string"


def _drop_trace_header(doc: dict[str, Any]) -> None:
    del doc["paths"]["/v1/images/generations"]["post"]["responses"]["200"]["headers"]


def _drop_user_info(doc: dict[str, Any]) -> None:
    del doc["paths"]["/v1/user/info"]


def _new_store_code(doc: dict[str, Any]) -> None:
    schemas(doc)["S3Error"]["properties"]["Code"]["enum"].append("NoSuchBucket")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_drop_created, (f"{GEN} 200 /created", "removed field")),
        (_narrow_batch, (f"{GEN} request /batch_size", "narrowed range")),
        (_require_negative_prompt, (f"{GEN} request /negative_prompt", "new required field")),
        (_drop_model, (f"{GEN} request /model", "removed enum value")),
        (_seed_as_string, (f"{GEN} 200 /seed", "changed type")),
        (_drop_trace_header, (f"{GEN} 200 header x-siliconcloud-trace-id", "removed header")),
        (_drop_user_info, ("GET /v1/user/info", "removed operation")),
        (_new_store_code, ("GET /temporary/outputs/{object} 403 /Code", "new enum value")),
    ],
)
def test_each_breaking_change_is_named(edit: Edit, expected: tuple[str, str]) -> None:
    found = changed(edit)
    assert expected in found, found
    assert all(kind == expected[1] for _, kind in found), found


def _widen_batch(doc: dict[str, Any]) -> None:
    schemas(doc)["GenerationFields"]["properties"]["batch_size"]["maximum"] = 8


def _add_optional_field(doc: dict[str, Any]) -> None:
    schemas(doc)["GenerationFields"]["properties"]["style"] = {"type": "string"}
    schemas(doc)["GenerationResponse"]["properties"]["nsfw"] = {"type": "boolean"}


def _fields_moved_into_all_of(doc: dict[str, Any]) -> None:
    response = schemas(doc)["GenerationResponse"]
    schemas(doc)["GenerationResponse"] = {"allOf": [{"type": "object", "properties": {}}, response]}


@pytest.mark.parametrize("edit", [_widen_batch, _add_optional_field, _fields_moved_into_all_of])
def test_changes_a_client_survives_are_not_reported(edit: Edit) -> None:
    assert changed(edit) == []


def test_the_command_reports_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = load_contract().document
    new = copy.deepcopy(old)
    _narrow_batch(new)
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old), "utf-8")
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new), "utf-8")
    assert main(["contract", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")]) == 1
    assert "narrowed range: maximum 4 became 2" in capsys.readouterr().out
    assert main(["contract", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "old.yaml")]) == 0
    assert "compatible" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("- not a contract\n", "utf-8")
    assert main(["contract", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "bad.yaml")]) == 2
    assert f"{tmp_path / 'bad.yaml'}: paths: expected an OpenAPI document" in capsys.readouterr().err
    assert read_contract(tmp_path / "old.yaml").document == old


def test_an_older_contract_without_sfmock_extensions_diffs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = {
        "openapi": "3.1.0",
        "paths": {
            "/v1/x": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["n"],
                                        "properties": {"n": {"type": "integer", "maximum": 5}},
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    }
    new = copy.deepcopy(old)
    new["paths"]["/v1/x"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["n"] = {
        "type": "integer",
        "maximum": 9,
    }
    (tmp_path / "old.json").write_text(json.dumps(old), "utf-8")
    (tmp_path / "new.json").write_text(json.dumps(new), "utf-8")
    assert main(["contract", "diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 1
    assert "GET /v1/x 200 /n: widened range: maximum 5 became 9" in capsys.readouterr().out


def _one_path(response: dict[str, Any], request: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "responses": {"429": {"description": "x", "content": {"application/json": {"schema": response}}}}
    }
    if request is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": request}}}
    return {"openapi": "3.1.0", "paths": {"/v1/x": {"post": operation}}, "components": {"schemas": {}}}


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    from sfmock.fidelity.contractdiff import Document

    return [str(b) for b in diff_contracts(Document(old), Document(new))]


TEXT = {"type": "string"}


def test_a_field_every_branch_of_a_new_one_of_requires_is_still_there() -> None:
    old = _one_path({"type": "object", "required": ["message", "data"], "properties": {"message": TEXT, "data": TEXT}})
    documented = {"type": "object", "required": ["message", "data"], "properties": {"message": TEXT, "data": TEXT}}
    observed = {"type": "object", "required": ["message"], "properties": {"message": TEXT, "code": {"type": "integer"}}}
    for key in ("oneOf", "anyOf"):
        both = _one_path(
            {
                key: [
                    documented,
                    {
                        **observed,
                        "required": ["message", "data"],
                        "properties": {**observed["properties"], "data": TEXT},
                    },
                ]
            }
        )
        assert _diff(old, both) == [], key  # both branches keep message and data: nothing breaks
        one = _one_path({key: [documented, observed]})
        # the branch without data breaks a client that reads it; message, in both, does not
        assert _diff(old, one) == [f"POST /v1/x 429 [{key} 2] /data: removed field: 'data' is gone from the response"]


def test_a_request_needs_one_branch_of_a_new_one_of_to_take_it() -> None:
    old = _one_path(TEXT, {"type": "object", "required": ["prompt"], "properties": {"prompt": TEXT}})
    takes = {"type": "object", "required": ["prompt"], "properties": {"prompt": TEXT}}
    refuses = {"type": "object", "required": ["prompt", "seed"], "properties": {"prompt": TEXT, "seed": TEXT}}
    assert _diff(old, _one_path(TEXT, {"oneOf": [refuses, takes]})) == []
    assert _diff(old, _one_path(TEXT, {"oneOf": [refuses, refuses]})) == [
        "POST /v1/x request [oneOf 1] /seed: new required field: requests without it become invalid"
    ]


def test_the_first_contract_against_today_s_keeps_the_429_message(tmp_path: Path) -> None:
    """The first contract's 429 body (``message`` required) against today's ``oneOf`` of the
    documented and the observed wording, both requiring ``message``."""
    old = load_contract().document
    first = copy.deepcopy(old)
    rate_limited = first["components"]["responses"]["RateLimited"]["content"]["application/json"]
    rate_limited["schema"] = {"type": "object", "required": ["message"], "properties": {"message": TEXT, "data": {}}}
    breaks = _diff(first, old)
    assert not [b for b in breaks if " 429 " in b], breaks


def test_a_contract_that_is_not_yaml_is_named_with_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "old.yaml"
    bad.write_text("paths: [1\nx: 2\n", "utf-8")
    assert main(["contract", "diff", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sfmock: error: {bad}: line 2, column 2: not valid YAML: did not find expected ','"), err
    assert "<unicode string>" not in err and "\n" not in err
