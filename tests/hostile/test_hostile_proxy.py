"""The proxy is as strict as ``serve`` (issue 25): body cap, read timeout, Host and Origin
checks on its control route, paths kept under ``/v1/``, and ``--downloads`` fetching only
the image URLs of generation answers on allowed origins (no reflected SSRF).

Every server here is on 127.0.0.1: the stand-in for the service (tests/upstream.py), and
an upstream of this file's own that reflects URLs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sfmock import Settings
from sfmock.cli import main
from sfmock.imaging import render_png
from sfmock.server import ServerThread, listen
from upstream import KEY, proxy_client

AUTH = {"Authorization": f"Bearer {KEY}"}
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 7}


def test_a_body_over_serves_cap_is_refused_and_not_forwarded(upstream: tuple[Starlette, str], origin: str) -> None:
    cap = Settings().max_body_bytes
    with proxy_client(origin) as client:
        answer = client.post("/v1/images/generations", content=b"x" * (cap + 1), headers=AUTH)
    assert answer.status_code == 413
    assert "limit" in answer.json()["error"]
    assert upstream[0].state.seen == []


def test_a_body_streamed_past_the_cap_is_refused() -> None:
    with proxy_client("http://127.0.0.1:9", max_body_bytes=1000) as client:

        def chunks() -> Iterator[bytes]:
            yield from [b"x" * 600] * 3

        answer = client.post("/v1/images/generations", content=chunks(), headers=AUTH)
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "path", ["/v1/%2e%2e/admin", "/v1/%2E%2E/%2e%2e/admin", "/v1/..%2Fadmin", "/v1/x%5C..%5C..%5Cadmin"]
)
def test_a_path_that_leaves_v1_is_refused_not_forwarded(
    upstream: tuple[Starlette, str], origin: str, path: str
) -> None:
    with proxy_client(origin) as client:
        answer = client.get(path, headers=AUTH)
    assert answer.status_code == 400
    assert "/v1/" in answer.json()["error"]
    assert upstream[0].state.seen == []  # the key went nowhere


def test_a_path_is_forwarded_resolved(upstream: tuple[Starlette, str], origin: str) -> None:
    with proxy_client(origin) as client:
        answer = client.get("/v1/user/%2e%2e//models", headers=AUTH)
    assert answer.status_code == 200
    assert upstream[0].state.seen == [("GET", "/v1/models")]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Host": "evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
    ],
)
def test_the_drift_route_refuses_other_sites_as_serve_does(origin: str, headers: dict[str, str]) -> None:
    with proxy_client(origin) as client:
        assert client.get("/_sfmock/drift").status_code == 200
        assert client.get("/_sfmock/drift", headers={"Origin": "http://127.0.0.1:9999"}).status_code == 200
        assert client.get("/_sfmock/drift", headers=headers).status_code == 403
        assert client.delete("/_sfmock/drift", headers=headers).status_code == 403


def test_half_a_request_is_cut_off_at_the_read_timeout(origin: str) -> None:
    """The proxy command serves with serve's read timeout (here 1 s; a minute proves a hang)."""
    command = [sys.executable, "-m", "sfmock", "proxy", "--upstream", origin, "--port", "0", "--read-timeout", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            found = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
            assert found, line + process.stderr.read()
            with socket.create_connection(("127.0.0.1", int(found[1])), timeout=60) as sock:
                sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
                assert sock.recv(65536) == b""  # closed, not left open
        finally:
            process.terminate()
            process.wait(10)


# --- downloads: only image URLs of generation answers, on allowed origins -------------------


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    sock = listen("127.0.0.1", 0)
    with ServerThread(app, sock).running():
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def reflecting_upstream(elsewhere: str) -> Starlette:
    """An upstream whose ``/v1/echo?u=`` answers any URL back in a 200, and whose
    generation answer names one image of its own and one on ``elsewhere``."""

    async def echo(request: Request) -> Response:
        return JSONResponse({"link": request.query_params["u"]})

    async def generate(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        images = [{"url": f"{base}/default/outputs/a.png?sig=s1"}, {"url": f"{elsewhere}/default/outputs/b.png?sig=s2"}]
        return JSONResponse({"images": images, "data": images, "timings": {"inference": 0.1}, "seed": 1})

    async def anything(request: Request) -> Response:
        request.app.state.seen.append(request.url.path)
        if request.url.path.endswith(".png"):
            return Response(render_png(b"x", 8, 8), media_type="image/png")
        return JSONResponse({"secret": "internal admin page"})

    app = Starlette(
        routes=[
            Route("/v1/echo", echo),
            Route("/v1/images/generations", generate, methods=["POST"]),
            Route("/{rest:path}", anything),
        ]
    )
    app.state.seen = []
    return app


def test_downloads_fetch_only_generation_images_on_allowed_origins() -> None:
    other = reflecting_upstream("http://127.0.0.1:9")
    with serving(other) as elsewhere:
        service = reflecting_upstream(elsewhere)
        with serving(service) as origin, proxy_client(origin, downloads=True) as client:
            # a URL reflected in any 200 under /v1/ is not one to fetch
            reflected = client.get("/v1/echo", params={"u": f"{origin}/admin"}, headers=AUTH)
            assert reflected.status_code == 200
            assert client.get("/admin").status_code == 404
            answer = client.post("/v1/images/generations", json=KOLORS, headers=AUTH).json()
            own, foreign = (image["url"] for image in answer["images"])
            assert own.startswith("http://127.0.0.1:9999/default/outputs/a.png")  # moved onto the proxy
            assert foreign.startswith(elsewhere)  # another origin: left alone, not remembered
            assert client.get("/default/outputs/b.png?sig=s2").status_code == 404
            picture = client.get(own.removeprefix("http://127.0.0.1:9999"))
            assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert service.state.seen == ["/default/outputs/a.png"]  # never /admin
    assert other.state.seen == []


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["proxy", "--upstream", "http://[x"], "--upstream"),
        (["drift", "--against", "http://[x"], "--against"),
        (["proxy", "--upstream", "http://127.0.0.1:1", "--read-timeout", "nan"], "--read-timeout"),
        (["proxy", "--upstream", "http://127.0.0.1:1", "--max-body-bytes", "0"], "--max-body-bytes"),
        (["proxy", "--upstream", "http://127.0.0.1:1", "--image-origin", "http://[x"], "--image-origin"),
    ],
)
def test_a_bad_proxy_flag_exits_2_naming_it(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own refusal
        status = exc.code
    assert status == 2
    assert named in capsys.readouterr().err
