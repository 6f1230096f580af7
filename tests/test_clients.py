"""Real clients end to end over a real socket: httpx, requests and the OpenAI SDK."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import requests
from PIL import Image

from conftest import AUTH, KEY, LiveServer, contract_hook, load_fixture


def requests_hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    from sfmock import check_response

    method = response.request.method or "GET"
    check_response(method, urlsplit(response.url).path, response.status_code, response.headers, response.content)


def png_size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as picture:
        picture.load()
        return picture.size


def test_httpx_generates_and_downloads(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, event_hooks={"response": [contract_hook]}) as client:
        response = client.post("/v1/images/generations", json=load_fixture("requests/kolors.json"), headers=AUTH)
        assert response.status_code == 200
        url = response.json()["images"][0]["url"]
    with httpx.Client(event_hooks={"response": [contract_hook]}) as plain:
        download = plain.get(url)
    assert download.status_code == 200 and png_size(download.content) == (1024, 1024)


def test_requests_generates_and_downloads(live_server: LiveServer) -> None:
    hooks = {"response": [requests_hook]}
    response = requests.post(
        f"{live_server.url}/v1/images/generations",
        json=load_fixture("requests/qwen-image.json"),
        headers=AUTH,
        hooks=hooks,
        timeout=10,
    )
    assert response.status_code == 200
    url = response.json()["images"][0]["url"]
    download = requests.get(url, hooks=hooks, timeout=10)
    assert download.status_code == 200 and png_size(download.content) == (1328, 1328)


def test_requests_session_with_api_auth_cannot_download(live_server: LiveServer) -> None:
    # the classic client bug: reusing the API session (and its Authorization) for downloads
    with requests.Session() as session:
        session.headers.update(AUTH)
        session.hooks["response"].append(requests_hook)
        body = session.post(
            f"{live_server.url}/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, timeout=10
        ).json()
        download = session.get(body["images"][0]["url"], timeout=10)
    assert download.status_code == 403 and b"Only one auth mechanism allowed" in download.content


def test_expiry_over_a_real_socket(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, event_hooks={"response": [contract_hook]}) as client:
        url = client.post(
            "/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH
        ).json()["images"][0]["url"]
        live_server.clock.advance(3600)
        expired = client.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


@pytest.fixture
def sdk(live_server: LiveServer) -> Any:
    http_client = httpx.Client(event_hooks={"response": [contract_hook]})
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=KEY, http_client=http_client, max_retries=0)
    yield client
    client.close()


def test_openai_sdk_generates_and_downloads(sdk: Any) -> None:
    result = sdk.images.generate(
        model="Kwai-Kolors/Kolors",
        prompt="a lighthouse",
        extra_body={"image_size": "768x1024", "batch_size": 2, "seed": 42},
    )
    assert len(result.data) == 2 and result.created > 0
    assert result.model_extra["seed"] == 42 and result.model_extra["timings"]["inference"] > 0
    download = httpx.get(result.data[1].url)
    assert download.status_code == 200 and png_size(download.content) == (768, 1024)


def test_openai_sdk_size_and_n_are_ignored_like_the_real_service(sdk: Any) -> None:
    result = sdk.images.generate(model="black-forest-labs/FLUX.1-schnell", prompt="x", n=1, size="512x512")
    assert len(result.data) == 1
    assert png_size(httpx.get(result.data[0].url).content) == (1024, 1024)  # `size` is not a SiliconFlow field


def test_openai_sdk_maps_errors(sdk: Any, live_server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.images.generate(model="acme/none", prompt="x")
    assert bad.value.status_code == 400 and "Model does not exist" in str(bad.value)
    assert bad.value.response.headers["x-siliconcloud-trace-id"]
    wrong_key = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=KEY, max_retries=0, default_headers={"Authorization": "Basic c2s6"}
    )
    with pytest.raises(openai.AuthenticationError):
        wrong_key.images.generate(model="Kwai-Kolors/Kolors", prompt="x")
