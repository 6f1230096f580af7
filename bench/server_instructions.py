"""Instructions per generation of a whole server process: sfmock's against the bare endpoint's.

``python bench/server_instructions.py [ours] [bare]`` starts ``sfmock serve`` (with
``bench/run.py``'s configuration) and the bare Starlette endpoint (``bench/baseline_app.py``)
each under ``valgrind --tool=cachegrind``, sends 200 and then 1,200 sequential generations
over one keep-alive connection, and prints the difference over 1,000 for each: uvicorn,
httptools, uvloop and the app together, start-up and shutdown cancelled out. The ratio of
the two follows the ratio of their CPU per request under load (``bench/run.py``'s generate
row) and does not move with the machine's other work. Needs ``valgrind``.

Cryptography weighs more here than on the CPU: under valgrind OpenSSL takes its generic
code (a URL's HMAC counts about 20,000 instructions, under a microsecond on the CPU).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import AUTH, BODY  # noqa: E402

_URL = "http://127.0.0.1:9/temporary/outputs/" + "0" * 32 + "-1024x1024_0.png?" + "X-Amz-Signature=0" * 17
ANSWER = json.dumps(  # the bare endpoint's answer: a generation's 200 of sfmock's size and shape
    {"images": [{"url": _URL}], "data": [{"url": _URL}], "timings": {"inference": 1.0}, "seed": 42}
).encode()
CONFIG = "limits: {rpm: 1000000000, ipm: 1000000000, ipd: 1000000000}\nseed: 1\ndefault_balance: 1000000000\n"


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _drive(port: int, path: str, count: int) -> None:
    """``count`` generations one after another on one connection, each answered 200."""
    request, pending = _request(path, json.dumps(BODY).encode()), b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            sock.sendall(request)
            while True:
                end = pending.find(b"\r\n\r\n")
                if end >= 0:
                    length = re.search(rb"content-length: (\d+)", pending[:end], re.IGNORECASE)
                    size = end + 4 + int(length.group(1)) if length else -1
                    if 0 <= size <= len(pending):
                        assert pending.startswith(b"HTTP/1.1 200"), pending[:end]
                        pending = pending[size:]
                        break
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                pending += chunk


def counted(kind: str, count: int, workdir: Path) -> int:
    """Instructions valgrind counts for server ``kind`` (``ours`` or ``bare``) that answers
    ``count`` generations."""
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    if kind == "ours":
        (workdir / "bench.yaml").write_text(CONFIG)
        serve = ["-m", "sfmock", "serve", "--port", "0", "--config", str(workdir / "bench.yaml")]
        command, path, ready = [*serve, "--log-level", "warning"], "/v1/images/generations", "API at"
    else:
        (workdir / "body.json").write_bytes(ANSWER)
        command = [str(HERE / "baseline_app.py"), "0", str(workdir / "body.json")]
        path, ready = "/generate", "baseline on"
    server = subprocess.Popen([*valgrind, sys.executable, *command], stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    line = ""
    while ready not in line:
        line = server.stderr.readline()
        assert line, "the server did not start"
    found = re.search(r"http://[\d.]+:(\d+)", line) if kind == "ours" else re.search(r"on (\d+)", line)
    assert found is not None, line
    _drive(int(found.group(1)), path, count)
    server.send_signal(signal.SIGINT)
    errors = server.stderr.read()
    server.wait()
    total = re.search(r"I\s+refs:\s+([\d,]+)", errors)
    assert total is not None, errors[-2000:]
    return int(total.group(1).replace(",", ""))


def main() -> None:
    kinds = sys.argv[1:] or ["ours", "bare"]
    with tempfile.TemporaryDirectory() as folder:
        for kind in kinds:
            per = (counted(kind, 1200, Path(folder)) - counted(kind, 200, Path(folder))) // 1000
            print(f"{kind}: {per} instructions per generation", flush=True)


if __name__ == "__main__":
    main()
