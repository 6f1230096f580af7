"""One connection to Redis for the calls every request makes: one write a call, no pool.

redis-py's client checks a connection out of its pool for each command and wraps it in
its retry, event and reply-callback machinery: measured here, 100 to 170 µs of CPU for a
script call, against about 30 for the round trip itself and 60 straight on a connection.
A generation on the Redis store makes one such call on one server (admission, which
checks the read-ahead the process remembers and writes the journal entry:
:mod:`sfmock.state.recheck`, :mod:`sfmock.state.rider`), three on a cluster, so the
calls of :class:`~sfmock.state.redis_store.RedisStore`'s hot path go through one
connection of the client's own pool settings (address, database, password, TLS,
timeouts, protocol), held under a lock; everything else keeps the client.

Nothing is retried (a retried admission could count a request twice): a lost connection
raises :class:`redis.ConnectionError` (or :class:`redis.TimeoutError`) as the client
would, and is dropped, so the next call connects afresh; after a timeout, calls are
refused at once for a moment (:class:`Breaker`), so a hung Redis costs one timeout, not
one per waiting request. An error reply is raised only after every reply of the call was
read, so the connection stays in step. Commands are packed, and replies read, by
:mod:`sfmock.state.resp`.

A request reads what it needs of the shared state (the clock, the epoch, its session's
scenario) in one call when it arrives, or serves on what the process read last, checked
(:meth:`~sfmock.state.redis_store.RedisStore.snapshot`); :func:`read_ahead` answers
those reads until the request ends.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import redis
from redis.commands.core import Script

from sfmock.state.recheck import Scoped
from sfmock.state.resp import Replies, arguments, pack

__all__ = [
    "Breaker",
    "Command",
    "Hung",
    "Line",
    "Scripts",
    "forget_read_ahead",
    "forks",
    "raised",
    "read_ahead",
    "reading_ahead",
    "writes",
]

Command = tuple[Any, ...]
Fields = list[bytes | None]
# what the request being served read ahead: key -> its fields' values
_AHEAD: ContextVar[dict[str, Fields] | None] = ContextVar("sfmock_read_ahead", default=None)


def reading_ahead(taken: dict[str, Fields]) -> Scoped[dict[str, Fields] | None]:
    """Answer reads of these keys' fields from ``taken`` until the block ends."""
    return Scoped(_AHEAD, taken)


def read_ahead(key: str) -> Fields | None:
    """The fields of ``key`` as this request read them ahead, or ``None`` (read them now)."""
    taken = _AHEAD.get()
    return None if taken is None else taken.get(key)


def forget_read_ahead(key: str) -> None:
    """After a write to ``key``: this request reads it afresh, and so does the next one
    (what this process remembers of the read-ahead is not used: :func:`writes`)."""
    global _WRITES
    _WRITES += 1
    taken = _AHEAD.get()
    if taken is not None:
        taken.pop(key, None)


_WRITES = 0  # writes this process made to what requests read ahead


def writes() -> int:
    """How many writes this process made to what requests read ahead: a read-ahead
    remembered from before one is read again rather than checked (it would not hold)."""
    return _WRITES


class Hung(redis.ConnectionError):
    """Not asked: Redis let a call time out a moment ago."""


class Breaker:
    """Once a call timed out, refuse every call at once for ``pause`` seconds.

    The calls are synchronous, on the event loop or behind the line's lock: without this,
    each request waiting behind a hung Redis would wait out a timeout of its own, in turn
    (12 requests, 24 s). With it, one request pays the timeout; those waiting behind it are
    refused as soon as it ends; after the pause one call tries again."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self._until = 0.0
        self._why = ""

    def check(self) -> None:
        """Raise :class:`Hung` while paused."""
        if self._until and time.monotonic() < self._until:
            raise Hung(f"{self._why}; not asked again for {self.pause:g} s")

    def trip(self, why: object) -> None:
        self._why = str(why)
        self._until = time.monotonic() + self.pause


def raised(replies: list[Any]) -> list[Any]:
    """``replies``, once every one was read; the first error among them raised."""
    for reply in replies:
        if isinstance(reply, redis.RedisError):  # -LOADING and -NOAUTH are connection errors, not ResponseError
            raise reply
    return replies


class Scripts:
    """Registered scripts run through :meth:`call`."""

    def call(self, *commands: Command) -> list[Any]:
        raise NotImplementedError

    def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a registered script by its hash, sending its text once if Redis lacks it."""
        try:
            (reply,) = self.call(("EVALSHA", script.sha, arguments(keys), *keys, *args))
        except redis.exceptions.NoScriptError:
            (reply,) = self.call(("EVAL", script.script, arguments(keys), *keys, *args))  # also caches it
        return reply

    def close(self) -> None:
        raise NotImplementedError


