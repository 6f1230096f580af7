"""Verification: counts, order, near misses, waiting for in-flight requests, over HTTP too."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import AUTH, KEY, contract_hook
from sfmock import Settings, VirtualClock, create_app
from sfmock.app import FakeApp
from sfmock.chaos.verify import Pattern, VerificationFailed
from sfmock.server import FakeServer

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a neon sign", "image_size": "1328x1328"}


@pytest.fixture
def app(clock: VirtualClock) -> FakeApp:
    return create_app(Settings(seed=3), clock=clock)


@pytest.fixture
def api(app: FakeApp) -> Iterator[TestClient]:
    with TestClient(app) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        yield client


def checked_post(url: str, **options: Any) -> httpx.Response:
    """``httpx.post``, with the answer checked against the contract."""
    with httpx.Client(event_hooks={"response": [contract_hook]}) as client:
        return client.post(url, **options)


def traffic(api: TestClient) -> None:
    """#1 Kolors 200, #2 Qwen 503 (header fault), #3 Qwen 200, #4 a download, #5 models 401."""
    first = api.post(GEN, json=KOLORS, headers=AUTH)
    api.post(GEN, json=QWEN, headers={**AUTH, "X-Sfmock-Fault": "503"})
    api.post(GEN, json=QWEN, headers=AUTH)
    api.get(first.json()["images"][0]["url"])
    api.get("/v1/models")


def test_counts_exactly_at_least_and_at_most(app: FakeApp, api: TestClient) -> None:
    traffic(api)
    assert [e.id for e in app.verify(path="/v1/*", method="post", count=3)] == [1, 2, 3]
    assert [e.id for e in app.verify(model="Qwen/Qwen-Image", status=200, count=1)] == [3]
    assert len(app.verify(path="/temporary/outputs/*", status=200, at_least=1, at_most=1)) == 1
    assert len(app.verify(status=401)) == 1  # no bound: at least one
    assert app.verify(status=429, at_most=0) == []
    assert len(app.verify(fault="header", count=1)) == 1
    assert len(app.verify(fault="none", path=GEN, count=2)) == 2
    assert len(app.verify({"key": KEY, "body": {"image_size": "1328x1328"}}, count=2)) == 2
    assert len(app.verify(Pattern(path=GEN, body={"prompt": "a lighthouse"}), count=1)) == 1


def test_a_failed_count_is_an_assertion_naming_the_near_misses(app: FakeApp, api: TestClient) -> None:
    traffic(api)
    with pytest.raises(AssertionError) as info:
        app.verify(path=GEN, model="Qwen/Qwen-Image", status=200, count=2, timeout=0)
    failure = info.value
    assert isinstance(failure, VerificationFailed)
    lines = str(failure).splitlines()
    assert lines[0] == (
        "verify: expected exactly 2 requests matching {path='/v1/images/generations' model='Qwen/Qwen-Image' "
        "status=200}, saw 1 (of 5 recorded)"
    )
    assert lines[1] == "closest near misses:"
    # the closest first: one field off, then two
    assert lines[2] == "  #2 POST /v1/images/generations -> 503 [header: error=503]: status expected 200, seen 503"
    assert (
        lines[3]
        == "  #1 POST /v1/images/generations -> 200: model expected 'Qwen/Qwen-Image', seen 'Kwai-Kolors/Kolors'"
    )
    assert [(e.id, [d.field for d in diffs]) for e, diffs in failure.near_misses][:2] == [
        (2, ["status"]),
        (1, ["model"]),
    ]


def test_too_many_names_the_extra_matches(app: FakeApp, api: TestClient) -> None:
    traffic(api)
    with pytest.raises(VerificationFailed, match=r"expected at most 1 matching \{path='/v1/\*'\}, saw 4") as info:
        app.verify(path="/v1/*", at_most=1)
    assert "matches beyond the limit:\n  #2 POST" in str(info.value)


def test_body_fields_nested_and_absent(app: FakeApp, api: TestClient) -> None:
    api.post(GEN, json={**KOLORS, "batch_size": 2}, headers=AUTH)
    assert len(app.verify(body={"batch_size": 2}, count=1)) == 1
    with pytest.raises(VerificationFailed) as info:
        app.verify(body={"seed": 7}, timeout=0)
    assert "body.seed expected 7, seen (absent)" in str(info.value)
    with pytest.raises(VerificationFailed, match=r"body.batch_size expected 4, seen 2"):
        app.verify(body={"batch_size": 4})


def test_order(app: FakeApp, api: TestClient) -> None:
    traffic(api)
    found = app.verify_order({"status": 503}, {"model": "Qwen/Qwen-Image", "status": 200}, {"path": "/temporary/*"})
    assert [e.id for e in found] == [2, 3, 4]
    with pytest.raises(VerificationFailed) as info:
        app.verify_order({"path": "/temporary/*"}, {"status": 503})
    message = str(info.value)
    assert message.startswith("verify_order: step 2 of 2 {status=503} not found after #4 (5 recorded)\n")
    assert "matched so far: step 1 #4" in message
    assert "#5 GET /v1/models -> 401: status expected 503, seen 401" in message


