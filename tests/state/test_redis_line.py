"""The Redis store's connection for the requests' own calls, against a real redis-server:
scripts Redis has forgotten, error replies in the middle of a call, a server that goes and
comes back, and calls from many threads at once."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import redis

from redis_server import RedisServer
from sfmock import VirtualClock
from sfmock.state.redis_line import Line
from sfmock.state.redis_store import RedisStore
from sfmock.state.store import StoreUnavailable, Window

T0 = 1_767_225_600.0
OPENING = (Decimal(0), Decimal(10))


def test_a_script_redis_forgot_is_sent_again_and_runs_once(redis_url: str) -> None:
    store = RedisStore(redis_url)
    book = store.book(None)
    window = [Window("m|rpm", 60, 3, 1)]
    assert book.admit("a", OPENING, window, Decimal(1), T0).outcome == "admitted"
    store.client.script_flush()  # as after a restart of Redis, or SCRIPT FLUSH by someone else
    assert book.admit("a", OPENING, window, Decimal(1), T0).outcome == "admitted"
    assert store.client.script_exists(store.admit_script.sha) == [True]
    assert [use.used for use in book.usage("a", window, T0)] == [2]  # counted once each, not twice
    assert book.balances("a", OPENING) == (Decimal(0), Decimal(8))


def test_an_error_reply_mid_call_is_raised_and_the_connection_stays_in_step(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("text", "not a hash")
    client.hset("hash", "f", "v")
    line = Line(client)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        line.call(("HGET", "text", "f"), ("HGET", "hash", "f"))
    assert line.call(("HGET", "hash", "f"), ("GET", "text")) == [b"v", b"not a hash"]
    assert line.call(("PING",)) in ([True], [b"PONG"])
    line.close()
    client.close()


def test_a_lost_server_raises_a_connection_error_and_the_next_call_connects_again(own_redis: RedisServer) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1.0, socket_timeout=2.0)
    line = Line(client)
    line.call(("SET", "k", "1"))
    own_redis.kill()
    with pytest.raises(redis.ConnectionError):
        line.call(("GET", "k"))
    own_redis.start()  # appendonly: the data is back with it
    assert line.call(("GET", "k")) == [b"1"]
    line.close()
    client.close()


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # the suite's threads: the child runs none
def test_a_forked_child_connects_afresh_and_the_parent_keeps_its_connection(redis_url: str) -> None:
    """A child process never writes on its parent's socket (their replies would mix): it
    connects anew on its first call, and the parent's connection stays as it was."""
    line = Line(redis.Redis.from_url(redis_url))
    (parent,) = line.call(("CLIENT", "ID"))
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(writable, b"%d" % line.call(("CLIENT", "ID"))[0])
        finally:
            os._exit(0)
    os.close(writable)
    os.waitpid(child, 0)
    assert int(os.read(readable, 64) or b"0") not in (0, parent)  # a connection of its own
    os.close(readable)
    assert line.call(("CLIENT", "ID"), ("PING",)) == [parent, b"PONG"]
    line.close()


