"""Sessions isolated in everything a client can change, and metric labels a client
cannot grow. On the memory store and on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Limits, Settings, VirtualClock, create_app

T0 = 1_767_225_600
GEN = "/v1/images/generations"
QWEN = "Qwen/Qwen-Image"
BODY = {"model": QWEN, "prompt": "a lighthouse"}


@pytest.fixture(params=["memory", "redis"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    store = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    app = create_app(Settings(seed=3, store=store), clock=VirtualClock(T0))
    with TestClient(app) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client
    app.state.store.close()


def in_session(name: str | None) -> dict[str, str]:
    return {**AUTH, **({} if name is None else {"X-Sfmock-Session": name})}


def live(client: TestClient, session: str | None) -> bool:
    """Whether the session sees the model: listed, and generating."""
    listed = QWEN in [m["id"] for m in client.get("/v1/models", headers=in_session(session)).json()["data"]]
    status = client.post(GEN, json=BODY, headers=in_session(session)).status_code
    assert (status == 200) == listed, (status, listed)
    return listed


def test_a_header_fault_retires_a_model_for_its_own_session_only(client: TestClient) -> None:
    answer = client.post(GEN, json=BODY, headers={**in_session("a"), "X-Sfmock-Fault": f"retire={QWEN};pass"})
    assert answer.status_code == 403  # retired from now on, this request included
    assert not live(client, "a")
    assert live(client, None) and live(client, "b")
    client.post("/_sfmock/reset", headers={"X-Sfmock-Session": "a"})
    assert live(client, "a")  # the session's reset brings its model back


def test_a_scenario_rule_retires_a_model_for_its_own_session_only(client: TestClient) -> None:
    rule = {"name": "go", "when": {"path": "/v1/models"}, "times": 1, "action": {"retire": QWEN}}
    client.put("/_sfmock/scenario", json={"rules": [rule]}, headers={"X-Sfmock-Session": "a"})
    client.get("/v1/models", headers=in_session("a"))
    assert not live(client, "a")
    assert live(client, None) and live(client, "b")
    client.post("/_sfmock/reset", headers={"X-Sfmock-Session": "a"})
    assert live(client, "a")


def test_the_default_sessions_retirements_stay_its_own_until_a_full_reset(client: TestClient) -> None:
    client.post(GEN, json=BODY, headers={**AUTH, "X-Sfmock-Fault": f"retire={QWEN};pass"})
    assert not live(client, None)
    assert live(client, "a")
    client.post("/_sfmock/reset")
    assert live(client, None)


def label_sets(client: TestClient) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    text = client.get("/_sfmock/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metric_labels_come_from_fixed_sets_whatever_the_clients_send(client: TestClient) -> None:
    for n in range(20):
        session = in_session(f"s{n}")
        fault = f"error=429;limit=Q{chr(65 + n)}X"  # QAX, QBX, ...: names of no limit
        assert client.post(GEN, json=BODY, headers={**session, "X-Sfmock-Fault": fault}).status_code == 429
        rule = {"name": f"mine-{n}", "action": {"error": 503}}
        client.put("/_sfmock/scenario", json={"rules": [rule]}, headers=session)
        assert client.post(GEN, json=BODY, headers=session).status_code == 503
    found = label_sets(client)
    limited = {dict(labels)["metric"] for name, labels in found if name == "sfmock_rate_limited_total"}
    assert limited == {"other"}
    faults = {dict(labels)["fault"] for name, labels in found if name == "sfmock_requests_total"}
    assert faults == {"header", "scenario"}


def test_rules_of_the_start_scenario_keep_their_names_in_the_metrics() -> None:
    rule = {"name": "models-down", "when": {"path": "/v1/models"}, "action": {"error": 503}}
    scenario = {"name": "ops", "rules": [rule]}
    app = create_app(Settings(seed=3, scenario=scenario), clock=VirtualClock(T0))
    with TestClient(app) as client:
        client.get("/v1/models", headers=AUTH)
        client.get("/v1/models", headers=in_session("a"))  # the start scenario is every session's
        faults = {dict(labels)["fault"] for name, labels in label_sets(client) if name == "sfmock_requests_total"}
    assert faults == {"models-down"}


def test_on_a_shared_store_every_process_sees_a_sessions_retirements_and_its_reset(redis_url: str) -> None:
    one, two = (create_app(Settings(seed=3, store=redis_url), clock=VirtualClock(T0)) for _ in range(2))
    with TestClient(one) as first, TestClient(two) as second:
        first.post(GEN, json=BODY, headers={**in_session("a"), "X-Sfmock-Fault": f"retire={QWEN};pass"})
        assert not live(second, "a")
        assert live(second, None) and live(second, "b")
        first.post("/_sfmock/reset", headers={"X-Sfmock-Session": "a"})
        assert live(second, "a")
    one.state.store.close()
    two.state.store.close()


@pytest.fixture(params=["memory", "redis"])
def limited(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A fake on a virtual clock, one request a minute per key (per session)."""
    store = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    app = create_app(Settings(seed=3, store=store, limits=Limits(rpm=1)), clock=VirtualClock(T0))
    with TestClient(app) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client
    app.state.store.close()


def test_a_sessions_clock_moves_that_session_alone(limited: TestClient) -> None:
    urls = {}
    for name in ("a", "b"):
        answer = limited.post(GEN, json=BODY, headers=in_session(name))
        assert answer.status_code == 200 and answer.json()["created"] == T0
        urls[name] = answer.json()["images"][0]["url"]
        assert limited.post(GEN, json=BODY, headers=in_session(name)).status_code == 429  # its minute is full
    moved = limited.post("/_sfmock/clock", json={"advance": 3601}, headers={"X-Sfmock-Session": "a"})
    assert moved.status_code == 200 and moved.json()["now"] == T0 + 3601
    # session a: an hour on, its URL expired and its minute over
    expired = limited.get(urls["a"])
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    answer = limited.post(GEN, json=BODY, headers=in_session("a"))
    assert answer.status_code == 200 and answer.json()["created"] == T0 + 3601
    # session b, and the default session: where they were
    assert limited.get(urls["b"]).status_code == 200
    assert limited.post(GEN, json=BODY, headers=in_session("b")).status_code == 429
    for name in ("b", None):
        headers = {} if name is None else {"X-Sfmock-Session": name}
        assert limited.get("/_sfmock/clock", headers=headers).json()["now"] == T0