class Line(Scripts):
    """A connection made from ``client``'s pool settings, used by one call at a time."""

    def __init__(self, client: redis.Redis, breaker: Breaker | None = None) -> None:
        self.breaker = breaker or Breaker(0.0)  # no pause: every call tries
        self._pool = client.connection_pool
        self._lock = threading.Lock()
        self._connection: Any = None  # a redis.connection.Connection (untyped there)
        self._reader: Replies | None = None  # its replies, read past redis-py's parser
        self._forks = _FORKS

    def call(self, *commands: Command) -> list[Any]:
        """The replies to ``commands``, sent in one write and read in order; an error reply
        is raised (as redis-py raises it) once every reply was read."""
        with self._lock:
            replies = self.receive(self.send(commands), len(commands))
        return raised(replies)

    def send(self, commands: Sequence[Command]) -> Replies:
        """Write ``commands`` (the caller holds :attr:`lock`); their replies are to be read
        with :meth:`receive` before the lock goes."""
        self.breaker.check()  # a call that waited for the lock behind a timeout waits no more
        try:
            reader = self._connected()
            reader.sock.sendall(pack(commands))  # as redis-py's connection would, past its checks
            return reader
        except BaseException as exc:
            error = _as_redis(exc)
            self.fail(error)
            if error is exc:
                raise
            raise error from None

    def receive(self, reader: Replies, count: int) -> list[Any]:
        try:
            if count == 1:  # most calls: no comprehension's frame
                return [reader.read()]
            return [reader.read() for _ in range(count)]
        except BaseException as exc:
            self.fail(exc)
            raise

    def fail(self, exc: BaseException) -> None:
        """After ``exc`` mid-call: replies may be left unread, so this connection is done."""
        self._drop()
        if isinstance(exc, redis.TimeoutError):
            self.breaker.trip(exc)

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
        self._connection = self._reader = None

    def _connected(self) -> Replies:
        reader = self._reader
        if reader is None or self._forks != _FORKS:
            self._connection = self._reader = None  # never share a socket with a parent process
            connection: Any = self._pool.make_connection()
            connection.connect()  # the handshake (password, database, protocol) as the client's
            _timed_by_kernel(connection._sock)
            reader = Replies(connection._sock)
            self._connection, self._reader, self._forks = connection, reader, _FORKS
        return reader


def _timed_by_kernel(sock: Any) -> None:
    """Make a plain socket with a timeout blocking, its timeout kept by the kernel
    (``SO_RCVTIMEO``, ``SO_SNDTIMEO``): Python polls a socket that has a timeout before
    every send and every receive, two system calls more a round trip (about 2 µs of CPU
    here). A call the kernel times out fails with ``EAGAIN`` (:class:`BlockingIOError`),
    raised as a timeout. TLS keeps Python's own (a read may need a write); so does any
    system but Linux (its ``timeval`` is packed here)."""
    timeout = sock.gettimeout()
    if type(sock) is not socket.socket or not timeout or sys.platform != "linux":
        return
    seconds = int(timeout)
    held = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, held)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, held)
    sock.settimeout(None)


def _as_redis(exc: BaseException) -> BaseException:
    """A socket's error writing, as redis-py raises it: a timeout (the socket's own, its
    ``errno`` unset, or the kernel's: :func:`_timed_by_kernel`), or any other error, which
    loses the connection."""
    if isinstance(exc, BlockingIOError) or (isinstance(exc, TimeoutError) and exc.errno is None):
        return redis.TimeoutError("Timeout writing to the store")
    if isinstance(exc, OSError):
        return redis.ConnectionError(f"Error writing to the store: {exc}")
    return exc


_FORKS = 0  # forks this process has come of: a connection made before one is the parent's


def forks() -> int:
    """How many forks this process has come of: a socket made before the last is a parent's."""
    return _FORKS


def _forked() -> None:
    global _FORKS
    _FORKS += 1


os.register_at_fork(after_in_child=_forked)  # no getpid() on every call
