"""The generations' admission calls from the event loop, sent together while one is in flight.

The line of :mod:`sfmock.state.redis_line` is called synchronously: the event loop waits in
``recv`` for every admission, one request at a time. A worker under load has requests
waiting behind it (32 connections); each pays a write, a read and the wait's wake-up of its
own, which cost the worker more CPU than the generation's Python (bench/README.md).

:class:`BatchLine` is that call made awaitable, on a connection of its own per event loop:
a call made while none is in flight is written at once; those made while one is in flight
are queued and written in one write as soon as its replies are in, and their replies,
read by hiredis as the socket gives them, are handed back in order (ioredis's
auto-pipelining, with at most one batch on the wire). Each command is still its own
script call, atomic inside Redis: batching changes how many commands a write carries,
not what any of them does, so every limit stays exact across processes; the calls of one
process reach Redis in the order they were made, as on the synchronous line.

Nothing is retried; a lost connection fails every call it carried or queued with
:class:`redis.ConnectionError`, and the next call connects afresh. A batch unanswered
for the socket's timeout fails them all with :class:`redis.TimeoutError` at once (one
timeout for all the requests waiting, as the :class:`~sfmock.state.redis_line.Breaker`
gives the synchronous line). A forked child never uses its parent's socket. Only plain
TCP and Unix sockets are batched; over TLS the store keeps the synchronous line.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from sfmock.state import redis_line
from sfmock.state.redis_line import Command
from sfmock.state.resp import MORE, arguments, pack, reader

__all__ = ["BatchLine", "batchable"]


def batchable(client: redis.Redis) -> bool:
    """Whether ``client``'s connections are plain sockets this line can read without blocking."""
    kind = client.connection_pool.connection_class
    return kind in (redis.connection.Connection, redis.connection.UnixDomainSocketConnection)


class BatchLine:
    """Calls on ``client``'s server from the running event loop, batched (module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        timeout = self._pool.connection_kwargs.get("socket_timeout")
        self.timeout: float = timeout if timeout else 2.0
        self._wires: dict[asyncio.AbstractEventLoop, _Wire] = {}
        self._last: _Wire | None = None  # the last call's: most calls come from the one loop

    async def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a registered script by its hash, sending its text once if Redis lacks it; an
        error reply is raised as redis-py raises it."""
        reply = await self.call(("EVALSHA", script.sha, arguments(keys), *keys, *args))
        if isinstance(reply, redis.exceptions.NoScriptError):  # not run: run it by its text
            reply = await self.call(("EVAL", script.script, arguments(keys), *keys, *args))
        if isinstance(reply, redis.RedisError):
            raise reply
        return reply

    def call(self, command: Command) -> asyncio.Future[Any]:
        """The reply to ``command`` (an error reply as a value, not raised)."""
        wire = self._last
        loop = asyncio.get_running_loop()
        if wire is None or wire.loop is not loop or wire.forks != redis_line.forks() or wire.broken:
            wire = self._wire(loop)
        return wire.call(pack((command,)))

    def _wire(self, loop: asyncio.AbstractEventLoop) -> _Wire:
        wire = self._wires.get(loop)
        if wire is None or wire.broken or wire.forks != redis_line.forks():
            for old, held in list(self._wires.items()):  # the loops of finished runs (a test's)
                if old.is_closed() or held.forks != redis_line.forks():
                    held.forget()
                    del self._wires[old]
            wire = self._wires[loop] = _Wire(loop, self._pool, self.timeout)
        self._last = wire
        return wire

    def close(self) -> None:
        for wire in self._wires.values():
            wire.close()
        self._wires.clear()
        self._last = None


