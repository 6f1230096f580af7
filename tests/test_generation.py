"""The 200 body: images, data, timings, seed, created, shared_id and the trace id."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conftest import data_url
from sfmock import Settings, VirtualClock, create_app, load_contract

Post = Callable[..., httpx.Response]


def picture_size(client: TestClient, url: str) -> tuple[int, int]:
    response = client.get(url)
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as picture:
        return picture.size


def test_documented_body_and_observed_extras(generate: Post, clock: VirtualClock) -> None:
    response = generate(model="Kwai-Kolors/Kolors", prompt="cat", image_size="1024x1024", seed=42)
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"images", "data", "timings", "seed", "shared_id", "created"}
    assert body["data"] == body["images"] and len(body["images"]) == 1
    assert body["seed"] == 42
    assert body["shared_id"] == "0"
    assert body["created"] == int(clock.now())
    assert response.headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("batch", [1, 2, 3, 4])
def test_kolors_returns_batch_size_images(generate: Post, batch: int) -> None:
    body = generate(model="Kwai-Kolors/Kolors", prompt="cat", batch_size=batch).json()
    assert len(body["images"]) == batch == len({image["url"] for image in body["images"]})


def test_seed_is_drawn_within_range_when_absent(generate: Post) -> None:
    seeds = {generate(model="Qwen/Qwen-Image", prompt="cat").json()["seed"] for _ in range(20)}
    assert len(seeds) > 1
    assert all(0 <= seed <= 9_999_999_999 for seed in seeds)


def test_same_server_seed_gives_same_bodies(clock: VirtualClock) -> None:
    def run() -> list[object]:
        with TestClient(create_app(Settings(seed=3), clock=VirtualClock(clock.now()))) as client:
            post = {"model": "Qwen/Qwen-Image", "prompt": "cat"}
            responses = [
                client.post("/v1/images/generations", json=post, headers={"Authorization": "Bearer k"})
                for _ in range(3)
            ]
            return [(r.json(), r.headers["x-siliconcloud-trace-id"]) for r in responses]

    assert run() == run()


def test_timings_are_plausible_for_model_and_steps(generate: Post) -> None:
    def inference(**extra: object) -> float:
        body = generate(model="Kwai-Kolors/Kolors", prompt="cat", seed=1, **extra).json()
        return float(body["timings"]["inference"])

    base = inference(num_inference_steps=20)
    assert 0.5 < base < 5  # a 1 MP Kolors image takes seconds, not minutes
    assert inference(num_inference_steps=40) == pytest.approx(2 * base, rel=0.01)
    assert inference(num_inference_steps=20, batch_size=2) == pytest.approx(2 * base, rel=0.01)
    fast = generate(model="black-forest-labs/FLUX.1-schnell", prompt="cat", num_inference_steps=4).json()
    assert fast["timings"]["inference"] < base


def test_images_have_the_requested_size(generate: Post, client: TestClient) -> None:
    for size in load_contract().models["Qwen/Qwen-Image"].sizes:
        url = generate(model="Qwen/Qwen-Image", prompt="cat", image_size=size).json()["images"][0]["url"]
        assert picture_size(client, url) == tuple(map(int, size.split("x")))


def test_model_default_size_without_image_size(generate: Post, client: TestClient) -> None:
    url = generate(model="Qwen/Qwen-Image", prompt="cat").json()["images"][0]["url"]
    assert picture_size(client, url) == (1328, 1328)


def test_edit_models_follow_the_input_image(generate: Post, client: TestClient) -> None:
    body = generate(model="Qwen/Qwen-Image-Edit-2509", prompt="x", image=data_url(), image_size="1024x1024").json()
    assert picture_size(client, body["images"][0]["url"]) == (96, 64)  # input.png, image_size ignored


def test_edit_models_use_the_default_size_for_url_inputs(generate: Post, client: TestClient) -> None:
    body = generate(model="Qwen/Qwen-Image-Edit", prompt="x", image="https://example.com/a.png").json()
    assert picture_size(client, body["images"][0]["url"]) == (1328, 1328)


def test_edit_models_scale_huge_inputs_down(generate: Post, client: TestClient) -> None:
    big = io.BytesIO()
    Image.new("L", (4000, 2000)).save(big, "PNG")
    url = "data:image/png;base64," + base64.b64encode(big.getvalue()).decode()
    body = generate(model="Qwen/Qwen-Image-Edit", prompt="x", image=url).json()
    width, height = picture_size(client, body["images"][0]["url"])
    assert width * height <= 4_194_304 and abs(width / height - 2) < 0.01


def test_urls_are_presigned_on_the_public_url(clock: VirtualClock) -> None:
    settings = Settings(public_url="https://images.example.test/base/", url_ttl=600)
    with TestClient(create_app(settings, clock=clock)) as client:
        body = client.post(
            "/v1/images/generations",
            json={"model": "Kwai-Kolors/Kolors", "prompt": "x"},
            headers={"Authorization": "Bearer k"},
        ).json()
    parts = urlsplit(body["images"][0]["url"])
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == "https://images.example.test"
    assert parts.path.startswith("/base/temporary/outputs/") and parts.path.endswith(".png")
    assert query["X-Amz-Expires"] == ["600"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert {"X-Amz-Date", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-SignedHeaders"} <= set(query)


def test_picture_is_deterministic_for_model_prompt_seed_size(generate: Post, client: TestClient) -> None:
    def png(**body: object) -> bytes:
        url = generate(model="Kwai-Kolors/Kolors", image_size="768x1024", **body).json()["images"][0]["url"]
        return client.get(url).content

    first = png(prompt="cat", seed=5)
    assert png(prompt="cat", seed=5, num_inference_steps=30) == first
    assert png(prompt="cat", seed=6) != first
    assert png(prompt="dog", seed=5) != first


def test_every_response_has_a_unique_trace_id(client: TestClient, generate: Post) -> None:
    responses = [
        generate(model="Kwai-Kolors/Kolors", prompt="x"),
        generate(model="nope", prompt="x"),
        client.get("/v1/models"),
        client.get("/nowhere"),
        client.put("/v1/models"),
    ]
    ids = [r.headers["x-siliconcloud-trace-id"] for r in responses]
    assert len(set(ids)) == len(ids) and all(ids)
