"""The state interface: everything the fake remembers, behind one :class:`Store`.

A store hands out, per session (``None`` is the default session), a :class:`Book`
(rate-limit windows and balances, admitted atomically), a :class:`Log` (the journal's
entries, capped by count and bytes) and a :class:`Faults` slot (the active scenario
and its fault counters); a named session's clock; and the server's clock and
:class:`Epoch` (when the run began, and the models a scenario retired since). Everything here speaks plain values
(account ids, window names, amounts), so the service and chaos layers above call into
it and it imports nothing of theirs.

Two stores: :class:`~sfmock.state.memory.MemoryStore` (the default: one process) and
:class:`~sfmock.state.redis.RedisStore` (``--store redis://HOST:PORT/DB``: many
processes and hosts as one service). A store that cannot be reached raises
:class:`StoreUnavailable`; the server answers it with a 503.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

from sfmock.clock import Clock
from sfmock.state.rider import Rider

__all__ = [
    "MONEY_DIGITS",
    "MONEY_MAX",
    "Book",
    "Codec",
    "Epoch",
    "Faults",
    "Log",
    "NumberedCodec",
    "Store",
    "StoreUnavailable",
    "Verdict",
    "Window",
    "WindowUse",
    "money_problem",
]

T = TypeVar("T")

# Every store keeps money exactly: Redis as integer millionths in Lua's doubles, which hold
# integers exactly to 2**53 (about 9e15 millionths). Balances and prices up to a billion
# keep every sum the scripts make (two balances, a price times 4 images) below that.
MONEY_DIGITS = 6
MONEY_MAX = Decimal(1_000_000_000)


def money_problem(amount: Decimal) -> str | None:
    """Why ``amount`` cannot be a balance or a price (in any store), or ``None``."""
    if not amount.is_finite() or amount < 0 or amount > MONEY_MAX:
        return f"{amount}: expected an amount from 0 to {MONEY_MAX:,}"
    if amount != round(amount, MONEY_DIGITS):
        return f"{amount}: expected at most {MONEY_DIGITS} decimals"
    return None


class StoreUnavailable(Exception):
    """The shared store cannot be reached (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Window:
    """One sliding window a request counts against: ``limit`` units in any ``span`` seconds."""

    name: str  # unique per account, e.g. "Kwai-Kolors/Kolors|ipm"
    span: int
    limit: int
    amount: int  # what this request adds


@dataclass(frozen=True, slots=True)
class WindowUse:
    """What a window holds now, and the time of its newest entry (``None``: empty)."""

    used: float
    newest: float | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :meth:`Book.admit`: ``admitted``, ``limited`` (window ``index`` is
    full; ``retry_after`` seconds, ``inf`` when the request alone is over it) or ``short``
    (the balance is too low). ``windows``: each window's use after the decision, when the
    store learns it anyway (Redis); empty otherwise (ask :meth:`Book.usage`)."""

    outcome: str
    windows: tuple[WindowUse, ...] = ()
    index: int = -1
    retry_after: float = 0.0


class Book(Protocol):
    """Rate-limit windows and balances of one session's accounts."""

    shared: bool  # True when other processes see the same book

    def admit(
        self, account: str, opening: tuple[Decimal, Decimal], windows: Sequence[Window], cost: Decimal, now: float
    ) -> Verdict:
        """Check every window then the balance; if all pass, charge ``cost`` (gift balance
        first) and count the request in every window: all in one atomic step."""
        ...

    def usage(self, account: str, windows: Sequence[Window], now: float) -> tuple[WindowUse, ...]:
        """What each window holds now (nothing is counted)."""
        ...

    def balances(self, account: str, opening: tuple[Decimal, Decimal]) -> tuple[Decimal, Decimal]:
        """(gift, charged) balances now; ``opening`` until the account is first charged."""
        ...

    def names(self, account: str) -> list[str]:
        """The window names the account has used since the last reset."""
        ...

    def forget(self, account: str) -> None:
        """Drop one account's usage and balances."""
        ...

    def reset(self) -> None:
        """Forget all usage; every balance back to its opening value."""
        ...


class Codec(Protocol[T]):
    """How a store that keeps bytes writes and reads items of type ``T``."""

    def encode(self, item: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


class NumberedCodec(Protocol[T]):
    """How a store that keeps bytes writes a log's items without their ids, and reads them
    back with the ids it gave them. One may also have ``encode_built(build)``: the item
    ``build`` makes, encoded without making it (the journal's)."""

    def encode(self, item: T) -> bytes: ...

    def decode(self, data: bytes, item_id: int) -> T: ...


class Log(Protocol[T]):
    """An append-only list of items with increasing ids, capped by count and bytes;
    what either cap pushes out (oldest first) is counted in :attr:`dropped`."""

    def append(self, build: Callable[[int], T], size: int) -> int:
        """Add ``build(id)`` (``size``: the bytes it counts against the cap); returns its id.
        A store may call ``build`` later, when the item is first read."""
        ...

    @property
    def ahead(self) -> bool:
        """Whether :meth:`rider` makes one (a store that saves a call by it)."""
        ...

    def rider(self, build: Callable[[int], T], size: int, response: bytes) -> Rider | None:
        """The append of ``build``'s item, made ahead for the request's admission to write
        in the same call (:mod:`sfmock.state.rider`); ``None`` where it cannot."""
        ...

    def items(self) -> list[T]:
        """Every item held, oldest first."""
        ...

    def oldest_id(self) -> int:
        """The id of the oldest item held (the next id when empty)."""
        ...

    def count(self) -> int: ...

    def held_bytes(self) -> int: ...

    def dropped(self) -> int: ...

    def clear(self) -> None: ...


class Faults(Protocol[T]):
    """The active scenario of a session and its fault counters (matches and firings per rule)."""

    def current(self) -> tuple[int, T]:
        """(version, scenario): the version changes with every :meth:`replace`."""
        ...

    def replace(self, scenario: T) -> None:
        """Install ``scenario``; every counter starts over."""
        ...

    def hit(
        self, version: int, index: int, nth: frozenset[int] | None, times: int | None, chance: Callable[[], bool]
    ) -> tuple[int, bool]:
        """Count a match of rule ``index``: (its number n, whether it fires). It fires when
        n is in ``nth`` (if given), it has fired fewer than ``times`` (if given) and
        ``chance()`` says so; a firing is counted. A stale ``version`` fires nothing."""
        ...


class Epoch(Protocol):
    """When the server's run began (what ``after`` times count from) and the models a
    scenario retired since: one for all the processes of a shared store."""

    def read(self) -> tuple[float, Mapping[str, float]]:
        """(start, {model: retired from}); the same object until either changes."""
        ...

    def retire(self, model: str, since: float) -> None:
        """Retire ``model`` from ``since`` on (an earlier retirement stands)."""
        ...

    def restart(self, started: float) -> None:
        """Begin again at ``started``, with no model retired (a full reset)."""
        ...


class Store(Protocol):
    """Where the fake keeps its state; see the module docstring."""

    shared: bool
    url: str  # what it was opened with ("memory" for the default)

    def book(self, session: str | None) -> Book: ...

    def log(self, session: str | None, codec: NumberedCodec[T], *, size: int, max_bytes: int) -> Log[T]: ...

    def faults(self, session: str | None, initial: T, codec: Codec[T]) -> Faults[T]: ...

    def clock(self, local: Callable[[], Clock], *, frozen: bool) -> Clock:
        """The server's clock: ``local()`` in one process, one shared by all otherwise."""
        ...

    def session_clock(self, session: str, server: Clock) -> Clock:
        """The named ``session``'s clock: ``server``'s time plus the session's own moves
        (see :class:`~sfmock.clock.SessionClock`), kept with the session's state."""
        ...

    def epoch(self, started: float, session: str | None = None) -> Epoch:
        """The run's epoch, begun at ``started`` unless another process began it first; for
        a named ``session``, the epoch of the models that session retired (its own)."""
        ...

    def forget_sessions(self) -> None:
        """Drop every named session's state (a full reset)."""
        ...

    def use_session(self, name: str, keep: int) -> list[str]:
        """Note a use of the named session ``name``; of the named sessions, only the ``keep``
        most recently used stay: the others' state is dropped, and their names returned.
        In memory there is nothing to do (the sessions' objects hold their state)."""
        ...

    def snapshot(self, session: str | None) -> AbstractContextManager[None]:
        """Read what a request reads of the shared state (the clock, the epoch, the
        session's scenario) at once, and answer those reads from it until the block ends:
        one round trip where there would be four. In memory there is nothing to read ahead."""
        ...

    def close(self) -> None: ...
