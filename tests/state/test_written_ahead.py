"""A generation's journal entry written by its admission (one call to Redis), held to what
the client got: an answer that went otherwise is journaled as it went, a refusal draws
no random numbers, and the sessions' journal budget holds as for any entry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fleets import GEN, KOLORS
from starlette.testclient import TestClient

from conftest import contract_hook
from sfmock import Settings, VirtualClock, create_app
from sfmock.service import api

AUTH = {"Authorization": "Bearer sk-ahead"}


def test_an_answer_that_fails_after_its_admission_is_journaled_as_it_went(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(store=redis_url, default_balance=Decimal("1.00")), clock=VirtualClock(1_767_225_600))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 200

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the 200 cannot be made")

        monkeypatch.setattr(api, "generation_response", broken)  # after the admission wrote the entry
        failed = client.post(GEN, json=KOLORS, headers=AUTH)
        assert failed.status_code == 500
        entries = client.get("/_sfmock/journal").json()["entries"]
        assert [e["status"] for e in entries] == [200, 500]  # one entry each, the second as it went
        assert entries[1]["trace_id"] == failed.headers["x-siliconcloud-trace-id"]
        assert entries[1]["response_body"] == failed.json()


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_refused_generation_draws_no_seed_on_either_store(store: str, request: pytest.FixtureRequest) -> None:
    """The seeds a run hands out are the same on both stores, refusals between them or not
    (on Redis the 200 is made before its admission is asked)."""
    url = "memory" if store == "memory" else request.getfixturevalue("redis_url")
    clock = VirtualClock(1_767_225_600)
    settings = Settings(seed=7, store=url, default_balance=Decimal("100.00"), limits={"rpm": 1})
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        seen = []
        for _ in range(3):
            first = client.post(GEN, json=KOLORS, headers=AUTH)
            refused = client.post(GEN, json=KOLORS, headers=AUTH)
            assert (first.status_code, refused.status_code) == (200, 429)
            seen.append(first.json()["seed"])
            clock.advance(61)
    without = create_app(Settings(seed=7, store="memory", default_balance=Decimal("100.00")), clock=clock)
    with TestClient(without) as client:
        assert [client.post(GEN, json=KOLORS, headers=AUTH).json()["seed"] for _ in range(3)] == seen


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_the_sessions_journal_budget_holds_for_entries_written_ahead(
    store: str, request: pytest.FixtureRequest
) -> None:
    """Every session's journals together stay within ``journal_max_bytes`` (one Redis
    server keeps one budget): past it, the least recently used other session goes, on
    both stores alike."""
    url = "memory" if store == "memory" else request.getfixturevalue("redis_url")
    settings = Settings(store=url, default_balance=Decimal("100.00"), journal_max_bytes=65_536)
    app = create_app(settings, clock=VirtualClock(1_767_225_600))
    big = {**KOLORS, "prompt": "a lighthouse " + "x" * 20_000}
    named = {**AUTH, "X-Sfmock-Session": "suite-a"}
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post(GEN, json=big, headers=named).status_code == 200
        assert client.get("/_sfmock/journal", headers=named).json()["count"] == 3
        for _ in range(2):
            assert client.post(GEN, json=big, headers=AUTH).status_code == 200
        default = client.get("/_sfmock/journal").json()
        other = client.get("/_sfmock/journal", headers=named).json()
    assert (default["count"], [e["status"] for e in default["entries"]]) == (2, [200, 200])
    assert other["count"] == 0  # pushed out whole: the least recently used, holding bytes
