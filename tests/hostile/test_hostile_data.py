"""Bad data gets a documented 4xx and changes nothing (issue 12, first part).

Each case answered 500 before, several of them poisoning state for every later request.
After each one the clock, the scenario and the journal are as they were, and the API
still answers a good request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import ConfigError, Settings, VirtualClock, create_app
from sfmock.chaos.faults import Scenario
from sfmock.chaos.journal import ENTRY_CAP, Journal

GEN = "/v1/images/generations"
OK = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
T0 = 1_767_225_600


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def client(clock: VirtualClock) -> Iterator[TestClient]:
    app = create_app(Settings(seed=1), clock=clock)
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client
        assert test_client.post(GEN, json=OK, headers=AUTH).status_code == 200  # still healthy


def journal(client: TestClient) -> dict[str, Any]:
    answer = client.get("/_sfmock/journal")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = json.loads(answer.content)  # strict: serialisable, valid UTF-8
    return data


@pytest.mark.parametrize(
    "raw",
    [
        b'{"set": -7.29e+89}',
        b'{"set": 1e300}',
        b'{"set": 1e400}',
        b'{"set": NaN}',
        b'{"set": "soon"}',
        b'{"set": true}',
        b'{"set": -1}',
        b'{"advance": 1e300}',
        b'{"advance": Infinity}',
        b"set: .inf",
        b"set: .nan",
        b"set: 2026-01-01",
    ],
)
def test_bad_clock_values_are_400_and_leave_the_clock(client: TestClient, clock: VirtualClock, raw: bytes) -> None:
    response = client.post("/_sfmock/clock", content=raw)
    assert response.status_code == 400 and response.json()["error"].startswith("clock:")
    assert clock.now() == T0


def test_json_clock_bodies_are_json(client: TestClient, clock: VirtualClock) -> None:
    # YAML 1.1 read 1e3 as a string; JSON says it is a number
    assert client.post("/_sfmock/clock", content=b'{"set": 1.7e9}').json()["now"] == 1.7e9
    assert client.post("/_sfmock/clock", content=b'{"advance": 1e3}').status_code == 200
    assert clock.now() == 1.7e9 + 1000


def test_a_lone_surrogate_prompt_is_a_400(client: TestClient) -> None:
    raw = b'{"model": "Kwai-Kolors/Kolors", "prompt": "\\ud800"}'
    response = client.post(GEN, content=raw, headers=AUTH)
    assert response.status_code == 400 and "surrogate" in response.json()["message"]
    # a proper pair is text, and fine
    pair = b'{"model": "Kwai-Kolors/Kolors", "prompt": "\\ud83d\\ude00"}'
    assert client.post(GEN, content=pair, headers=AUTH).status_code == 200


POISON = {
    "NaN": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","guidance_scale":NaN}',
    "Infinity": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","guidance_scale":Infinity}',
    "1e400": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","guidance_scale":1e400}',
    "lone surrogate": b'{"model":"Kwai-Kolors/Kolors","prompt":"\\udfff x"}',
    "surrogate key": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","\\ud800":1}',
    "470 levels": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","e":' + b"[" * 470 + b"]" * 470 + b"}",
}


@pytest.mark.parametrize("raw", POISON.values(), ids=list(POISON))
def test_poison_bodies_are_400_and_the_journal_still_serialises(client: TestClient, raw: bytes) -> None:
    response = client.post(GEN, content=raw, headers=AUTH)
    assert response.status_code == 400 and response.json()["code"] == 20012
    entries = journal(client)["entries"]
    assert [e["status"] for e in entries] == [400]
    # and for a route that does not read the body: it is journaled all the same
    assert client.post("/v1/models", content=raw, headers=AUTH).status_code == 405
    assert len(journal(client)["entries"]) == 2


@pytest.mark.parametrize("raw", POISON.values(), ids=list(POISON))
def test_journal_entries_always_serialise(raw: bytes) -> None:
    journal = Journal()
    entry_id = journal.record(
        time=1.0, method="POST", path=GEN, query="", authorization=None, body=raw,
        status=400, outcome="response", fault=None, trace_id="t",
    )  # fmt: skip
    [entry] = journal.entries()
    text = entry.serialised()
    assert len(text) <= ENTRY_CAP and json.loads(text)["id"] == entry.id == entry_id
    text.encode("utf-8")  # no lone surrogate left


YAML_BAD = {
    "alias": "rules:\n  - {when: &w {path: /v1/*}, action: {error: 503}}\n  - {when: *w, action: {error: 500}}\n",
    "binary": "name: !!binary aGVsbG8=\nrules: []\n",
    "timestamp tag": "name: !!timestamp 2020-01-01\nrules: []\n",
    "set": "name: x\nrules: !!set {a: null}\n",
    "inf": "rules: [{action: {delay: .inf}}]\n",
    "nan": "rules: [{action: {truncate: .nan}}]\n",
    "json NaN": '{"rules": [{"action": {"truncate": NaN}}]}',
    "int key": "rules: []\n1: x\n",
    "deep": "rules: " + "[" * 100 + "]" * 100 + "\n",
}


@pytest.mark.parametrize("text", YAML_BAD.values(), ids=list(YAML_BAD))
def test_unsafe_scenarios_are_refused_and_change_nothing(client: TestClient, text: str) -> None:
    assert client.put("/_sfmock/scenario", json={"name": "before", "rules": []}).status_code == 200
    response = client.put("/_sfmock/scenario", content=text.encode())
    assert response.status_code == 400 and response.json()["error"].startswith("scenario:")
    assert client.get("/_sfmock/scenario").json()["name"] == "before"


def test_dates_in_yaml_stay_strings(client: TestClient) -> None:
    # YAML 1.1 made a date object of this; JSON data has none: a plain string, as written
    response = client.put("/_sfmock/scenario", content=b"name: 2020-01-01\nrules: []\n")
    assert response.status_code == 200 and response.json()["name"] == "2020-01-01"


def test_an_alias_bomb_is_refused(client: TestClient) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\nrules: []\n"  # ~1 KB; 10**9 strings once expanded
    response = client.put("/_sfmock/scenario", content=bomb.encode())
    assert response.status_code == 400 and "aliases" in response.json()["error"]


def test_scenario_files_are_read_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(YAML_BAD["alias"], "utf-8")
    with pytest.raises(ConfigError) as info:
        Scenario.load(path)
    assert info.value.source == str(path) and "aliases" in info.value.expected


@pytest.mark.parametrize(
    "header",
    ["truncate=nan", "truncate=1e400", "delay=nan", "delay=0..inf", "hang=inf", "slow-body=nan", "slow-body=-1"],
)
def test_non_finite_fault_parameters_are_400(client: TestClient, header: str) -> None:
    response = client.post(GEN, json=OK, headers={**AUTH, "X-Sfmock-Fault": header})
    assert response.status_code == 400 and response.json()["message"].startswith("X-Sfmock-Fault:")


@pytest.mark.parametrize("expires", ["1e400", "9" * 5000, "604801", "-1", "1.5", "٣"])
def test_bad_expires_on_an_image_url_is_s3s_400(client: TestClient, expires: str) -> None:
    url = client.post(GEN, json=OK, headers=AUTH).json()["images"][0]["url"]
    parts = urlsplit(url)
    query = parts.query.replace("X-Amz-Expires=3600", f"X-Amz-Expires={expires}")
    response = client.get(f"{parts.path}?{query}")
    assert response.status_code == 400 and "<Code>AuthorizationQueryParametersError</Code>" in response.text


def test_image_size_must_match_whole(client: TestClient) -> None:
    response = client.post(GEN, json={**OK, "image_size": "1024x1024\n"}, headers=AUTH)
    assert response.status_code == 400 and "image_size" in response.json()["message"]


@pytest.mark.parametrize("query", ["limit=0", "limit=-2", "since=nan", "since=inf", "after=-1"])
def test_bad_journal_queries_are_400(client: TestClient, query: str) -> None:
    client.post(GEN, json=OK, headers=AUTH)
    response = client.get(f"/_sfmock/journal?{query}")
    assert response.status_code == 400 and response.json()["error"].startswith("journal:")
    assert len(journal(client)["entries"]) == 1


class Broken:
    """An authenticator with a bug: what the fake does when its own code fails."""

    def authenticate(self, authorization: str | None) -> Any:
        raise RuntimeError("a bug")


def test_a_500_is_json_with_a_trace_id_logged_and_journaled(clock: VirtualClock, caplog: Any) -> None:
    app = create_app(Settings(seed=1), clock=clock, authenticator=Broken())
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, "sfmock"):
        client.event_hooks = {"request": [], "response": [contract_hook]}
        response = client.post(GEN, json=OK, headers=AUTH)
        assert response.status_code == 500
        assert response.json() == {"code": 50000, "message": "Internal Server Error", "data": None}
        trace_id = response.headers["x-siliconcloud-trace-id"]
        assert any(trace_id in record.getMessage() for record in caplog.records)
        (entry,) = app.state.journal.entries()
        assert (entry.status, entry.outcome, entry.trace_id) == (500, "response", trace_id)
