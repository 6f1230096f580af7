"""The journal from Python: bounded, masked, filterable."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from conftest import AUTH, data_url
from sfmock import Settings, create_app
from sfmock.chaos.codecs import ENTRIES
from sfmock.chaos.journal import ENTRY_FIELDS, RESPONSE_CAP, STRING_CAP, Journal, mask_key
from sfmock.state.redis_store import RedisStore


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


@pytest.fixture(params=["memory", "redis"])
def journal_of(request: pytest.FixtureRequest) -> Iterator[Callable[..., Journal]]:
    """Journals kept in this process's memory, or in a real Redis (tests/redis_server.py)."""
    if request.param == "memory":
        yield Journal
        return
    store = RedisStore(request.getfixturevalue("redis_url"))

    def on_redis(size: int = 1000, *, max_bytes: int = 16 * 1024 * 1024) -> Journal:
        return Journal(size, max_bytes=max_bytes, log=store.log(None, ENTRIES, size=size, max_bytes=max_bytes))

    yield on_redis
    store.close()


def test_bounded_and_counts_evictions(journal_of: Callable[..., Journal]) -> None:
    journal = journal_of(size=3)
    for status in range(200, 205):
        record(journal, status=status)  # bodies of no bytes: evicting them frees nothing
    assert [e.status for e in journal.entries()] == [202, 203, 204]
    assert journal.dropped == 2 and len(journal) == 3
    assert [e.id for e in journal.entries()] == [3, 4, 5]


def test_the_default_bound_keeps_the_1000th_entry_and_every_one_after(journal_of: Callable[..., Journal]) -> None:
    journal = journal_of()
    for n in range(1, 1003):
        record(journal, status=200, body=b"" if n % 2 else b"x" * n)
    entries = journal.entries()
    assert len(entries) == 1000 and journal.dropped == 2
    assert [e.id for e in entries[-3:]] == [1000, 1001, 1002]
    assert journal.held_bytes == sum(n for n in range(3, 1003) if n % 2 == 0)


def test_bounded_by_body_bytes_oldest_first(journal_of: Callable[..., Journal]) -> None:
    journal = journal_of(size=10, max_bytes=100)
    for n in range(6):
        record(journal, status=200 + n, body=b"y" * 40 if n % 2 else b"")
    assert [e.status for e in journal.entries()] == [202, 203, 204, 205]  # 80 of the 100 bytes
    assert journal.held_bytes == 80 and journal.dropped == 2


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


def _journal_client() -> TestClient:
    client = TestClient(create_app(Settings(seed=1)))
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "x"}
    for key in ("sk-a", "sk-b", "sk-test-0123456789"):
        client.post("/v1/images/generations", json=body, headers={"Authorization": f"Bearer {key}"})
    client.post(
        "/v1/images/generations", json=body, headers={**AUTH, "X-Sfmock-Fault": "503", "X-Sfmock-Token": "tok-123"}
    )
    return client


def test_the_key_filter_matches_the_real_key_and_shows_it_masked() -> None:
    with _journal_client() as client:
        # sk-a and sk-b both mask to "****": the filter must still tell them apart
        found = client.get("/_sfmock/journal", params={"key": "sk-a"}).json()["entries"]
        assert [e["key"] for e in found] == ["****"] and len(found) == 1
        assert client.get("/_sfmock/journal", params={"key": "sk-never-used"}).json()["count"] == 0
        assert client.get("/_sfmock/journal", params={"key": "sk-test-0123456789"}).json()["count"] == 2
    assert len(client.app.state.journal.entries(key="sk-b")) == 1  # type: ignore[attr-defined]


def test_unknown_filters_are_a_400_naming_the_allowed_ones() -> None:
    with _journal_client() as client:
        answer = client.get("/_sfmock/journal", params={"stauts": "503"})
        assert answer.status_code == 400
        assert "'stauts'" in answer.json()["error"] and "method, path, status, key" in answer.json()["error"]
        for bad in ({"limit": "0"}, {"limit": "-3"}, {"since": "nan"}, {"status": "x"}):
            assert client.get("/_sfmock/journal", params=bad).status_code == 400, bad


def test_fault_filter_is_a_glob() -> None:
    with _journal_client() as client:
        for pattern, count in (("*", 1), ("header", 1), ("*error=503*", 1), ("head", 0), ("*504*", 0)):
            assert client.get("/_sfmock/journal", params={"fault": pattern}).json()["count"] == count, pattern


