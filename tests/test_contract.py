"""The contract document: valid OpenAPI 3.1, shipped with the package, the one source of rules."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources

import httpx
import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from starlette.testclient import TestClient

from conftest import AUTH, FIXTURES, load_fixture
from sfmock import Contract, ContractError, ContractViolation, Settings, check_response, create_app, load_contract


def test_contract_is_valid_openapi_3_1() -> None:
    document = load_contract().document
    assert document["openapi"].startswith("3.1")
    validate(copy.deepcopy(document))  # raises on any violation of the OpenAPI 3.1 schema


def test_validator_rejects_a_broken_document() -> None:
    # the check above can fail: drop a required part and it must
    broken = copy.deepcopy(load_contract().document)
    del broken["paths"]["/v1/models"]["get"]["parameters"][0]["in"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_contract_ships_inside_the_package() -> None:
    shipped = resources.files("sfmock.contracts").joinpath("openapi.yaml").read_text("utf-8")
    assert yaml.safe_load(shipped) == load_contract().document
    repository_copy = FIXTURES.parent / "contracts" / "openapi.yaml"
    if repository_copy.exists():  # a checkout: the package data is this very file
        assert repository_copy.read_text("utf-8") == shipped


def test_served_routes_and_documented_operations_agree() -> None:
    routes = create_app().routes
    # a convertor (the old route's {model:path}: a model id holds a slash) is no part of the template
    served = {(re.sub(r":\w+}", "}", route.path), method) for route in routes for method in route.methods - {"HEAD"}}
    verbs = {"get", "put", "post", "delete", "patch"}
    documented = {
        (path, verb.upper())
        for path, item in load_contract().document["paths"].items()
        for verb in item
        if verb in verbs
    }
    assert served == documented
    assert ("/v1/images/generations", "POST") in served and ("/temporary/outputs/{object}", "GET") in served


def test_model_catalogue_comes_from_the_per_model_rules() -> None:
    models = load_contract().models
    assert {"Kwai-Kolors/Kolors", "Qwen/Qwen-Image", "Qwen/Qwen-Image-Edit", "Qwen/Qwen-Image-Edit-2509"} <= set(models)
    assert any(m.startswith("black-forest-labs/FLUX") for m in models)
    assert "Tongyi-MAI/Z-Image-Turbo" in models
    kolors = models["Kwai-Kolors/Kolors"]
    assert kolors.batch and kolors.sizes == ("1024x1024", "960x1280", "768x1024", "720x1440", "720x1280")
    assert models["Qwen/Qwen-Image"].sizes[0] == "1328x1328"
    assert "image2" in models["Qwen/Qwen-Image-Edit"].ignored
    assert "image2" not in models["Qwen/Qwen-Image-Edit-2509"].ignored
    assert "image_size" in models["Qwen/Qwen-Image-Edit-2509"].ignored


def test_model_enum_and_model_rules_list_the_same_models() -> None:
    contract = load_contract()
    assert contract.request_fields["properties"]["model"]["enum"] == list(contract.models)


def test_recommended_sizes_satisfy_the_size_rule() -> None:
    contract = load_contract()
    rule = contract.request_fields["properties"]["image_size"]
    for model in contract.models.values():
        for size in model.sizes:
            assert re.fullmatch(rule["pattern"], size), (model.id, size)
            width, height = map(int, size.split("x"))
            assert width * height <= rule["x-sfmock-max-pixels"]


def test_defaults_are_the_documented_ones() -> None:
    assert load_contract().request_defaults() == {"batch_size": 1, "num_inference_steps": 20, "guidance_scale": 7.5}


def test_a_model_added_to_the_contract_is_served_without_code() -> None:
    document = copy.deepcopy(load_contract().document)
    schemas = document["components"]["schemas"]
    schemas["Model.Tiny"] = copy.deepcopy(schemas["Model.FluxSchnell"])
    schemas["Model.Tiny"]["properties"] = {"num_inference_steps": {"maximum": 4}}
    schemas["GenerationFields"]["properties"]["model"]["enum"].append("acme/tiny")
    schemas["GenerationRequest"]["allOf"].append(
        {
            "if": {"properties": {"model": {"const": "acme/tiny"}}, "required": ["model"]},
            "then": {"$ref": "#/components/schemas/Model.Tiny"},
        }
    )
    contract = Contract(document)
    with TestClient(create_app(Settings(), contract=contract)) as client:
        ok = client.post("/v1/images/generations", json={"model": "acme/tiny", "prompt": "x"}, headers=AUTH)
        too_many = client.post(
            "/v1/images/generations", json={"model": "acme/tiny", "prompt": "x", "num_inference_steps": 5}, headers=AUTH
        )
        listed = client.get("/v1/models", headers=AUTH).json()["data"]
    assert ok.status_code == 200
    assert too_many.status_code == 400 and "num_inference_steps" in too_many.json()["message"]
    assert "acme/tiny" in [m["id"] for m in listed]


def test_a_malformed_model_rule_is_a_contract_error() -> None:
    document = copy.deepcopy(load_contract().document)
    del document["components"]["schemas"]["Model.Kolors"]["x-sfmock-model"]
    with pytest.raises(ContractError, match="per-model rule"):
        Contract(document)


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "responses").glob("*.json")))
def test_real_service_bodies_conform(name: str) -> None:
    # every answer the real service is documented or seen to give is allowed by the contract
    sample = load_fixture(f"responses/{name}")
    body = json.dumps(sample["body"]).encode()
    dialect = sample.get("dialect", "documented")
    check_response("POST", "/v1/images/generations", sample["status"], sample["headers"], body, dialect=dialect)


def test_contract_hook_is_installed(client: TestClient) -> None:
    (hook,) = client.event_hooks["response"]
    broken = httpx.Response(200, json={"nope": 1}, request=httpx.Request("POST", "http://x/v1/images/generations"))
    with pytest.raises(ContractViolation):
        hook(broken)
