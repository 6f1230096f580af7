"""Accounts, keys and balances: every outcome, and the order of the checks."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import FIXTURES, assert_config_error, contract_hook, load_fixture
from sfmock import Settings, VirtualClock, create_app, load_settings
from sfmock.service.accounts import Account, Ledger

GEN = "/v1/images/generations"
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a lighthouse"}
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_client(settings: Settings, clock: VirtualClock | None = None) -> TestClient:
    client = TestClient(create_app(settings, clock=clock or VirtualClock()))
    client.event_hooks = {"request": [], "response": [contract_hook]}
    return client


@pytest.fixture
def accounts() -> Iterator[TestClient]:
    with make_client(load_settings(FIXTURES / "accounts.yaml")) as client:
        yield client


def balance(client: TestClient, key: str) -> str:
    return str(client.get("/v1/user/info", headers=bearer(key)).json()["data"]["balance"])


@pytest.mark.parametrize(
    ("key", "body", "status", "expected"),
    [
        ("sk-valid", QWEN, 200, None),
        ("sk-unknown", QWEN, 401, "Invalid token"),
        ("sk-valid-disabled", QWEN, 403, "Forbidden"),
        ("sk-forbidden", QWEN, 403, "Forbidden"),
        ("sk-broke", QWEN, 403, load_fixture("responses/402.json")["body"]),  # 403 by default
        ("sk-restricted", QWEN, 403, {"code": 30003, "message": "Model disabled."}),
        ("sk-restricted", KOLORS, 200, None),
    ],
)
def test_each_fixture_key_gets_its_outcome(
    accounts: TestClient, key: str, body: dict[str, str], status: int, expected: object
) -> None:
    response = accounts.post(GEN, json=body, headers=bearer(key))
    assert response.status_code == status, response.text
    if expected is not None:
        assert response.json() == expected


@pytest.mark.parametrize("path", ["/v1/models", "/v1/user/info"])
def test_other_endpoints_enforce_the_registry(accounts: TestClient, path: str) -> None:
    assert accounts.get(path, headers=bearer("sk-unknown")).status_code == 401
    assert accounts.get(path, headers=bearer("sk-forbidden")).status_code == 403
    assert accounts.get(path, headers=bearer("sk-valid")).status_code == 200


def test_order_status_before_body(accounts: TestClient) -> None:
    response = accounts.post(GEN, content=b"{broken", headers=bearer("sk-forbidden"))
    assert response.status_code == 403


def test_order_unknown_model_before_permission(accounts: TestClient) -> None:
    response = accounts.post(GEN, json={"model": "acme/x", "prompt": "x"}, headers=bearer("sk-restricted"))
    assert response.status_code == 400


def test_order_permission_before_validation(accounts: TestClient) -> None:
    response = accounts.post(GEN, json={**QWEN, "cfg": 999}, headers=bearer("sk-restricted"))
    assert response.status_code == 403


def test_order_validation_before_balance(accounts: TestClient) -> None:
    response = accounts.post(GEN, json={**QWEN, "cfg": 999}, headers=bearer("sk-broke"))
    assert response.status_code == 400


def test_order_limits_before_balance() -> None:
    settings = load_settings(FIXTURES / "accounts.yaml", {"limits": "realistic"})
    with make_client(settings) as client:
        refused = client.post(GEN, json={**KOLORS, "batch_size": 4}, headers=bearer("sk-broke"))
        assert refused.status_code == 429  # 4 images can never fit IPM 2: 429 wins over 403 code 30001


def test_balance_goes_down_on_success_only(accounts: TestClient) -> None:
    assert balance(accounts, "sk-valid") == "50.00"
    assert accounts.post(GEN, json={**QWEN, "cfg": 999}, headers=bearer("sk-valid")).status_code == 400
    assert balance(accounts, "sk-valid") == "50.00"
    assert accounts.post(GEN, json=QWEN, headers=bearer("sk-valid")).status_code == 200
    assert balance(accounts, "sk-valid") == "49.70"  # Qwen/Qwen-Image: 0.30 an image
    accounts.post(GEN, json={**KOLORS, "batch_size": 4}, headers=bearer("sk-valid"))
    assert balance(accounts, "sk-valid") == "49.50"  # Kolors: 0.05 an image, 4 images


def test_balance_never_goes_below_zero() -> None:
    settings = Settings(accounts=(Account(id="a", balance=Decimal("0.50"), keys=(("k", True),)),))
    with make_client(settings) as client:
        statuses = [client.post(GEN, json=QWEN, headers=bearer("k")).status_code for _ in range(3)]
        info = client.get("/v1/user/info", headers=bearer("k")).json()["data"]
    assert statuses == [200, 403, 403]  # code 30001: 403 by default (balance_status)
    assert (info["balance"], info["chargeBalance"], info["totalBalance"]) == ("0.20", "0.00", "0.20")


def test_gift_balance_is_spent_before_charged_balance() -> None:
    account = Account(id="a", balance=Decimal("0.10"), charge_balance=Decimal("1.00"), keys=(("k", True),))
    with make_client(Settings(accounts=(account,))) as client:
        assert client.post(GEN, json=QWEN, headers=bearer("k")).status_code == 200
        info = client.get("/v1/user/info", headers=bearer("k")).json()["data"]
    assert (info["balance"], info["chargeBalance"], info["totalBalance"]) == ("0.00", "0.80", "0.80")


def test_configured_prices() -> None:
    settings = load_settings(FIXTURES / "accounts.yaml", {"prices": {"Qwen/Qwen-Image": "1.25"}})
    with make_client(settings) as client:
        client.post(GEN, json=QWEN, headers=bearer("sk-valid"))
        assert balance(client, "sk-valid") == "48.75"


def test_user_info_shows_the_configured_account(accounts: TestClient) -> None:
    data = accounts.get("/v1/user/info", headers=bearer("sk-valid")).json()["data"]
    assert (data["id"], data["name"], data["email"]) == ("acct-valid", "Valid Co", "valid@example.com")


def test_open_mode_each_token_is_an_account() -> None:
    with make_client(load_settings(FIXTURES / "open.yaml")) as client:
        client.post(GEN, json=QWEN, headers=bearer("sk-one"))
        assert balance(client, "sk-one") == "99.70"
        assert balance(client, "sk-two") == "100.00"
        one = client.get("/v1/user/info", headers=bearer("sk-one")).json()["data"]
        two = client.get("/v1/user/info", headers=bearer("sk-two")).json()["data"]
    assert one["id"] != two["id"] and one["name"] and "@" in one["email"]


def test_open_mode_balance_runs_out() -> None:
    with make_client(Settings(default_balance=Decimal("0.30"))) as client:
        assert client.post(GEN, json=QWEN, headers=bearer("k")).status_code == 200
        assert client.post(GEN, json=QWEN, headers=bearer("k")).status_code == 403


def test_ledger_is_all_or_nothing() -> None:
    ledger = Ledger()
    account = Account(id="a", balance=Decimal("1.00"))
    assert ledger.charge(account, Decimal("0.60"))
    assert not ledger.charge(account, Decimal("0.60"))
    assert ledger.balances(account) == (Decimal("0.40"), Decimal("0.00"))
    assert ledger.spent(account) == Decimal("0.60")
    ledger.reset()
    assert ledger.balances(account) == (Decimal("1.00"), Decimal("0.00"))


@pytest.mark.parametrize(
    ("text", "key", "phrase"),
    [
        ("accounts: [{balance: 1}]\n", "accounts[0]", "'keys' is a required property"),
        ("accounts: [{keys: []}]\n", "accounts[0].keys", "should be non-empty"),
        ("accounts: [{keys: ['has space']}]\n", "accounts[0].keys[0]", "An API key"),
        ("accounts: [{keys: [k], balance: -1}]\n", "accounts[0].balance", "never negative"),
        ("accounts: [{keys: [k], balance: lots}]\n", "accounts[0].balance", "never negative"),
        ("accounts: [{keys: [k], status: sleepy}]\n", "accounts[0].status", "'sleepy' is not one of"),
        ("accounts: [{keys: [k], models: [acme/x]}]\n", "accounts[0].models[0]", "unknown model 'acme/x'"),
        ("accounts: [{keys: [k]}, {keys: [k]}]\n", "accounts[1].keys[0]", "already used by accounts[0]"),
        ("limits: generous\n", "limits", "realistic"),
        ("limits: {ipm: -1}\n", "limits.ipm", "whole number of units"),
        ("model_limits: {acme/x: {ipm: 1}}\n", "model_limits.acme/x", "unknown model"),
        ("prices: {Qwen/Qwen-Image: free}\n", "prices.Qwen/Qwen-Image", "never negative"),
    ],
)
def test_bad_account_config_names_file_and_key(tmp_path: Path, text: str, key: str, phrase: str) -> None:
    assert_config_error(load_settings, tmp_path / "accounts.yaml", text, key, phrase)


def test_fixture_configs_load() -> None:
    for name in ("open.yaml", "accounts.yaml", "realistic-limits.yaml"):
        load_settings(FIXTURES / name)


def test_accounts_over_a_real_socket(live_server: object) -> None:
    # the live server runs in open mode; any token works and is its own account
    url = live_server.url
    with httpx.Client(base_url=url, event_hooks={"response": [contract_hook]}) as client:
        assert client.post(GEN, json=QWEN, headers=bearer("sk-a")).status_code == 200
        assert client.get("/v1/user/info", headers=bearer("sk-a")).json()["data"]["balance"] == "999999999.70"
