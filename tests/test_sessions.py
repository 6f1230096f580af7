"""Sessions: one fake shared by many tests, each seeing only its own journal, faults and quotas."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Limits, Settings, VirtualClock, create_app
from sfmock.app import FakeApp
from sfmock.chaos.sessions import ANSWER_BYTES, ANSWERS_KEPT, Answer
from sfmock.chaos.verify import VerificationFailed
from sfmock.remote import RemoteFake
from sfmock.server import FakeServer

GEN = "/v1/images/generations"
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
NTH_2 = {"name": "second-fails", "rules": [{"name": "second", "nth": 2, "action": {"error": 503}}]}


def session(name: str) -> dict[str, str]:
    return {**AUTH, "X-Sfmock-Session": name}


@pytest.fixture
def app(clock: VirtualClock) -> FakeApp:
    return create_app(Settings(seed=5, limits=Limits(ipm=2), default_balance=Decimal("100.00")), clock=clock)


@pytest.fixture
def api(app: FakeApp) -> Iterator[TestClient]:
    with TestClient(app) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        yield client


def test_journals_scenarios_and_fault_counters_are_per_session(app: FakeApp, api: TestClient) -> None:
    api.put("/_sfmock/scenario", json=NTH_2, headers={"X-Sfmock-Session": "a"})
    api.put("/_sfmock/scenario", json={"name": "down", "rules": [{"action": {"error": 500}}]}, headers=session("b"))
    statuses = []
    for _ in range(3):  # interleaved: a, b, default, a, b, default, ...
        statuses.append(tuple(api.post(GEN, json=BODY, headers=h).status_code for h in (session("a"), session("b"))))
        api.get("/v1/models", headers=AUTH)
    # a's 2nd request fails whatever b and the default session sent in between
    assert statuses == [(200, 500), (503, 500), (200, 500)]
    assert [e.status for e in app.verify(session="a", path=GEN, count=3)] == [200, 503, 200]
    assert {e.status for e in app.verify(session="b", path=GEN, count=3)} == {500}
    assert [e.path for e in app.state.journal.entries()] == ["/v1/models"] * 3  # no header: the default
    health = api.get("/_sfmock/health", headers={"X-Sfmock-Session": "b"}).json()
    assert (health["scenario"], health["journal"]) == ("down", 3)
    assert api.get("/_sfmock/scenario").json()["name"] == "none"
    journal = api.get("/_sfmock/journal", headers={"X-Sfmock-Session": "a"}).json()
    assert [e["status"] for e in journal["entries"]] == [200, 503, 200]


def test_rate_limits_and_balances_are_per_session(api: TestClient) -> None:
    assert [api.post(GEN, json=BODY, headers=session("a")).status_code for _ in range(3)] == [200, 200, 429]
    # the same key, in another session and in the default one: its own minute, its own money
    assert [api.post(GEN, json=BODY, headers=session("b")).status_code for _ in range(3)] == [200, 200, 429]
    assert api.post(GEN, json=BODY, headers=AUTH).status_code == 200
    balance = {name: api.get("/v1/user/info", headers=session(name)).json()["data"]["balance"] for name in ("a", "b")}
    assert balance == {"a": "99.90", "b": "99.90"}
    assert api.get("/v1/user/info", headers=AUTH).json()["data"]["balance"] == "99.95"


def test_image_urls_carry_the_session_so_downloads_land_in_it(app: FakeApp, api: TestClient) -> None:
    url = api.post(GEN, json=BODY, headers=session("job-7")).json()["images"][0]["url"]
    assert url.endswith("&X-Sfmock-Session=job-7")
    assert api.get(url).status_code == 200  # still a valid signature
    app.verify_order({"path": GEN}, {"path": "/temporary/outputs/*", "status": 200}, session="job-7")
    assert len(app.state.journal) == 0


def test_resetting_a_session_leaves_the_others_alone(app: FakeApp, api: TestClient, clock: VirtualClock) -> None:
    for name in ("a", "b"):
        api.put("/_sfmock/scenario", json=NTH_2, headers=session(name))
        api.post(GEN, json=BODY, headers=session(name))
    clock.advance(10)
    assert api.post("/_sfmock/reset", headers={"X-Sfmock-Session": "a"}).json() == {"status": "reset"}
    assert api.get("/_sfmock/scenario", headers=session("a")).json()["name"] == "none"
    assert api.get("/_sfmock/scenario", headers=session("b")).json()["name"] == "second-fails"
    assert len(app.verify(session="b", count=1)) == 1
    assert app.verify(session="a", at_most=0) == []
    assert clock.now() == clock.start + 10  # the clock is shared: a session's reset leaves it
    api.post("/_sfmock/reset")  # no header: everything, as before sessions existed
    assert app.state.sessions.names() == [] and clock.now() == clock.start


@pytest.mark.parametrize("value", ["", "a b", "-lead", "x" * 129, "a,b", "sess!on"])
def test_a_bad_session_name_is_a_400_naming_the_header(api: TestClient, value: str) -> None:
    headers = {**AUTH, "X-Sfmock-Session": value}
    answer = api.post(GEN, json=BODY, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("X-Sfmock-Session: ")
    assert "expected 1 to 128 letters" in answer.json()["message"]
    for path in ("/_sfmock/journal", "/_sfmock/health", "/_sfmock/metrics"):
        control = api.get(path, headers=headers)
        assert control.status_code == 400 and control.json()["error"].startswith("X-Sfmock-Session: ")
    download = api.get("/temporary/outputs/x.png?X-Sfmock-Session=%20")
    assert download.status_code == 400 and b"<ArgumentName>X-Sfmock-Session</ArgumentName>" in download.content


def test_a_session_name_not_in_ascii_is_shown_as_the_bytes_sent(api: TestClient) -> None:
    answer = api.post(GEN, json=BODY, headers={**AUTH, "X-Sfmock-Session": "é".encode()})  # UTF-8 bytes
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert message.startswith("X-Sfmock-Session: b'\\xc3\\xa9' (bytes) is not a session name"), message
    assert "Ã" not in message  # not the latin-1 reading of those bytes
    download = api.get("/temporary/outputs/x.png?X-Sfmock-Session=%C3%A9")  # the same bytes in a URL
    assert download.status_code == 400 and b"b'\\xc3\\xa9' (bytes)" in download.content


def test_sessions_beyond_the_limit_forget_the_least_recently_used(clock: VirtualClock) -> None:
    app = create_app(Settings(seed=1), clock=clock)
    sessions = app.state.sessions
    sessions._limit = 2
    first = sessions.get("one")
    sessions.get("two")
    sessions.get("one")  # used again: "two" is now the oldest
    sessions.get("three")
    assert sessions.names() == ["one", "three"] and sessions.get("one") is first


def test_answers_kept_for_the_page_are_bounded_by_count_and_bytes(app: FakeApp) -> None:
    state = app.state.sessions.get("page")
    for entry_id in range(1, 101):
        state.remember(entry_id, Answer(status=200, content_type="application/json", body=b"x" * 16_384))
    assert state.answer_bytes <= ANSWER_BYTES and state.answer_bytes == 16_384 * len(state.answers)
    assert state.answer(1) is None and state.answer(100) is not None  # the oldest go first
    for entry_id in range(101, 101 + ANSWERS_KEPT + 5):
        state.remember(entry_id, Answer(status=404, content_type="application/json", body=b"{}"))
    assert len(state.answers) == ANSWERS_KEPT
    state.reset(app.state.control.initial_scenario)
    assert (len(state.answers), state.answer_bytes) == (0, 0)


def test_remote_fake_scopes_every_control_call(clock: VirtualClock) -> None:
    with FakeServer(Settings(seed=1, control_token="tok-0123456789"), clock=clock) as fake:
        with pytest.raises(RuntimeError, match=r"GET /_sfmock/journal: 401 .*x-sfmock-token"):
            RemoteFake(fake.url, session="mine").journal.entries()
        with pytest.raises(ValueError, match="X-Sfmock-Session: 'a b' is not a session name"):
            RemoteFake(fake.url, session="a b")
        shared = RemoteFake(fake.url, token="tok-0123456789")
        mine, theirs = shared.for_session("mine"), shared.for_session("theirs")
        mine.use_scenario("overloaded")
        theirs.use_scenario({"rules": []})
        with mine.client(event_hooks={"response": [contract_hook]}) as client:
            assert client.post("/images/generations", json=BODY, headers=AUTH).status_code == 503
        hooks = {"response": [contract_hook]}
        with httpx.Client(transport=theirs.transport(), base_url=theirs.api_url, event_hooks=hooks) as client:
            assert client.post("/images/generations", json=BODY, headers=AUTH).status_code == 200
        assert [e["status"] for e in mine.journal.entries()] == [503]
        assert [e["status"] for e in theirs.journal.entries(path=GEN)] == [200]
        assert mine.verify(status=503, count=1)[0]["fault"].startswith("overload")
        with pytest.raises(VerificationFailed, match="status expected 200, seen 503"):
            mine.verify(path=GEN, status=200, timeout=0)
        assert len(theirs.verify_order({"status": 200})) == 1
        with pytest.raises(ValueError, match="unknown field 'stat'"):
            theirs.verify(stat=1)
        assert mine.advance(5) == clock.now() + 5  # its own clock: the others' stay
        assert theirs.call("GET", "clock")["now"] == shared.call("GET", "clock")["now"] == clock.now()
        mine.reset()
        assert mine.journal.entries() == [] and len(theirs.journal) == 1
        assert mine.call("GET", "clock")["now"] == clock.now()  # back on the server's time


INNER = """
import pytest

