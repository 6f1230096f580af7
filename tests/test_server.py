"""The listening socket and the server thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

import sfmock.server
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


def _held_app(entered: threading.Event, release: threading.Event) -> ASGIApp:
    """An app whose every answer waits for ``release`` (``entered`` says a request arrived)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"done"})

    return app


def test_a_stop_does_not_wait_for_the_next_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn looks at should_exit once a tick (0.1 s): every fake a test stopped waited
    # for it; with a tick of an hour, only a stop that wakes the loop ends the server
    monkeypatch.setattr(sfmock.server, "_TICK", 3600.0)
    sock = listen("127.0.0.1", 0)
    thread = ServerThread(create_app(), sock)
    thread.start()
    thread.stop()
    assert not thread.thread.is_alive()


def test_a_stop_lets_the_answer_in_flight_finish() -> None:
    entered, release = threading.Event(), threading.Event()
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = ServerThread(_held_app(entered, release), sock)
    thread.start()
    answers: list[httpx.Response] = []
    client = threading.Thread(target=lambda: answers.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=30)))
    client.start()
    assert entered.wait(30)
    stopping = threading.Thread(target=thread.stop)
    stopping.start()
    while not thread.server.should_exit:  # the shutdown has begun with the request in flight
        time.sleep(0.001)
    release.set()
    stopping.join(30)
    client.join(30)
    assert not thread.thread.is_alive()
    assert [(answer.status_code, answer.text) for answer in answers] == [(200, "done")]


def test_a_stop_cancels_an_answer_that_outlasts_the_graceful_timeout() -> None:
    entered, never = threading.Event(), threading.Event()
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = ServerThread(_held_app(entered, never), sock)
    thread.start()
    answers: list[httpx.Response] = []
    client = threading.Thread(target=lambda: answers.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=30)))
    client.start()
    assert entered.wait(30)
    thread.stop()  # the graceful timeout here is 1 s: then the answer is cancelled
    client.join(30)
    assert not thread.thread.is_alive()
    # uvicorn answers a cancelled request that had not started its answer with a bare 500
    assert [(answer.status_code, answer.text) for answer in answers] == [(500, "Internal Server Error")]
