"""The shared store on Redis: several processes and hosts as one service.

Every key starts with ``sfmock:``; a session's keys with ``sfmock:NAME|`` (the default
session's with ``sfmock:|``), hash-tagged so that each script touches one slot
(:mod:`sfmock.state.redis_keys`): a Redis Cluster holds the store as a single server
does, each request's calls sent to the nodes of its keys. The server clock's key is
``sfmock:#clock{|}``; a named session's clock is among its own keys. Admission, journal
appends, fault counters, scenario changes and clock moves are each one server-side
script, so they are atomic across processes. On one server, a generation's admission
also checks the read-ahead its process remembers and writes the answer's journal entry:
one call (:mod:`sfmock.state.recheck`, :mod:`sfmock.state.rider`). An account's windows and balances are one
hash and one sorted-set log (``q:a:{ACCOUNT|}``, ``q:log:{ACCOUNT|}``), whatever its windows.
Memory stays bounded: the log expires with the longest window, the journal keeps
``size`` entries and ``max_bytes`` of bodies (all sessions' journals together on one server:
:data:`~sfmock.state.scripts.SHED`); in open mode (any token an account) an
account, and a named session's state, go a day after their last use.

A lost connection raises :class:`~sfmock.state.store.StoreUnavailable` (logged once per
outage); the next call tries again, so the server recovers by itself. Nothing is retried
behind the caller's back: a retried admission could count a request twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar, cast

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from sfmock.clock import Clock
from sfmock.state import redis_time, scripts
from sfmock.state.recheck import Check, checking, confirm
from sfmock.state.redis_batch import BatchLine, batchable
from sfmock.state.redis_book import RedisBook
from sfmock.state.redis_cluster import ClusterLine
from sfmock.state.redis_faults import RedisFaults
from sfmock.state.redis_keys import BUDGET_KEY, NAMESPACE, SESSIONS_KEY, SESSIONS_SEQ_KEY, base, prefix
from sfmock.state.redis_line import (
    Breaker,
    Command,
    Line,
    Scripts,
    forget_read_ahead,
    read_ahead,
    reading_ahead,
    writes,
)
from sfmock.state.redis_log import RedisLog
from sfmock.state.redis_time import CLOCK_FIELDS, CLOCK_KEY, EPOCH_FIELDS, EPOCH_KEY, RedisClock, RedisEpoch
from sfmock.state.resp import Packed
from sfmock.state.store import Codec, NumberedCodec, StoreUnavailable
from sfmock.state.urls import shown_url

__all__ = ["RedisStore"]

T = TypeVar("T")
logger = logging.getLogger("sfmock")
HUNG_PAUSE = 1.0  # after a call timed out, refuse calls at once this long (s), then try again
IDLE_TTL_MS = 86_400_000  # open-mode balances and named sessions go a day after their last use


class RedisStore:
    """State in the Redis server at ``url`` (``redis://HOST:PORT/DB``, ``rediss://``, ``unix://``)."""

    shared = True

    def __init__(self, url: str, *, open_mode: bool = False) -> None:
        self.url = shown_url(url)
        self.open_mode = open_mode
        options: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
        single = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), health_check_interval=0, **options)
        self.cluster = _is_cluster(single)
        self.client: Any = single  # a redis.Redis, or a RedisCluster (same commands, keys routed by slot)
        self._cluster_error = ""
        if self.cluster:
            try:
                self.client = redis.cluster.RedisCluster.from_url(url, **options)
                single.close()
            except redis.exceptions.RedisClusterException as exc:  # no slots served, say: refused at start
                self._cluster_error = str(exc)
        self._down = False
        self._lock = threading.Lock()
        self._reads: dict[str | None, list[tuple[str, ...]]] = {}  # each session's read-ahead commands
        self._known: dict[str | None, Known] = {}  # what each session's last request read ahead
        self.breaker = Breaker(HUNG_PAUSE)
        self.admit_script = self.client.register_script(scripts.ADMIT)
        self.push_script = self.client.register_script(scripts.PUSH)
        self.admit_push_script = self.client.register_script(scripts.ADMIT_PUSH)
        self.admit_checked_script = self.client.register_script(scripts.ADMIT_CHECKED)
        self.admit_push_checked_script = self.client.register_script(scripts.ADMIT_PUSH_CHECKED)
        self.rewrite_script = self.client.register_script(scripts.REWRITE)
        self.hit_script = self.client.register_script(scripts.HIT)
        self.replace_script = self.client.register_script(scripts.REPLACE)
        self.clock_script = self.client.register_script(scripts.CLOCK)
        self.retire_script = self.client.register_script(scripts.RETIRE)
        self.use_script = self.client.register_script(scripts.USE_SESSION)
        self.drop_script = self.client.register_script(scripts.DROP_SESSION)
        self.shed_script = self.client.register_script(scripts.SHED)
        self.clear_script = self.client.register_script(scripts.CLEAR)
        # the requests' own calls: one connection (a node), one write each
        clustered = self.cluster and not self._cluster_error
        self.line: Scripts = ClusterLine(self.client, self.breaker) if clustered else Line(self.client, self.breaker)
        # a generation's admission from the event loop: batched with the other requests' (one server)
        self.batch = BatchLine(single) if not self.cluster and batchable(single) else None

    @contextmanager
    def guard(self, *, checked: bool = False) -> Iterator[None]:
        """Turn a lost connection into :class:`StoreUnavailable`; log when it goes and comes back.
        A request served on a remembered read-ahead checks it first (``checked``: the call
        does so itself)."""
        if not checked:
            confirm()
        try:
            self.breaker.check()
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._lost(exc)
        if self._down:
            self._back()

    def _lost(self, exc: redis.ConnectionError | redis.TimeoutError) -> NoReturn:
        if isinstance(exc, redis.TimeoutError):
            self.breaker.trip(exc)
        with self._lock:
            first, self._down = not self._down, True
        if first:
            logger.error("sfmock: lost the store %s (%s): answering 503 until it is back", self.url, exc)
        raise StoreUnavailable(f"the shared store {self.url} cannot be reached: {exc}") from None

    def _back(self) -> None:
        with self._lock:
            back, self._down = self._down, False
        if back:
            logger.warning("sfmock: the store %s is back", self.url)

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the server answers."""
        with self.guard():
            self.client.ping()

    def snapshot(self, session: str | None) -> Served:
        """Serve a request on the clock, epoch and scenario it reads ahead: on one server,
        those the last request read, checked before anything counts (:mod:`sfmock.state.recheck`)."""
        known = None if self.cluster else self._known.get(session)
        if known is None or known.writes != writes():  # a cluster's slots keep them from admission's
            return Served(dict(self._read(session).taken), None)
        taken = dict(known.taken)  # this request's own: a write in it forgets a key
        return Served(taken, Check(known.keys, known.args, lambda: self._reread(session, taken, known)))

    def _read(self, session: str | None) -> Known:
        """Read the session's read-ahead from the store; remembered for the next request."""
        reads = self._reads.get(session)
        if reads is None:
            reads = self._reads[session] = _read_ahead_of(session, self.prefix(session))
        stamp = writes()
        with self.guard():
            replies = self.line.call(*reads)
        known = Known(reads, replies, stamp)
        if len(self._known) >= 1024:  # sessions come and go: keep a bounded few
            self._known.clear()
            self._reads.clear()
        self._known[session] = known
        return known

    def _reread(self, session: str | None, taken: dict[str, list[bytes | None]], served: Known) -> bool:
        """Read the read-ahead again into ``taken``; whether it held what the request was
        ``served`` on."""
        fresh = self._read(session)
        taken.clear()
        taken.update(fresh.taken)
        return served.args == fresh.args

    def cluster_problem(self) -> str | None:
        """Why this server cannot hold the store, or ``None``: a Redis Cluster some of whose
        slots no node serves cannot (refused at start rather than failing requests)."""
        if not self.cluster:
            return None
        expected = "expected a Redis Cluster, database 0, whose every slot is served (cluster_state:ok)"
        if self._cluster_error:
            return f"a Redis Cluster node that cannot hold the store ({self._cluster_error}); {expected}"
        state = self.client.cluster_info().get("cluster_state")  # at start, as the ping: nothing to log
        if state != "ok":
            return f"a Redis Cluster whose state is {state}; {expected}"
        return None

    def prefix(self, session: str | None) -> str:
        """What the session's own keys start with (one slot: :mod:`sfmock.state.redis_keys`)."""
        return prefix(session)

    def _clock_key(self, session: str | None) -> str:
        return CLOCK_KEY if session is None else redis_time.session_clock_key(self.prefix(session))

    def clock_stopped(self, clock_key: str = CLOCK_KEY) -> bool:
        """Whether this request's time stands still (as it read its clock ahead): the
        session's own clock while that is stopped, else the server's, which it follows."""
        key = redis_time.standing_clock_key(clock_key)
        fields = read_ahead(key)
        if fields is None:
            with self.guard():  # on the line: it reconnects as admission's own call would
                return bool(self.line.call(("HEXISTS", key, "stopped"))[0])
        return fields[1] is not None

    def book(self, session: str | None) -> RedisBook:
        idle = IDLE_TTL_MS if self.open_mode or session is not None else 0
        return RedisBook(self, base(session), idle, clock_key=self._clock_key(session))

    def log(self, session: str | None, codec: NumberedCodec[T], *, size: int, max_bytes: int) -> RedisLog[T]:
        log = RedisLog(self, self.prefix(session), codec, size, max_bytes, self._idle(session))
        log.field = "s:" + (session or "")
        return log

    def faults(self, session: str | None, initial: T, codec: Codec[T]) -> RedisFaults[T]:
        return RedisFaults(self, self.prefix(session), initial, codec, self._idle(session))

    def _idle(self, session: str | None) -> int:
        """How long (ms) a session's state is kept after its last use: for ever for the
        default session, a day for a named one (they are not counted and evicted, as in memory)."""
        return 0 if session is None else IDLE_TTL_MS

    def clock(self, local: Callable[[], Clock], *, frozen: bool) -> Clock:
        return RedisClock(self, frozen=frozen)

    def session_clock(self, session: str, server: Clock) -> redis_time.RedisSessionClock:
        key = redis_time.session_clock_key(self.prefix(session))
        return redis_time.RedisSessionClock(self, key, server, ttl_ms=IDLE_TTL_MS)

    def epoch(self, started: float, session: str | None = None) -> RedisEpoch:
        # a named session's under its prefix: swept with the session, dropped by a full reset
        return RedisEpoch(self, started, key=None if session is None else self.epoch_key(session))

    def epoch_key(self, session: str) -> str:
        return prefix(session) + "epoch"

    def delete(self, pattern: str) -> None:
        """Delete every key matching the glob ``pattern``."""
        forget_read_ahead(pattern)  # a reset: what requests remember of the clock and scenario may go
        with self.guard():
            batch: list[Any] = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    self.client.unlink(*batch)
                    batch.clear()
            if batch:
                self.client.unlink(*batch)

    def forget_sessions(self) -> None:
        self.delete(f"{NAMESPACE}:[A-Za-z0-9]*")  # session names start with a letter or digit
        with self.guard():
            self.client.unlink(SESSIONS_KEY, SESSIONS_SEQ_KEY, BUDGET_KEY)

    def use_session(self, name: str, keep: int) -> list[str]:
        keys = [SESSIONS_KEY, SESSIONS_SEQ_KEY, BUDGET_KEY]  # one slot
        gone = [member.decode() for member in self.run(self.use_script, keys, [name, keep])]
        if gone:  # rare: only a new session beyond the cap pushes one out
            self.sweep()
        return gone

    def sweep(self) -> None:
        """Drop the keys of every named session the registry no longer holds: those pushed
        out, and any a request of theirs still in flight wrote after. Each session's keys go
        in one script that first checks the registry, so a session used again meanwhile stays."""
        held: dict[bytes, list[bytes]] = {}
        with self.guard():
            for key in self.client.scan_iter(match=f"{NAMESPACE}:[A-Za-z0-9]*", count=1000):
                held.setdefault(key[len(NAMESPACE) + 1 :].partition(b"|")[0], []).append(key)
            kept = set(cast(list[bytes], self.client.zrange(SESSIONS_KEY, 0, -1)))
        for name, keys in held.items():
            if name in kept:
                continue  # the script checks again: a session may be pushed out or used meanwhile
            for start in range(0, len(keys), 500):
                self._drop(name, keys[start : start + 500])

    def _drop(self, name: bytes, keys: list[bytes]) -> None:
        if not self.cluster:
            self.run(self.drop_script, [SESSIONS_KEY, BUDGET_KEY, *keys], [name])
            return
        # a cluster spreads a session's keys over slots: checked, then dropped (a use of the
        # session in between may lose what it just wrote, as after its eviction)
        with self.guard():
            if self.client.zscore(SESSIONS_KEY, name) is None:
                self.client.unlink(*keys)

    def run(self, script: Script, keys: Sequence[Any], args: Sequence[Any], *, checked: bool = False) -> Any:
        """One of the registered scripts, on the requests' connection (``checked``: a
        script that checks the request's read-ahead itself). :meth:`guard`'s work, without
        a context manager's (on every generation)."""
        if not checked:
            confirm()
        try:
            self.breaker.check()
            reply = self.line.script(script, keys, args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._lost(exc)
        if self._down:
            self._back()
        return reply

    async def run_soon(self, script: Script, keys: Sequence[Any], args: Sequence[Any], *, checked: bool = False) -> Any:
        """:meth:`run`, awaited on the event loop: sent with the calls other requests make
        meanwhile (:mod:`sfmock.state.redis_batch`); on the line where nothing batches."""
        if self.batch is None or asyncio._get_running_loop() is None:  # TLS, a cluster, or no asyncio loop
            return self.run(script, keys, args, checked=checked)
        if not checked:
            confirm()
        try:
            self.breaker.check()
            reply = await self.batch.script(script, keys, args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._lost(exc)
        if self._down:
            self._back()
        return reply

    def close(self) -> None:
        if self.batch is not None:
            self.batch.close()
        self.line.close()
        self.client.close()


class Served:
    """A request served on ``taken``, its read-ahead, and ``check``, what confirms it (or
    ``None``), for a ``with`` block (a class: no generator's frames, on every request)."""

    __slots__ = ("_ahead", "_check")

    def __init__(self, taken: dict[str, list[bytes | None]], check: Check | None) -> None:
        self._ahead = reading_ahead(taken)
        self._check = checking(check)

    def __enter__(self) -> None:
        self._ahead.__enter__()
        self._check.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._check.__exit__()
        self._ahead.__exit__()


class Known:
    """A session's read-ahead as a request read it: by key, and as the admission script
    checks it (:func:`~sfmock.state.scripts.checked`)."""

    __slots__ = ("args", "keys", "taken", "writes")

    def __init__(self, reads: list[Command], replies: list[Any], stamp: int) -> None:
        self.taken: dict[str, list[bytes | None]] = {read[1]: reply for read, reply in zip(reads, replies, strict=True)}
        self.keys = [Packed([read[1] for read in reads])]  # sent as they are, on every generation
        held = b"\0".join(b"\1" if value is None else value for reply in replies for value in reply)
        self.args = [Packed([len(reads), held, *(",".join(read[2:]) for read in reads)])]
        self.writes = stamp  # this process's writes to them before they were read


def _read_ahead_of(session: str | None, own: str) -> list[Command]:
    """What a request of ``session`` (whose keys start with ``own``) reads ahead."""
    reads: list[Command] = [
        ("HMGET", CLOCK_KEY, *CLOCK_FIELDS),
        ("HMGET", EPOCH_KEY, *EPOCH_FIELDS),
        ("HMGET", RedisFaults.key(own), "version"),
    ]
    if session is not None:  # a named session's own epoch and clock, beside its scenario (one slot)
        reads.append(("HMGET", own + "epoch", *EPOCH_FIELDS))
        reads.append(("HMGET", redis_time.session_clock_key(own), *CLOCK_FIELDS))
    return reads


def _is_cluster(client: redis.Redis) -> bool:
    """Whether ``client``'s server is a Redis Cluster node (``False`` when it cannot be asked:
    a store that is down at start is refused by ``serve`` before this matters)."""
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis.RedisError:
        return False
