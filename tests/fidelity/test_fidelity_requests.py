"""The "POST /v1/images/generations" section of the facts file: the request's rules."""

from __future__ import annotations

from typing import Any

import pytest
from fidelity_helpers import GEN, KOLORS, QWEN, fake, generate

from conftest import data_url
from sfmock import load_contract

EDIT = {"model": "Qwen/Qwen-Image-Edit-2509", "prompt": "make it blue"}


def test_a_bearer_key_is_required() -> None:
    """Fact "POST /v1/images/generations": "Auth: Authorization: Bearer <key>" [doc]."""
    with fake() as client:
        assert client.post(GEN, json=KOLORS).json() == "Invalid token"
        assert client.post(GEN, json=KOLORS, headers={"Authorization": "Basic eA=="}).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "Kwai-Kolors/Kolors"}, "prompt"),
        ({**KOLORS, "batch_size": 5}, "batch_size"),
        ({**KOLORS, "batch_size": 0}, "batch_size"),
        ({**KOLORS, "seed": 10_000_000_000}, "seed"),
        ({**KOLORS, "seed": -1}, "seed"),
        ({**KOLORS, "num_inference_steps": 101}, "num_inference_steps"),
        ({**KOLORS, "num_inference_steps": 0}, "num_inference_steps"),
        ({**KOLORS, "guidance_scale": 20.5}, "guidance_scale"),
        ({**QWEN, "cfg": 0.05}, "cfg"),
        ({**QWEN, "cfg": 21}, "cfg"),
        ({**EDIT, "image": "ftp://x/y.png"}, "image"),
        ({**KOLORS, "image_size": "big"}, "image_size"),
    ],
)
def test_the_field_table_ranges(body: dict[str, Any], field: str) -> None:
    """Fact "POST /v1/images/generations" field table [doc]: model and prompt required,
    batch_size 1..4, seed 0..9999999999, num_inference_steps 1..100, guidance_scale 0..20,
    cfg 0.1..20, image a data URL or http(s) URL, image_size "WxH"; a broken rule answers
    the documented 400 (code 20012) naming the field."""
    with fake() as client:
        answer = client.post(GEN, json=body, headers={"Authorization": "Bearer sk-fidelity"})
    assert answer.status_code == 400 and answer.json()["code"] == 20012
    assert field in answer.json()["message"]


def test_the_field_table_edges_are_accepted() -> None:
    """Fact "POST /v1/images/generations" field table [doc]: the edges of each range pass,
    and the defaults are batch_size 1, num_inference_steps 20, guidance_scale 7.5."""
    edges = {"batch_size": 4, "seed": 9_999_999_999, "num_inference_steps": 100, "guidance_scale": 20}
    with fake() as client:
        answer = generate(client, **KOLORS, **edges)
        assert answer.status_code == 200 and len(answer.json()["images"]) == 4
        assert generate(client, **QWEN, cfg=0.1, seed=0, num_inference_steps=1).status_code == 200
        assert generate(client, **EDIT, image="https://example.test/in.png").status_code == 200
    defaults = load_contract().request_defaults()
    assert (defaults["batch_size"], defaults["num_inference_steps"], defaults["guidance_scale"]) == (1, 20, 7.5)


@pytest.mark.parametrize(
    ("field", "value", "model"),
    [
        ("batch_size", 2, "Qwen/Qwen-Image"),
        ("guidance_scale", 5, "Qwen/Qwen-Image"),
        ("cfg", 4.0, "Kwai-Kolors/Kolors"),
        ("image2", "https://example.test/b.png", "Qwen/Qwen-Image-Edit"),
        ("image_size", "1024x1024", "Qwen/Qwen-Image-Edit-2509"),
    ],
)
def test_fields_for_another_model_are_ignored_leniently_and_refused_strictly(
    field: str, value: Any, model: str
) -> None:
    """Fact "POST /v1/images/generations" column "applies to" [doc] ("only applicable to"):
    the service ignores such a field; the ``strict`` setting refuses it."""
    body = {"model": model, "prompt": "x", field: value}
    if "Edit" in model:
        body["image"] = "https://example.test/in.png"
    else:  # strict mode also wants a recommended size
        body.setdefault("image_size", load_contract().models[model].sizes[0])
    with fake() as client:
        assert generate(client, **body).status_code == 200
    with fake(strict=True) as client:
        refused = generate(client, **body)
    assert refused.status_code == 400 and field in refused.json()["message"]


