"""8,000 generations with 1 MB data-URL bodies, over real sockets: the server's memory stays bounded.

The fake runs in its own process on its defaults (open mode, the journal's default
bounds). Eight keep-alive connections send image-edit requests whose ``image`` is a
1 MB data URL, every one different (a few characters in the middle of the picture's
data change, so nothing can be answered from a cache). The server's resident memory is
read from ``/proc`` as the load goes: it must stay under the README's documented bound
(Limits: "a load of 1 MB request bodies"), and every request must be answered 200.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

REQUESTS = 8_000
CONNECTIONS = 8
SAMPLE_EVERY = 200  # requests between two readings of the resident memory
DATA_URL_BYTES = 1_000_000
RSS_BOUND = 128 * 2**20  # bytes, the README's Limits table: the process's peak resident memory
# after the first tenth, the resident set may grow at most this much more: room for the freed
# heap the server keeps (up to 64 MiB, sfmock/heap.py), whose high-water mark can rise late on
# a starved machine; a request that left its body, or a 64 KiB part of it, behind would pass
# it within 300 requests (leaks of small state per request: tests/hostile/test_hostile_soak.py)
GROWTH_BOUND = 16 * 2**20
MARK = b"QUJDRE"  # base64 characters in the image data that each request changes

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc")


def _data_url() -> str:
    """A PNG of random pixels whose data URL is about 1 MB, with :data:`MARK` in its middle."""
    side = int((DATA_URL_BYTES * 3 / 4 / 3) ** 0.5)
    picture = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=0)
    encoded = bytearray(base64.b64encode(out.getvalue()))
    middle = len(encoded) // 2 // 4 * 4  # inside the pixel data: the header stays intact
    encoded[middle : middle + len(MARK)] = MARK
    return "data:image/png;base64," + encoded.decode()


def _rss(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match[1]) * 1024


@pytest.fixture
def server() -> Iterator[tuple[int, int]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--log-level", "warning"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", process.stderr.readline())
        assert match
        yield process.pid, int(match[1])
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
        if process.stderr:
            process.stderr.close()


async def _post_all(port: int, template: bytes, at: int, pid: int) -> tuple[list[str], list[int]]:
    problems: list[str] = []
    samples: list[int] = []
    jobs = iter(range(REQUESTS))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = bytearray(template)
        try:
            for job in jobs:
                request[at : at + len(MARK)] = base64.b64encode(job.to_bytes(4, "big") + b"\0\0")[: len(MARK)]
                writer.write(request)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as closed:
                    # the server may close a keep-alive connection that was idle past its timeout
                    # (5 s: a starved client on a busy machine) before it reads the next request; a
                    # client then sends that request again on a new connection, as HTTP clients do
                    if closed.partial:
                        raise
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                assert length, head
                body = await reader.readexactly(int(length[1]))
                if not head.startswith(b"HTTP/1.1 200"):
                    problems.append(f"request {job}: {head.splitlines()[0]!r} {body[:120]!r}")
                if job % SAMPLE_EVERY == 0:
                    samples.append(_rss(pid, "VmRSS"))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return problems, samples


def test_a_load_of_1_mb_data_url_bodies_keeps_memory_bounded(server: tuple[int, int]) -> None:
    pid, port = server
    url = _data_url()
    body = json.dumps({"model": "Qwen/Qwen-Image-Edit", "prompt": "make it dusk", "image": url}).encode()
    head = (
        f"POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer sk-load-big-bodies\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    template = head + body
    at = template.index(MARK)
    started = _rss(pid, "VmRSS")

    problems, samples = asyncio.run(_post_all(port, template, at, pid))

    peak = _rss(pid, "VmHWM")
    settled = max(samples[: len(samples) // 10])
    print(
        f"\n{REQUESTS} requests of {len(body) / 1e6:.2f} MB: resident {started / 2**20:.0f} MiB at start, "
        f"{settled / 2**20:.0f} MiB after the first tenth, {samples[-1] / 2**20:.0f} MiB at the end, "
        f"peak {peak / 2**20:.0f} MiB"
    )
    assert problems == []
    assert len(samples) == REQUESTS // SAMPLE_EVERY
    assert peak < RSS_BOUND
    assert max(samples) - settled < GROWTH_BOUND, "memory kept growing under a steady load"


FAULTS_BOUND = 200  # a request, after a warm-up; glibc's defaults made about 900 (1 MB is 256 pages)


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="sfmock serve tunes glibc's allocator (sfmock/heap.py)")
def test_the_server_reuses_freed_memory_for_the_next_big_body(server: tuple[int, int]) -> None:
    pid, port = server
    body = {"model": "Qwen/Qwen-Image-Edit", "prompt": "make it dusk", "image": _data_url()}
    auth = {"Authorization": "Bearer sk-load-big-bodies"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        statuses = [client.post("/v1/images/generations", json=body, headers=auth).status_code for _ in range(10)]
        before = _minor_faults(pid)
        statuses += [client.post("/v1/images/generations", json=body, headers=auth).status_code for _ in range(30)]
        faults = (_minor_faults(pid) - before) / 30
    assert set(statuses) == {200}, statuses
    assert faults < FAULTS_BOUND, f"{faults:.0f} page faults a request: freed memory went back to the kernel"
