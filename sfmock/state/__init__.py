"""Where the fake keeps what it remembers, behind one interface.

- :mod:`sfmock.state.store`: the interface (:class:`~sfmock.state.store.Store`, and per
  session a ``Book`` of windows and balances, a ``Log`` for the journal, a ``Faults``
  slot for the scenario and its counters), and ``StoreUnavailable``.
- :mod:`sfmock.state.memory`: the default store, this process's memory.
- :mod:`sfmock.state.redis_store` (with the Lua of :mod:`sfmock.state.scripts`): one
  Redis shared by every worker and host.
- :mod:`sfmock.state.windows`: sliding windows, the pure bookkeeping.
- :mod:`sfmock.state.open`: the store a ``store:`` setting names.
"""
