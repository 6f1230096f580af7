"""The control API: health, reset, scenario, clock, journal, and its token rule."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import AUTH, FIXTURES, contract_hook
from sfmock import Limits, Settings, VirtualClock, create_app
from sfmock.clock import ShiftedClock, SystemClock

GEN = "/v1/images/generations"
BODY = {"model": "Qwen/Qwen-Image", "prompt": "a lighthouse"}


@pytest.fixture
def control(clock: VirtualClock) -> Iterator[TestClient]:
    settings = Settings(seed=1, limits=Limits(rpm=1), default_balance=Decimal("10"))
    with TestClient(create_app(settings, clock=clock)) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        yield client


def test_health(control: TestClient, clock: VirtualClock) -> None:
    body = control.get("/_sfmock/health").json()
    assert body == {
        "status": "ok",
        "version": "0.1.0",
        "time": clock.now(),
        "scenario": "none",
        "journal": 0,
        "images": "http://127.0.0.1:8001",  # where image URLs point: the image host's origin
    }


def test_control_calls_are_not_journalled_nor_faulted(control: TestClient) -> None:
    control.get("/_sfmock/health", headers={"X-Sfmock-Fault": "drop"})
    assert control.get("/_sfmock/journal").json()["count"] == 0


def test_reset_restores_everything(control: TestClient, clock: VirtualClock) -> None:
    start = clock.now()
    control.put("/_sfmock/scenario", json={"rules": [{"when": {"path": "/v1/models"}, "action": {"error": 503}}]})
    assert control.post(GEN, json=BODY, headers=AUTH).status_code == 200
    assert control.post(GEN, json=BODY, headers=AUTH).status_code == 429
    control.post("/_sfmock/clock", json={"advance": 30})
    assert control.get("/v1/models", headers=AUTH).status_code == 503
    assert control.get("/v1/user/info", headers=AUTH).json()["data"]["balance"] == "9.70"

    assert control.post("/_sfmock/reset").json() == {"status": "reset"}

    assert clock.now() == start
    assert control.get("/_sfmock/journal").json()["count"] == 0
    assert control.get("/v1/models", headers=AUTH).status_code == 200  # faults back to the start scenario
    assert control.get("/v1/user/info", headers=AUTH).json()["data"]["balance"] == "10.00"
    assert control.post(GEN, json=BODY, headers=AUTH).status_code == 200  # quota back


def test_reset_returns_to_the_scenario_the_server_started_with(clock: VirtualClock) -> None:
    from sfmock.chaos.faults import Scenario

    scenario = Scenario.load(FIXTURES / "scenarios" / "overloaded.yaml")
    with TestClient(create_app(Settings(scenario=scenario), clock=clock)) as client:
        client.delete("/_sfmock/scenario")
        assert client.post(GEN, json=BODY, headers=AUTH).status_code == 200
        client.post("/_sfmock/reset")
        assert client.post(GEN, json=BODY, headers=AUTH).status_code == 503
        assert client.get("/_sfmock/scenario").json()["name"] == "overloaded"


def test_scenario_get_put_delete(control: TestClient) -> None:
    assert control.get("/_sfmock/scenario").json() == {"name": "none", "description": "", "rules_count": 0}
    yaml_text = (FIXTURES / "scenarios" / "rate-limited.yaml").read_text()
    put = control.put("/_sfmock/scenario", content=yaml_text)  # YAML works as well as JSON
    assert put.json()["name"] == "rate-limited" and put.json()["rules_count"] == 1
    assert control.post(GEN, json=BODY, headers=AUTH).status_code == 429
    assert control.delete("/_sfmock/scenario").json()["rules_count"] == 0
    assert control.post(GEN, json=BODY, headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b'{"rules": [{"action": {"error": 418}}]}', "scenario: rules[0].action.error: 418"),
        (b"rules: [", "scenario: line 2, column 1: did not find expected node content"),
        (b"[1, 2]", "expected a mapping"),
    ],
)
def test_bad_scenario_is_a_400_naming_the_key(control: TestClient, content: bytes, phrase: str) -> None:
    before = control.get("/_sfmock/scenario").json()
    response = control.put("/_sfmock/scenario", content=content)
    assert response.status_code == 400 and phrase in response.json()["error"]
    assert control.get("/_sfmock/scenario").json() == before  # nothing lost


def test_clock_advance_and_set(control: TestClient, clock: VirtualClock) -> None:
    start = clock.now()
    assert control.post("/_sfmock/clock", json={"advance": 3600}).json()["now"] == start + 3600
    state = control.post("/_sfmock/clock", json={"set": 1_800_000_000}).json()
    assert state == {"now": 1_800_000_000, "iso": "2027-01-15T08:00:00Z", "controllable": True, "frozen": True}
    assert control.get("/_sfmock/clock").json()["now"] == clock.now() == 1_800_000_000


def test_advancing_the_clock_expires_urls_and_lifts_limits(control: TestClient) -> None:
    url = control.post(GEN, json=BODY, headers=AUTH).json()["images"][0]["url"]
    assert control.post(GEN, json=BODY, headers=AUTH).status_code == 429
    control.post("/_sfmock/clock", json={"advance": 3600})
    assert control.get(url).status_code == 403
    assert control.post(GEN, json=BODY, headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    "command",
    [{}, {"advance": -1}, {"advance": "soon"}, {"advance": True}, {"advance": 1, "set": 2}, {"jump": 1}, [1]],
)
def test_bad_clock_commands(control: TestClient, command: object) -> None:
    response = control.post("/_sfmock/clock", json=command)
    assert response.status_code == 400 and response.json()["error"].startswith("clock:")


def test_a_fixed_clock_cannot_be_moved() -> None:
    with TestClient(create_app(Settings(), clock=SystemClock())) as client:
        response = client.post("/_sfmock/clock", json={"advance": 1})
        assert response.status_code == 409
        assert client.get("/_sfmock/clock").json()["controllable"] is False


def test_the_default_clock_is_the_wall_clock_and_movable() -> None:
    app = create_app(Settings())
    assert isinstance(app.state.clock, ShiftedClock)
    with TestClient(app) as client:
        before = client.get("/_sfmock/clock").json()["now"]
        after = client.post("/_sfmock/clock", json={"advance": 7200}).json()["now"]
        assert after - before >= 7200


def test_frozen_clock_setting() -> None:
    app = create_app(Settings(frozen_clock=True))
    assert isinstance(app.state.clock, VirtualClock)


def test_journal_over_http(control: TestClient) -> None:
    control.post(GEN, json=BODY, headers=AUTH)
    control.post(GEN, json=BODY, headers=AUTH)
    control.get("/v1/models", headers={"Authorization": "Bearer sk-other-key-123456"})
    everything = control.get("/_sfmock/journal").json()
    assert everything["count"] == 3 and everything["size"] == 1000
    first = everything["entries"][0]
    assert (first["method"], first["path"], first["status"], first["model"]) == ("POST", GEN, 200, "Qwen/Qwen-Image")
    assert first["key"] == "sk-t...6789" and first["authorization"] is True
    assert first["body"] == BODY
    assert [e["status"] for e in control.get("/_sfmock/journal", params={"status": 429}).json()["entries"]] == [429]
    assert control.get("/_sfmock/journal", params={"path": "/v1/m*"}).json()["count"] == 1
    assert control.get("/_sfmock/journal", params={"key": "sk-other-key-123456"}).json()["count"] == 1
    assert control.get("/_sfmock/journal", params={"limit": 1}).json()["entries"][0]["path"] == "/v1/models"
    assert control.get("/_sfmock/journal", params={"status": "x"}).status_code == 400
    assert control.delete("/_sfmock/journal").json()["count"] == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.internal"])
def test_control_needs_a_token_beyond_loopback(host: str) -> None:
    app = create_app(Settings(host=host))
    token = app.state.control.token
    assert token and len(token) >= 16
    with TestClient(app) as client:
        refused = client.get("/_sfmock/health")
        assert refused.status_code == 401 and "x-sfmock-token" in refused.json()["error"]
        assert client.get("/_sfmock/health", headers={"X-Sfmock-Token": "wrong"}).status_code == 401
        assert client.get("/_sfmock/health", headers={"X-Sfmock-Token": token}).status_code == 200
        assert client.get("/v1/models", headers=AUTH).status_code == 200  # the API itself needs no token


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    assert create_app(Settings(host=host)).state.control.token is None


def test_a_configured_token_applies_on_loopback_too() -> None:
    with TestClient(create_app(Settings(control_token="s3cret-token"))) as client:
        assert client.post("/_sfmock/reset").status_code == 401
        assert client.post("/_sfmock/reset", headers={"X-Sfmock-Token": "s3cret-token"}).status_code == 200


def test_cli_prints_the_generated_token() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sfmock", "serve", "--host", "0.0.0.0", "--port", "0", "--log-level", "warning"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=FIXTURES,
    )
    try:
        assert process.stderr is not None
        url = re.search(r"(http://\S+)/v1", process.stderr.readline())
        token = re.search(r"control API token: (\S+)", process.stderr.readline())
        assert url and token
        port = url[1].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/_sfmock/health").status_code == 401
        assert httpx.get(f"{base}/_sfmock/health", headers={"X-Sfmock-Token": token[1]}).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        if process.stderr:
            process.stderr.close()


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ("advance: ~", 400, "clock: advance needs a number, got null"),
        ('{"advance": "10"}', 400, 'clock: advance needs a number, got "10"'),
        ('{"set": true}', 400, "clock: set needs a number, got true"),
        ("set: !!binary aGk=", 400, "tag tag:yaml.org,2002:binary is not allowed"),
        ("set: 99999999999999999999", 400, "beyond"),
        ("set: !!int 5", 200, None),  # a tag of JSON's own types is plain data, as documented
    ],
)
def test_a_clock_body_s_value_is_named_as_json_writes_it(
    control: TestClient, clock: VirtualClock, body: str, status: int, said: str | None
) -> None:
    answer = control.post("/_sfmock/clock", content=body)
    assert answer.status_code == status, answer.text
    if said is not None:
        assert said in answer.json()["error"] and clock.now() == clock.start
    else:
        assert clock.now() == 5


def test_a_rule_with_an_empty_action_answers_normally_and_shields_the_rules_after_it(client: TestClient) -> None:
    rules = [{"when": {"path": "/v1/models"}, "action": {}}, {"action": {"error": 503}}]
    assert client.put("/_sfmock/scenario", json={"name": "shield", "rules": rules}).status_code == 200
    assert client.get("/v1/models", headers=AUTH).status_code == 200
    assert client.get("/v1/user/info", headers=AUTH).status_code == 503
