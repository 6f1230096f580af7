"""uvicorn's HTTP protocol as sfmock serves it: read timeouts, and one write per answer.

**Read timeouts.** uvicorn times out idle keep-alive connections (``timeout_keep_alive``,
5 s) but not a request that arrives slowly: a client sending one header byte a second
(slowloris), or a body that never ends, holds its connection, and enough of them exhaust
the server's descriptors. :func:`http_protocol` gives uvicorn's httptools protocol (its
h11 one where httptools is not installed; ``uvicorn[standard]`` installs it) with one
more timer: armed when a connection opens or a request starts arriving, disarmed when the
whole request (headers and body) has been read; when it fires the connection is closed.
The app sees a disconnect, so a request cut short is journaled as abandoned, not served.

**One write per answer.** uvicorn writes an answer's head when the app starts it and its
body when the app sends it: two system calls, each running the receiving side's network
stack too on loopback, and each waking the client while the server still has other
answers of the same turn to compute. Here a connection's writes of one turn of the event
loop go out together at the end of it (``writelines``: one ``writev``, no copy), after
the turn's other work: on the generation request, a third more requests a second and a
lower p99 under load (bench/README.md); with one request at a time nothing waits.

**Upgrade ignored.** A client may ask to switch protocols (Java's ``HttpClient`` and
``curl --http2`` send ``Upgrade: h2c`` on plain HTTP); a server may ignore that and answer
in HTTP/1.1 (RFC 9110, 7.8), as the service's front does. uvicorn's httptools protocol
instead reads no body after such a head (the app sees an empty one). sfmock serves no
other protocol, so the ``Upgrade`` header of a request head is renamed before parsing
(``x-sfmock-ignored-upgrade``): the request is read, body and all, as any other.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sfmock.scrubbing import ScrubbedLog

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn without httptools
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

__all__ = ["DEFAULT_READ_TIMEOUT", "HttpToolsProtocol", "JoinedWrites", "http_protocol", "uvicorn_config"]

DEFAULT_READ_TIMEOUT = 15.0
_READING = (h11.IDLE, h11.SEND_BODY)
_UPGRADE = re.compile(rb"^upgrade:", re.IGNORECASE | re.MULTILINE)
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


class JoinedWrites:
    """A connection's transport whose writes of one turn of the event loop go out together
    at the end of that turn (one ``writev``); everything else is the transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data))  # uvicorn gives bytes (no copy); anything else may change

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        held = self._held
        if held:
            self._held = []
            if not self._transport.is_closing():
                self._transport.writelines(held)

    def is_closing(self) -> bool:
        # asked after every answer: through __getattr__ it would first fail a look-up here
        return self._transport.is_closing()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._flush()  # written is written: a transport sends at once what it can, then aborts
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(chunk) for chunk in self._held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _TimedH11Protocol(_ReadTimer, H11Protocol):
    def _still_reading(self) -> bool:
        return self.conn.their_state in _READING

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.transport = JoinedWrites(transport, self.loop)  # type: ignore[assignment]
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
    _between = True  # no request begun since the last one ended: data starts with a head

    def _still_reading(self) -> bool:
        return self._reading

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = JoinedWrites(transport, self.loop)  # type: ignore[assignment]
        self._arm()  # a connection that sends nothing at all is slow too

    def data_received(self, data: bytes) -> None:
        if self._between and data.find(b"pgrade:") >= 0:  # bytes' "in" tries an integer first
            data = _ignoring_upgrade(data)
        super().data_received(data)
        if self._reading:
            self._arm()
        else:
            self._disarm()  # between requests the keep-alive timeout applies

    def on_message_begin(self) -> None:
        self._reading = True
        self._between = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._reading = False
        self._between = True
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _ignoring_upgrade(data: bytes) -> bytes:
    """``data``, which starts with a request head, with that head's ``Upgrade`` header
    renamed (the module docstring says why); the body and what follows are left alone."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    return _UPGRADE.sub(b"x-sfmock-ignored-upgrade:", head) + (b"" if end < 0 else data[end:])


def http_protocol(read_timeout: float = DEFAULT_READ_TIMEOUT) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class (h11's without httptools), closing connections
    whose request is not read in time and writing each answer's head with its body."""
    base: type[asyncio.Protocol] = _TimedHttpToolsProtocol if HttpToolsProtocol is not None else _TimedH11Protocol
    name = "ReadTimeout" + base.__name__.removeprefix("_Timed")
    return type(name, (base,), {"read_timeout": float(read_timeout)})


def uvicorn_config(
    app: Any, *, log_level: str, read_timeout: float = DEFAULT_READ_TIMEOUT, **options: Any
) -> uvicorn.Config:
    """uvicorn's config for sfmock: the protocol of :func:`http_protocol`, and uvicorn's
    access log only at a level that shows it (above ``info`` its arguments would still be
    formatted for every request, a sixth of a bare endpoint's time, and then dropped),
    its lines scrubbed of credentials (:class:`~sfmock.scrubbing.ScrubbedLog`)."""
    access_log = log_level.lower() in ("trace", "debug", "info")
    protocol = http_protocol(read_timeout)
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, http=protocol, **options)
    logging.getLogger("uvicorn.access").addFilter(_SCRUBBED)  # once: a filter is added only if absent
    return config


_SCRUBBED = ScrubbedLog()
