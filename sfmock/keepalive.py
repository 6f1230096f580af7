"""The keep-alive connections of an in-process ``httpx.AsyncClient``, each on its event loop.

httpx's own async transport keeps a finished request's connection for the next one to the
same origin, and that connection belongs to the event loop it was opened on. A client kept
between two ``asyncio.run`` calls therefore fails on a real network where an in-process call
(which keeps nothing) would pass: the next request through it either reuses the connection
(sent, then ``RuntimeError: Event loop is closed`` when it reads the answer) or, once the
connection has expired, fails closing it before it sends anything. :class:`KeptConnections`
models that pool, as httpcore 1.0's ``AsyncConnectionPool`` behaves: which connection a
request takes, when one expires or is surplus, and what each step raises on a foreign loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from sfmock.clock import Clock

__all__ = ["Connection", "KeptConnections", "running_loop"]

CLOSED = "Event loop is closed"  # asyncio's words when a closed loop is asked to do anything


@dataclass(eq=False)
class Connection:
    origin: tuple[str, str, int]
    loop: asyncio.AbstractEventLoop
    expires: float | None = None  # on the clock, once idle (None: in use, or kept for ever)
    idle: bool = False


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop the caller runs on (none under trio, whose runs are not modelled)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class KeptConnections:
    """One client's pool: its connections in the order it opened them."""

    def __init__(self, clock: Clock, limits: httpx.Limits | None = None) -> None:
        chosen = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self.clock = clock
        self.expiry = chosen.keepalive_expiry
        self.max_idle = chosen.max_keepalive_connections
        self.connections: list[Connection] = []

    def take(self, origin: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> Connection:
        """The connection a request goes out on: the first idle one to its origin, else a new
        one on ``loop``. Connections that expired are closed first: one on a closed loop
        raises there, before the request is sent."""
        self._tidy()
        for connection in self.connections:
            if connection.idle and connection.origin == origin:
                connection.idle, connection.expires = False, None
                return connection
        connection = Connection(origin, loop)
        self.connections.append(connection)
        return connection

    def check(self, connection: Connection, loop: asyncio.AbstractEventLoop) -> None:
        """Raise what httpcore raises reading an answer on a connection of another loop (the
        request went out: writing needs no loop). The connection is dropped."""
        if connection.loop is loop:
            return
        self.connections.remove(connection)
        if connection.loop.is_closed():
            raise RuntimeError(CLOSED)
        # anyio waits on an asyncio.Event made on the connection's loop; its own words
        raise RuntimeError(f"{asyncio.Event()!r} is bound to a different event loop")

    def give_back(self, connection: Connection, *, keep: bool) -> None:
        """A request's end: its connection kept idle for the next (``keep``: the answer came
        whole and neither side asked to close), else closed on the loop it runs on."""
        if connection not in self.connections:
            return
        if not keep:
            self.connections.remove(connection)
            return
        connection.idle = True
        connection.expires = None if self.expiry is None else self.clock.now() + self.expiry
        self._tidy()

    def close_all(self) -> None:
        """The client closed: every connection closes, and one on a closed loop raises."""
        closing, self.connections = self.connections, []
        if any(connection.loop.is_closed() for connection in closing):
            raise RuntimeError(CLOSED)

    def _tidy(self) -> None:
        """Close the connections that expired, then idle ones past the number kept (httpcore
        counts every connection there, busy ones too). The first on a closed loop raises."""
        closing: list[Connection] = []
        now = self.clock.now()
        for connection in list(self.connections):
            expired = connection.idle and connection.expires is not None and now > connection.expires
            surplus = self.max_idle is not None and connection.idle and len(self.connections) > self.max_idle
            if expired or surplus:
                self.connections.remove(connection)
                closing.append(connection)
        if any(connection.loop.is_closed() for connection in closing):
            raise RuntimeError(CLOSED)
