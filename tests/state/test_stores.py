"""The state interface, held to one behaviour by both stores: memory and a real Redis.

Each test runs against :class:`MemoryStore` and against :class:`RedisStore` on a real
``redis-server``; a shared store is also checked from many threads, each with its own
connection, as separate processes would be.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_server import REDIS_SERVER, RedisServer, free_port, need_redis
from sfmock.clock import VirtualClock
from sfmock.state.memory import MemoryStore
from sfmock.state.open import open_store
from sfmock.state.redis_keys import SESSIONS_KEY
from sfmock.state.redis_store import RedisStore
from sfmock.state.store import Store, StoreUnavailable, Window

T0 = 1_767_225_600.25
OPENING = (Decimal("2.00"), Decimal("0.50"))


class JsonCodec:
    def encode(self, item: Any) -> bytes:
        return json.dumps(item).encode()

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


class Numbered:
    """Items are {"id": N, ...}; the id is kept apart."""

    def encode(self, item: Any) -> bytes:
        return json.dumps({k: v for k, v in item.items() if k != "id"}).encode()

    def decode(self, data: bytes, item_id: int) -> Any:
        return {"id": item_id, **json.loads(data)}


@pytest.fixture(params=["memory", "redis", "redis cluster"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    url = {"redis": "redis_url", "redis cluster": "cluster_url"}.get(request.param)
    opened = MemoryStore() if url is None else open_store(request.getfixturevalue(url))
    yield opened
    opened.close()


def rpm(limit: int, amount: int = 1) -> Window:
    return Window("m|rpm", 60, limit, amount)


def test_a_window_admits_its_limit_then_slides(store: Store) -> None:
    book = store.book(None)
    outcomes = [book.admit("a", OPENING, [rpm(3)], Decimal("0.10"), T0 + i).outcome for i in range(4)]
    assert outcomes == ["admitted", "admitted", "admitted", "limited"]
    refused = book.admit("a", OPENING, [rpm(3)], Decimal("0.10"), T0 + 10)
    assert (refused.index, refused.retry_after) == (0, 50.0)  # the first entry leaves at T0 + 60
    assert book.admit("a", OPENING, [rpm(3)], Decimal("0.10"), T0 + 60).outcome == "admitted"
    assert book.admit("a", OPENING, [rpm(3)], Decimal("0.10"), T0 + 60).outcome == "limited"
    assert book.balances("a", OPENING) == (Decimal("1.60"), Decimal("0.50"))  # refusals cost nothing


def test_the_first_full_window_is_named_and_a_request_over_any_limit_never_passes(store: Store) -> None:
    book = store.book(None)
    windows = [Window("m|rpm", 60, 10, 1), Window("m|ipm", 60, 4, 3)]
    assert book.admit("a", OPENING, windows, Decimal(0), T0).outcome == "admitted"
    second = book.admit("a", OPENING, windows, Decimal(0), T0)
    assert (second.outcome, second.index) == ("limited", 1)
    alone = book.admit("a", OPENING, [Window("m|ipm", 60, 4, 5)], Decimal(0), T0)
    assert alone.retry_after == float("inf")
    assert [u.used for u in book.usage("a", windows, T0)] == [1, 3]
    assert sorted(book.names("a")) == ["m|ipm", "m|rpm"]


def test_windows_follow_the_clock_back(store: Store) -> None:
    book = store.book(None)
    assert book.admit("a", OPENING, [rpm(1)], Decimal(0), T0 + 100).outcome == "admitted"
    assert book.admit("a", OPENING, [rpm(1)], Decimal(0), T0).outcome == "admitted"  # that future is gone


def test_balances_take_the_gift_first_and_never_go_below_zero(store: Store) -> None:
    book = store.book(None)
    assert book.admit("a", OPENING, [], Decimal("2.25"), T0).outcome == "admitted"
    assert book.balances("a", OPENING) == (Decimal("0.00"), Decimal("0.25"))
    assert book.admit("a", OPENING, [], Decimal("0.30"), T0).outcome == "short"
    assert book.admit("a", OPENING, [], Decimal("0.25"), T0).outcome == "admitted"
    assert book.admit("a", OPENING, [], Decimal("0"), T0).outcome == "short"  # empty pays for nothing
    book.reset()
    assert book.balances("a", OPENING) == OPENING


def test_sessions_keep_their_own_books(store: Store) -> None:
    one, two, default = store.book("one"), store.book("two"), store.book(None)
    assert one.admit("a", OPENING, [rpm(1)], Decimal(1), T0).outcome == "admitted"
    assert two.admit("a", OPENING, [rpm(1)], Decimal(1), T0).outcome == "admitted"
    assert default.balances("a", OPENING) == OPENING
    one.reset()
    assert two.balances("a", OPENING) == (Decimal("1.00"), Decimal("0.50"))
    assert one.balances("a", OPENING) == OPENING


def test_a_log_is_capped_by_count_and_bytes(store: Store) -> None:
    log = store.log(None, Numbered(), size=3, max_bytes=10)
    made = [log.append(lambda n, i=i: {"id": n, "i": i}, 4) for i in range(5)]
    assert made == [1, 2, 3, 4, 5]
    assert [(m["id"], m["i"]) for m in log.items()] == [(4, 3), (5, 4)]  # 3 entries of 4 bytes are over 10
    assert (log.count(), log.held_bytes(), log.dropped(), log.oldest_id()) == (2, 8, 3, 4)
    log.clear()
    assert (log.items(), log.count(), log.held_bytes(), log.dropped()) == ([], 0, 0, 0)
    assert log.append(lambda n: {"id": n}, 1) == 6  # ids go on
    assert log.items() == [{"id": 6}]


def test_fault_counters_count_nth_and_times(store: Store) -> None:
    faults = store.faults(None, {"name": "initial"}, JsonCodec())
    version, scenario = faults.current()
    assert scenario == {"name": "initial"}
    hits = [faults.hit(version, 0, frozenset({2, 3, 4}), 2, lambda: True) for _ in range(5)]
    assert hits == [(1, False), (2, True), (3, True), (4, False), (5, False)]
    faults.replace({"name": "next"})
    newer, scenario = faults.current()
    assert scenario == {"name": "next"} and newer != version
    assert faults.hit(version, 0, None, None, lambda: True) == (0, False)  # stale: nothing counted
    assert faults.hit(newer, 0, None, None, lambda: False) == (1, False)
    assert faults.hit(newer, 0, None, None, lambda: True) == (2, True)


def test_exactly_the_limit_and_the_balance_from_many_threads(store: Store) -> None:
    """40 concurrent admissions against a limit of 7 and a balance for 5 (Redis: each
    thread has its own connection pool, as a process would)."""
    books = [store.book("s")] if not store.shared else [open_store(store.url).book("s") for _ in range(4)]
    barrier = threading.Barrier(8)

    def attempt(n: int) -> list[str]:
        book = books[n % len(books)]
        if n < 8:
            barrier.wait()  # the first eight start together
        quota = book.admit("quota", (Decimal(100), Decimal(0)), [rpm(7)], Decimal("0.50"), T0)
        money = book.admit("money", OPENING, [], Decimal("0.50"), T0)
        return [quota.outcome, money.outcome]

    with ThreadPoolExecutor(8) as pool:
        results = [r for chunk in pool.map(attempt, range(40)) for r in chunk]
    quota, money = results[0::2], results[1::2]
    assert quota.count("admitted") == 7 and money.count("admitted") == 5  # 2.50 / 0.50
    assert books[0].balances("money", OPENING) == (Decimal("0.00"), Decimal("0.00"))


def test_the_shared_clock_moves_for_everyone(redis_url: str) -> None:
    one, two = open_store(redis_url), open_store(redis_url)
    local = VirtualClock(T0)
    first = one.clock(lambda: local, frozen=True)
    second = two.clock(lambda: local, frozen=True)
    start = first.now()
    assert second.now() == start and second.frozen
    first.advance(3600)
    assert second.now() == start + 3600
    second.set(T0)
    assert first.now() == T0
    first.reset()
    assert second.now() == start
    redis.Redis.from_url(redis_url).flushall()  # Redis lost its data: a frozen clock stays frozen
    assert second.frozen and first.now() == second.now()
    assert MemoryStore().clock(lambda: local, frozen=True) is local


def test_an_epoch_keeps_its_start_and_its_retirements(store: Store) -> None:
    epoch = store.epoch(T0)
    assert epoch.read() == (T0, {})
    assert epoch.read() is epoch.read()  # one object while nothing changes: callers cache on it
    epoch.retire("Qwen/Qwen-Image", T0 + 10)
    epoch.retire("Qwen/Qwen-Image", T0 + 20)  # later: the earlier retirement stands
    epoch.retire("Kwai-Kolors/Kolors", T0 + 30.125)
    assert epoch.read() == (T0, {"Qwen/Qwen-Image": T0 + 10, "Kwai-Kolors/Kolors": T0 + 30.125})
    epoch.retire("Qwen/Qwen-Image", T0 + 5)  # earlier: it moves back
    assert epoch.read()[1]["Qwen/Qwen-Image"] == T0 + 5
    epoch.restart(T0 + 100)
    assert epoch.read() == (T0 + 100, {})


def test_the_shared_epoch_is_begun_once_and_restarted_for_everyone(redis_url: str) -> None:
    one, two = open_store(redis_url), open_store(redis_url)
    first, second = one.epoch(T0), two.epoch(T0 + 7)  # a process that started later
    assert second.read() == (T0, {})  # the run began with the first
    first.retire("Qwen/Qwen-Image", T0 + 60)
    assert second.read() == (T0, {"Qwen/Qwen-Image": T0 + 60})
    second.restart(T0 + 3600)  # a reset on the other process
    assert first.read() == (T0 + 3600, {})
    redis.Redis.from_url(redis_url).flushall()  # Redis lost its data: the run begins again
    assert first.read() == (T0, {})


def test_a_lost_redis_is_store_unavailable_and_comes_back(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(own_redis.url)
    book = store.book(None)
    assert book.admit("a", OPENING, [rpm(2)], Decimal(1), T0).outcome == "admitted"
    own_redis.kill()
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            book.admit("a", OPENING, [rpm(2)], Decimal(1), T0)
    assert len([r for r in caplog.records if "lost the store" in r.message]) == 1  # once per outage
    own_redis.start()  # the same data (appendonly): the admitted request is still counted
    assert book.admit("a", OPENING, [rpm(2)], Decimal(1), T0).outcome == "admitted"
    assert book.admit("a", OPENING, [rpm(2)], Decimal(1), T0).outcome == "limited"
    assert book.balances("a", OPENING) == (Decimal("0.00"), Decimal("0.50"))
    assert any("is back" in r.message for r in caplog.records)


def test_redis_memory_stays_bounded(redis_url: str) -> None:
    store = open_store(redis_url)
    book, log = store.book(None), store.log(None, Numbered(), size=5, max_bytes=1000)
    book.admit("a", OPENING, [Window("m|rpm", 60, 5, 1)], Decimal(0), T0)
    for _ in range(50):
        log.append(lambda n: {"id": n}, 10)
    named = store.log("suite", Numbered(), size=5, max_bytes=1000)
    named.append(lambda n: {"id": n}, 10)
    store.book("suite").admit("a", OPENING, [rpm(5)], Decimal(1), T0)
    faults = store.faults("suite", {}, JsonCodec())
    faults.replace({"name": "x"})
    faults.hit(faults.current()[0], 0, None, None, lambda: True)
    client = redis.Redis.from_url(redis_url)
    windows = client.keys("sfmock:|q:log:*")
    assert windows and all(0 < client.pttl(k) <= 60_000 for k in windows)  # gone with the window
    assert client.zcard("sfmock:|{|}j:entries") == 5
    assert client.pttl("sfmock:|q:a:{a|}") == -1  # a configured account's money stays
    session_keys = client.keys("sfmock:suite|*")
    assert len(session_keys) >= 5 and all(0 < client.pttl(k) <= 86_400_000 for k in session_keys)
    client.close()


def test_a_database_the_server_lacks_stops_serve_naming_the_flag(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfmock.cli import main

    beyond = redis_url.rsplit("/", 1)[0] + "/99"  # redis-server has 16 databases by default
    assert main(["serve", "--store", beyond, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"command line: --store: {beyond}: DB index is out of range; expected a database the server has" in err


def test_only_the_most_recently_used_named_sessions_keep_state_in_redis(redis_url: str) -> None:
    store = open_store(redis_url)
    client = redis.Redis.from_url(redis_url)
    for n in range(6):
        store.log(f"s{n}", Numbered(), size=5, max_bytes=1000).append(lambda i: {"id": i}, 10)
        assert store.use_session(f"s{n}", 4) == ([] if n < 4 else [f"s{n - 4}"])
    assert store.use_session("s2", 4) == []  # used again: now the most recent
    assert store.use_session("s6", 4) == ["s3"]
    for gone in ("s0", "s1", "s3"):
        assert client.keys(f"sfmock:{gone}|*") == []  # its journal went with it
    for kept in ("s2", "s4", "s5"):
        assert client.zcard(f"sfmock:{kept}|{{{kept}|}}j:entries") == 1
    assert client.zcard(SESSIONS_KEY) == 4  # the registry itself is bounded
    # a request of s0 still in flight when s0 was pushed out writes after: the next sweep takes it
    store.log("s0", Numbered(), size=5, max_bytes=1000).append(lambda i: {"id": i}, 10)
    assert client.keys("sfmock:s0|*") != []
    assert store.use_session("s7", 4) == ["s4"]
    assert client.keys("sfmock:s0|*") == [] and client.keys("sfmock:s4|*") == []
    assert client.zcard("sfmock:s5|{s5|}j:entries") == 1
    store.forget_sessions()
    assert client.zcard(SESSIONS_KEY) == 0 and client.keys("sfmock:s*") == []
    assert MemoryStore().use_session("s0", 0) == []  # in memory the sessions' objects hold it all
    client.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_redis_windows_decide_as_memory_does_step_by_step(redis_url: str, seed: int) -> None:
    """Many windows of one account, overlapping between requests, with spans and amounts of
    their own, the clock going forward, jumping and going back: Redis and memory give the
    same verdicts, waits, uses and newest times at every step."""
    rng = random.Random(seed)
    everything = [
        Window("A|rpm", 60, 6, 1),
        Window("A|ipm", 60, 9, 1),
        Window("B|rpm", 60, 3, 1),
        Window("|rph", 3600, 25, 1),
        Window("|ipd", 86400, 40, 1),
    ]
    memory, shared = MemoryStore(), open_store(redis_url)
    books = [memory.book(None), shared.book(None)]
    now = T0
    for _ in range(300):
        step = rng.random()
        if step < 0.85:
            now += rng.choice([0, 0, 0.5, 1, 3, 7, 20])  # a frozen clock gives many requests one instant
        elif step < 0.93:
            now -= rng.uniform(0, 90)
        elif step < 0.96:
            now = T0  # a reset: back to the start, where entries that left some windows stand
        else:
            now += 3600
        images = rng.randint(1, 4)
        chosen = [w for w in everything if rng.random() < 0.6]
        windows = [Window(w.name, w.span, w.limit, images if "ip" in w.name else 1) for w in chosen]
        cost = Decimal(rng.choice(["0", "0.05", "0.25"]))
        seen = [book.admit("a", OPENING, windows, cost, now) for book in books]
        assert [(v.outcome, v.index, v.retry_after) for v in seen[:1]] == [
            (v.outcome, v.index, v.retry_after) for v in seen[1:]
        ], (now, windows)
        uses = [book.usage("a", everything, now) for book in books]
        assert uses[0] == uses[1], now
        assert books[0].balances("a", OPENING) == books[1].balances("a", OPENING)
    assert sorted(books[0].names("a")) == books[1].names("a")
    shared.close()


def test_an_account_is_one_hash_and_one_log_in_redis_however_many_windows(redis_url: str) -> None:
    store = open_store(redis_url)
    book = store.book(None)
    windows = [Window(f"m{i}|rpm", 60, 100, 1) for i in range(6)] + [Window("|rpd", 86400, 100, 1)]
    for n in range(5):
        assert book.admit("a", OPENING, windows, Decimal(0), T0 + n).outcome == "admitted"
    client = redis.Redis.from_url(redis_url)
    assert sorted(client.keys("sfmock:|q:*")) == [b"sfmock:|q:a:{a|}", b"sfmock:|q:log:{a|}"]
    assert client.zcard("sfmock:|q:log:{a|}") == 5  # one entry a request, not one a window
    assert 86_400_000 - 5_000 < client.pttl("sfmock:|q:log:{a|}") <= 86_400_000  # kept for the longest window
    client.close()
    store.close()


def test_a_redis_cluster_that_serves_no_slots_stops_serve_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfmock.cli import main

    need_redis()
    port = free_port()
    command = [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(tmp_path / "nodes.conf"),
        "--dir",
        str(tmp_path),
        "--cluster-port",
        str(free_port()),
    ]
    node = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        url = f"redis://127.0.0.1:{port}/0"
        assert main(["serve", "--store", url, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert f"command line: --store: {url}: a Redis Cluster node that cannot hold the store (" in err
        assert "expected a Redis Cluster, database 0, whose every slot is served (cluster_state:ok)" in err
    finally:
        node.terminate()
        node.wait(10)