def test_one_entry_shape_in_python_and_over_http() -> None:
    with _journal_client() as client:
        over_http = client.get("/_sfmock/journal").json()["entries"]
        in_python = client.app.state.journal.entries()  # type: ignore[attr-defined]
    assert [dict(e) | {"headers": dict(e["headers"])} for e in in_python] == over_http
    last = in_python[-1]
    assert last.status == last["status"] == 503 and last.fault == last["fault"]
    assert set(over_http[-1]) == set(ENTRY_FIELDS)
    # request headers are recorded with secrets masked; the answer's body is kept
    assert last.headers["authorization"] == "Bearer sk-t...6789" and last.headers["x-sfmock-token"] == "****"
    assert last.headers["x-sfmock-fault"] == "503" and "0123456789" not in json.dumps(over_http)
    assert last.response_body["code"] == 50505 and over_http[0]["response_body"]["images"]


def test_the_response_body_is_bounded() -> None:
    journal = Journal()
    record(journal, response=b'"' + b"x" * 100_000 + b'"')
    entry = journal.entries()[0]
    assert len(entry.raw_response) == RESPONSE_CAP and isinstance(entry.response_body, str)
    assert len(entry.response_body) <= STRING_CAP
    record(journal, response=b"\x89PNG\r\n\x1a\n\x00\xff")
    assert journal.entries()[1].response_body is None  # binary: not shown


def _reachable_text(root: object, limit: int = 100_000) -> Iterator[str]:
    """Every str and bytes reachable from ``root`` (as the garbage collector sees references),
    through what the journal holds, not through code: a function's globals lead to every
    module and cache of the process (the key cache of :mod:`sfmock.chaos.entries` holds
    other tests' keys by design, in memory only), which is no part of what is kept."""
    import functools
    import gc
    import types

    code = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, functools._lru_cache_wrapper)
    seen: set[int] = set()
    stack = [root]
    while stack and len(seen) < limit:
        item = stack.pop()
        if id(item) in seen or isinstance(item, code):
            continue
        seen.add(id(item))
        if isinstance(item, str | bytes):
            yield item if isinstance(item, str) else item.decode("latin-1")
            continue
        stack.extend(gc.get_referents(item))


def test_an_entry_not_yet_read_holds_no_secret_in_clear() -> None:
    """The journal builds an entry when it is read; what it keeps until then has its
    secrets masked already (the key, secret-named headers, a query's signature)."""
    key, other = "sk-unread-0123456789abcdef", "sk-header-9876543210fedcba"
    journal = Journal()
    journal.record(
        time=1.0, method="GET", path="/temporary/outputs/a.png", query="X-Amz-Signature=deadbeefcafe1234&x=1",
        authorization=f"Bearer {key}", body=b"{}", status=200, outcome="response", fault=None, trace_id="t",
        headers={"authorization": f"Bearer {key}", "x-api-key": other, "cookie": "session=s3cr3t-cookie"},
    )  # fmt: skip
    held = "\n".join(_reachable_text(journal))
    for secret in (key, other, "deadbeefcafe1234", "s3cr3t-cookie"):
        assert secret not in held
    [entry] = journal.entries()
    assert entry.key == mask_key(key) and entry.headers["x-api-key"] == mask_key(other)


@pytest.mark.parametrize("where", ["memory", "redis"])
def test_secrets_in_a_request_body_are_masked_in_the_journal_the_page_and_the_store(
    where: str, request: pytest.FixtureRequest
) -> None:
    """Body fields named like a credential, a key inside the prompt and the request's own
    key are masked by the rules the proxy's recordings follow, before the entry is kept."""
    import redis

    url = request.getfixturevalue("redis_url") if where == "redis" else "memory"
    key, own = "sk-BODYSECRET0123456789", "plain-own-key-4242"
    body = {
        "model": "Kwai-Kolors/Kolors",
        "prompt": f"a cat, key {key}, mine {own}",
        "api_key": key,
        "password": "hunter2-pass",
        "token": "tok-0000-1111",
        "nested": {"access_token": "nested-tok-2222"},
    }
    with TestClient(create_app(Settings(seed=1, store=url))) as client:
        for sent in (json.dumps(body), json.dumps(body)[:-30]):  # whole, and cut short (not JSON)
            client.post("/v1/images/generations", content=sent, headers={"Authorization": f"Bearer {own}"})
        journal = client.get("/_sfmock/journal").text
        feed = client.get("/_sfmock/ui/feed").text
        first = client.get("/_sfmock/journal").json()["entries"][0]["body"]
        assert first["api_key"] == first["password"] == first["token"] == "REDACTED"
        assert first["nested"] == {"access_token": "REDACTED"}
        assert first["prompt"] == "a cat, key REDACTED, mine REDACTED"
        assert first["model"] == "Kwai-Kolors/Kolors"
        held = _everything_in(redis.Redis.from_url(url)) if where == "redis" else b""
    for secret in (key, own, "hunter2-pass", "tok-0000-1111", "nested-tok-2222"):
        assert secret not in journal and secret not in feed
        assert secret.encode() not in held


