"""The scenario of one session and its fault counters on Redis (the rest of the store:
:mod:`sfmock.state.redis_store`).

The scenario is a hash (``version``, ``data``); a request reads only its version, ahead
with the clock (:meth:`~sfmock.state.redis_store.RedisStore.snapshot`), and a process
reads the data itself once per version. Versions come from one counter of every session
(``sfmock:#versions``), never reset, so a process never sees a version number twice. The
counters of the version in force are one hash in the session's slot, emptied when a
scenario replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar, cast

from redis.commands.core import Script

from sfmock.state.redis_keys import VERSIONS_KEY
from sfmock.state.redis_line import forget_read_ahead, read_ahead
from sfmock.state.store import Codec

__all__ = ["RedisFaults"]

T = TypeVar("T")
_SCENARIO_FIELDS = ["version", "data"]


class Shared(Protocol):
    """What the scenario uses of :class:`~sfmock.state.redis_store.RedisStore`."""

    client: Any
    replace_script: Script
    hit_script: Script

    def guard(self) -> AbstractContextManager[None]: ...

    def run(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any: ...


class RedisFaults(Generic[T]):
    """The scenario (encoded, versioned) and its counters in Redis; version 0 is ``initial``."""

    def __init__(self, store: Shared, prefix: str, initial: T, codec: Codec[T], idle_ms: int) -> None:
        self.store = store
        self.idle_ms = idle_ms
        self.codec = codec
        self.initial = initial
        self.scenario_key = self.key(prefix)
        self.counters_key = prefix + "f:n"
        self._cache: tuple[int, T] = (0, initial)

    @staticmethod
    def key(prefix: str) -> str:
        """The key of the scenario of the session whose keys start with ``prefix``."""
        return prefix + "f:scenario"

    def current(self) -> tuple[int, T]:
        fields = read_ahead(self.scenario_key)  # the version only: a scenario can be 256 KiB
        if fields is None:
            with self.store.guard():
                fields = [cast(bytes | None, self.store.client.hget(self.scenario_key, "version"))]
        number = int(fields[0] or 0)
        if number == 0:
            return 0, self.initial
        if self._cache[0] != number:  # versions are never reused: a version is its data
            with self.store.guard():
                held = cast(list[bytes | None], self.store.client.hmget(self.scenario_key, _SCENARIO_FIELDS))
            version, data = held  # replaced meanwhile: the newer pair, read together
            if not version or data is None:
                return 0, self.initial
            self._cache = (int(version), self.codec.decode(data))
        return self._cache

    def replace(self, scenario: T) -> None:
        data = self.codec.encode(scenario)
        forget_read_ahead(self.scenario_key)
        with self.store.guard():  # a version never reused, in every session: its own call (another slot)
            version = int(self.store.client.incr(VERSIONS_KEY))
        self.store.run(self.store.replace_script, [self.scenario_key, self.counters_key], [data, self.idle_ms, version])

    def hit(
        self, version: int, index: int, nth: frozenset[int] | None, times: int | None, chance: Callable[[], bool]
    ) -> tuple[int, bool]:
        listed = "" if nth is None else ",".join(str(n) for n in sorted(nth))
        drawn = 1 if chance() else 0
        args: list[str | int] = [version, index, listed, -1 if times is None else times, drawn, self.idle_ms]
        keys = [self.scenario_key, self.counters_key]
        n, fires = self.store.run(self.store.hit_script, keys, args)
        return int(n), bool(fires)
