"""Read timeouts for uvicorn: a request must arrive whole within ``read_timeout`` seconds.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``, 5 s) but not a
request that arrives slowly: a client sending one header byte a second (slowloris), or
a body that never ends, holds its connection, and enough of them exhaust the server's
descriptors. :func:`http_protocol` gives uvicorn's httptools protocol (its h11 one where
httptools is not installed; ``uvicorn[standard]`` installs it) with one more timer:
armed when a connection opens or a request starts arriving, disarmed when the whole
request (headers and body) has been read; when it fires the connection is closed. The
app sees a disconnect, so a request cut short is journaled as abandoned, not served.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn without httptools
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

__all__ = ["DEFAULT_READ_TIMEOUT", "HttpToolsProtocol", "http_protocol", "uvicorn_config"]

DEFAULT_READ_TIMEOUT = 15.0
_READING = (h11.IDLE, h11.SEND_BODY)
logger = logging.getLogger("sfmock")


class _ReadTimer:
    """The timer both protocols share; each says when a request is still arriving."""

    read_timeout = DEFAULT_READ_TIMEOUT
    _read_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _still_reading(self) -> bool:
        raise NotImplementedError

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.read_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self._still_reading() and not self.transport.is_closing():
            logger.info("sfmock: closed a connection whose request did not arrive within %ss", self.read_timeout)
            self.transport.close()


class _TimedH11Protocol(_ReadTimer, H11Protocol):
    def _still_reading(self) -> bool:
        return self.conn.their_state in _READING

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing at all is slow too

    def data_received(self, data: bytes) -> None:
        if self._still_reading():
            self._arm()
        super().data_received(data)
        if not self._still_reading():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self._disarm()  # between requests the keep-alive timeout applies

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class _TimedHttpToolsProtocol(_ReadTimer, HttpToolsProtocol):
    _reading = True  # a request is arriving, or may start to: not yet read whole

    def _still_reading(self) -> bool:
        return self._reading

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing at all is slow too

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading:
            self._arm()
        else:
            self._disarm()  # between requests the keep-alive timeout applies

    def on_message_begin(self) -> None:
        self._reading = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._reading = False
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def http_protocol(read_timeout: float = DEFAULT_READ_TIMEOUT) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class (h11's without httptools), closing connections
    whose request is not read in time."""
    base: type[asyncio.Protocol] = _TimedHttpToolsProtocol if HttpToolsProtocol is not None else _TimedH11Protocol
    name = "ReadTimeout" + base.__name__.removeprefix("_Timed")
    return type(name, (base,), {"read_timeout": float(read_timeout)})


def uvicorn_config(
    app: Any, *, log_level: str, read_timeout: float = DEFAULT_READ_TIMEOUT, **options: Any
) -> uvicorn.Config:
    """uvicorn's config for sfmock: the protocol of :func:`http_protocol`, and uvicorn's
    access log only at a level that shows it (above ``info`` its arguments would still be
    formatted for every request, a sixth of a bare endpoint's time, and then dropped)."""
    access_log = log_level.lower() in ("trace", "debug", "info")
    return uvicorn.Config(app, log_level=log_level, access_log=access_log, http=http_protocol(read_timeout), **options)
