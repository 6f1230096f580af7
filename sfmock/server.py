"""Running the app under uvicorn: listening sockets, and a server in a background thread.

Sockets are opened here, not by uvicorn, so that port 0 works (the caller learns the
port before the app is built) and so that TCP_NODELAY is in force: asyncio sets it
only on sockets whose protocol is IPPROTO_TCP, and without it every keep-alive answer
waits 40 ms for a delayed ACK.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from .errors import ConfigError

__all__ = ["ServerThread", "listen"]


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one).

    Raises :class:`ConfigError` naming the address when it cannot listen there.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError("command line", "--host/--port", f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError("command line", "--host/--port", f"cannot listen on {host}:{port}: {exc}") from None
    return sock


class ServerThread:
    """uvicorn serving ``app`` on ``sock`` in a daemon thread, until :meth:`stop`."""

    def __init__(self, app: ASGIApp, sock: socket.socket, *, log_level: str = "warning") -> None:
        config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=1)
        self.sock = sock
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def start(self, timeout: float = 10) -> None:
        """Start and wait until the server accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Ask the server to exit and wait for it."""
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[ServerThread]:
        """``with ServerThread(app, sock).running():`` serves for the block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
