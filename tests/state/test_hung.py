"""A Redis that hangs (SIGSTOP: the socket accepts, nothing answers), seen by clients on a
real socket: every waiting request gets the documented 503 within the 2 s timeout, together,
not one timeout after another; service comes back by itself once Redis answers again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal

import httpx

from conftest import contract_hook
from redis_server import RedisServer
from sfmock import Settings, VirtualClock
from sfmock.server import FakeServer

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
AUTH = {"Authorization": "Bearer sk-hung"}
TIMEOUT = 2.0  # the store's documented wait for a Redis that does not answer
CLIENTS = 12


@contextmanager
def hung(server: RedisServer) -> Iterator[None]:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def test_every_waiting_request_answers_503_within_the_timeout_not_one_after_another(own_redis: RedisServer) -> None:
    settings = Settings(store=own_redis.url, default_balance=Decimal("100.00"), prices={"Kwai-Kolors/Kolors": "0.25"})
    with FakeServer(settings, clock=VirtualClock(1_767_225_600)) as fake:
        hooks = {"response": [contract_hook]}
        with httpx.Client(base_url=fake.url, timeout=60, event_hooks=hooks) as client:
            assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 200
        with hung(own_redis), ThreadPoolExecutor(CLIENTS) as pool:

            def one(_: int) -> tuple[int, str, float]:
                with httpx.Client(base_url=fake.url, timeout=60, event_hooks=hooks) as each:
                    began = time.monotonic()
                    answer = each.post(GEN, json=KOLORS, headers=AUTH)
                    return answer.status_code, answer.text, time.monotonic() - began

            began = time.monotonic()
            answers = list(pool.map(one, range(CLIENTS)))
            took = time.monotonic() - began
        assert [status for status, _, _ in answers] == [503] * CLIENTS
        assert all("cannot be reached" in text for _, text, _ in answers)
        # in turn they took CLIENTS timeouts (24 s); together, one timeout and a busy machine's slack
        assert took < 3 * TIMEOUT, f"{CLIENTS} requests took {took:.1f} s: {sorted(t for _, _, t in answers)}"
        assert max(t for _, _, t in answers) < 3 * TIMEOUT
        with httpx.Client(base_url=fake.url, timeout=60, event_hooks=hooks) as client:
            deadline = time.monotonic() + 30
            while (status := client.post(GEN, json=KOLORS, headers=AUTH).status_code) == 503:
                assert time.monotonic() < deadline, "still 503 long after Redis answers again"
                time.sleep(0.1)
            assert status == 200
            info = client.get("/v1/user/info", headers=AUTH).json()["data"]
            assert info["totalBalance"] == "99.50"  # the two answered 200 were charged; no 503 was
