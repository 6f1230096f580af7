"""The default store: everything in this process's memory (nothing to install or start)."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sfmock.clock import Clock, SessionClock
from sfmock.state.store import Codec, NumberedCodec, Verdict, Window, WindowUse
from sfmock.state.tally import Tally
from sfmock.state.windows import Windows

__all__ = ["Balances", "MemoryBook", "MemoryEpoch", "MemoryFaults", "MemoryLog", "MemoryStore"]

T = TypeVar("T")
_ZERO = Decimal(0)


class Balances:
    """(gift, charged) balances per account id; charges are all-or-nothing, never below zero."""

    def __init__(self) -> None:
        self._balances: dict[str, list[Decimal]] = {}
        self._lock = threading.Lock()

    def _entry(self, account: str, opening: tuple[Decimal, Decimal]) -> list[Decimal]:
        entry = self._balances.get(account)
        if entry is None:
            entry = self._balances[account] = list(opening)
        return entry

    def get(self, account: str, opening: tuple[Decimal, Decimal]) -> tuple[Decimal, Decimal]:
        with self._lock:
            gift, charged = self._entry(account, opening)
            return gift, charged

    def charge(self, account: str, opening: tuple[Decimal, Decimal], cost: Decimal) -> bool:
        """Take ``cost``, gift balance first; ``False`` (and nothing taken) if it is short.

        An empty account pays for nothing, not even a model priced at zero (as seen live).
        """
        with self._lock:
            entry = self._balances.get(account)
            if entry is None:
                entry = self._balances[account] = list(opening)
            gift = entry[0]
            if gift >= cost and gift > _ZERO:  # the gift balance pays it all (the usual charge: two Decimal steps)
                entry[0] = gift - cost
                return True
            total = gift + entry[1]
            if total <= 0 or total < cost:
                return False
            from_gift = min(entry[0], cost)
            entry[0] -= from_gift
            entry[1] -= cost - from_gift
            return True

    def accounts(self) -> list[str]:
        """Ids of the accounts looked at since the last reset, first seen first."""
        with self._lock:
            return list(self._balances)

    def forget(self, account: str) -> None:
        with self._lock:
            self._balances.pop(account, None)

    def reset(self) -> None:
        with self._lock:
            self._balances.clear()


class MemoryBook:
    """Windows and balances in memory; one lock makes admission atomic."""

    shared = False

    def __init__(self) -> None:
        self.windows = Windows()
        self.money = Balances()

    def admit(
        self, account: str, opening: tuple[Decimal, Decimal], windows: Sequence[Window], cost: Decimal, now: float
    ) -> Verdict:
        return self.windows.admit(account, windows, now, lambda: self.money.charge(account, opening, cost))

    def usage(self, account: str, windows: Sequence[Window], now: float) -> tuple[WindowUse, ...]:
        return self.windows.usage(account, windows, now)

    def balances(self, account: str, opening: tuple[Decimal, Decimal]) -> tuple[Decimal, Decimal]:
        return self.money.get(account, opening)

    def names(self, account: str) -> list[str]:
        return self.windows.names(account)

    def forget(self, account: str) -> None:
        with self.windows.lock:
            self.windows.forget(account)
            self.money.forget(account)

    def reset(self) -> None:
        with self.windows.lock:
            self.windows.reset()
            self.money.reset()


class MemoryLog(Generic[T]):
    """The last ``size`` items, at most ``max_bytes`` of them, oldest first; thread-safe.

    An item is built when it is first read, not when it is added: adding one (on every
    request, for the journal) keeps only what builds it.

    With a ``tally``, the bytes are counted in the server's total too (see
    :mod:`sfmock.state.tally`): past it, other sessions go first, then this log's oldest."""

    def __init__(self, size: int, max_bytes: int, *, tally: Tally | None = None, owner: str | None = None) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._tally = tally
        self._owner = owner
        # [id, bytes, what builds the item (None once built), the item once built]: a list
        # made in C, not an object made through a Python __init__ (one per request)
        self._items: deque[list[Any]] = deque()
        self._lock = threading.Lock()
        self._next_id = 1
        self._first_id = 1
        self._bytes = 0
        self._dropped = 0

    def append(self, build: Callable[[int], T], size: int) -> int:
        with self._lock:
            item_id = self._next_id
            self._next_id = item_id + 1
            items = self._items
            items.append([item_id, size, build, None])
            held = self._bytes = self._bytes + size
            freed = 0
            if len(items) > self.size:  # a full log: its oldest goes (the usual case), no call for it
                freed = items.popleft()[1]
                self._bytes = held - freed
                self._first_id += 1
                self._dropped += 1
            while len(items) > self.size or (self._bytes > self.max_bytes and len(items) > 1):
                freed += self._drop_oldest()
            tally = self._tally
        # a full log's new entry often frees as much as it takes: nothing to count then
        if tally is not None and size != freed and tally.add(size - freed, self._owner):
            with self._lock:  # no other session left to push out: this one's oldest go
                while self._tally is not None and self._tally.over() and len(self._items) > 1:
                    self._tally.add(-self._drop_oldest(), self._owner)
        return item_id

    ahead = False

    def rider(self, build: Callable[[int], T], size: int, response: bytes) -> None:
        """None: an append in memory costs no call to save."""
        return None

    def _drop_oldest(self) -> int:
        size: int = self._items.popleft()[1]
        self._bytes -= size
        self._first_id += 1
        self._dropped += 1
        return size

    def items(self) -> list[T]:
        with self._lock:
            return [_built(held) for held in self._items]

    def oldest_id(self) -> int:
        with self._lock:
            return self._next_id - len(self._items)

    def count(self) -> int:
        return len(self._items)

    def held_bytes(self) -> int:
        return self._bytes

    def dropped(self) -> int:
        return self._dropped

    def clear(self) -> None:
        with self._lock:
            if self._tally is not None:
                self._tally.add(-self._bytes, self._owner)
            self._items.clear()
            self._bytes = 0
            self._dropped = 0

    def release(self) -> None:
        """Clear, and count nothing more in the tally: the session is gone (what a request
        still in flight adds goes with it)."""
        self.clear()
        with self._lock:
            self._tally = None


