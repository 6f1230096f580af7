"""Money that both stores keep exactly: the largest amounts and the finest prices a config
may give work the same on memory and on a real Redis; anything past them is refused when the
config is loaded (exit 2 naming the file and the key), never a 500 on every generation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conftest import contract_hook
from sfmock import Settings, VirtualClock, create_app
from sfmock.config import load_settings
from sfmock.errors import ConfigError

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "batch_size": 4}

TOO_MUCH = {
    "a balance of 1e11": ("accounts: [{id: a, keys: [sk-a], balance: '99999999999'}]\n", "accounts[0].balance"),
    "a charge balance of 1e11": (
        "accounts: [{id: a, keys: [sk-a], charge_balance: 100000000000}]\n",
        "accounts[0].charge_balance",
    ),
    "a default balance of 1e300": ("default_balance: 1e300\n", "default_balance"),
    "a price with 7 decimals": ("prices: {Kwai-Kolors/Kolors: '0.1234567'}\n", "prices.Kwai-Kolors/Kolors"),
    "a price as a float with 7 decimals": ("prices: {Kwai-Kolors/Kolors: 0.0000001}\n", "prices.Kwai-Kolors/Kolors"),
    "a price over a billion": ("prices: {Kwai-Kolors/Kolors: '1000000000.000001'}\n", "prices.Kwai-Kolors/Kolors"),
}


@pytest.mark.parametrize(("text", "key"), TOO_MUCH.values(), ids=list(TOO_MUCH))
def test_amounts_a_store_cannot_keep_exactly_are_refused_naming_the_file_and_key(
    tmp_path: Path, text: str, key: str
) -> None:
    config = tmp_path / "sfmock.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert (refused.value.source, refused.value.key) == (str(config), key)
    assert "expected" in refused.value.expected


def test_serve_exits_2_on_such_an_amount_before_it_opens_the_store(tmp_path: Path, redis_url: str) -> None:
    config = tmp_path / "sfmock.yaml"
    config.write_text(TOO_MUCH["a default balance of 1e300"][0])
    command = [sys.executable, "-m", "sfmock", "serve", "--config", str(config), "--store", redis_url, "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{config}: default_balance: 1E+300: expected an amount from 0 to 1,000,000,000" in done.stderr


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield "memory" if request.param == "memory" else request.getfixturevalue("redis_url")


def test_the_largest_balance_and_the_finest_price_are_kept_exactly_on_both_stores(store_url: str) -> None:
    accounts = [
        {"id": "rich", "keys": ["sk-rich"], "balance": "1000000000", "charge_balance": "1000000000.00"},
        {"id": "exact", "keys": ["sk-exact"], "balance": "0.987654"},
    ]
    settings = Settings(store=store_url, accounts=accounts, prices={"Kwai-Kolors/Kolors": "0.123456"})
    with TestClient(create_app(settings, clock=VirtualClock(1_767_225_600)), base_url=settings.base_url) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        for key in ("sk-rich", "sk-exact"):
            answer = client.post(GEN, json=KOLORS, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200 and len(answer.json()["images"]) == 4
        rich = client.get("/v1/user/info", headers={"Authorization": "Bearer sk-rich"}).json()["data"]
        assert (rich["balance"], rich["chargeBalance"]) == ("999999999.51", "1000000000.00")  # 4 x 0.123456 taken
        exact = client.get("/v1/user/info", headers={"Authorization": "Bearer sk-exact"}).json()["data"]
        assert exact["totalBalance"] == "0.49"  # 0.987654 - 0.493824 = 0.493830
        statuses = [client.post(GEN, json=KOLORS, headers={"Authorization": "Bearer sk-exact"}).status_code]
        statuses.append(
            client.post(GEN, json={**KOLORS, "batch_size": 1}, headers={"Authorization": "Bearer sk-exact"}).status_code
        )
        assert statuses == [200, 403]  # 0.493830 pays 0.493824 to the millionth; 0.000006 pays nothing
