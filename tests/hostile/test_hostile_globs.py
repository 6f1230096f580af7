"""Globs a client chooses (verify patterns, journal filters, scenario paths) are bounded
in size and compiled into a cache of bounded size: no client grows the server."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Settings, VirtualClock, create_app

MAX_GLOB_CHARS, CACHED_GLOBS = 1024, 256  # the documented bounds (sfmock.globs)
BIG = "/v1/" + "*a" * 100_000  # 200 KB, as the probe sent


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(seed=1), clock=VirtualClock(1_767_225_600))) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        test_client.get("/v1/models", headers=AUTH)
        yield test_client


def test_a_glob_over_the_bound_is_a_400_naming_the_field(client: TestClient) -> None:
    answer = client.post("/_sfmock/verify", json={"pattern": {"path": BIG}, "count": 0})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("verify: pattern.path: a glob of 200004 characters")
    answer = client.post("/_sfmock/verify", json={"order": [{"path": "/v1/*"}, {"path": BIG}]})
    assert answer.status_code == 400 and "patterns[1].path" in answer.json()["error"], answer.json()
    answer = client.get("/_sfmock/journal", params={"path": BIG[:5000]})
    assert answer.status_code == 400 and answer.json()["error"].startswith("journal: path: a glob of 5000")
    answer = client.get("/_sfmock/journal", params={"fault": BIG[:5000]})
    assert answer.status_code == 400 and answer.json()["error"].startswith("journal: fault: a glob of 5000")
    rule = {"when": {"path": BIG[: MAX_GLOB_CHARS + 1]}, "action": {"error": 503}}
    answer = client.put("/_sfmock/scenario", json={"rules": [rule]})
    assert answer.status_code == 400 and "rules[0].when.path" in answer.json()["error"], answer.json()


def test_many_distinct_globs_keep_a_bounded_cache(client: TestClient) -> None:
    fnmatch_cache = fnmatch._compile_pattern.cache_info().currsize  # type: ignore[attr-defined]
    for n in range(CACHED_GLOBS + 100):
        glob = f"/v1/{n}" + "*" * (MAX_GLOB_CHARS - 10)
        answer = client.post("/_sfmock/verify", json={"pattern": {"path": glob}, "count": 0})
        assert answer.json()["ok"] is True
        assert client.get("/_sfmock/journal", params={"path": glob, "fault": glob}).status_code == 200
    assert fnmatch._compile_pattern.cache_info().currsize == fnmatch_cache  # type: ignore[attr-defined]
    from sfmock.globs import _compiled

    assert _compiled.cache_info().currsize == CACHED_GLOBS
