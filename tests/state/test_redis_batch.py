"""The batching line (the generations' admission calls from the event loop), against a real
redis-server: calls made while one is in flight go in one write, replies come back to
their own callers in order, an error reply or a cancelled caller leaves the rest in step,
a lost or hung server fails every waiting call at once, a forked child and another event
loop each get a connection of their own; and admissions made concurrently stay exact."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from redis_server import REDIS_SERVER, RedisServer, need_redis
from sfmock.state.redis_batch import BatchLine, _Wire
from sfmock.state.redis_store import RedisStore
from sfmock.state.store import StoreUnavailable, Window

T = TypeVar("T")
T0 = 1_767_225_600.0
OPENING = (Decimal(0), Decimal(1000))


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What every batching connection wrote, one item a write."""
    written: list[bytes] = []
    write = _Wire._write

    def spy(self: _Wire, data: bytes) -> None:
        written.append(data)
        write(self, data)

    monkeypatch.setattr(_Wire, "_write", spy)
    return written


def test_calls_made_while_one_is_in_flight_go_in_one_write_and_each_gets_its_own_reply(
    redis_url: str, writes: list[bytes]
) -> None:
    client = redis.Redis.from_url(redis_url)
    line = BatchLine(client)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(line.call(("INCRBY", "n", str(i))) for i in range(1, 21))))

    replies = run(main)
    assert replies == [sum(range(1, i + 1)) for i in range(1, 21)]  # in the order they were made
    assert len(writes) == 2  # the first at once; the 19 made while it was out, together
    assert writes[1].count(b"INCRBY") == 19
    line.close()
    client.close()