class _Wire:
    """One connection on one event loop: what is on the wire, and what waits to be."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: Any, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.forks = redis_line.forks()
        self.broken = False
        self._connection: Any = pool.make_connection()
        self._connection.connect()  # the handshake (password, database, protocol), blocking: once
        self._sock: socket.socket = self._connection._sock
        self._sock.setblocking(False)
        self._fd = self._sock.fileno()
        self._reader = reader()
        self._buffer = bytearray(65536)
        self._sent: deque[asyncio.Future[Any]] = deque()  # written, their replies not all read
        self._queued: list[asyncio.Future[Any]] = []  # waiting for the wire to be free
        self._out: list[bytes] = []  # the queued calls' commands
        self._unsent = b""  # the rest of a write the socket did not take at once
        self._sent_at = 0.0
        self._watch: asyncio.TimerHandle | None = None
        loop.add_reader(self._fd, self._readable)

    def call(self, packed: bytes) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        if self._sent:  # a batch in flight: go with the next
            self._queued.append(future)
            self._out.append(packed)
        else:
            self._sent.append(future)
            self._write(packed)
        return future

    def _write(self, data: bytes) -> None:
        self._sent_at = self.loop.time()
        if self._watch is None:
            self._watch = self.loop.call_later(self.timeout, self._watched)
        done = self._send(data)
        if done is not None and done < len(data):  # rare: the socket's buffer full
            self._unsent = data[done:]
            self.loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        done = self._send(self._unsent)
        if done is None:
            return
        self._unsent = self._unsent[done:]
        if not self._unsent:
            self.loop.remove_writer(self._fd)

    def _send(self, data: bytes) -> int | None:
        """How much of ``data`` the socket took; ``None`` once the connection failed."""
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._fail(redis.ConnectionError(f"Error writing to the store: {exc}"))
            return None

    def _readable(self) -> None:
        try:
            size = self._sock.recv_into(self._buffer)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(redis.ConnectionError(f"Error reading from the store: {exc}"))
            return
        if not size:
            self._fail(redis.ConnectionError("Connection closed by server."))
            return
        gets, sent = self._reader.gets, self._sent
        try:
            self._reader.feed(self._buffer, 0, size)  # type: ignore[arg-type]  # any buffer: its stub says bytes
            while sent:
                reply = gets()
                if reply is MORE:
                    break
                future = sent.popleft()
                if not future.done():  # its request was cancelled: the reply is read and let go
                    future.set_result(reply)
        except redis.ConnectionError as exc:  # out of step with the server
            self._fail(exc)
            return
        if not sent and self._queued:  # the wire is free: the queue goes in one write
            sent.extend(self._queued)
            out = self._out
            self._queued, self._out = [], []
            self._write(b"".join(out))

    def _watched(self) -> None:
        """The watch on the batch in flight: failed once unanswered for :attr:`timeout`."""
        self._watch = None
        if not self._sent:
            return
        waited = self.loop.time() - self._sent_at
        if waited >= self.timeout:
            self._fail(redis.TimeoutError("Timeout reading from the store"))
        else:  # the batch in flight went out since the watch was set
            self._watch = self.loop.call_later(self.timeout - waited, self._watched)

    def _fail(self, error: redis.RedisError) -> None:
        """Every call carried or queued fails with ``error``; the connection is done."""
        self.close()
        waiting = [*self._sent, *self._queued]
        self._sent.clear()
        self._queued.clear()
        self._out.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(type(error)(*error.args))  # one each: tracebacks of their own

    def close(self) -> None:
        """No more calls on it; its socket closed on its loop's thread (at once when called
        there, or when the loop has closed)."""
        if self.broken:
            return
        self.broken = True
        if self.loop.is_running() and asyncio._get_running_loop() is not self.loop:
            self.loop.call_soon_threadsafe(self._let_go)  # the loop of another thread: its own work
        else:
            self._let_go()

    def _let_go(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if not self.loop.is_closed():
            self.loop.remove_reader(self._fd)
            if self._unsent:
                self.loop.remove_writer(self._fd)
        self._connection.disconnect()

    def forget(self) -> None:
        """Let go of a connection whose loop has closed, or that a parent process made."""
        if self.forks == redis_line.forks():
            self.close()
        self.broken = True
