"""Honest defaults: open mode never runs out of money, image URLs that work from another
machine, and a quiet Ctrl+C."""

from __future__ import annotations

import signal
import subprocess
import sys
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Settings, VirtualClock, create_app
from sfmock.config import UNLIMITED_BALANCE

GEN = "/v1/images/generations"
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a lighthouse", "image_size": "512x512"}


def test_open_mode_does_not_run_out_of_money_in_a_load_test() -> None:
    # 400 Qwen images at 0.30 cost 120: more than the old default balance of 100
    with TestClient(create_app(Settings(seed=1), clock=VirtualClock())) as client:
        statuses = {client.post(GEN, json=QWEN, headers=AUTH).status_code for _ in range(400)}
        info = client.get("/v1/user/info", headers=AUTH).json()["data"]
    assert statuses == {200}
    assert Decimal(info["balance"]) == UNLIMITED_BALANCE - 400 * Decimal("0.30")
    assert UNLIMITED_BALANCE == Decimal("1000000000.00")  # the figure the README documents


def test_configured_balances_still_run_out() -> None:
    with TestClient(create_app(Settings(default_balance="0.60"), clock=VirtualClock())) as client:  # type: ignore[arg-type]
        assert [client.post(GEN, json=QWEN, headers=AUTH).status_code for _ in range(3)] == [200, 200, 403]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_off_loopback_image_urls_follow_the_request_host(host: str) -> None:
    # the host the client used, on the image host's port (the API's + 1 by default)
    app = create_app(Settings(host=host, port=8000, control_token="control-token"), clock=VirtualClock())
    with TestClient(app, base_url="http://fake.example.test:8123") as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        url = client.post(GEN, json=QWEN, headers=AUTH).json()["images"][0]["url"]
        assert url.startswith("http://fake.example.test:8001/temporary/outputs/")
        assert client.get(url).status_code == 200
        # a Host header that is not a host name falls back to the configured origin
        odd = client.post(GEN, json=QWEN, headers={**AUTH, "Host": "a b/c"}).json()["images"][0]["url"]
        assert odd.startswith(Settings(host=host).image_base_url + "/temporary/outputs/")
        assert Settings(host=host).image_base_url.endswith(":8001")
        v6 = client.post(GEN, json=QWEN, headers={**AUTH, "Host": "[2001:db8::1]:8123"}).json()["images"][0]["url"]
        assert v6.startswith("http://[2001:db8::1]:8001/temporary/outputs/")


@pytest.mark.parametrize("image_port", [9100, "same"])
def test_off_loopback_with_a_chosen_image_port_or_one_origin(image_port: int | str) -> None:
    settings = Settings(host="0.0.0.0", port=8000, image_port=image_port, control_token="control-token")
    with TestClient(create_app(settings, clock=VirtualClock()), base_url="http://fake.example.test:8123") as client:
        url = client.post(GEN, json=QWEN, headers=AUTH).json()["images"][0]["url"]
    port = 8123 if image_port == "same" else image_port
    assert url.startswith(f"http://fake.example.test:{port}/temporary/outputs/")


def test_public_url_wins_over_the_request_host() -> None:
    settings = Settings(host="0.0.0.0", public_url="https://images.example.test", control_token="control-token")
    with TestClient(create_app(settings, clock=VirtualClock()), base_url="http://elsewhere:1") as client:
        url = client.post(GEN, json=QWEN, headers=AUTH).json()["images"][0]["url"]
    assert url.startswith("https://images.example.test/temporary/outputs/")


def test_loopback_keeps_the_configured_origin() -> None:
    with TestClient(create_app(Settings(port=8000), clock=VirtualClock()), base_url="http://other:9") as client:
        url = client.post(GEN, json=QWEN, headers=AUTH).json()["images"][0]["url"]
    assert url.startswith("http://127.0.0.1:8001/temporary/outputs/")  # the image host: port + 1


def _serve(*flags: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--log-level", "warning", *flags]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_on_serve_is_quiet_and_exits_0() -> None:
    process = _serve()
    assert process.stderr is not None
    assert "API at" in process.stderr.readline()  # serving
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)  # an impatient second Ctrl+C too
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err, err


def test_httpx_is_a_core_dependency() -> None:
    # sfmock.checks and the transports import httpx: a plain `pip install sfmock` must bring it
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text("utf-8"))["project"]
    assert any(d.startswith("httpx") for d in project["dependencies"])
    code = "import sfmock.checks, sfmock.transports"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
