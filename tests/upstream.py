"""A stand-in for the real service, for the proxy and drift tests.

It answers as the service does (``fixtures/responses/``, observed shapes, an object
store on the same origin), and drifts on demand: ``upstream.state.drift`` holds names
from ``DRIFTS``. It counts every request it gets in ``upstream.state.seen``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from sfmock.fidelity.proxy import create_proxy
from sfmock.imaging import render_png
from sfmock.server import ServerThread, listen

DRIFTS = ("extra-field", "changed-type", "missing-header", "renamed-code", "html-502")
JSON = "application/json; charset=utf-8"
KEY = "sk-upstream-real-key-0123456789"
MODELS = (
    "Kwai-Kolors/Kolors",
    "Qwen/Qwen-Image",
    "black-forest-labs/FLUX.1-schnell",
    "Tongyi-MAI/Z-Image-Turbo",
    "baidu/ERNIE-Image-Turbo",
)
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
UNKNOWN_MODEL = {"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None}


def _answer(request: Request, body: Any, status: int = 200) -> Response:
    drift: set[str] = request.app.state.drift
    headers = {} if "missing-header" in drift else {"x-siliconcloud-trace-id": "ti_" + "0" * 16}
    # Go's encoder escapes '&' as \u0026: the proxy must cope with it
    text = json.dumps(body, separators=(",", ":")).replace("&", "\\u0026")
    return Response(text, status, headers=headers, media_type=JSON)


async def generate(request: Request) -> Response:
    app = request.app
    app.state.seen.append(("POST", request.url.path))
    if request.headers.get("authorization") != f"Bearer {KEY}":
        return _answer(request, "Invalid token", 401)
    body = json.loads(await request.body())
    if "html-502" in app.state.drift:
        return Response(HTML_502, 502, media_type="text/html")
    if body.get("model") not in MODELS:
        if "renamed-code" in app.state.drift:
            return _answer(request, {"error_code": 20012, "message": "Model does not exist.", "data": None}, 400)
        return _answer(request, UNKNOWN_MODEL, 400)
    name = hashlib.sha256(body["prompt"].encode()).hexdigest()[:24]
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDREALCREDENTIAL%2F20261129%2Fcn-shanghai-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20261129T120000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=5ec2e7realsignature0123456789abcdef"
    )
    url = f"{request.base_url}default/outputs/{name}.png?{query}"
    seed: Any = body.get("seed", 123456)
    answer: dict[str, Any] = {
        "images": [{"url": url}],
        "timings": {"inference": 0.272},
        "seed": str(seed) if "changed-type" in app.state.drift else seed,
        "shared_id": "0",
        "data": [{"url": url}],
        "created": 1764417600,
    }
    if "extra-field" in app.state.drift:
        answer["nsfw_content_detected"] = [False]
    return _answer(request, answer)


async def download(request: Request) -> Response:
    request.app.state.seen.append(("GET", request.url.path))
    if request.query_params.get("X-Amz-Signature") != "5ec2e7realsignature0123456789abcdef":
        xml = b"<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message><RequestId>r1</RequestId></Error>"
        return Response(xml, 403, headers={"x-amz-request-id": "r1"}, media_type="application/xml")
    png = render_png(b"upstream", 32, 24)
    return Response(png, headers={"x-amz-request-id": "r2", "etag": '"abc"'}, media_type="image/png")


async def models(request: Request) -> Response:
    request.app.state.seen.append(("GET", request.url.path))
    data = [{"id": m, "object": "model", "created": 0, "owned_by": ""} for m in MODELS]
    return _answer(request, {"object": "list", "data": data})


async def user_info(request: Request) -> Response:
    request.app.state.seen.append(("GET", request.url.path))
    if request.headers.get("authorization") != f"Bearer {KEY}":
        return _answer(request, "Invalid token", 401)
    data = {
        "id": "u1",
        "name": "n",
        "image": "",
        "email": "e@example.com",
        "isAdmin": False,
        "balance": "0.88",
        "status": "normal",
        "introduction": "",
        "role": "",
        "chargeBalance": "88.00",
        "totalBalance": "88.88",
    }
    return _answer(request, {"code": 20000, "message": "OK", "status": True, "data": data})


async def not_found(request: Request) -> Response:
    request.app.state.seen.append((request.method, request.url.path))
    return _answer(request, "404 page not found", 404)


def make_upstream() -> Starlette:
    """A fresh stand-in; set ``app.state.drift`` to make it drift."""
    app = Starlette(
        routes=[
            Route("/v1/images/generations", generate, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/user/info", user_info, methods=["GET"]),
            Route("/default/outputs/{name}", download, methods=["GET"]),
            Route("/{rest:path}", not_found, methods=["GET", "POST"]),
        ]
    )
    app.state.drift = set()
    app.state.seen = []
    return app


@contextmanager
def running_upstream() -> Iterator[tuple[Starlette, str]]:
    """The stand-in on 127.0.0.1, port 0: ``(app, origin)``."""
    app = make_upstream()
    sock = listen("127.0.0.1", 0)
    with ServerThread(app, sock).running():
        yield app, f"http://127.0.0.1:{sock.getsockname()[1]}"


def proxy_client(origin: str, **options: Any) -> TestClient:
    """An in-process client of a proxy to ``origin`` (``create_proxy`` options)."""
    return TestClient(create_proxy(origin, **options), base_url="http://127.0.0.1:9999")