def _built(held: list[Any]) -> Any:
    """The item of one of a :class:`MemoryLog`'s entries, built when first read."""
    build = held[2]
    if build is not None:
        held[3], held[2] = build(held[0]), None
    return held[3]


class MemoryFaults(Generic[T]):
    """A scenario and its counters in memory (the caller serialises :meth:`hit`)."""

    def __init__(self, initial: T) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self.replace(initial)

    def current(self) -> tuple[int, T]:
        return self._version, self._scenario

    def replace(self, scenario: T) -> None:
        with self._lock:
            self._version += 1
            self._scenario = scenario
            self._matched: dict[int, int] = {}
            self._fired: dict[int, int] = {}

    def hit(
        self, version: int, index: int, nth: frozenset[int] | None, times: int | None, chance: Callable[[], bool]
    ) -> tuple[int, bool]:
        with self._lock:
            if version != self._version:
                return 0, False
            n = self._matched[index] = self._matched.get(index, 0) + 1
            if nth is not None and n not in nth:
                return n, False
            fired = self._fired.get(index, 0)
            if times is not None and fired >= times:
                return n, False
            if not chance():
                return n, False
            self._fired[index] = fired + 1
            return n, True


class MemoryEpoch:
    """The run's start and the models a scenario retired, in this process."""

    def __init__(self, started: float) -> None:
        self._state: tuple[float, Mapping[str, float]] = (started, {})
        self._lock = threading.Lock()

    def read(self) -> tuple[float, Mapping[str, float]]:
        return self._state

    def retire(self, model: str, since: float) -> None:
        with self._lock:
            started, retired = self._state
            self._state = (started, {**retired, model: min(retired.get(model, math.inf), since)})

    def restart(self, started: float) -> None:
        with self._lock:
            self._state = (started, {})


class MemoryStore:
    """The default store: this process's memory.

    ``journal_tally``: the journal bytes of every session together (set by the app)."""

    shared = False
    url = "memory"
    journal_tally: Tally | None = None

    def book(self, session: str | None) -> MemoryBook:
        return MemoryBook()

    def log(self, session: str | None, codec: NumberedCodec[T], *, size: int, max_bytes: int) -> MemoryLog[T]:
        return MemoryLog(size, max_bytes, tally=self.journal_tally, owner=session)

    def faults(self, session: str | None, initial: T, codec: Codec[T]) -> MemoryFaults[T]:
        return MemoryFaults(initial)

    def clock(self, local: Callable[[], Clock], *, frozen: bool) -> Clock:
        return local()

    def session_clock(self, session: str, server: Clock) -> SessionClock:
        return SessionClock(server)

    def epoch(self, started: float, session: str | None = None) -> MemoryEpoch:
        return MemoryEpoch(started)

    def forget_sessions(self) -> None:
        """Nothing to do: the sessions' objects go with them."""

    def use_session(self, name: str, keep: int) -> list[str]:
        return []

    def snapshot(self, session: str | None) -> AbstractContextManager[None]:
        return nullcontext()

    def close(self) -> None:
        """Nothing to release."""
