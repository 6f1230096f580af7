"""The shared clock and epoch on Redis: one time, and one start of the run, for every process.

The clock is a hash (``offset``; ``stopped`` while frozen; ``start``, the first process's
time when it starts frozen); moves are one script. The epoch is a hash too: ``start``
(what ``after`` times count from: the first process's start, or the last full reset)
and ``retired`` (the models a scenario retired, as JSON ``{model: time}``). A request
reads both ahead with its session's scenario (:mod:`sfmock.state.redis_line`).

A named session's clock is a hash of the same fields among the session's keys
(:func:`session_clock_key`): its ``offset`` counts from the server's clock rather than
the wall clock, so every process agrees on it, and it goes with the session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, cast

import redis
from redis.commands.core import Script

from sfmock.clock import MAX_TIME, Clock, stands_still, within_range
from sfmock.state.redis_line import forget_read_ahead, read_ahead

__all__ = [
    "CLOCK_FIELDS",
    "CLOCK_KEY",
    "EPOCH_FIELDS",
    "EPOCH_KEY",
    "RedisClock",
    "RedisEpoch",
    "RedisSessionClock",
    "session_clock_key",
    "standing_clock_key",
    "timeline",
]

CLOCK_KEY = "sfmock:#clock{|}"  # in the default session's slot (see sfmock.state.redis_keys)
CLOCK_FIELDS = ["offset", "stopped", "start"]
EPOCH_KEY = "sfmock:#epoch{|}"
EPOCH_FIELDS = ["start", "retired"]


class Shared(Protocol):
    """What the clock and the epoch use of :class:`~sfmock.state.redis_store.RedisStore`."""

    client: redis.Redis
    clock_script: Script
    retire_script: Script

    def guard(self) -> AbstractContextManager[None]: ...

    def run(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any: ...


class _Moves:
    """Moving a clock kept in Redis, by its ``_move`` (one script, so on every process)."""

    def now(self) -> float:
        raise NotImplementedError

    def _move(self, verb: str, value: float = 0.0) -> None:
        raise NotImplementedError

    def advance(self, seconds: float) -> float:
        """Jump forward by ``seconds`` and return the new time."""
        if not seconds >= 0:
            raise ValueError(f"a clock only advances; got {seconds} seconds")
        if not self.now() + seconds <= MAX_TIME:
            raise ValueError(f"the clock must stay within 0..{MAX_TIME:.0f} (1970 to 9999)")
        self._move("advance", seconds)
        return self.now()

    def set(self, when: float) -> None:
        """Make it ``when`` now."""
        if not 0 <= when <= MAX_TIME:
            raise ValueError(f"the clock must stay within 0..{MAX_TIME:.0f} (1970 to 9999); got {when!r}")
        self._move("set", when)


class RedisClock(_Moves):
    """The server's clock, shared: the wall clock plus an offset, or stopped (frozen)."""

    def __init__(self, store: Shared, *, frozen: bool) -> None:
        self.store = store
        self.key = CLOCK_KEY
        self.starts_frozen = frozen
        if frozen:
            self._start()

    def _start(self) -> None:
        """Stop the clock now, unless another process did first (or it was moved since)."""
        with self.store.guard():
            start = repr(time.time())
            self.store.client.hsetnx(self.key, "start", start)
            self.store.client.hsetnx(self.key, "stopped", start)

    def _state(self) -> tuple[float, float | None]:
        fields = read_ahead(self.key)
        if fields is None:
            with self.store.guard():
                fields = cast(list[bytes | None], self.store.client.hmget(self.key, CLOCK_FIELDS))
        offset, stopped, start = fields
        if start is None and self.starts_frozen:  # Redis lost its data (restarted without it)
            self._start()
            forget_read_ahead(self.key)
            return self._state()
        return float(offset or 0), None if stopped is None else float(stopped)

    def now(self) -> float:
        """Held at the end of 9999, as :class:`~sfmock.clock.ShiftedClock` is (a stop
        the script made from a time past it included)."""
        offset, stopped = self._state()
        return within_range(stopped if stopped is not None else time.time() + offset)

    @property
    def frozen(self) -> bool:
        return self._state()[1] is not None

    def _move(self, verb: str, value: float = 0.0) -> None:
        forget_read_ahead(self.key)
        self.store.run(self.store.clock_script, [self.key], [verb, repr(float(value)), repr(time.time())])

    def freeze(self, frozen: bool = True) -> None:
        """Stop time where it is (``False``: let it run on from there)."""
        self._move("freeze" if frozen else "thaw")

    def reset(self) -> None:
        """Back to how the first process started it: the wall clock, or stopped at its start."""
        self._move("reset")


def session_clock_key(prefix: str) -> str:
    """The key of the clock of the session whose keys start with ``prefix``."""
    return prefix + "clock"


