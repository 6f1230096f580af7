"""The Portkey AI gateway (npm ``@portkey-ai/gateway``, real Node, the real package) in front
of sfmock, as a user of the gateway runs it: the gateway's own server, its ``siliconflow``
and ``openai`` providers pointed at sfmock with ``x-portkey-custom-host``.

The ``siliconflow`` provider posts to the 2024 route, ``/v1/{model}/text-to-image``, the
model in the path and OpenAI's ``size`` sent as ``image_size`` (issue 24: against a fake
without that route the gateway answered its own 500). The ``openai`` provider posts to
``/v1/images/generations`` with OpenAI's ``size`` only: the service's default size answers.
The gateway hands back sfmock's body; the client downloads the image from its URL."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from redis_server import free_port
from sfmock import Settings, load_settings
from sfmock.server import FakeServer

NODE_DIR = Path(__file__).parent / "node"
GATEWAY = NODE_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
PROFILE = Path(__file__).resolve().parent.parent / "fixtures" / "live-2026.yaml"
NODE, NPM = shutil.which("node"), shutil.which("npm")
KEY = "sk-portkey-0123456789"

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node and npm are not installed (.ci/run installs them)"
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    """The gateway's own server on a free port (headless: no UI); its base URL."""
    if not GATEWAY.is_file():  # .ci/run installs the packages; a developer may not have
        assert NPM is not None
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True, timeout=300)
    assert NODE is not None
    port = free_port()
    process = subprocess.Popen(
        [NODE, str(GATEWAY), f"--port={port}", "--headless"],
        cwd=NODE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60  # a bound, not a speed: the gateway starts in about a second
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text == "AI Gateway says hey!":
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().decode() if process.stderr and process.poll() is not None else ""
                pytest.fail(f"the Portkey gateway did not start: {error[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def through_gateway(gateway: str, server: FakeServer, provider: str, body: dict[str, object]) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "x-portkey-provider": provider,
        "x-portkey-custom-host": server.api_url,  # http://127.0.0.1:PORT/v1
    }
    return httpx.post(f"{gateway}/v1/images/generations", json=body, headers=headers, timeout=60)


def download(url: str) -> Image.Image:
    answer = httpx.get(url, timeout=30)  # pre-signed: no Authorization header
    assert answer.status_code == 200, answer.text
    return Image.open(io.BytesIO(answer.content))


@pytest.mark.parametrize("profile", ["default", "2026"])
def test_the_siliconflow_provider_generates_and_downloads_an_image(gateway: str, profile: str) -> None:
    settings = load_settings(PROFILE) if profile == "2026" else Settings(seed=1)
    with FakeServer(settings) as server:
        body = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "size": "768x1024"}
        answer = through_gateway(gateway, server, "siliconflow", body)
        assert answer.status_code == 200, answer.text
        url = answer.json()["images"][0]["url"]
        assert download(url).size == (768, 1024)
        post = server.journal.entries(method="POST")[0]
    assert post.path == "/v1/Kwai-Kolors/Kolors/text-to-image"  # the old route, the model in the path
    assert post.model == "Kwai-Kolors/Kolors" and post.status == 200
    assert post.body["image_size"] == "768x1024" and "model" not in post.body
    if profile == "2026":
        assert len(url) > 1800  # the live URL's size went through the gateway whole


def test_the_siliconflow_provider_relays_the_services_refusal(gateway: str) -> None:
    """A range violation on the old route answers the live 20015 (the 2026 profile), which
    the gateway passes on with its status."""
    with FakeServer(load_settings(PROFILE)) as server:
        body = {"model": "Kwai-Kolors/Kolors", "prompt": "x", "num_inference_steps": 0}
        answer = through_gateway(gateway, server, "siliconflow", body)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"code": 20015, "message": "num_inference_steps: Must be greater than or equal to 1"}


def test_the_openai_provider_gets_the_models_default_size(gateway: str) -> None:
    with FakeServer(Settings(seed=1)) as server:
        body = {"model": "Qwen/Qwen-Image", "prompt": "a neon sign", "size": "512x512", "n": 1}
        answer = through_gateway(gateway, server, "openai", body)
        assert answer.status_code == 200, answer.text
        picture = download(answer.json()["data"][0]["url"])
        post = server.journal.entries(method="POST")[0]
    assert post.path == "/v1/images/generations" and post.body["size"] == "512x512"
    assert "image_size" not in post.body
    assert picture.size == (1328, 1328)  # Qwen-Image's default: OpenAI's size is not SiliconFlow's