def test_bad_verifications_are_value_errors(app: FakeApp) -> None:
    with pytest.raises(ValueError, match="unknown field 'stauts'"):
        app.verify(stauts=200)
    with pytest.raises(ValueError, match=r"pattern.status: expected an HTTP status \(100 to 599\), got '200'"):
        app.verify(status="200")
    with pytest.raises(ValueError, match="count, or at_least"):
        app.verify(count=1, at_least=1)
    with pytest.raises(ValueError, match="at_least \\(3\\) is more than at_most"):
        app.verify(at_least=3, at_most=1)
    with pytest.raises(ValueError, match="at least one pattern"):
        app.verify_order()


def test_waits_for_requests_in_flight(clock: VirtualClock) -> None:
    """An answer still in flight when the test verifies is waited for, not raced."""
    with FakeServer(Settings(seed=1), clock=clock) as fake:
        sent = threading.Thread(
            target=checked_post,
            args=(fake.api_url + "/images/generations",),
            kwargs={"json": KOLORS, "headers": {**AUTH, "X-Sfmock-Fault": "delay=0.3"}, "timeout": 10},
        )
        sent.start()
        while fake.app.state.sessions.default.activity.in_flight == 0:  # the server has it
            time.sleep(0.001)
        assert len(fake.journal.entries()) == 0
        found = fake.verify(path=GEN, status=200, count=1)  # no sleep in the test: verify waits
        assert found[0].fault == "header: delay=0.300"
        sent.join()


def test_within_waits_on_the_virtual_clock(clock: VirtualClock) -> None:
    """``within`` is server time: a request that comes later is seen; a virtual deadline ends the wait."""
    with FakeServer(Settings(seed=1), clock=clock) as fake:

        def later() -> None:
            time.sleep(0.05)
            checked_post(fake.api_url + "/images/generations", json=KOLORS, headers=AUTH, timeout=10)

        sender = threading.Thread(target=later)
        sender.start()
        assert len(fake.verify(path=GEN, count=1, within=60, timeout=20)) == 1
        sender.join()

        mover = threading.Timer(0.05, clock.advance, args=(61,))  # a minute passes on the fake's clock
        mover.start()
        began = time.monotonic()
        with pytest.raises(VerificationFailed, match="expected exactly 2 requests"):
            fake.verify(path=GEN, count=2, within=60, timeout=30)
        assert time.monotonic() - began < 30  # ended by the virtual minute, not the real bound
        mover.join()


def test_averify_lets_the_event_loop_serve(app: FakeApp) -> None:
    """Awaited while the request is in flight on the same loop: a blocking verify would stall it."""

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sfmock.test") as client:
            sending = asyncio.ensure_future(
                client.post(GEN, json=KOLORS, headers={**AUTH, "X-Sfmock-Fault": "delay=0.05"})
            )
            while app.state.sessions.default.activity.in_flight == 0:
                await asyncio.sleep(0)
            found = await app.verifier().averify(path=GEN, count=1, timeout=10)
            ordered = await app.verifier().averify_order({"path": GEN})
            assert (await sending).status_code == 200
            return [found[0].id, ordered[0].id]

    assert asyncio.run(main()) == [1, 1]


def test_over_the_control_api(api: TestClient) -> None:
    traffic(api)
    ok = api.post("/_sfmock/verify", json={"pattern": {"model": "Qwen/Qwen-Image"}, "count": 2}).json()
    assert ok["ok"] is True and [e["id"] for e in ok["entries"]] == [2, 3]
    failed = api.post("/_sfmock/verify", json={"pattern": {"status": 200, "path": GEN}, "at_least": 3}).json()
    assert failed["ok"] is False
    assert failed["message"].startswith("verify: expected at least 3 matching")
    assert failed["near_misses"][0]["differences"] == [{"field": "status", "expected": 200, "seen": 503}]
    order = api.post("/_sfmock/verify", json={"order": [{"status": 503}, {"status": 503}]}).json()
    assert order["ok"] is False and order["message"].startswith(
        "verify_order: step 2 of 2 {status=503} not found after #2"
    )
    order = api.post("/_sfmock/verify", json={"order": [{"status": 200}, {"status": 503}, {"status": 401}]}).json()
    assert order["ok"] is True and [e["id"] for e in order["entries"]] == [1, 2, 5]


