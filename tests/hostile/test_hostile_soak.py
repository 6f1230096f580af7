"""The soak test: slow connections, many tokens, big bodies; bounded time and memory.

Figures (printed with ``-s``) are in the README's Limits table. Timing assertions are
generous multiples of the configured timeout, so a slow CI machine does not fail them;
what they catch is a server that never closes slow connections or that stalls behind them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from conftest import AUTH, run_server
from sfmock import Settings, VirtualClock, create_app
from sfmock.contract.openapi import load_contract
from sfmock.service.accounts import OpenAuthenticator
from sfmock.service.admission import Admission
from sfmock.service.quota import Limits, Usage

GEN = "/v1/images/generations"
OK = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
READ_TIMEOUT = 1.0
SLOW_CONNECTIONS = 200
OPEN_KEYS = 50_000
MAX_OPEN_ACCOUNTS = 10_000
OPEN_STATE_BOUND = 20 * 1024 * 1024  # bytes, documented in the README: ~1.5 KB an account kept
BODY = 8 * 1024 * 1024 - 1024
HELD_BOUND = 8 * 1024 * 1024  # after 60 bodies of 8 MiB: the journal's 64 KiB copies, and little else


def slow_clients(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send half a request line and then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_connections_are_closed_while_others_are_served() -> None:
    with run_server(Settings(seed=1, read_timeout=READ_TIMEOUT), VirtualClock()) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            client.post(GEN, json=OK, headers=AUTH)  # warm up
            started = time.monotonic()
            sockets = slow_clients(server.settings.port, SLOW_CONNECTIONS)
            latencies, open_ = [], set(range(len(sockets)))
            closing_times: list[float] = []
            while open_ and time.monotonic() - started < READ_TIMEOUT * 10:
                before = time.monotonic()
                assert client.post(GEN, json=OK, headers=AUTH).status_code == 200
                latencies.append(time.monotonic() - before)
                for index in list(open_):
                    if closed(sockets[index]):
                        open_.discard(index)
                        closing_times.append(time.monotonic() - started)
                time.sleep(0.01)
            for sock in sockets:
                sock.close()
    print(
        f"\n{SLOW_CONNECTIONS} slow connections, read timeout {READ_TIMEOUT}s: all closed by "
        f"{max(closing_times):.2f}s; {len(latencies)} normal requests meanwhile, median "
        f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert not open_, f"{len(open_)} slow connections still open after {READ_TIMEOUT * 10}s"
    assert min(closing_times) >= READ_TIMEOUT * 0.9  # the timeout, not an early cut
    assert max(latencies) < READ_TIMEOUT  # nobody waited behind the slow ones


def test_open_mode_state_is_bounded() -> None:
    model = load_contract().models["Kwai-Kolors/Kolors"]
    admission = Admission(
        limits=Limits.from_config("realistic"),
        model_limits={},
        prices={},
        headers=False,
        max_accounts=MAX_OPEN_ACCOUNTS,
    )
    authenticator = OpenAuthenticator(Decimal("100.00"))
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for index in range(OPEN_KEYS):
            account = authenticator.authenticate(f"Bearer sk-random-{index:08d}")
            admission.admit(account, model, Usage(), 1_767_225_600.0 + index, "t")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    print(f"\n{OPEN_KEYS} open-mode keys, {MAX_OPEN_ACCOUNTS} kept: {held / 2**20:.1f} MiB held")
    assert len(admission._recent) == MAX_OPEN_ACCOUNTS
    assert held < OPEN_STATE_BOUND
    # the live keys are exact: the last one has spent its 0.05 and used its IPM
    last = authenticator.authenticate(f"Bearer sk-random-{OPEN_KEYS - 1:08d}")
    assert admission.balances(last)[0] == Decimal("99.95")


async def _post(app: Any, body: bytes) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": GEN, "raw_path": GEN.encode(), "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", AUTH["Authorization"].encode()),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_big_bodies_are_let_go_when_the_request_ends(no_collector: None) -> None:
    app = create_app(Settings(seed=1), clock=VirtualClock())
    prompt = "x" * (BODY - 100)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(60):
            body = json.dumps({**OK, "prompt": prompt}).encode()  # 8 MiB, just under the limit
            assert asyncio.run(_post(app, body)) == 200
            del body
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    print(f"\n60 bodies of 8 MiB, collector off: {held / 2**20:.1f} MiB held after")
    assert len(app.state.journal) == 60
    assert held < HELD_BOUND