def standing_clock_key(key: str) -> str:
    """Of the clock at ``key`` (a session's, or the server's), the one whose ``stopped``
    tells the admission script whether this request's time stands still (its log is then
    kept longer): the session's own while this request read it stopped, else the server's,
    which the session follows."""
    if key == CLOCK_KEY:
        return key
    own = read_ahead(key)
    return key if own is not None and own[1] is not None else CLOCK_KEY


def timeline(key: str) -> bytes:
    """Which timeline this request read its time on, from the clock at ``key`` (a
    session's, or the server's) as it read it ahead: the fields every move changes
    (``offset``, ``stopped``), of the session's clock and of the server's, which it
    follows. Two requests with the same one computed their times on one unmoved clock, so
    one arriving with an earlier time than the other is a race, not the clock going back
    (:mod:`sfmock.state.admit_script`). ``b""`` when not read ahead (not known)."""
    server = read_ahead(CLOCK_KEY)
    if server is None:
        return b""
    fields = server[:2]
    if key != CLOCK_KEY:
        own = read_ahead(key)
        if own is None:
            return b""
        fields = [*fields, *own[:2]]
    return b"|".join(b"-" if value is None else value for value in fields)


class RedisSessionClock(_Moves):
    """A named session's clock, shared: the server's clock plus the session's offset, or
    stopped (see :class:`sfmock.clock.SessionClock`, the same in one process).

    Moves run the server clock's script on the session's hash, with the server's time
    where that script takes the wall clock's. The hash goes ``ttl_ms`` after the last move
    (as the session's other state goes after its last use).
    """

    def __init__(self, store: Shared, key: str, server: Clock, *, ttl_ms: int) -> None:
        self.store = store
        self.key = key
        self.server = server
        self.ttl_ms = ttl_ms

    def _state(self) -> tuple[float, float | None]:
        fields = read_ahead(self.key)
        if fields is None:
            with self.store.guard():
                fields = cast(list[bytes | None], self.store.client.hmget(self.key, CLOCK_FIELDS))
        offset, stopped = fields[0], fields[1]
        return float(offset or 0), None if stopped is None else float(stopped)

    def now(self) -> float:
        offset, stopped = self._state()
        return within_range(stopped if stopped is not None else self.server.now() + offset)

    @property
    def stopped(self) -> bool:
        """Whether the session froze its clock itself."""
        return self._state()[1] is not None

    @property
    def frozen(self) -> bool:
        return self.stopped or stands_still(self.server)

    def _move(self, verb: str, value: float = 0.0) -> None:
        forget_read_ahead(self.key)
        self.store.run(self.store.clock_script, [self.key], [verb, repr(float(value)), repr(self.server.now())])
        with self.store.guard():
            self.store.client.pexpire(self.key, self.ttl_ms)

    def freeze(self, frozen: bool = True) -> None:
        """Stop time where it is (``False``: follow the server's clock again from there)."""
        self._move("freeze" if frozen else "thaw")

    def reset(self) -> None:
        """Back to the server's time, following it."""
        forget_read_ahead(self.key)
        with self.store.guard():
            self.store.client.unlink(self.key)


class RedisEpoch:
    """The run's start and the models a scenario retired, shared by every process."""

    def __init__(self, store: Shared, started: float, *, key: str | None = None) -> None:
        """``key``: where it lives (default: the run's, :data:`EPOCH_KEY`)."""
        self.store = store
        self.key = key or EPOCH_KEY
        self.started_here = started
        self._parsed: tuple[list[bytes | None], tuple[float, Mapping[str, float]]] | None = None
        self._begin()

    def _begin(self) -> None:
        """Begin the run at this process's start, unless another process began it first."""
        with self.store.guard():
            self.store.client.hsetnx(self.key, "start", repr(self.started_here))

    def read(self) -> tuple[float, Mapping[str, float]]:
        fields = read_ahead(self.key)
        if fields is None:
            with self.store.guard():
                fields = cast(list[bytes | None], self.store.client.hmget(self.key, EPOCH_FIELDS))
        parsed = self._parsed
        if parsed is not None and parsed[0] == fields:
            return parsed[1]  # the same object while nothing changed
        start, retired = fields
        if start is None:  # Redis lost its data (restarted without it)
            self._begin()
            forget_read_ahead(self.key)
            return self.read()
        held = json.loads(retired) if retired else {}
        value = (float(start), {model: float(since) for model, since in held.items()})
        self._parsed = (fields, value)
        return value

    def retire(self, model: str, since: float) -> None:
        forget_read_ahead(self.key)
        self.store.run(self.store.retire_script, [self.key], [model, repr(float(since))])

    def restart(self, started: float) -> None:
        forget_read_ahead(self.key)
        with self.store.guard():
            pipe = self.store.client.pipeline(transaction=True)
            pipe.hset(self.key, "start", repr(float(started)))
            pipe.hdel(self.key, "retired")
            pipe.execute()
