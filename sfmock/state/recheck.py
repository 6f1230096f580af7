"""A request served on what its process last read of the shared state, checked before it
writes anything or answers.

On a shared store (Redis) a request reads the clock, the epoch and its session's scenario
ahead (:meth:`~sfmock.state.redis_store.RedisStore.snapshot`). They change seldom (a
clock moved, a scenario replaced), so a process remembers what it read and serves the
next request on it without asking again. It is checked on the server before anything
counts: the admission's script compares it first, in its own call (a generation makes one
call); any other call, the first message of an answer and a journal entry check it
first (:func:`confirm`). Where it changed, :class:`Stale` is raised before anything was
written or sent, the request's read-ahead fresh: the pipeline serves the request again.
So a request still sees every change made before it arrived, from any process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any, Generic, NoReturn, TypeVar

__all__ = ["Check", "Scoped", "Stale", "checking", "confirm", "pending"]

T = TypeVar("T")


class Stale(BaseException):
    """The state a request was being served on had changed: serve it again (its
    read-ahead is fresh now). Not an :class:`Exception`: the handlers' failure answers
    must not turn it into a 500."""


class Check:
    """A request's read-ahead, remembered, not yet checked against the store: the keys it
    read and what they held (``keys`` and ``args`` for a script that checks it itself);
    ``read`` reads them afresh into the request's read-ahead, ``True`` when unchanged."""

    __slots__ = ("_read", "args", "done", "keys")

    def __init__(self, keys: Sequence[Any], args: Sequence[Any], read: Callable[[], bool]) -> None:
        self.keys = keys
        self.args = args
        self.done = False
        self._read = read

    def confirm(self) -> None:
        """Read it again now; :class:`Stale` where it changed."""
        if self.done:
            return
        self.done = True  # first: the read's own call checks nothing
        if not self._read():
            raise Stale()

    def refused(self) -> NoReturn:
        """A script found it changed (and did nothing): read it afresh, :class:`Stale`."""
        self.done = True
        self._read()
        raise Stale()


class Scoped(Generic[T]):
    """Sets ``var`` to ``value`` for a ``with`` block: a class, not a generator (the
    request's read-ahead, its check and its rider are set on every generation)."""

    __slots__ = ("_token", "_value", "_var")

    def __init__(self, var: ContextVar[T], value: T) -> None:
        self._var = var
        self._value = value

    def __enter__(self) -> None:
        self._token = self._var.set(self._value)

    def __exit__(self, *exc: object) -> None:
        self._var.reset(self._token)


_CHECK: ContextVar[Check | None] = ContextVar("sfmock_recheck", default=None)


def checking(check: Check | None) -> Scoped[Check | None]:
    """Serve the block on a remembered read-ahead that ``check`` confirms (``None``: one
    read for this request, nothing to check)."""
    return Scoped(_CHECK, check)


def pending() -> Check | None:
    """The request's read-ahead while it is unchecked."""
    check = _CHECK.get()
    return None if check is None or check.done else check


def confirm() -> None:
    """Check the request's read-ahead, if not yet: before an answer or a write that did
    not check it itself. Raises :class:`Stale` where it changed."""
    check = _CHECK.get()
    if check is not None and not check.done:
        check.confirm()