def test_many_threads_share_it_without_mixing_replies(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    line = Line(client)
    wrong: list[tuple[int, object]] = []

    def work(n: int) -> None:
        for i in range(200):
            key = f"t{n}:{i}"
            reply = line.call(("SET", key, key), ("GET", key))[1]
            if reply != key.encode():
                wrong.append((n, reply))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    line.close()
    client.close()


def test_the_store_turns_a_lost_line_into_store_unavailable(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    own_redis.kill()
    with pytest.raises(StoreUnavailable, match="cannot be reached"), store.snapshot(None):
        pass
    own_redis.start()
    with store.snapshot(None):
        assert store.clock(lambda: VirtualClock(0), frozen=False).now() > T0  # the shared clock, read ahead
    store.close()


def test_a_call_on_a_connected_line_to_a_hung_server_times_out_and_the_store_answers_503(
    own_redis: RedisServer,
) -> None:
    """The line's socket keeps its timeout in the kernel (no poll before each read): a
    server that stops answering mid-connection times a call out after the client's
    ``socket_timeout``, as a timeout (the breaker pauses), never a hang or a 500."""
    assert own_redis.process is not None
    line = Line(redis.Redis.from_url(own_redis.url, socket_timeout=0.5))
    store = RedisStore(own_redis.url)
    assert line.call(("PING",)) == [b"PONG"]
    with store.snapshot(None):  # the store's line connected too
        pass
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            line.call(("PING",))
        assert 0.4 < time.monotonic() - began < 1.5
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            store.clock_stopped()  # a read on the line
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert line.call(("PING",)) == [b"PONG"]  # a fresh connection
    line.close()
    store.close()


def test_threads_waiting_behind_a_hung_server_pay_one_timeout_between_them(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    book = store.book(None)
    assert own_redis.process is not None
    refused: list[str] = []

    def call(n: int) -> None:
        try:
            if n % 2:
                with store.snapshot(None):  # the requests' line: one call at a time
                    pass
            else:
                book.balances("a", OPENING)  # the client's pool: a connection each
        except StoreUnavailable as exc:
            refused.append(str(exc))

    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.monotonic() - began
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert len(refused) == 8 and all("cannot be reached" in why for why in refused)
    assert took < 2 * 2.0, f"8 calls took {took:.1f} s"  # one at a time on the line: 4 timeouts of 2 s
    time.sleep(1.0)  # the pause after a timeout ends: the next call asks again
    with store.snapshot(None):
        pass
    store.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_of_every_shape_come_back_as_the_client_gives_them(redis_url: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    line = Line(client)
    big = bytes(range(256)) * 1000  # several reads of the socket, every byte value
    nested = "return {1, 'two', {3, {}, false}, -4}"
    replies = line.call(
        ("SET", "k", big), ("GET", "k"), ("GET", "absent"), ("HMGET", "absent", "a", "b"), ("EVAL", nested, 0)
    )
    assert replies == [b"OK", big, None, [None, None], [1, b"two", [3, [], None], -4]]
    assert replies[1:] == [
        client.get("k"),
        client.get("absent"),
        client.hmget("absent", ["a", "b"]),
        client.eval(nested, 0),
    ]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        line.call(("HGET", "k", "f"))
    assert line.call(("PING",), ("INCRBY", "n", -3), ("INCRBYFLOAT", "f", 0.5)) == [b"PONG", -3, b"0.5"]
    line.close()
    client.close()


class _LoadingRedis(threading.Thread):
    """A server that speaks RESP and answers every command ``+OK``, except ``GET``, which it
    answers as a redis-server still loading its data after a restart does (``-LOADING``)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self) -> None:
        with self.sock:
            connection, _ = self.sock.accept()
        with connection:
            pending = b""
            while chunk := connection.recv(65536):
                pending += chunk
                while pending.startswith(b"*") and pending.count(b"\r\n") >= 1 + 2 * int(pending[1:].split(b"\r\n")[0]):
                    count = int(pending[1:].split(b"\r\n")[0])
                    parts = pending.split(b"\r\n", 1 + 2 * count)
                    name, pending = parts[2].upper(), parts[-1]
                    answer = b"-LOADING Redis is loading the dataset in memory\r\n" if name == b"GET" else b"+OK\r\n"
                    connection.sendall(answer)


def test_an_error_reply_that_is_a_connection_error_is_raised_and_the_store_answers_503() -> None:
    """A restarted Redis answers ``-LOADING`` until its data is read back; redis-py makes that
    a ``BusyLoadingError``, a connection error, not a ``ResponseError``. It was returned as a
    reply and broke the caller (a plain 500 from outside sfmock's error handling, seen once
    in a fleet test that kills Redis mid-load); it is raised, and the store's guard makes it
    a 503."""
    server = _LoadingRedis()
    server.start()
    client = redis.Redis(host="127.0.0.1", port=server.port, protocol=2, socket_timeout=5)
    line = Line(client)
    with pytest.raises(redis.BusyLoadingError):
        line.call(("SET", "k", "v"), ("GET", "k"))
    line.close()
    client.close()


@pytest.mark.parametrize("session", [None, "suite-a"])
def test_a_generation_makes_one_call_on_the_line_and_none_on_the_client(redis_url: str, session: str | None) -> None:
    """One call, one write and one command: the admission script checks the read-ahead the
    process remembers (the clock, the run's start, the session's scenario and, for a named
    session, its own start and clock), admits, and writes the journal entry of the answer.
    Nothing else, nothing through redis-py; Redis counts one command for it. The call is
    the batching line's (made from the event loop: sfmock.state.redis_batch)."""
    from starlette.testclient import TestClient

    from sfmock import Settings, create_app

    app = create_app(Settings(seed=1, store=redis_url))
    store = app.state.store
    assert isinstance(store, RedisStore)
    headers = {"Authorization": "Bearer sk-anything", **({"X-Sfmock-Session": session} if session else {})}
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
    calls: list[str] = []
    line_call, client_call = store.line.call, store.client.execute_command
    watcher = redis.Redis.from_url(redis_url)

    def on_line(*commands: Any) -> list[Any]:
        calls.append("line " + " ".join(str(c[0]) for c in commands))
        return line_call(*commands)

    def on_client(*args: Any, **options: Any) -> Any:
        calls.append(f"client {args[0]}")
        return client_call(*args, **options)

    def scripts_run() -> int:  # by Redis's count: a script's own commands are counted apart
        held = watcher.info("commandstats")
        return sum(int(held.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))

    with TestClient(app) as client:
        for _ in range(2):  # warm: the read-ahead remembered, the scripts loaded
            assert client.post("/v1/images/generations", json=body, headers=headers).status_code == 200
        store.line.call, store.client.execute_command = on_line, on_client  # type: ignore[method-assign]
        assert store.batch is not None
        batch_call = store.batch.call

        def on_batch(command: Any) -> Any:
            calls.append(f"batch {command[0]}")
            return batch_call(command)

        store.batch.call = on_batch  # type: ignore[method-assign]
        before = scripts_run()
        answer = client.post("/v1/images/generations", json=body, headers=headers)
        assert answer.status_code == 200
        assert scripts_run() - before == 1
        assert calls == ["batch EVALSHA"]  # one command, one reply awaited
        store.batch.call = batch_call  # type: ignore[method-assign]
        store.line.call, store.client.execute_command = line_call, client_call  # type: ignore[method-assign]
        journal = client.get("/_sfmock/journal", headers={"X-Sfmock-Session": session} if session else {})
        last = journal.json()["entries"][-1]  # written by that one call, as the client got it
        assert (last["status"], last["trace_id"]) == (200, answer.headers["x-siliconcloud-trace-id"])
        assert last["response_body"]["seed"] == answer.json()["seed"]
    watcher.close()
    store.close()
