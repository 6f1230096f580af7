"""CPU per generation on the Redis store: the worker's and redis-server's, against a memory
worker's, measured in-process (no socket, no load generator): steady on a busy machine.

    python bench/redis_cpu.py [ROUNDS] [CONCURRENT]    # or as rows of bench/run.py

The worker's CPU is this process's (``time.process_time``) over 500 generations through
the whole app; redis-server's is the growth of its ``used_cpu_user + used_cpu_sys``
(``INFO cpu``) over the same generations. Each figure is the median of ``ROUNDS``. The
event loop is uvloop's where it is installed, as ``sfmock serve`` runs.

Two ways of driving them: one generation at a time (what a worker meets at one connection),
and ``CONCURRENT`` (32, as the load rows' connections) at once on the event loop, each
starting its next as soon as its last is answered (what a worker meets under load: while
one request waits on the store, the others run).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stacks import redis_cluster, redis_server  # noqa: E402

BODY = json.dumps({"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42}).encode()
HEADERS = [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer sk-bench-0123456789")]
T = TypeVar("T")
BATCH = 500
CONCURRENT = 32  # generations in flight at once in the concurrent rows (the load rows' connections)
Row = Callable[..., None]


def generation_scope() -> dict[str, Any]:
    """The ASGI scope of the benchmarks' generation request (a new ``state`` each time)."""
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/images/generations",
        "raw_path": b"",
        "root_path": "",
        "query_string": b"",
        "headers": HEADERS,
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": None,
        "state": {},
    }


def _server_cpu(clients: list[redis.Redis]) -> float:
    """The CPU every node of the store has spent (s)."""
    total = 0.0
    for client in clients:
        info: dict[str, Any] = client.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def measure(store: str, rounds: int, nodes: list[str] | None = None, concurrent: int = 1) -> tuple[float, float]:
    """(worker µs, redis-server µs: all ``nodes`` of a cluster) per generation, medians of
    ``rounds`` batches, ``concurrent`` generations in flight at once."""
    from sfmock import Settings, VirtualClock, create_app

    settings = Settings(seed=1, default_balance=Decimal("1000000000"), store=store, journal_size=1000)
    app = create_app(settings, clock=VirtualClock())
    clients = [redis.Redis.from_url(url) for url in (nodes or ([] if store == "memory" else [store]))]

    async def one() -> None:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            assert message.get("status", 200) == 200, message

        await app(generation_scope(), receive, send)

    each = BATCH // concurrent  # each of the ``concurrent`` runs this many, one after another

    async def some(count: int) -> None:
        for _ in range(count):
            await one()

    async def batch(count: int) -> None:
        if concurrent == 1:
            await some(count)
        else:
            await asyncio.gather(*(some(count // concurrent) for _ in range(concurrent)))

    async def run() -> tuple[list[float], list[float]]:
        await batch(300 if concurrent == 1 else 10 * concurrent)
        worker, server = [], []
        done = each * concurrent
        for _ in range(rounds):
            began, served = time.process_time(), _server_cpu(clients)
            await batch(done)
            worker.append((time.process_time() - began) / done)
            server.append((_server_cpu(clients) - served) / done)
        return worker, server

    worker, server = _loop_run(run())
    for client in clients:
        client.close()
    return median(worker) * 1e6, median(server) * 1e6


def _loop_run(main: Coroutine[Any, Any, T]) -> T:
    """``main`` run on uvloop where it is installed, as ``sfmock serve`` runs (asyncio's own loop without)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def bench_redis_cpu(row: Row, rounds: int, concurrent: int = CONCURRENT) -> None:
    memory, _ = measure("memory", rounds)
    many, _ = measure("memory", rounds, concurrent=concurrent)
    with redis_server() as url:
        worker, server = measure(url, rounds)
        worker_many, server_many = measure(url, rounds, concurrent=concurrent)
    with redis_cluster() as urls:
        on_cluster, cluster_server = measure(urls[0], rounds, urls)
    row("redis", "worker CPU per generation, memory store (µs)", f"{memory:.0f}")
    ratio = f"{worker / memory:.2f}x"
    row("redis", "worker CPU per generation, Redis store (µs, target 2x)", f"{worker:.0f}", f"{memory:.0f}", ratio)
    row("redis", "redis-server CPU per generation (µs, target 150)", f"{server:.0f}", "150")
    row(
        "redis",
        "worker CPU per generation, three-node Redis Cluster (µs; one node)",
        f"{on_cluster:.0f}",
        f"{worker:.0f}",
    )
    row(
        "redis",
        "redis-server CPU per generation, all three nodes (µs; one node)",
        f"{cluster_server:.0f}",
        f"{server:.0f}",
    )
    at_once = f"{concurrent} at once"
    row("redis", f"worker CPU per generation, memory store, {at_once} (µs)", f"{many:.0f}")
    ratio = f"{worker_many / many:.2f}x"
    what = f"worker CPU per generation, Redis store, {at_once} (µs, target 2x)"
    row("redis", what, f"{worker_many:.0f}", f"{many:.0f}", ratio)
    row("redis", f"redis-server CPU per generation, {at_once} (µs, target 150)", f"{server_many:.0f}", "150")


if __name__ == "__main__":
    arguments = [int(arg) for arg in sys.argv[1:3]]
    bench_redis_cpu(lambda *cells: print(" | ".join(cells)), *(arguments or [9]))
