"""Opening the store a setting names: ``memory`` (the default) or a Redis URL."""

from __future__ import annotations

from sfmock.errors import ConfigError
from sfmock.state.memory import MemoryStore
from sfmock.state.store import Store
from sfmock.state.urls import EXPECTED, shown_url, store_url_problem

__all__ = ["open_store"]


def open_store(url: str, *, open_mode: bool = False) -> Store:
    """The store at ``url``: ``memory``, or ``redis://HOST:PORT/DB`` (``rediss://``,
    ``unix://PATH?db=N``). ``open_mode``: any token is an account (balances then expire
    from a shared store a day after their last use). Connects lazily.

    A malformed URL raises :class:`~sfmock.errors.ConfigError` naming ``Settings`` (a config
    file, flag or marker is checked first, and named: :mod:`sfmock.state.urls`)."""
    if url == "memory":
        return MemoryStore()
    problem = store_url_problem(url)
    if problem is not None:
        raise ConfigError("Settings", "store", f"{shown_url(url)}: {problem}; {EXPECTED}")
    from sfmock.state.redis_store import RedisStore

    return RedisStore(url, open_mode=open_mode)
