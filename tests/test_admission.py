"""Rate limits and balances through the API: 429 bodies, windows on the clock, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import FIXTURES, contract_hook, run_server
from sfmock import Limits, Settings, VirtualClock, create_app, load_settings
from sfmock.service.accounts import Account

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a lighthouse"}


Make = Callable[[Settings], TestClient]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def make(clock: VirtualClock) -> Iterator[Make]:
    clients: list[TestClient] = []

    def build(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings, clock=clock))
        client.event_hooks = {"request": [], "response": [contract_hook]}
        clients.append(client.__enter__())
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def details(response: httpx.Response) -> str:
    assert response.status_code == 429, response.text
    message = str(response.json()["message"])
    assert message.startswith("Request was rejected due to rate limiting.")
    return message.split("Details:")[1]


def test_realistic_preset_allows_two_images_a_minute(make: Make, clock: VirtualClock) -> None:
    client = make(load_settings(FIXTURES / "realistic-limits.yaml"))
    assert [client.post(GEN, json=KOLORS, headers=bearer("k")).status_code for _ in range(2)] == [200, 200]
    refused = client.post(GEN, json=KOLORS, headers=bearer("k"))
    assert details(refused) == "IPM limit reached."
    assert refused.json()["data"] == refused.headers["x-siliconcloud-trace-id"]
    assert "retry-after" not in refused.headers  # the real service sends no such header
    clock.advance(59)
    assert client.post(GEN, json=KOLORS, headers=bearer("k")).status_code == 429
    clock.advance(1)
    assert client.post(GEN, json=KOLORS, headers=bearer("k")).status_code == 200


def test_a_refused_request_costs_nothing(make: Make) -> None:
    client = make(Settings(limits=Limits(ipm=1)))
    client.post(GEN, json=QWEN, headers=bearer("k"))
    for _ in range(3):
        assert client.post(GEN, json=QWEN, headers=bearer("k")).status_code == 429
    assert client.get("/v1/user/info", headers=bearer("k")).json()["data"]["balance"] == "999999999.70"


@pytest.mark.parametrize(
    ("limits", "body", "allowed", "name", "window"),
    [
        (Limits(rpm=3), KOLORS, 3, "RPM", 60),
        (Limits(rph=3), KOLORS, 3, "RPH", 3600),
        (Limits(rpd=3), KOLORS, 3, "RPD", 86_400),
        (Limits(ipm=4), {**KOLORS, "batch_size": 2}, 2, "IPM", 60),
        (Limits(ipd=4), {**KOLORS, "batch_size": 2}, 2, "IPD", 86_400),
        (Limits(tpm=10), {**KOLORS, "prompt": "x" * 16}, 2, "TPM", 60),  # 4 tokens a request
        (Limits(tpd=10), {**KOLORS, "prompt": "x" * 16}, 2, "TPD", 86_400),
    ],
)
def test_each_limit_is_named_and_lifts_after_its_window(
    make: Make, clock: VirtualClock, limits: Limits, body: dict[str, object], allowed: int, name: str, window: int
) -> None:
    client = make(Settings(limits=limits))
    for _ in range(allowed):
        assert client.post(GEN, json=body, headers=bearer("k")).status_code == 200
    assert details(client.post(GEN, json=body, headers=bearer("k"))) == f"{name} limit reached."
    clock.advance(window)
    assert client.post(GEN, json=body, headers=bearer("k")).status_code == 200


def test_limits_are_per_account_not_per_key(make: Make) -> None:
    account = Account(id="team", keys=(("k1", True), ("k2", True)))
    client = make(Settings(accounts=(account, Account(id="other", keys=(("k3", True),))), limits=Limits(rpm=2)))
    assert client.post(GEN, json=KOLORS, headers=bearer("k1")).status_code == 200
    assert client.post(GEN, json=KOLORS, headers=bearer("k2")).status_code == 200
    assert client.post(GEN, json=KOLORS, headers=bearer("k1")).status_code == 429
    assert client.post(GEN, json=KOLORS, headers=bearer("k3")).status_code == 200


def test_limits_are_per_model(make: Make) -> None:
    client = make(Settings(limits=Limits(rpm=1)))
    assert client.post(GEN, json=KOLORS, headers=bearer("k")).status_code == 200
    assert client.post(GEN, json=KOLORS, headers=bearer("k")).status_code == 429
    assert client.post(GEN, json=QWEN, headers=bearer("k")).status_code == 200


def test_model_and_account_limits_override(make: Make) -> None:
    vip = Account(id="vip", limits=Limits(rpm=5), keys=(("vip", True),))
    plain = Account(id="plain", keys=(("plain", True),))
    settings = Settings(accounts=(vip, plain), limits=Limits(rpm=1), model_limits={"Qwen/Qwen-Image": Limits(rpm=2)})
    client = make(settings)

    def passes(key: str, body: dict[str, str], times: int) -> int:
        return sum(client.post(GEN, json=body, headers=bearer(key)).status_code == 200 for _ in range(times))

    assert passes("plain", KOLORS, 4) == 1
    assert passes("plain", QWEN, 4) == 2
    assert passes("vip", QWEN, 8) == 5


def test_rate_limit_headers_are_opt_in(make: Make, clock: VirtualClock) -> None:
    client = make(Settings(limits=Limits(ipm=2, ipd=400), rate_limit_headers=True))
    first = client.post(GEN, json=KOLORS, headers=bearer("k"))
    assert first.headers["x-ratelimit-limit-ipm"] == "2"
    assert first.headers["x-ratelimit-remaining-ipm"] == "1"
    assert first.headers["x-ratelimit-remaining-ipd"] == "399"
    clock.advance(20)
    client.post(GEN, json=KOLORS, headers=bearer("k"))
    refused = client.post(GEN, json=KOLORS, headers=bearer("k"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "40"  # the first image leaves the window at t+60
    assert refused.headers["x-ratelimit-remaining-ipm"] == "0"


def test_a_request_that_can_never_fit_has_no_retry_after(make: Make) -> None:
    client = make(Settings(limits=Limits(ipm=2), rate_limit_headers=True))
    refused = client.post(GEN, json={**KOLORS, "batch_size": 4}, headers=bearer("k"))
    assert refused.status_code == 429 and "retry-after" not in refused.headers


def test_exactly_the_limit_passes_under_concurrency(clock: VirtualClock) -> None:
    limit, clients = 7, 40
    settings = Settings(seed=1, limits=Limits(ipm=limit), default_balance=Decimal("1000"))
    with run_server(settings, clock) as server:

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, limits=httpx.Limits(max_connections=clients)) as client:
                calls = [client.post(GEN, json=QWEN, headers=bearer("shared")) for _ in range(clients)]
                return [r.status_code for r in await asyncio.gather(*calls)]

        statuses = asyncio.run(burst())
        info = httpx.get(f"{server.url}/v1/user/info", headers=bearer("shared")).json()["data"]
    assert statuses.count(200) == limit and statuses.count(429) == clients - limit
    assert Decimal(info["balance"]) == Decimal("1000") - limit * Decimal("0.30")
