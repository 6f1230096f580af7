"""A journal entry written ahead, with the admission that decides it: one call to the
store a generation instead of two.

A generation's 200 depends on nothing the admission answers but whether it is admitted
(its rate-limit headers are not journaled), so its entry can be made before admission
asks the store, and written by the same script when it admits (a Redis server:
:data:`~sfmock.state.scripts.ADMIT_PUSH`). The entry is then in the store before the
answer leaves, as when it is appended at the end: a client that reads the journal of
any process right after its answer finds it there.

The journal offers a :class:`Rider` for the request being served (:func:`riding`); the
book takes it (:func:`offered`) when it charges, and notes the entry's id in it. A
rider the book did not take (a memory store, a Redis Cluster, a refusal) leaves
``entry_id`` at ``None``: the entry is appended as usual when the answer ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from sfmock.state.recheck import Scoped

__all__ = ["Rider", "offered", "riding"]


class Rider:
    """The journal append of one answer made ahead: the keys and arguments of the store's
    append, the answer's start it journals, and (once written) its id."""

    __slots__ = ("args", "entry_id", "keys", "log", "over", "response")

    def __init__(self, log: Any, keys: Sequence[Any], args: Sequence[Any], response: bytes) -> None:
        self.log = log  # the log it is written to (for the shed and a rewrite)
        self.keys = keys
        self.args = args
        self.response = response  # the start of the answer's body the entry holds
        self.entry_id: int | None = None
        self.over = False  # every session's journals together past their budget


_RIDER: ContextVar[Rider | None] = ContextVar("sfmock_rider", default=None)


def riding(rider: Rider | None) -> Scoped[Rider | None]:
    """Offer ``rider`` to the admission made within the block."""
    return Scoped(_RIDER, rider)


def offered() -> Rider | None:
    """The rider offered to this admission, if any."""
    return _RIDER.get()