def _everything_in(client: Any) -> bytes:
    """Every value a Redis holds, as bytes (what a shared store keeps of the journal)."""
    held = []
    for name in client.keys("*"):
        kind = client.type(name)
        if kind == b"string":
            held.append(client.get(name))
        elif kind == b"hash":
            held.extend(client.hgetall(name).values())
        elif kind == b"list":
            held.extend(client.lrange(name, 0, -1))
        elif kind == b"zset":
            held.extend(client.zrange(name, 0, -1))
        elif kind == b"set":
            held.extend(client.smembers(name))
    assert held  # the journal is there to search
    return b"\n".join(held)


def test_a_cut_body_with_a_data_url_keeps_its_payload_and_loses_its_secrets() -> None:
    """A body past 64 KiB is kept cut (not JSON): its secret-named fields are masked as
    text, and the image's base64 passes untouched (it holds no credential form)."""
    payload = "data:image/png;base64," + "QUJD" * 40_000
    body = json.dumps({"api_key": "sk-CUTSECRET-123456", "password": "pw-cut-7788", "image": payload}).encode()
    journal = Journal()
    record(journal, body=body)
    [entry] = journal.entries()
    assert b"sk-CUTSECRET" not in entry.raw_body and b"pw-cut-7788" not in entry.raw_body
    kept = b'{"api_key": "REDACTED", "password": "REDACTED", "image": "data:image/png;base64,QUJD'
    assert entry.raw_body.startswith(kept)
    assert len(entry.raw_body) == 65_536 - len("sk-CUTSECRET-123456pw-cut-7788") + 2 * len("REDACTED")


def test_an_entry_reads_back_from_redis_as_it_was_written_and_so_does_one_an_earlier_version_wrote(
    journal_of: Callable[..., Journal],
) -> None:
    journal = journal_of()
    awkward = {
        "time": 1_767_225_600.123456789,
        "path": "/v1/images/\udcff",  # a lone surrogate, as a percent-encoded path can decode
        "query": "a=1",
        "authorization": "Bearer sk-journal-0123456789",
        "body": b'{"prompt": "\xff\xfe"}',
        "fault": "slow: delay=2s",
        "headers": {"authorization": "Bearer sk-journal-0123456789", "x-\u00e9": "\u00fc"},
        "response": b"\x89PNG\r\n",
    }
    record(journal, **awkward)
    (entry,) = journal.entries()
    assert ENTRIES.decode(ENTRIES.encode(entry), entry.id) == entry
    assert entry.path == awkward["path"] and entry.raw_body == awkward["body"] and entry.time == awkward["time"]
    assert entry.headers["authorization"] == "Bearer sk-j...6789" and entry.raw_response == b"\x89PNG\r\n"
    earlier = json.dumps({**{name: entry[name] for name in ("time", "method", "path", "query", "key")},
                          "key_hash": entry.key_hash, "authorization": True, "headers": dict(entry.headers),
                          "raw_body": "e30=", "status": 200, "outcome": "response", "fault": None,
                          "raw_response": "", "trace_id": "t"})  # fmt: skip
    assert ENTRIES.decode(earlier.encode(), 9).raw_body == b"{}"


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/\udcff"])  # the second: orjson refuses it
def test_an_entry_on_redis_is_the_entry_in_memory(redis_url: str, path: str) -> None:
    """Redis keeps an entry encoded from what the journal kept of it, scrubbed as the
    memory journal shows it when read: the same entry, its other headers scrubbed too."""
    fields: dict[str, Any] = {
        "time": 1_767_225_600.5,
        "path": path,
        "authorization": "Bearer sk-journal-0123456789",
        "body": b'{"prompt": "a lighthouse", "api_key": "sk-in-the-body-0123456789"}',
        "headers": {
            "authorization": "Bearer sk-journal-0123456789",
            "x-api-key": "sk-named-secret-0123456789",
            "x-note": "sent with api_key=sk-in-a-header-0123456789",  # not a secret's name: scrubbed
            "x-long": "v" * 600 + " token=sk-far-in-a-header-0123456789",  # past what is cached
            "user-agent": "caf\u00e9/1.0",
        },
        "response": b'{"images": []}',
    }
    store = RedisStore(redis_url)
    try:
        on_redis = Journal(log=store.log(None, ENTRIES, size=10, max_bytes=1 << 20))
        in_memory = Journal()
        for journal in (on_redis, in_memory):
            record(journal, **fields)
            record(journal, **fields)  # the second: the header scrubs remembered
        assert on_redis.entries() == in_memory.entries()
        headers = on_redis.entries()[1].headers
        assert "sk-in-a-header" not in headers["x-note"] and "sk-far-in-a-header" not in headers["x-long"]
        assert headers["x-api-key"] != fields["headers"]["x-api-key"] and headers["user-agent"] == "caf\u00e9/1.0"
    finally:
        store.close()