def test_a_batch_larger_than_the_socket_takes_at_once_goes_out_whole_and_in_order(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the socket takes only in part (8 MiB at once) is finished as the socket
    drains; the calls queued meanwhile follow it, and every reply comes back to its caller."""
    client = redis.Redis.from_url(redis_url)
    line = BatchLine(client)
    big = bytes(range(256)) * (8 * 4096)
    drained: list[int] = []
    writable = _Wire._writable

    def spy(self: _Wire) -> None:
        drained.append(len(self._unsent))
        writable(self)

    monkeypatch.setattr(_Wire, "_writable", spy)

    async def main() -> list[Any]:
        calls = [line.call(("SET", "big", big)), line.call(("STRLEN", "big"))]
        calls += [line.call(("INCR", "n")) for _ in range(5)]
        return list(await asyncio.gather(*calls))

    assert run(main) == [b"OK", len(big), 1, 2, 3, 4, 5]
    assert drained  # the socket took the first write in parts
    assert client.get("big") == big
    line.close()
    client.close()


def test_tasks_calling_at_once_never_get_each_others_replies(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    line = BatchLine(client)
    wrong: list[tuple[str, object]] = []

    async def work(n: int) -> None:
        for i in range(100):
            key = f"t{n}:{i}"
            await line.call(("SET", key, key))
            reply = await line.call(("GET", key))
            if reply != key.encode():
                wrong.append((key, reply))

    async def main() -> None:
        await asyncio.gather(*(work(n) for n in range(16)))

    run(main)
    assert wrong == []
    line.close()
    client.close()


def test_an_error_reply_or_a_cancelled_caller_in_a_batch_leaves_the_others_in_step(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("text", "not a hash")
    client.hset("hash", "f", "v")
    line = BatchLine(client)

    async def main() -> list[Any]:
        first = line.call(("PING",))  # in flight: the rest are queued behind it
        wrong = line.call(("HGET", "text", "f"))
        gone = line.call(("GET", "text"))
        right = line.call(("HGET", "hash", "f"))
        gone.cancel()  # its caller went away: its reply is read and let go
        replies = await asyncio.gather(first, wrong, right)
        return [*replies, await line.call(("GET", "text"))]

    pong, wrong, right, after = run(main)
    assert pong in (b"PONG", True)
    assert isinstance(wrong, redis.ResponseError) and "WRONGTYPE" in str(wrong)  # returned, for its caller to raise
    assert (right, after) == (b"v", b"not a hash")
    line.close()
    client.close()


def test_a_script_redis_forgot_is_sent_again_by_each_caller_and_runs_once_each(redis_url: str) -> None:
    store = RedisStore(redis_url)
    book = store.book(None)
    window = [Window("m|rpm", 60, 100, 1)]

    async def main() -> list[str]:
        verdicts = await asyncio.gather(*(book.admit_soon("a", OPENING, window, Decimal(1), T0) for _ in range(10)))
        return [verdict.outcome for verdict in verdicts]

    assert run(main) == ["admitted"] * 10
    store.client.script_flush()  # as after a restart of Redis: every EVALSHA of the next batch refused
    assert run(main) == ["admitted"] * 10
    assert [use.used for use in book.usage("a", window, T0)] == [20]  # counted once each, not twice
    assert book.balances("a", OPENING) == (Decimal(0), Decimal(980))
    store.close()


def test_concurrent_admissions_from_two_stores_admit_exactly_the_limit_and_the_balance(redis_url: str) -> None:
    """Two processes' stores (each its own connection), 30 concurrent admissions each, in
    batches: a window of 25 admits 25 and a balance of 20 pays for 20, never more."""
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    books = [store.book(None) for store in stores]
    window = [Window("m|rpm", 60, 25, 1)]

    async def main(account: str, opening: tuple[Decimal, Decimal], window: list[Window]) -> list[str]:
        verdicts = await asyncio.gather(
            *(book.admit_soon(account, opening, window, Decimal(1), T0) for book in books for _ in range(30))
        )
        return [verdict.outcome for verdict in verdicts]

    outcomes = run(lambda: main("a", OPENING, window))
    assert outcomes.count("admitted") == 25 and outcomes.count("limited") == 35
    outcomes = run(lambda: main("b", (Decimal(0), Decimal(20)), []))
    assert outcomes.count("admitted") == 20 and outcomes.count("short") == 40
    assert books[1].balances("b", (Decimal(0), Decimal(20))) == (Decimal(0), Decimal(0))
    for store in stores:
        store.close()


def test_a_lost_server_fails_every_waiting_call_and_the_next_call_connects_again(own_redis: RedisServer) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1.0, socket_timeout=2.0)
    line = BatchLine(client)

    async def main() -> list[Any]:
        await line.call(("SET", "k", "1"))
        own_redis.kill()
        return list(await asyncio.gather(*(line.call(("GET", "k")) for _ in range(5)), return_exceptions=True))

    failed = run(main)
    assert all(isinstance(error, redis.ConnectionError) for error in failed), failed
    own_redis.start()  # appendonly: the data is back with it

    async def again() -> Any:
        return await line.call(("GET", "k"))

    assert run(again) == b"1"
    line.close()
    client.close()


def test_calls_waiting_on_a_hung_server_fail_together_after_one_timeout_and_the_store_answers_503(
    own_redis: RedisServer,
) -> None:
    assert own_redis.process is not None
    pid = own_redis.process.pid
    store = RedisStore(own_redis.url)
    book = store.book(None)
    window = [Window("m|rpm", 60, 100, 1)]

    async def admit() -> Any:
        return await book.admit_soon("a", OPENING, window, Decimal(1), T0)

    async def main() -> tuple[list[Any], float]:
        assert (await admit()).outcome == "admitted"  # connected
        os.kill(pid, signal.SIGSTOP)
        began = time.monotonic()
        try:
            results = await asyncio.gather(*(admit() for _ in range(12)), return_exceptions=True)
        finally:
            os.kill(pid, signal.SIGCONT)
        return list(results), time.monotonic() - began

    results, took = run(main)
    assert all(isinstance(result, StoreUnavailable) for result in results), results
    assert all("cannot be reached" in str(result) for result in results)
    # one timeout (2 s) for all of them, not one each (24 s): bounds far apart, as a busy
    # machine stretches the real seconds this waits
    assert 1.5 < took < 12.0, f"12 waiting calls took {took:.1f} s"
    time.sleep(1.0)  # the pause after a timeout ends: the next call asks again
    assert run(admit).outcome == "admitted"  # a fresh connection
    store.close()


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # the suite's threads: the child runs none
def test_a_forked_child_and_another_event_loop_each_connect_afresh(redis_url: str) -> None:
    """A child never writes on its parent's socket, nor a loop on another loop's; the
    parent's connection stays as it was."""
    client = redis.Redis.from_url(redis_url)
    line = BatchLine(client)

    async def client_id() -> Any:
        return await line.call(("CLIENT", "ID"))

    loop = asyncio.new_event_loop()
    parent = loop.run_until_complete(client_id())
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            own = asyncio.new_event_loop()
            os.write(writable, b"%d" % own.run_until_complete(client_id()))
        finally:
            os._exit(0)
    os.close(writable)
    os.waitpid(child, 0)
    assert int(os.read(readable, 64) or b"0") not in (0, parent)  # a connection of its own
    os.close(readable)
    assert run(client_id) not in (0, parent)  # another loop's
    assert loop.run_until_complete(client_id()) == parent
    line.close()
    loop.close()
    client.close()


def test_on_a_unix_socket_the_admissions_are_batched_and_exact(tmp_path: Path) -> None:
    need_redis()
    sock = tmp_path / "redis.sock"
    command = [str(REDIS_SERVER), "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
            time.sleep(0.02)
        store = RedisStore(f"unix://{sock}")
        assert store.batch is not None
        book = store.book(None)

        async def main() -> list[str]:
            window = [Window("m|rpm", 60, 7, 1)]
            verdicts = await asyncio.gather(*(book.admit_soon("a", OPENING, window, Decimal(1), T0) for _ in range(12)))
            return [verdict.outcome for verdict in verdicts]

        assert run(main) == ["admitted"] * 7 + ["limited"] * 5  # in the order they were made
        store.close()
    finally:
        server.terminate()
        server.wait(10)