def test_no_pattern_matches_every_request_as_documented(api: TestClient) -> None:
    none = api.post("/_sfmock/verify", json={}).json()  # at least one request of any kind: none yet
    assert none["ok"] is False and none["message"].startswith("verify: expected at least 1 matching")
    assert api.post("/_sfmock/verify", json={"count": 0}).json()["ok"] is True  # no request at all
    traffic(api)
    every = api.post("/_sfmock/verify", json={}).json()
    assert every["ok"] is True and every["count"] == len(api.get("/_sfmock/journal").json()["entries"]) > 1


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("[1]", "verify: expected a JSON object"),
        ({"pattern": {"stat": 1}}, "verify: pattern: unknown field 'stat'"),
        ({"pattern": {}, "exactly": 1}, "verify: unknown field 'exactly'"),
        ({"pattern": {}, "count": -1}, "verify: count must be an integer from 0 to 1000000"),
        ({"pattern": {}, "timeout": 600}, "verify: timeout must be a number of seconds from 0 to 5"),
        ({"order": {"status": 1}}, "verify: order must be a list of patterns"),
        ({"order": [{"status": 1}], "count": 1}, "verify: count does not apply to order"),
        ({"order": ["x"]}, "verify: patterns[0]: expected an object"),
    ],
)
def test_bad_control_verifications_are_400(api: TestClient, command: object, message: str) -> None:
    if isinstance(command, str):
        answer = api.post("/_sfmock/verify", content=command)
    else:
        answer = api.post("/_sfmock/verify", json=command)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(message), answer.json()


def test_a_body_too_deeply_nested_to_read_is_matched_as_text(app: FakeApp, api: TestClient) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert api.post(GEN, content=deep, headers=AUTH).status_code == 400
    assert app.verify(status=400, count=1)[0].model is None
    with pytest.raises(VerificationFailed, match=r"body.model expected 'x', seen \(absent\)"):
        app.verify(body={"model": "x"}, timeout=0)
    assert api.get("/_sfmock/journal").json()["entries"][0]["body"].startswith("[[[[")


FAILING_VERIFY = """
import httpx
import pytest


def test_counts(sfmock_server):
    sfmock_server.verify(path="/v1/images/generations", count=1)


def test_order(sfmock_server):
    sfmock_server.verify_order({"path": "/v1/models"})


def test_a_shared_fake_without_the_header(sfmock_server):
    with httpx.Client(base_url=sfmock_server.api_url) as client:  # forgets sfmock_server.headers
        client.get("/models", headers={"Authorization": "Bearer sk-x"})
        client.get("/models", headers={"Authorization": "Bearer sk-x"})
    sfmock_server.verify(path="/v1/models", count=2)
"""


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "SFMOCK_URL"])
def test_a_failing_verify_shows_the_test_s_line_not_sfmock_s_frames(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    pytester.makepyfile(test_inner=FAILING_VERIFY)
    quick = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:randomly")
    with FakeServer(Settings(seed=2)) as fake:
        if shared:
            monkeypatch.setenv("SFMOCK_URL", fake.url)
        result = pytester.runpytest_subprocess(*quick, "-k", "counts or order")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert len(re.findall(r"test_inner\.py:\d+", out)) == 2  # the user's two lines, and nothing of sfmock's
    assert "sfmock/" not in out.replace("sfmock_server", "")
    assert "saw 0 (of 0 recorded)" in out and "step 1 of 1" in out
    failures = out.split("= FAILURES =")[1].split("short test summary")[0]
    assert len(failures.splitlines()) < 30, failures


def test_on_a_shared_fake_a_client_without_the_session_header_is_told_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=FAILING_VERIFY)
    quick = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:randomly")
    with FakeServer(Settings(seed=2)) as fake:
        monkeypatch.setenv("SFMOCK_URL", fake.url)
        result = pytester.runpytest_subprocess(*quick, "-k", "shared_fake")
    result.assert_outcomes(failed=1)
    out = " ".join(result.stdout.str().split())
    assert "saw 0 (of 0 recorded)" in out
    assert "meanwhile the default session (requests without the session header) recorded 2 requests" in out
    assert "the first GET /v1/models" in out
    assert "send sfmock_server.headers (X-Sfmock-Session: " in out


def test_a_remote_session_that_saw_nothing_anywhere_says_where_to_point() -> None:
    from sfmock.remote import RemoteFake

    with FakeServer(Settings(seed=2)) as fake:
        checked_post(f"{fake.url}{GEN}", json=KOLORS, headers=AUTH)  # before the session began: not counted
        mine = RemoteFake(fake.url).for_session("alone")
        mine.reset()
        with pytest.raises(VerificationFailed) as failed:
            mine.verify(path=GEN, count=1)
        assert (
            f"no request reached session 'alone', nor the default session: is the client pointed at {fake.url}/v1"
            in str(failed.value)
        )
        # a session that did record something gets no such line
        checked_post(f"{fake.url}/v1/models", headers={**AUTH, **mine.headers})
        with pytest.raises(VerificationFailed) as failed:
            mine.verify(path=GEN, count=1)
        assert "default session" not in str(failed.value)
