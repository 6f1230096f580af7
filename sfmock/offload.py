"""Bounded worker pools for work whose cost a client controls (rendering a large image,
looking for the closest recording): it runs off the event loop, so every other request
is served meanwhile, on a few threads, so many such requests queue instead of taking the
machine. Pillow and zlib let go of the GIL while they work; difflib does not, but a
thread holding it yields every few milliseconds (``sys.getswitchinterval``), so the loop
still turns. One pool per kind of work: one kind never starves the other.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["RENDERING", "SEARCHING", "Pool"]

T = TypeVar("T")
INLINE = "sfmock_work_inline"  # an event loop's attribute: run the pools' work on the loop itself


class Pool:
    """A named pool of ``workers`` threads, made on first use (and again in a forked child)."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=f"sfmock-{self.name}")
                self._pid = os.getpid()
            return self._executor

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` on one of the pool's threads, awaited (inline on a loop that
        says :data:`INLINE`: a client check's virtual-time loop, whose clock would jump
        to its next timer while a thread works in real time; inline too under trio)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # in-process under trio: only a client check runs the app there
            return function(*args)
        if getattr(loop, INLINE, False):
            return function(*args)
        return await loop.run_in_executor(self.executor(), functools.partial(function, *args))


# two cores are what a CI runner has; more threads would only contend for the GIL
RENDERING = Pool("render", 2)
SEARCHING = Pool("search", 1)
