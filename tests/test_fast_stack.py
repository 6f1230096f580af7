"""sfmock serves on uvicorn's fast stack: httptools parses HTTP, uvloop runs the loop.

Both come with ``uvicorn[standard]``, one of sfmock's dependencies; the read timeout
that closes slow requests (see :mod:`sfmock.timeouts`) rides on the httptools protocol.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys

import httpx
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sfmock.server import ServerThread, listen, server_stack
from sfmock.timeouts import http_protocol


def test_the_read_timeout_protocol_is_httptools() -> None:
    protocol = http_protocol(3.0)
    assert issubclass(protocol, HttpToolsProtocol)
    assert protocol.read_timeout == 3.0  # type: ignore[attr-defined]


async def where(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the modules of the running loop and of the protocol serving the request."""
    loop = type(asyncio.get_running_loop()).__module__
    protocol = type(getattr(send, "__self__", None)).__module__
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": f"{loop} {protocol}".encode()})


def test_a_server_runs_on_httptools_and_uvloop() -> None:
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = ServerThread(where, sock, read_timeout=5)
    assert server_stack(thread.server.config) == ("httptools", "uvloop")
    with thread.running():
        loop, protocol = httpx.get(f"http://127.0.0.1:{port}/").text.split()
    assert loop.startswith("uvloop")
    assert protocol == "uvicorn.protocols.http.httptools_impl"


def test_serve_says_which_stack_it_runs_on() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--log-level", "warning"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        lines = [process.stderr.readline() for _ in range(4)]
        assert "API at" in lines[0], lines
        stack = next((line for line in lines if "serving with" in line), "")
        assert re.search(r"serving with httptools and uvloop", stack), lines
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        if process.stderr:
            process.stderr.close()
