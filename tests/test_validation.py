"""Request rules: every field rule and every per-model rule, in lenient and strict mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import AUTH, data_url, load_fixture
from sfmock import Settings, create_app, load_contract

Post = Callable[..., httpx.Response]
KOLORS = "Kwai-Kolors/Kolors"
QWEN = "Qwen/Qwen-Image"
EDIT = "Qwen/Qwen-Image-Edit"
EDIT_2509 = "Qwen/Qwen-Image-Edit-2509"
FLUX_DEV = "black-forest-labs/FLUX.1-dev"
STRICT = {"X-Sfmock-Strict": "1"}
NOT_AN_IMAGE = "data:image/png;base64,aGVsbG8gd29ybGQ="  # "hello world"


def valid_request(model: str) -> dict[str, Any]:
    """The smallest request each model accepts even in strict mode."""
    spec = load_contract().models[model]
    body: dict[str, Any] = {"model": model, "prompt": "a lighthouse"}
    if spec.output_size == "input":
        body["image"] = data_url()
    elif spec.sizes:
        body["image_size"] = spec.sizes[0]
    return body


def assert_rejected(response: httpx.Response, field: str, rule: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 20012 and body["data"] is None
    assert field in body["message"], body["message"]
    assert f"(rule: {rule}" in body["message"], body["message"]


# (model, field, value, rule broken): rules that hold in both modes
FIELD_RULES = [
    (KOLORS, "model", 123, "type"),
    (KOLORS, "model", "", "minLength"),
    (KOLORS, "prompt", "", "minLength"),
    (KOLORS, "prompt", ["a"], "type"),
    (KOLORS, "negative_prompt", 5, "type"),
    (KOLORS, "image_size", "1024*1024", "pattern"),
    (KOLORS, "image_size", "1024x", "pattern"),
    (KOLORS, "image_size", "3000x3000", "x-sfmock-max-pixels"),
    (KOLORS, "batch_size", 0, "minimum"),
    (KOLORS, "batch_size", 5, "maximum"),
    (KOLORS, "batch_size", "2", "type"),
    (KOLORS, "batch_size", 1.5, "type"),
    (KOLORS, "seed", -1, "minimum"),
    (KOLORS, "seed", 10_000_000_000, "maximum"),
    (KOLORS, "seed", "42", "type"),
    (KOLORS, "num_inference_steps", 0, "minimum"),
    (KOLORS, "num_inference_steps", 101, "maximum"),
    (KOLORS, "num_inference_steps", True, "type"),
    (KOLORS, "guidance_scale", -0.5, "minimum"),
    (KOLORS, "guidance_scale", 20.5, "maximum"),
    (KOLORS, "guidance_scale", "7.5", "type"),
    (QWEN, "cfg", 0.05, "minimum"),
    (QWEN, "cfg", 21, "maximum"),
    (EDIT_2509, "image", "ftp://example.com/a.png", "pattern"),
    (EDIT_2509, "image", "data:image/png;base64,@@@@", "pattern"),  # the contract says base64
    (EDIT_2509, "image", "data:image/png;base64,AAAA", "x-sfmock-image-ref"),  # base64, but of no image
    (EDIT_2509, "image", NOT_AN_IMAGE, "x-sfmock-image-ref"),
    (EDIT_2509, "image", 42, "type"),
    (EDIT_2509, "image2", "file:///etc/passwd", "pattern"),
    (EDIT_2509, "image3", "data:image/png;base64,", "pattern"),
    (FLUX_DEV, "num_inference_steps", 31, "maximum"),
    (FLUX_DEV, "image_size", "2048x2048", "x-sfmock-max-pixels"),
]


@pytest.mark.parametrize("strict", ["0", "1"])
@pytest.mark.parametrize(("model", "field", "value", "rule"), FIELD_RULES)
def test_field_rules_hold_in_both_modes(
    generate: Post, strict: str, model: str, field: str, value: Any, rule: str
) -> None:
    body = {**valid_request(model), field: value}
    response = generate(headers={"X-Sfmock-Strict": strict}, **body)
    assert_rejected(response, field, rule)


@pytest.mark.parametrize("field", ["model", "prompt"])
def test_required_fields(generate: Post, field: str) -> None:
    body = valid_request(KOLORS)
    del body[field]
    assert_rejected(generate(**body), repr(field), "required")


@pytest.mark.parametrize("model", [EDIT, EDIT_2509, "black-forest-labs/FLUX.1-Kontext-dev"])
def test_edit_models_require_an_image(generate: Post, model: str) -> None:
    body = valid_request(model)
    del body["image"]
    assert_rejected(generate(**body), "'image'", "required")


@pytest.mark.parametrize("model", sorted(load_contract().models))
@pytest.mark.parametrize("strict", ["0", "1"])
def test_every_model_accepts_its_minimal_request(generate: Post, model: str, strict: str) -> None:
    response = generate(headers={"X-Sfmock-Strict": strict}, **valid_request(model))
    assert response.status_code == 200, response.text


def test_unknown_model_is_the_documented_400(generate: Post) -> None:
    response = generate(model="acme/does-not-exist", prompt="x")
    assert response.json() == load_fixture("responses/400-unknown-model.json")["body"]


# fields the docs call "only applicable to" another model: (model, field, value)
IGNORED = [
    (KOLORS, "cfg", 4.0),
    (QWEN, "batch_size", 4),
    (QWEN, "guidance_scale", 7.5),
    (QWEN, "image", "https://example.com/a.png"),
    (EDIT, "image_size", "1024x1024"),
    (EDIT, "image2", "https://example.com/b.png"),
    ("black-forest-labs/FLUX.1-schnell", "batch_size", 2),
    ("black-forest-labs/FLUX.1-schnell", "guidance_scale", 3.5),
    ("Tongyi-MAI/Z-Image-Turbo", "cfg", 2.0),
]


@pytest.mark.parametrize(("model", "field", "value"), IGNORED)
def test_lenient_mode_ignores_fields_of_other_models(generate: Post, model: str, field: str, value: Any) -> None:
    response = generate(**{**valid_request(model), field: value})
    assert response.status_code == 200, response.text
    assert len(response.json()["images"]) == 1  # a batch_size the model ignores makes no batch


@pytest.mark.parametrize(("model", "field", "value"), IGNORED)
def test_strict_mode_rejects_fields_of_other_models(generate: Post, model: str, field: str, value: Any) -> None:
    response = generate(headers=STRICT, **{**valid_request(model), field: value})
    assert_rejected(response, field, "x-sfmock-ignored, strict mode")
    assert model in response.json()["message"]


@pytest.mark.parametrize("model", [KOLORS, QWEN, "Tongyi-MAI/Z-Image-Turbo"])
def test_strict_mode_wants_a_recommended_size(generate: Post, model: str) -> None:
    lenient = generate(**{**valid_request(model), "image_size": "1000x1000"})
    strict = generate(headers=STRICT, **{**valid_request(model), "image_size": "1000x1000"})
    missing = generate(headers=STRICT, model=model, prompt="x")
    assert lenient.status_code == 200
    assert_rejected(strict, "image_size", "enum, strict mode")
    assert_rejected(missing, "'image_size'", "required, strict mode")


def test_unknown_fields_are_accepted_in_both_modes(generate: Post) -> None:
    body = {**valid_request(KOLORS), "output_format": "png", "n": 1, "user": "u", "extra": {"deep": [1]}}
    assert generate(**body).status_code == 200
    assert generate(headers=STRICT, **body).status_code == 200


def test_real_client_fixture_is_accepted_leniently_and_flagged_strictly(generate: Post) -> None:
    body = load_fixture("requests/flux-openai-style.json")
    assert generate(**body).status_code == 200
    assert_rejected(generate(headers=STRICT, **body), "batch_size", "x-sfmock-ignored, strict mode")


@pytest.mark.parametrize("name", ["kolors.json", "kolors-image.json", "qwen-image-edit-2509.json", "qwen-image.json"])
def test_reference_examples_are_accepted(generate: Post, name: str) -> None:
    assert generate(**load_fixture(f"requests/{name}")).status_code == 200


def test_strict_mode_from_settings_and_header_override() -> None:
    body = {**valid_request(QWEN), "batch_size": 2}
    with TestClient(create_app(Settings(strict=True))) as client:
        url = "/v1/images/generations"
        assert client.post(url, json=body, headers=AUTH).status_code == 400
        relaxed = client.post(url, json=body, headers={**AUTH, "X-Sfmock-Strict": "0"})
        assert relaxed.status_code == 200


def test_bad_strict_header_is_a_clear_400(generate: Post) -> None:
    response = generate(headers={"X-Sfmock-Strict": "maybe"}, **valid_request(KOLORS))
    assert response.status_code == 400
    assert "X-Sfmock-Strict" in response.json()["message"]


def test_huge_invalid_values_are_not_echoed_whole(generate: Post) -> None:
    response = generate(**{**valid_request(EDIT_2509), "image": "ftp://" + "a" * 100_000})
    assert response.status_code == 400
    assert len(response.json()["message"]) < 500
