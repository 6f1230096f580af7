"""The journal from Python: bounded, masked, filterable."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from conftest import AUTH, data_url
from sfmock import Settings, create_app
from sfmock.journal import Journal, mask_key


def record(journal: Journal, **overrides: object) -> None:
    values: dict[str, object] = {
        "time": 1.0,
        "method": "POST",
        "path": "/v1/images/generations",
        "query": "",
        "authorization": None,
        "body": b"",
        "status": 200,
        "outcome": "response",
        "fault": None,
        "trace_id": "t",
    }
    journal.record(**{**values, **overrides})  # type: ignore[arg-type]


def test_bounded_and_counts_evictions() -> None:
    journal = Journal(size=3)
    for status in range(200, 205):
        record(journal, status=status)
    assert [e.status for e in journal.entries()] == [202, 203, 204]
    assert journal.dropped == 2 and len(journal) == 3
    assert [e.id for e in journal.entries()] == [3, 4, 5]


def test_keys_are_masked() -> None:
    assert mask_key("sk-test-0123456789") == "sk-t...6789"
    assert mask_key("short") == "****"
    assert mask_key(None) is None
    journal = Journal()
    record(journal, authorization="Bearer sk-secret-abcdefgh")
    entry = journal.entries()[0]
    assert entry.key == "sk-s...efgh" and "secret" not in json.dumps(entry.to_json())


def test_long_strings_are_shortened_when_read() -> None:
    journal = Journal()
    body = json.dumps({"model": "Qwen/Qwen-Image-Edit", "prompt": "x", "image": data_url()}).encode()
    record(journal, body=body)
    entry = journal.entries()[0]
    assert entry.model == "Qwen/Qwen-Image-Edit"
    assert entry.body["image"].startswith("data:image/png;base64,") and entry.body["image"].endswith(" chars)")


def test_non_json_bodies_are_kept_as_text() -> None:
    journal = Journal()
    record(journal, body=b"{broken")
    assert journal.entries()[0].body == "{broken" and journal.entries()[0].model is None


def test_filters() -> None:
    journal = Journal()
    record(journal, status=200, time=1.0, body=b'{"model": "a"}')
    record(journal, status=429, time=2.0, fault="flaky: error=429", method="GET", path="/v1/models")
    record(journal, status=200, time=3.0, authorization="Bearer sk-filter-key-1")
    assert len(journal.entries(status=200)) == 2
    assert len(journal.entries(method="get")) == 1
    assert len(journal.entries(path="/v1/*")) == 3
    assert len(journal.entries(fault="flaky")) == 1
    assert len(journal.entries(since=2.0)) == 2
    assert len(journal.entries(model="a")) == 1
    assert len(journal.entries(key="sk-filter-key-1")) == 1
    assert len(journal.entries(limit=1)) == 1


def test_a_test_can_assert_what_its_client_sent(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        for _ in range(3):
            client.post("/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH)
    sent = app.state.journal.entries(path="/v1/images/generations")
    assert len(sent) == 3 and all(e.status == 200 for e in sent)
