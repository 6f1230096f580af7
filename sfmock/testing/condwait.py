"""``threading.Condition.wait`` with its blocking step handed to the virtual clock
(:meth:`sfmock.testing.vtime.VirtualTime.wait`), which every ``Event``, ``Queue``,
``Semaphore`` and ``Future`` of a client waits through during a check."""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

__all__ = ["condition_wait"]


def condition_wait(condition: Any, timeout: float | None, wait: Callable[..., bool]) -> bool:
    """``threading.Condition.wait`` (CPython's, line for line) with its blocking step made by
    ``wait``: one waiter lock for the whole wait, so a notify that comes while ``wait`` looks
    around between its slices of real time is kept, not lost."""
    if not condition._is_owned():
        raise RuntimeError("cannot wait on un-acquired lock")
    waiter = _thread.allocate_lock()
    waiter.acquire()
    condition._waiters.append(waiter)
    saved_state = condition._release_save()
    got = False
    try:
        got = wait(
            lambda seconds: waiter.acquire(True, -1 if seconds is None else seconds),
            timeout,
            lambda: not waiter.locked(),  # released by a notify, and not yet taken by the waiting thread
        )
        return got
    finally:
        condition._acquire_restore(saved_state)
        if not got:
            try:
                condition._waiters.remove(waiter)
            except ValueError:
                pass
