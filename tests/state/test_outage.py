"""A lost Redis, seen by clients: the documented 503 on every route, nothing admitted or
charged meanwhile, and service again as soon as Redis is back (no restart of sfmock)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis
from starlette.testclient import TestClient

from conftest import contract_hook
from redis_server import RedisServer
from sfmock import Settings, VirtualClock, create_app

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
AUTH = {"Authorization": "Bearer sk-outage"}


def test_every_route_answers_the_documented_503_while_redis_is_gone(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(store=own_redis.url, default_balance=Decimal("1.00"), prices={"Kwai-Kolors/Kolors": "0.25"})
    app = create_app(settings, clock=VirtualClock(1_767_225_600))
    with TestClient(app, base_url=settings.base_url) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        url = client.post(GEN, json=KOLORS, headers=AUTH).json()["images"][0]["url"]
        own_redis.kill()
        refused = client.post(GEN, json=KOLORS, headers=AUTH)
        assert refused.status_code == 503
        body = refused.json()
        assert body["code"] == 50505 and f"the shared store {own_redis.url} cannot be reached" in body["message"]
        assert client.get("/v1/user/info", headers=AUTH).status_code == 503
        download = client.get(url.removeprefix(settings.base_url))
        assert download.status_code == 503 and b"<Code>SlowDown</Code>" in download.content
        assert client.get("/_sfmock/journal").status_code == 503
        assert client.post("/_sfmock/reset").status_code == 503
        assert [r.levelname for r in caplog.records if "lost the store" in r.message] == ["ERROR"]
        own_redis.start()
        assert client.get(url.removeprefix(settings.base_url)).status_code == 200
        statuses = [client.post(GEN, json=KOLORS, headers=AUTH).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 403]  # 1.00 pays for 4 at 0.25: one before, three after
        info = client.get("/v1/user/info", headers=AUTH).json()["data"]
        assert info["totalBalance"] == "0.00"
        assert any("is back" in r.message for r in caplog.records)


def test_an_answer_goes_out_whole_when_redis_refuses_its_journal_entry(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(store=redis_url, default_balance=Decimal("1.00"), prices={"Kwai-Kolors/Kolors": "0.25"})
    app = create_app(settings, clock=VirtualClock(1_767_225_600))
    with TestClient(app, base_url=settings.base_url) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        broken = redis.Redis.from_url(redis_url)
        broken.set("sfmock:|{|}j:entries", "not a sorted set")  # every push of the journal now fails in Redis
        answer = client.post(GEN, json=KOLORS, headers=AUTH)
        assert answer.status_code == 200 and len(answer.json()["images"]) == 1  # whole, after its headers
        lost = [r for r in caplog.records if "not journaled" in r.message]
        assert [(r.levelname, r.message) for r in lost] == [("ERROR", f"sfmock: POST {GEN} not journaled")]
        broken.delete("sfmock:|{|}j:entries")
        broken.close()
        assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 200
        entries = client.get("/_sfmock/journal").json()["entries"]
        assert [e["status"] for e in entries] == [200]  # the lost one is lost; the next is kept
        info = client.get("/v1/user/info", headers=AUTH).json()["data"]
        assert info["totalBalance"] == "0.50"  # both were admitted and charged


def test_a_request_reads_its_scenario_from_redis_only_when_it_changed(redis_url: str) -> None:
    settings = Settings(store=redis_url, default_balance=Decimal("100.00"))
    never = [{"name": f"n{n}", "when": {"path": f"/nowhere/{n:04d}"}, "action": {"error": 503}} for n in range(600)]
    app = create_app(settings, clock=VirtualClock(1_767_225_600))
    watcher = redis.Redis.from_url(redis_url)
    with TestClient(app, base_url=settings.base_url) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        assert client.put("/_sfmock/scenario", json={"name": "big", "rules": never}).status_code == 200
        scenario = len(watcher.hget("sfmock:|{|}f:scenario", "data") or b"")
        assert scenario > 30_000
        assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 200  # this process reads it once
        sent = int(watcher.info("stats")["total_net_output_bytes"])
        for _ in range(20):
            assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 200
        per_request = (int(watcher.info("stats")["total_net_output_bytes"]) - sent) / 20
        assert per_request < scenario / 10, f"{per_request:.0f} bytes a request from Redis, the scenario is {scenario}"
        changed = client.put("/_sfmock/scenario", json={"name": "small", "rules": [{"action": {"error": 502}}]})
        assert changed.status_code == 200
        assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 502  # a new version is read at once
    watcher.close()


def test_every_request_past_the_journal_s_bound_is_kept_on_redis(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(store=redis_url, journal_size=5, default_balance=Decimal("100.00"))
    app = create_app(settings, clock=VirtualClock(1_767_225_600))
    with TestClient(app, base_url=settings.base_url) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        assert client.get("/v1/models", headers=AUTH).status_code == 200  # an entry of no body bytes
        for _ in range(7):
            answer = client.post(GEN, json=KOLORS, headers=AUTH)
            assert answer.status_code == 200 and answer.json()["images"]
        journal = client.get("/_sfmock/journal").json()
        assert [e["path"] for e in journal["entries"]] == [GEN] * 5
        assert [e["id"] for e in journal["entries"]] == [4, 5, 6, 7, 8]
        assert journal["evicted"] == 3
    assert not [r for r in caplog.records if "not journaled" in r.message]
