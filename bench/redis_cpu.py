"""CPU per generation on the Redis store: the worker's and redis-server's, against a memory
worker's, measured in-process (no socket, no load generator): steady on a busy machine.

    python bench/redis_cpu.py [ROUNDS]     # or as rows of bench/run.py

The worker's CPU is this process's (``time.process_time``) over 500 generations through
the whole app; redis-server's is the growth of its ``used_cpu_user + used_cpu_sys``
(``INFO cpu``) over the same generations. Each figure is the median of ``ROUNDS``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stacks import redis_cluster, redis_server  # noqa: E402

BODY = json.dumps({"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42}).encode()
HEADERS = [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer sk-bench-0123456789")]
BATCH = 500
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


def measure(store: str, rounds: int, nodes: list[str] | None = None) -> tuple[float, float]:
    """(worker µs, redis-server µs: all ``nodes`` of a cluster) per generation, medians of
    ``rounds`` batches."""
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

    async def run() -> tuple[list[float], list[float]]:
        for _ in range(300):
            await one()
        worker, server = [], []
        for _ in range(rounds):
            began, served = time.process_time(), _server_cpu(clients)
            for _ in range(BATCH):
                await one()
            worker.append((time.process_time() - began) / BATCH)
            server.append((_server_cpu(clients) - served) / BATCH)
        return worker, server

    worker, server = asyncio.run(run())
    for client in clients:
        client.close()
    return median(worker) * 1e6, median(server) * 1e6


def bench_redis_cpu(row: Row, rounds: int) -> None:
    memory, _ = measure("memory", rounds)
    with redis_server() as url:
        worker, server = measure(url, rounds)
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


if __name__ == "__main__":
    bench_redis_cpu(lambda *cells: print(" | ".join(cells)), int(sys.argv[1]) if len(sys.argv) > 1 else 9)
