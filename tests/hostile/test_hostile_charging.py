"""What is charged is what was served (issue 12, third part)."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook, run_server
from sfmock import Settings, VirtualClock, create_app
from sfmock.service.generation import MAX_SIDE
from sfmock.service.quota import Limits

GEN = "/v1/images/generations"
OK = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
T0 = 1_767_225_600


async def call(app: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one request through the ASGI app, the client sending ``messages``; what it answered."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": GEN, "raw_path": GEN.encode(), "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", AUTH["Authorization"].encode())],
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_body_cut_short_by_a_disconnect_is_not_charged(anyio_backend: str) -> None:
    app = create_app(Settings(seed=1, limits=Limits(rpm=1)), clock=VirtualClock(T0))
    whole = json.dumps(OK).encode()  # the part that arrived happens to be a whole JSON object
    sent = await call(app, [{"type": "http.request", "body": whole, "more_body": True}, {"type": "http.disconnect"}])
    assert not any(m["type"] == "http.response.start" and m["status"] == 200 for m in sent)
    (entry,) = app.state.journal.entries()
    assert (entry.status, entry.outcome) == (None, "abandoned")
    # nothing charged, nothing counted: the next request passes
    assert not app.state.admission.seen() and not app.state.admission.book.money.accounts()
    sent = await call(app, [{"type": "http.request", "body": whole, "more_body": False}])
    assert sent[0]["status"] == 200


def test_a_body_that_never_ends_is_cut_off_and_not_charged() -> None:
    with run_server(Settings(seed=1, read_timeout=0.5), VirtualClock(T0)) as server:
        with socket.create_connection(("127.0.0.1", server.settings.port), timeout=5) as sock:
            head = (
                f"POST {GEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n"
                "Content-Length: 1000\r\n\r\n"
            )
            sock.sendall(head.encode() + json.dumps(OK).encode())
            assert sock.recv(1024) == b""  # closed by the server, no answer
        deadline = time.monotonic() + 5
        while not server.journal.entries() and time.monotonic() < deadline:
            time.sleep(0.01)
        (entry,) = server.journal.entries()
        assert (entry.status, entry.outcome) == (None, "abandoned")
        assert not server.app.state.admission.book.money.accounts()


def test_a_slow_body_the_client_got_whole_is_journaled_as_a_response() -> None:
    with run_server(Settings(seed=1), VirtualClock(T0)) as server:
        fault = {"X-Sfmock-Fault": "slow-body=0.01;chunk=200"}
        response = httpx.post(server.api_url + "/images/generations", json=OK, headers={**AUTH, **fault})
        assert response.status_code == 200 and response.json()["images"]
        (entry,) = server.journal.entries()
        assert (entry.status, entry.outcome) == (200, "response")


def png_data_url(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(seed=1), clock=VirtualClock(T0)), base_url="http://127.0.0.1:8000") as c:
        c.event_hooks = {"request": [], "response": [contract_hook]}
        yield c


@pytest.mark.parametrize("size", [(3, 100_000), (100_000, 3), (1, 4096), (50_000, 2)])
def test_every_charged_edit_url_downloads(client: TestClient, size: tuple[int, int]) -> None:
    body = {"model": "Qwen/Qwen-Image-Edit", "prompt": "x", "image": png_data_url(*size)}
    answer = client.post(GEN, json=body, headers=AUTH)
    assert answer.status_code == 200
    download = client.get(answer.json()["images"][0]["url"])
    assert download.status_code == 200
    with Image.open(io.BytesIO(download.content)) as picture:
        assert max(picture.size) <= MAX_SIDE and picture.size[0] * picture.size[1] <= 4_194_304


def test_rate_windows_follow_the_clock_backwards() -> None:
    clock = VirtualClock(T0)
    app = create_app(Settings(seed=1, limits=Limits(rpm=1), default_balance=Decimal(10)), clock=clock)
    with TestClient(app) as client:
        assert client.post(GEN, json=OK, headers=AUTH).status_code == 200
        assert client.post(GEN, json=OK, headers=AUTH).status_code == 429
        clock.set(T0 - 3600)  # an hour back: the request "from the future" no longer counts
        assert client.post(GEN, json=OK, headers=AUTH).status_code == 200
        assert client.post(GEN, json=OK, headers=AUTH).status_code == 429  # the window is exact again
