"""The rows of bench/run.py that need more than sfmock: several workers, and WireMock.

``--workers 2`` is measured only where ``sfmock serve --help`` offers it; it needs a
shared store, so a ``redis-server`` on the PATH is started for the run on a free port (as
for one worker on Redis against one on memory under the same load).
WireMock runs from the jar ``npm install wiremock`` ships, installed into a cache
directory (``~/.cache/sfmock-bench`` or ``$SFMOCK_BENCH_CACHE``), never the repository;
it needs ``java`` and ``npm``. Each row says why when it is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median

import httpx
import redis

CACHE = Path(os.environ.get("SFMOCK_BENCH_CACHE", Path.home() / ".cache" / "sfmock-bench"))
Row = Callable[..., None]
Wrk = Callable[..., dict[str, float]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_help() -> str:
    done = subprocess.run([sys.executable, "-m", "sfmock", "serve", "--help"], capture_output=True, text=True)
    return done.stdout


@contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away ``redis-server`` on a free port: its URL."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def redis_cluster(nodes: int = 3) -> Iterator[list[str]]:
    """A throw-away Redis Cluster of ``nodes`` primaries: each node's URL (any serves as the store's)."""
    ports = [free_port() for _ in range(nodes)]
    with tempfile.TemporaryDirectory() as folder:
        procs = []
        for port in ports:
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            command += ["--cluster-enabled", "yes", "--cluster-port", str(free_port()), "--dir", folder]
            command += ["--cluster-config-file", f"nodes-{port}.conf"]
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            time.sleep(0.5)
            nodes_at = [f"127.0.0.1:{port}" for port in ports]
            create = ["redis-cli", "--cluster", "create", *nodes_at, "--cluster-replicas", "0", "--cluster-yes"]
            subprocess.run(create, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            for port in ports:
                while b"cluster_state:ok" not in subprocess.check_output(
                    ["redis-cli", "-p", str(port), "cluster", "info"]
                ):
                    time.sleep(0.05)
            yield [f"redis://127.0.0.1:{port}/0" for port in ports]
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def bench_workers(process: Callable[..., object], wrk: Wrk, row: Row, config: Path, script: Path, seconds: int) -> None:
    """One worker against two on the same shared store, 32 connections."""
    usage = serve_help()
    if "--workers" not in usage:
        row("workers", "skipped: this sfmock serve has no --workers", "-")
        return
    if "--store" in usage and shutil.which("redis-server") is None:
        row("workers", "skipped: --workers needs --store and redis-server is not installed", "-")
        return
    runs = {}
    with redis_server() as store:
        for workers in (1, 2):
            args = ["--port", "0", "--config", str(config), "--log-level", "warning", "--store", store]
            args += ["--workers", str(workers)] if workers > 1 else []
            with process("-m", "sfmock", "serve", *args, ready="API at") as (proc, line):  # type: ignore[attr-defined]
                url = re.search(r"(http://\S+)/v1", line).group(1)  # type: ignore[union-attr]
                httpx.post(f"{url}/_sfmock/reset")
                runs[workers] = wrk(f"{url}/v1/images/generations", 32, seconds, script, threads=2, pid=proc.pid)
    rates = {workers: run["rps"] for workers, run in runs.items()}
    ratio = f"{rates[2] / rates[1]:.2f}x"
    what = "requests/s, 2 workers vs 1, shared store, 32 conn. (target 1.6x)"
    row("workers", what, f"{rates[2]:.0f}", f"{rates[1]:.0f}", ratio)
    # a second worker gains only where a core had nothing to run: on a machine kept busy by
    # other work it takes its share from that work, and the ratio says little about sfmock
    row("workers", "worker CPU µs per request (2 workers / 1)", f"{runs[2]['cpu_us']:.0f}", f"{runs[1]['cpu_us']:.0f}")
    idle = f"{runs[2]['idle']:.0%}", f"{runs[1]['idle']:.0%}"
    row("workers", "machine CPU idle during the run (2 workers / 1)", *idle)


def bench_redis_load(
    process: Callable[..., object], wrk: Wrk, row: Row, config: Path, script: Path, seconds: int, rounds: int
) -> None:
    """One worker on memory against one on a throw-away redis-server, 32 connections, in
    turns (medians of ``rounds``): what a worker under load spends per generation, and
    what redis-server spends (``INFO cpu``)."""
    if "--store" not in serve_help() or shutil.which("redis-server") is None:
        row("redis", "skipped: no --store, or redis-server is not installed", "-")
        return
    runs: dict[str, list[dict[str, float]]] = {"memory": [], "redis": []}
    with redis_server() as store:
        watcher = redis.Redis.from_url(store)

        def server_cpu() -> float:
            held = watcher.info("cpu")
            return float(held["used_cpu_user"]) + float(held["used_cpu_sys"])

        for _ in range(rounds):
            for kind in runs:
                args = ["--port", "0", "--config", str(config), "--log-level", "warning"]
                args += ["--store", store] if kind == "redis" else []
                with process("-m", "sfmock", "serve", *args, ready="API at") as (proc, line):  # type: ignore[attr-defined]
                    url = re.search(r"(http://\S+)/v1", line).group(1)  # type: ignore[union-attr]
                    before = server_cpu()
                    run = wrk(f"{url}/v1/images/generations", 32, seconds, script, pid=proc.pid)
                    run["server_us"] = (server_cpu() - before) / max(1.0, run["rps"] * seconds) * 1e6
                    runs[kind].append(run)
        watcher.close()
    mid = {kind: {key: median(run[key] for run in each) for key in each[0]} for kind, each in runs.items()}
    memory, on_redis = mid["memory"], mid["redis"]
    what = "worker CPU µs per request, one worker, 32 conn. (Redis / memory; target 2x)"
    ratio = f"{on_redis['cpu_us'] / memory['cpu_us']:.2f}x"
    row("redis", what, f"{on_redis['cpu_us']:.0f}", f"{memory['cpu_us']:.0f}", ratio)
    row("redis", "redis-server CPU µs per request, that load (target 150)", f"{on_redis['server_us']:.0f}", "150")
    row("redis", "requests/s, one worker, 32 conn. (Redis / memory)", f"{on_redis['rps']:.0f}", f"{memory['rps']:.0f}")


def wiremock_jar() -> tuple[Path | None, str]:
    """The WireMock standalone jar (installed into the cache with npm if need be), or why not."""
    if shutil.which("java") is None:
        return None, "java is not installed"
    found = sorted(CACHE.glob("node_modules/wiremock/**/wiremock-standalone-*.jar"))
    if not found:
        if shutil.which("npm") is None:
            return None, "npm is not installed (to fetch the jar)"
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--silent", "wiremock"],
            capture_output=True,
            check=False,
        )
        found = sorted(CACHE.glob("node_modules/wiremock/**/wiremock-standalone-*.jar"))
    return (found[-1], "") if found else (None, "npm install wiremock gave no jar")


def bench_wiremock(wrk: Wrk, row: Row, body: bytes, script: Path, seconds: int, ours: float) -> None:
    """WireMock answering the same POST with a fixed body (one stub, no journal), 32 connections."""
    jar, why = wiremock_jar()
    if jar is None:
        row("wiremock", f"skipped: {why}", "-")
        return
    port = free_port()
    command = ["java", "-jar", str(jar), "--port", str(port), "--bind-address", "127.0.0.1"]
    command += ["--no-request-journal", "--disable-request-logging", "--disable-banner"]
    # WireMock makes its `mappings` and `__files` folders where it runs: in the cache, not the clone
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=CACHE)
    try:
        admin = f"http://127.0.0.1:{port}/__admin"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{admin}/mappings", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    row("wiremock", "skipped: WireMock did not start", "-")
                    return
                time.sleep(0.2)
        stub = {
            "request": {"method": "POST", "url": "/v1/images/generations"},
            "response": {
                "status": 200,
                "body": body.decode(),
                "headers": {"Content-Type": "application/json; charset=utf-8"},
            },
        }
        httpx.post(f"{admin}/mappings", content=json.dumps(stub)).raise_for_status()
        theirs = wrk(f"http://127.0.0.1:{port}/v1/images/generations", 32, seconds, script, warmup=10)  # the JIT
        row(
            "wiremock",
            "WireMock requests/s, fixed body, 32 connections",
            f"{ours:.0f}",
            f"{theirs['rps']:.0f}",
            f"{ours / theirs['rps']:.0%}",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
