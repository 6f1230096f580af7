"""Each named session's clock: the server's plus the session's own moves, on the memory
store and on a real redis-server; every time-dependent answer of a session follows it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Settings, VirtualClock, create_app
from sfmock.app import FakeApp
from sfmock.chaos.verify import VerificationFailed
from sfmock.clock import MAX_TIME, SessionClock, ShiftedClock
from sfmock.service.quota import Limits

T0 = 1_767_225_600
GEN = "/v1/images/generations"
CLOCK = "/_sfmock/clock"
QWEN = "Qwen/Qwen-Image"
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}


def session(name: str | None) -> dict[str, str]:
    return {} if name is None else {"X-Sfmock-Session": name}


def now(client: TestClient, name: str | None) -> float:
    answer = client.get(CLOCK, headers=session(name))
    assert answer.status_code == 200
    value: float = answer.json()["now"]
    return value


def move(client: TestClient, name: str | None, command: dict[str, object]) -> dict[str, object]:
    answer = client.post(CLOCK, json=command, headers=session(name))
    assert answer.status_code == 200, answer.text
    state: dict[str, object] = answer.json()
    return state


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    return "memory" if request.param == "memory" else str(request.getfixturevalue("redis_url"))


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def app(store: str, clock: VirtualClock) -> Iterator[FakeApp]:
    retire = [{"model": QWEN, "after": 600}]
    app = create_app(Settings(seed=4, store=store, limits=Limits(rpm=1), retire=retire), clock=clock)
    yield app
    app.state.store.close()


@pytest.fixture
def client(app: FakeApp) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client


def test_a_session_starts_on_the_servers_time_and_follows_it_plus_its_own_moves(
    client: TestClient, clock: VirtualClock
) -> None:
    assert now(client, "a") == now(client, None) == T0
    assert move(client, "a", {"advance": 30})["now"] == T0 + 30
    assert move(client, None, {"advance": 10})["now"] == T0 + 10  # the server's clock: every session follows
    assert (now(client, "a"), now(client, "b"), clock.now()) == (T0 + 40, T0 + 10, T0 + 10)
    assert move(client, "b", {"set": T0 - 3600})["now"] == T0 - 3600  # back, for this session alone
    assert (now(client, "a"), now(client, "b"), now(client, None)) == (T0 + 40, T0 - 3600, T0 + 10)


def test_a_frozen_session_stands_still_until_it_is_moved_itself(client: TestClient, clock: VirtualClock) -> None:
    move(client, "a", {"advance": 5})
    assert move(client, "a", {"freeze": True})["frozen"] is True
    move(client, None, {"advance": 100})
    assert now(client, "a") == T0 + 5  # the server's moves do not reach it
    assert move(client, "a", {"advance": 1})["now"] == T0 + 6
    assert move(client, "a", {"set": T0 + 60})["now"] == T0 + 60
    # thawed, it would still stand still (the server's clock is a virtual one): refused, unchanged
    refused = client.post(CLOCK, json={"freeze": False}, headers=session("a"))
    assert refused.status_code == 409 and "follows the server's, which stands still" in refused.json()["error"]
    assert now(client, "a") == T0 + 60
    client.post("/_sfmock/reset", headers=session("a"))
    assert now(client, "a") == clock.now() == T0 + 100  # its reset puts it back on the server's time


def test_a_bad_move_of_a_session_clock_is_a_400_and_changes_nothing(client: TestClient) -> None:
    move(client, "a", {"advance": 7})
    bad = ({"advance": -1}, {"set": MAX_TIME + 1}, {"advance": "soon"}, {"freeze": 1}, {"set": 1, "advance": 1})
    for command in bad:
        answer = client.post(CLOCK, json=command, headers=session("a"))
        assert answer.status_code == 400 and answer.json()["error"].startswith("clock: "), command
    assert now(client, "a") == T0 + 7
    bad_name = client.post(CLOCK, json={"advance": 1}, headers=session("a b"))
    assert bad_name.status_code == 400 and "X-Sfmock-Session" in bad_name.json()["error"]
    assert now(client, None) == T0


def test_a_session_clock_stays_within_what_a_date_can_name_when_the_server_moves(client: TestClient) -> None:
    move(client, "a", {"set": MAX_TIME - 10})
    move(client, None, {"advance": 3600})  # the server's clock: the session would pass 9999
    assert now(client, "a") == MAX_TIME
    answer = client.post(GEN, json=BODY, headers={**AUTH, **session("a")})
    assert answer.status_code == 200 and answer.json()["created"] == int(MAX_TIME)


def test_everything_time_dependent_in_a_session_follows_its_clock(app: FakeApp, client: TestClient) -> None:
    headers = {**AUTH, **session("a")}
    first = client.post(GEN, json=BODY, headers=headers)
    url = first.json()["images"][0]["url"]
    assert client.post(GEN, json=BODY, headers=headers).status_code == 429
    move(client, "a", {"advance": 601})
    # rate-limit window, created, URL expiry (the ttl is an hour: not yet), retirement after 600 s
    later = client.post(GEN, json=BODY, headers=headers)
    assert later.status_code == 200 and later.json()["created"] == T0 + 601
    assert client.get(url).status_code == 200
    models = [m["id"] for m in client.get("/v1/models", headers=headers).json()["data"]]
    assert QWEN not in models
    assert client.post(GEN, json={**BODY, "model": QWEN}, headers=headers).status_code == 403
    assert QWEN in [m["id"] for m in client.get("/v1/models", headers=AUTH).json()["data"]]
    # the journal's times, and its since filter, are the session's
    times = [entry["time"] for entry in client.get("/_sfmock/journal", headers=session("a")).json()["entries"]]
    assert times[:3] == [T0, T0, T0 + 601]
    since = client.get("/_sfmock/journal", params={"since": T0 + 1}, headers=session("a")).json()
    assert since["count"] == len(times) - 2
    assert client.get("/_sfmock/health", headers=session("a")).json()["time"] == T0 + 601
    assert client.get("/_sfmock/health").json()["time"] == T0
    move(client, "a", {"advance": 3000})
    expired = client.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_a_rules_after_counts_on_the_sessions_clock(client: TestClient) -> None:
    later = {"name": "later", "rules": [{"name": "late", "when": {"after": 300}, "action": {"error": 503}}]}
    for name in ("a", "b"):
        assert client.put("/_sfmock/scenario", json=later, headers=session(name)).status_code == 200
    move(client, "a", {"advance": 301})
    statuses = {name: client.post(GEN, json=BODY, headers={**AUTH, **session(name)}).status_code for name in "ab"}
    assert statuses == {"a": 503, "b": 200}


def until_done(waiter: threading.Thread, nudge: Callable[[], object]) -> None:
    """Nudge (move a clock) until ``waiter`` ends: it may not have begun waiting at the first
    nudge. A wait on the wrong clock never ends, and fails the test here."""
    waiter.start()
    for _ in range(100):
        nudge()
        waiter.join(timeout=0.1)
        if not waiter.is_alive():
            return
    raise AssertionError("verify kept waiting though the session's clock passed its within")


def test_verify_within_waits_on_the_sessions_clock(app: FakeApp, client: TestClient) -> None:
    failures: list[VerificationFailed] = []

    def wait(name: str) -> None:
        with pytest.raises(VerificationFailed) as failed:  # nothing comes: within passes, and it fails
            app.verify(path=GEN, count=1, within=30, timeout=60, session=name)
        failures.append(failed.value)

    # the server's clock: the session follows it, so its within passes too
    until_done(threading.Thread(target=wait, args=("a",)), lambda: move(client, None, {"advance": 60}))
    # frozen, the session's time no longer follows the server's: its own moves end the wait
    move(client, "b", {"freeze": True})
    until_done(threading.Thread(target=wait, args=("b",)), lambda: move(client, "b", {"advance": 31}))
    assert len(failures) == 2 and all("expected exactly 1 request" in str(failed) for failed in failures)


def test_a_sessions_reset_puts_back_its_clock_and_a_full_reset_every_clock(
    client: TestClient, clock: VirtualClock
) -> None:
    for name, seconds in (("a", 10), ("b", 20), (None, 5)):
        move(client, name, {"advance": seconds})
    client.post("/_sfmock/reset", headers=session("a"))
    assert (now(client, "a"), now(client, "b"), now(client, None)) == (T0 + 5, T0 + 25, T0 + 5)
    client.post("/_sfmock/reset")
    assert (now(client, "a"), now(client, "b"), now(client, None)) == (T0, T0, T0)


def test_on_a_running_server_a_session_freezes_and_thaws_on_its_own() -> None:
    app = create_app(Settings(seed=1))
    assert isinstance(app.state.clock, ShiftedClock)
    with TestClient(app) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        frozen = move(client, "a", {"freeze": True})
        assert frozen["frozen"] is True and now(client, "a") == frozen["now"]
        assert move(client, None, {"advance": 0})["frozen"] is False  # the server's runs on
        assert move(client, "a", {"advance": 3600})["now"] == frozen["now"] + 3600
        thawed = move(client, "a", {"freeze": False})
        assert thawed["frozen"] is False and thawed["now"] >= frozen["now"] + 3600


def test_every_process_of_a_shared_store_agrees_on_a_sessions_clock(redis_url: str) -> None:
    one, two = (create_app(Settings(seed=3, store=redis_url), clock=VirtualClock(T0)) for _ in range(2))
    with TestClient(one) as first, TestClient(two) as second:
        for client in (first, second):
            client.event_hooks = {"request": [], "response": [contract_hook]}
        url = first.post(GEN, json=BODY, headers={**AUTH, **session("a")}).json()["images"][0]["url"]
        move(first, "a", {"advance": 3601})
        assert now(second, "a") == T0 + 3601 and now(second, None) == T0
        assert second.get(url).status_code == 403  # expired for the session, on every process
        move(second, "a", {"freeze": True})
        assert first.get(CLOCK, headers=session("a")).json()["frozen"] is True
        second.post("/_sfmock/reset", headers=session("a"))
        assert now(first, "a") == T0 and first.get(url).status_code == 200
    one.state.store.close()
    two.state.store.close()


def test_on_redis_a_session_clock_lives_in_the_sessions_keys(redis_url: str) -> None:
    app = create_app(Settings(seed=3, store=redis_url, limits=Limits(rpm=1)), clock=VirtualClock(T0))
    raw = redis.Redis.from_url(redis_url)
    with TestClient(app) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        move(client, "a", {"advance": 30})
        key = "sfmock:a|{a|}clock"
        assert raw.hget(key, "offset") == b"30" and 0 < raw.pttl(key) <= 86_400_000  # goes with the session
        client.post(GEN, json=BODY, headers={**AUTH, **session("a")})
        (log,) = raw.keys("sfmock:a|q:log:*")
        assert 0 < raw.pttl(log) <= 60_000  # the session's time runs: the log goes with its minute
        move(client, "a", {"freeze": True})
        move(client, "a", {"advance": 60})
        client.post(GEN, json=BODY, headers={**AUTH, **session("a")})
        assert raw.pttl(log) > 86_400_000  # frozen, its minute may last: the log is kept a week longer
        client.post("/_sfmock/reset", headers=session("a"))
        assert not raw.exists(key)
        move(client, "b", {"advance": 1})
        client.post("/_sfmock/reset")
        assert not raw.exists("sfmock:b|clock")
    app.state.store.close()
    raw.close()


def test_a_session_clock_in_one_process_follows_its_server_clock() -> None:
    server = VirtualClock(100)
    own = SessionClock(server)
    assert own.now() == 100 and own.frozen  # a virtual server clock stands still
    own.advance(5)
    server.advance(10)
    assert own.now() == 115
    own.freeze()
    server.advance(10)
    assert own.now() == 115
    own.set(50)
    assert own.now() == 50
    with pytest.raises(ValueError):
        own.advance(-1)
    own.reset()
    assert own.now() == server.now() == 120
