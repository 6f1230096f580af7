"""Opening the store a setting names: ``memory`` (the default) or a Redis URL."""

from __future__ import annotations

from sfmock.state.memory import MemoryStore
from sfmock.state.store import Store

__all__ = ["open_store"]


def open_store(url: str, *, open_mode: bool = False) -> Store:
    """The store at ``url``: ``memory``, or ``redis://HOST:PORT/DB`` (``rediss://``,
    ``unix://PATH?db=N``). ``open_mode``: any token is an account (balances then expire
    from a shared store a day after their last use). Connects lazily."""
    if url == "memory":
        return MemoryStore()
    from sfmock.state.redis_store import RedisStore

    return RedisStore(url, open_mode=open_mode)