AUTH = {"Authorization": "Bearer sk-shared-key"}
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "x"}
SCENARIOS = {
    "down": {"rules": [{"action": {"error": 503}}]},
    "third": {"rules": [{"nth": 3, "action": {"error": 500}}]},
}


@pytest.mark.parametrize("case", range(12))
def test_isolated(sfmock_server, case):
    name = "down" if case % 2 else "third"
    sfmock_server.use_scenario(SCENARIOS[name])
    with sfmock_server.client() as client:
        statuses = [client.post("/images/generations", json=BODY, headers=AUTH).status_code for _ in range(4)]
    # the scenarios conflict; each test sees only its own, and its own fault counters
    assert statuses == ([503] * 4 if name == "down" else [200, 200, 500, 200])
    sfmock_server.verify(path="/v1/images/generations", count=4)
    sfmock_server.verify(status=200, count=0 if name == "down" else 3)
    assert len(sfmock_server.journal.entries()) == 4


@pytest.mark.sfmock(scenario=SCENARIOS["down"])
def test_a_reset_keeps_the_marker_s_scenario(sfmock_server):
    with sfmock_server.client() as client:
        sfmock_server.reset()  # back to how the test began: the marker's scenario stays
        assert client.post("/images/generations", json=BODY, headers=AUTH).status_code == 503
        sfmock_server.use_scenario(None)
        assert client.post("/images/generations", json=BODY, headers=AUTH).status_code == 200
        sfmock_server.reset()
        assert client.post("/images/generations", json=BODY, headers=AUTH).status_code == 503
    assert len(sfmock_server.journal.entries()) == 1


