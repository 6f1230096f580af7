"""The listening socket and the server thread."""

from __future__ import annotations

import socket

import httpx
import pytest

from sfmock import ConfigError, create_app
from sfmock.server import ServerThread, listen


def test_listen_is_tcp_with_nodelay() -> None:
    # asyncio turns TCP_NODELAY on for accepted sockets only when the protocol is
    # IPPROTO_TCP; without it every keep-alive answer waits for a delayed ACK
    with listen("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockname()[1] > 0


def test_listen_on_a_taken_port_names_it() -> None:
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on 127\.0\.0\.1:{port}"):
            listen("127.0.0.1", port)


def test_listen_on_an_unknown_host() -> None:
    with pytest.raises(ConfigError, match=r"cannot listen on no-such-host\.invalid"):
        listen("no-such-host.invalid", 0)


def test_server_thread_serves_and_stops() -> None:
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    with ServerThread(create_app(), sock).running():
        assert httpx.get(f"http://127.0.0.1:{port}/_sfmock/health").json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_sfmock/health")
