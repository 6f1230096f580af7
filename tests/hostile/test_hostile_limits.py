"""Every resource has a limit (issue 12, second part): bodies, scenarios, the journal,
per-token state. The soak test (test_hostile_soak.py) checks the timing and memory sides."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook, run_server
from sfmock import Settings, VirtualClock, create_app
from sfmock.chaos.journal import ENTRY_CAP, Journal
from sfmock.contract.openapi import load_contract
from sfmock.errors import ApiError
from sfmock.service.accounts import OpenAuthenticator
from sfmock.service.admission import Admission
from sfmock.service.quota import Limits, Usage

GEN = "/v1/images/generations"
OK = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(seed=1, max_body_bytes=4096, control_max_body_bytes=2048, journal_max_bytes=300_000)
    app = create_app(settings, clock=VirtualClock())
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client


def raw_exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send ``request`` and read until the server closes or 2 s pass: the bytes it
    answered, and whether it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            return answer, False
        return answer, True


@pytest.mark.parametrize("path", [GEN, "/_sfmock/scenario"])
def test_a_declared_oversized_body_gets_413_at_once_not_100_continue(path: str) -> None:
    with run_server(Settings(seed=1, max_body_bytes=4096, control_max_body_bytes=4096), VirtualClock()) as server:
        method = "POST" if path == GEN else "PUT"
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-test-0123456789\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer, closed = raw_exchange(server.settings.port, head.encode())
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
        assert closed  # the body was never read: the connection cannot carry another request
        if path == GEN:
            (entry,) = server.journal.entries()
            assert entry.status == 413 and entry.raw_body == b""


def test_the_control_api_caps_bodies(client: TestClient) -> None:
    big = json.dumps({"name": "x" * 3000, "rules": []}).encode()
    assert client.put("/_sfmock/scenario", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
        yield big[:1000]
        yield big[1000:]

    response = client.put("/_sfmock/scenario", content=chunks())
    assert response.status_code == 413 and "2048" in response.json()["error"]
    assert client.get("/_sfmock/scenario").json()["name"] == "none"


def test_scenario_rules_are_capped() -> None:
    rule = {"when": {"path": "/never"}, "action": {"error": 503}}
    with TestClient(create_app(Settings(seed=1), clock=VirtualClock())) as client:
        assert client.put("/_sfmock/scenario", json={"rules": [rule] * 1000}).json()["rules_count"] == 1000
        response = client.put("/_sfmock/scenario", json={"rules": [rule] * 1001})
        assert response.status_code == 400 and "rules" in response.json()["error"]
        assert client.get("/_sfmock/scenario").json()["rules_count"] == 1000


def test_the_journal_is_bounded_in_bytes_and_counts_evictions(client: TestClient) -> None:
    body = {**OK, "prompt": "x", "pad": "y" * 3500}  # ~3.5 KB each, a bound of 300,000 bytes
    for _ in range(120):
        client.post(GEN, json=body, headers=AUTH)
    answer = client.get("/_sfmock/journal").json()
    assert answer["bytes"] <= 300_000 and answer["max_bytes"] == 300_000
    assert answer["evicted"] == 120 - len(answer["entries"]) > 0
    assert answer["entries"][-1]["id"] == 120


def test_entries_and_answers_are_capped_and_paged(monkeypatch: pytest.MonkeyPatch) -> None:
    import sfmock.chaos.control

    monkeypatch.setattr(sfmock.chaos.control, "JOURNAL_PAGE_CHARS", 5_000)
    app = create_app(Settings(seed=1, max_body_bytes=100_000), clock=VirtualClock())
    array_body = json.dumps({**OK, "extra": list(range(10_000))}).encode()  # ~60 KB: over the entry cap
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        for _ in range(12):
            client.post(GEN, content=array_body, headers=AUTH)
        pages, after = [], None
        while True:
            answer = client.get("/_sfmock/journal" + (f"?after={after}" if after is not None else ""))
            assert len(answer.content) <= 5_000 + ENTRY_CAP
            data = answer.json()
            pages.append([e["id"] for e in data["entries"]])
            after = data["next_after"]
            if after is None:
                break
    assert [i for page in pages for i in page] == list(range(1, 13)) and len(pages) > 1
    entry = data["entries"][-1]
    assert entry["body"]["bytes"] == len(array_body) and entry["body"]["text"].startswith('{"model"')


def test_journal_serialisation_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = Journal.serialise

    def spy(self: Journal, *args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args)

    monkeypatch.setattr(Journal, "serialise", spy)
    with run_server(Settings(seed=1), VirtualClock()) as server:
        httpx.post(server.api_url + "/images/generations", json=OK, headers=AUTH)
        assert httpx.get(server.url + "/_sfmock/journal").json()["count"] == 1
        loop_thread = server._thread.thread.name
    assert threads and all(name != loop_thread for name in threads)


def test_open_mode_state_is_an_lru_of_accounts() -> None:
    model = load_contract().models["Kwai-Kolors/Kolors"]
    admission = Admission(limits=Limits(rpm=1), model_limits={}, prices={}, headers=False, max_accounts=3)
    open_auth = OpenAuthenticator(Decimal("1.00"))
    first, *others = (open_auth.authenticate(f"Bearer sk-key-{i:04d}") for i in range(4))
    admission.admit(first, model, Usage(), 100.0, "t")
    assert admission.balances(first)[0] == Decimal("0.95")
    for account in others[:2]:  # live keys, with the first, fill the bound: all kept exactly
        admission.admit(account, model, Usage(), 100.0, "t")
    with pytest.raises(ApiError, match="429"):
        admission.admit(others[0], model, Usage(), 100.0, "t")
    admission.admit(others[2], model, Usage(), 100.0, "t")  # a fourth: the least recently seen goes
    survivors = {account.id for account in others}
    assert set(admission._recent) == survivors
    assert admission.balances(first)[0] == Decimal("1.00")  # forgotten: as if never used


@pytest.mark.parametrize(
    ("flag", "value", "phrase"),
    [
        ("--read-timeout", "0", "is too small: it must be over 0"),
        ("--control-max-body-bytes", "10", "less than the minimum"),
        ("--journal-max-bytes", "10", "less than the minimum"),
        ("--max-open-accounts", "0", "less than the minimum"),
    ],
)
def test_limit_flags_are_checked(flag: str, value: str, phrase: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sfmock.cli import main

    assert main(["serve", flag, value, "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert f"command line: {flag}:" in error and phrase in error