@pytest.mark.parametrize(
    ("model", "sizes"),
    [
        ("Kwai-Kolors/Kolors", ["1024x1024", "960x1280", "768x1024", "720x1440", "720x1280"]),
        ("Qwen/Qwen-Image", ["1328x1328", "1664x928", "928x1664", "1472x1140", "1140x1472", "1584x1056", "1056x1584"]),
        ("Tongyi-MAI/Z-Image-Turbo", ["512x512", "768x1024", "1024x576", "576x1024"]),
    ],
)
def test_recommended_sizes(model: str, sizes: list[str]) -> None:
    """Fact "POST /v1/images/generations" "Recommended sizes" [doc] (and Z-Image-Turbo's in
    "Other image models listed over time" [doc]): exactly these; strict mode wants one."""
    assert list(load_contract().models[model].sizes) == sizes
    with fake(strict=True) as client:
        assert generate(client, model=model, prompt="x", image_size=sizes[-1]).status_code == 200
        assert generate(client, model=model, prompt="x", image_size="640x640").status_code == 400


def test_flux_dev_caps_pixels_and_steps() -> None:
    """Fact "Other image models listed over time" [doc]: "FLUX.1-dev caps pixels at 2,359,296
    and steps at 30"."""
    flux = {"model": "black-forest-labs/FLUX.1-dev", "prompt": "x"}
    with fake() as client:
        assert generate(client, **flux, image_size="1536x1536", num_inference_steps=30).status_code == 200
        assert generate(client, **flux, image_size="1537x1536").status_code == 400
        assert generate(client, **flux, num_inference_steps=31).status_code == 400


def test_the_catalogue_holds_the_listed_models() -> None:
    """Fact "Other image models listed over time" [doc] and "Observed 2025-2026" row "Image
    models come and go" [seen]: the default catalogue (dated in the README)."""
    assert sorted(load_contract().models) == [
        "Kwai-Kolors/Kolors",
        "Qwen/Qwen-Image",
        "Qwen/Qwen-Image-Edit",
        "Qwen/Qwen-Image-Edit-2509",
        "Tongyi-MAI/Z-Image-Turbo",
        "baidu/ERNIE-Image-Turbo",  # "Observed in 2026, second look" [seen May 2026]
        "black-forest-labs/FLUX.1-Kontext-dev",
        "black-forest-labs/FLUX.1-dev",
        "black-forest-labs/FLUX.1-schnell",
    ]


def test_unknown_fields_are_accepted_by_default_and_refused_by_setting() -> None:
    """Fact "POST /v1/images/generations": "Real clients send fields the docs do not list
    (output_format, response_format, user, n, size). The real service accepts them [guess]":
    the ``unknown_fields`` setting (``accept`` by default, or ``reject``)."""
    extra = {"n": 1, "size": "1024x1024", "output_format": "png", "response_format": "url", "user": "u"}
    with fake() as client:
        assert generate(client, **KOLORS, **extra).status_code == 200
    with fake(strict=True) as client:
        assert generate(client, **KOLORS, **extra, image_size="1024x1024").status_code == 200
    with fake(unknown_fields="reject") as client:
        refused = generate(client, **KOLORS, **extra)
        assert refused.status_code == 400 and refused.json()["message"].startswith("Invalid parameter: n:")
        assert generate(client, **KOLORS).status_code == 200


def test_edit_models_ignore_image_size_and_follow_the_input() -> None:
    """Fact "POST /v1/images/generations": "For the edit models an image_size is silently
    ignored and the output follows the input image" [seen]."""
    with fake() as client:
        url = generate(client, **EDIT, image=data_url(), image_size="1024x1024").json()["images"][0]["url"]
        assert "-96x64_0.png" in url  # fixtures/images/input.png is 96x64
