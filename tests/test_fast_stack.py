"""sfmock serves on uvicorn's fast stack: httptools parses HTTP, uvloop runs the loop.

Both come with ``uvicorn[standard]``, one of sfmock's dependencies; the read timeout
that closes slow requests (see :mod:`sfmock.protocol`) rides on the httptools protocol,
and so does the transport that sends a turn's writes (an answer's head and body) in one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conftest import AUTH, LiveServer, contract_hook
from sfmock.protocol import JoinedWrites, http_protocol
from sfmock.server import ServerThread, listen, server_stack


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


class Recording:
    """What a transport was asked to do, in order (the stand-in under JoinedWrites)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, chunks: object) -> None:
        self.calls.append(("writelines", [bytes(chunk) for chunk in chunks]))  # type: ignore[attr-defined]

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def joined(steps: list[tuple[str, bytes]]) -> list[tuple[str, object]]:
    """Run ``steps`` on a JoinedWrites over a Recording, a turn of the loop after each
    ``turn``; what reached the transport."""
    recording = Recording()

    async def run() -> None:
        transport = JoinedWrites(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
        for step, data in steps:
            if step == "turn":
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            elif step == "write":
                transport.write(data)
            else:
                getattr(transport, step)()
        await asyncio.sleep(0)

    asyncio.run(run())
    return recording.calls


def test_the_writes_of_one_turn_go_out_in_one_call_at_its_end() -> None:
    calls = joined([("write", b"HEAD"), ("write", b"BODY"), ("write", b"MORE")])
    assert calls == [("writelines", [b"HEAD", b"BODY", b"MORE"])]


def test_a_body_sent_in_a_later_turn_goes_out_on_its_own() -> None:
    calls = joined([("write", b"HEAD"), ("turn", b""), ("write", b"BODY"), ("turn", b"")])
    assert calls == [("writelines", [b"HEAD"]), ("writelines", [b"BODY"])]


def test_close_and_abort_send_what_was_held_first() -> None:
    assert joined([("write", b"HEAD"), ("close", b"")]) == [("writelines", [b"HEAD"]), ("close", None)]
    assert joined([("write", b"HEAD"), ("abort", b"")]) == [("writelines", [b"HEAD"]), ("abort", None)]


def test_the_rest_is_the_transports_own() -> None:
    recording, loop = Recording(), asyncio.new_event_loop()
    try:
        transport = JoinedWrites(recording, loop)  # type: ignore[arg-type]
        assert transport.get_extra_info("peername") == "info:peername"
        assert transport.is_closing() is False
    finally:
        loop.close()


async def head_then_wait(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts the answer, then sends its body only once the client has read the head."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for n in range(5):
            await send({"type": "http.response.body", "body": f"part {n};".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
    if scope["method"] == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return
    while not HEAD_READ.is_set():
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"done"})


HEAD_READ = threading.Event()


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_over_a_socket_a_waiting_body_does_not_hold_its_head_back() -> None:
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    HEAD_READ.clear()
    with ServerThread(head_then_wait, sock, read_timeout=5).running():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = read_until(client, b"\r\n\r\n")  # the app sends its body only after this
            assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 4" in head
            HEAD_READ.set()
            assert read_until(client, b"done").endswith(b"done")
            client.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")  # a head with no body at all
            assert read_until(client, b"\r\n\r\n").startswith(b"HTTP/1.1 200 OK")
            client.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            streamed = read_until(client, b"0\r\n\r\n")
            assert b"transfer-encoding: chunked" in streamed
            assert b"".join(f"7\r\npart {n};\r\n".encode() for n in range(5)) + b"0\r\n\r\n" in streamed
            assert client.recv(1) == b""  # Connection: close, after the answer went out whole


def read_answer(sock: socket.socket, buffered: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """One HTTP/1.1 answer with a content-length off ``sock``: status, headers, body and
    the bytes after it (the next answers)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    size = int(headers["content-length"])
    while len(rest) < size:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:size], rest[size:]


def pipelined(seeds: range) -> bytes:
    """Generation requests, one per seed, back to back in one stream (HTTP/1.1 pipelining)."""
    out = b""
    for seed in seeds:
        body = json.dumps({"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": seed}).encode()
        out += (
            f"POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    return out


def test_pipelined_requests_get_their_answers_whole_and_in_order_while_others_are_served(
    live_server: LiveServer,
) -> None:
    """An attacker's client sends 40 requests in one stream and reads nothing for a while:
    another client is served meanwhile, then all 40 answers arrive whole, in order, each
    within the contract."""
    port = int(live_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as greedy:
        greedy.sendall(pipelined(range(40)))
        with httpx.Client(timeout=10, event_hooks={"response": [contract_hook]}) as meanwhile:
            other = meanwhile.post(
                live_server.api_url + "/images/generations",
                json={"model": "Kwai-Kolors/Kolors", "prompt": "meanwhile"},
                headers=AUTH,
            )
        assert other.status_code == 200
        buffered = b""
        for seed in range(40):
            status, headers, body, buffered = read_answer(greedy, buffered)
            request = httpx.Request("POST", live_server.api_url + "/images/generations")
            contract_hook(httpx.Response(status, headers=headers, content=body, request=request))
            assert status == 200 and json.loads(body)["seed"] == seed
        assert buffered == b""
    assert len(live_server.journal) == 41


def test_a_request_asking_to_upgrade_is_read_whole_and_answered_in_http_1_1(live_server: LiveServer) -> None:
    """Java's HttpClient (HTTP/2 by default) and ``curl --http2`` send ``Upgrade: h2c`` on
    plain HTTP; uvicorn's httptools protocol then read no body, and a generation answered
    400 "empty body". Ignoring the upgrade (RFC 9110, 7.8) reads it as any request: with the
    head and body in one write, in two, and a keep-alive request after it."""
    body = json.dumps({"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 1}).encode()
    head = (
        "POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        f"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    port = int(live_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        for writes in ([head + body], [head, body]):
            for data in writes:
                client.sendall(data)
            status, headers, answer, rest = read_answer(client, b"")
            assert (status, rest) == (200, b""), answer
            assert json.loads(answer)["seed"] == 1 and "upgrade" not in headers
        client.sendall(pipelined(range(2, 3)))  # the connection goes on in HTTP/1.1
        status, _, answer, _ = read_answer(client, b"")
        assert status == 200 and json.loads(answer)["seed"] == 2


def test_curl_http2_over_plain_http_generates(live_server: LiveServer) -> None:
    """The same with a real client that asks for h2c: ``curl --http2``."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed: apt-get install curl (docs/development.md)")
    body = json.dumps({"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 3})
    run = subprocess.run(
        [curl, "-s", "--http2", f"{live_server.url}/v1/images/generations", "-d", body, "-w", "\n%{http_code}",
         "-H", f"Authorization: {AUTH['Authorization']}", "-H", "Content-Type: application/json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    answer, status = run.stdout.rsplit("\n", 1)
    assert status == "200" and json.loads(answer)["seed"] == 3, run.stdout