@pytest.mark.parametrize("hours", [0, 1])
def test_a_clock_of_its_own(sfmock_server, hours):
    with sfmock_server.client() as client:
        url = client.post("/images/generations", json=BODY, headers=AUTH).json()["images"][0]["url"]
        sfmock_server.advance(3601 * hours)  # the test's own clock: the other test's URL stays valid
        assert client.get(url).status_code == (403 if hours else 200)
"""


def test_parallel_tests_with_conflicting_scenarios_share_one_fake(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-xdist workers (separate processes) on one running fake, through SFMOCK_URL."""
    pytester.makepyfile(test_shared=INNER)
    with FakeServer(Settings(seed=2)) as fake:
        monkeypatch.setenv("SFMOCK_URL", fake.url)
        # plugins the inner tests do not use stay out: each worker is a whole pytest start-up
        quick = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio")
        result = pytester.runpytest_subprocess(*quick, "-n", "2")
        result.assert_outcomes(passed=15)
        result.stdout.fnmatch_lines(["*2 workers*15 items*"])
        sessions = fake.app.state.sessions
        assert len(sessions.names()) == 15  # a session per test
        assert all(len(sessions.get(name).journal) == 0 for name in sessions.names())  # each reset at the end
        assert len(fake.journal) == 0  # and nothing leaked into the default session
        assert fake.clock.now() == fake.clock.start  # the tests moved their own clocks alone


def test_in_one_process_a_reset_keeps_the_marker_s_scenario_and_the_next_test_starts_clean(
    pytester: pytest.Pytester,
) -> None:
    """Without SFMOCK_URL the tests share one in-process fake, reset between them."""
    pytester.makepyfile(
        test_inner=INNER.replace("range(12)", "range(2)")
        + """

def test_after_the_marked_test_no_scenario_is_left(sfmock_server):
    with sfmock_server.client() as client:
        assert client.post("/images/generations", json=BODY, headers=AUTH).status_code == 200
    sfmock_server.reset()
    with sfmock_server.client() as client:
        assert client.post("/images/generations", json=BODY, headers=AUTH).status_code == 200
"""
    )
    quick = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio")
    result = pytester.runpytest_subprocess(*quick, "-p", "no:randomly")
    result.assert_outcomes(passed=6)
