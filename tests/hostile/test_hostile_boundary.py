"""The boundary for untrusted data on the HTTP side: what a control request or a
generation body cannot hold (a lone surrogate, a number that is not finite or beyond
what a store holds) is a 400 naming the field, and a refused request changes nothing.
On the memory store and on a real redis-server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Settings, VirtualClock, create_app

T0 = 1_767_225_600
GEN = "/v1/images/generations"
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
READS = ["/_sfmock/metrics", "/_sfmock/journal", "/_sfmock/scenario", "/_sfmock/health", "/_sfmock/clock", "/_sfmock/"]


@pytest.fixture(params=["memory", "redis"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    store = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    app = create_app(Settings(seed=3, store=store), clock=VirtualClock(T0))
    with TestClient(app) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client
    app.state.store.close()


def every_read_answers(client: TestClient, headers: dict[str, str]) -> None:
    for path in READS:
        for extra in ({}, headers):  # the session's reads and everyone else's
            answer = client.get(path, headers=extra)
            assert answer.status_code == 200, (path, extra, answer.text[:200])
            if answer.headers["content-type"].startswith("application/json"):
                json.loads(answer.content.decode("utf-8"))  # strict UTF-8


@pytest.mark.parametrize("where", [{}, {"X-Sfmock-Session": "probe"}], ids=["default", "named"])
@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"name":"q","rules":[{"name":"r\\udfff","action":{"error":503}}]}', "rules[0].name"),
        ('{"name":"\\ud800","rules":[]}', "name"),
        ('{"name":"q","description":"\\udc80 x","rules":[]}', "description"),
        ('{"rules":[{"when":{"header":{"x-\\ud800":"1"}},"action":{"error":503}}]}', "rules[0].when.header"),
        ('{"rules":[{"action":{"delay":1e400}}]}', "rules[0].action.delay"),
        ('{"rules":[{"action":{"delay":NaN}}]}', "rules[0].action.delay"),
        ('{"rules":[{"times":99999999999999999999,"action":{"error":503}}]}', "rules[0].times"),
        ('name: "ok"\nrules:\n  - nth: 123456789012345678901234\n    action: pass\n', "rules[0].nth"),
    ],
    ids=["rule-name", "name", "description", "header-key", "1e400", "nan", "huge-int", "yaml-huge-int"],
)
def test_a_scenario_the_fake_cannot_hold_is_refused_naming_the_field_and_changes_nothing(
    client: TestClient, where: dict[str, str], document: str, field: str
) -> None:
    before = client.put("/_sfmock/scenario", json={"name": "before", "rules": []}, headers=where).json()
    answer = client.put("/_sfmock/scenario", content=document.encode(), headers=where)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]
    assert message.startswith("scenario: ") and f"{field}:" in message, message
    assert client.get("/_sfmock/scenario", headers=where).json() == before
    client.post(GEN, json=BODY, headers={**AUTH, **where})  # a request the refused rule would have faulted
    every_read_answers(client, where)


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ('{"pattern": {"status": NaN}, "count": 0}', "pattern.status"),
        ('{"pattern": {"body": {"seed": 1e400}}, "count": 0}', "pattern.body.seed"),
        ('{"pattern": {"path": "/v1/\\ud800"}, "count": 0}', "pattern.path"),
        ('{"pattern": {"body": {"\\udfff": 1}}, "count": 0}', "pattern.body"),
        ('{"order": [{"model": "\\ud800"}]}', "order[0].model"),
        ('{"count": Infinity}', "count"),
    ],
)
def test_verify_refuses_what_it_cannot_compare_with_a_400_naming_the_field(
    client: TestClient, command: str, field: str
) -> None:
    client.post(GEN, json=BODY, headers=AUTH)
    answer = client.post("/_sfmock/verify", content=command.encode())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"verify: {field}:"), answer.json()


def test_a_generation_body_names_the_field_that_is_not_text(client: TestClient) -> None:
    body = b'{"model":"Kwai-Kolors/Kolors","prompt":"x","negative_prompt":{"deep":["\\ud800"]}}'
    answer = client.post(GEN, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "negative_prompt.deep[0]: the text holds a lone surrogate" in answer.json()["message"]
    every_read_answers(client, {})
