"""A real ``redis-server`` for the shared-store tests (tests/state/), started on a free port
in a temporary folder and stopped at the end. No fake Redis: the tests skip, saying why,
only when the binary is missing (CI installs it: see ``.ci/run``)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")
APPENDFSYNC = "always"


def _ephemeral() -> range:
    """The ports the kernel hands out for ``bind(0)`` and for every outgoing connection."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


_PICK = random.SystemRandom()  # not the global RNG, which a test may have seeded: each worker its own ports


def free_port() -> int:
    """A free port whose next one is free too (an sfmock server's image host takes its port + 1),
    below the ephemeral ports: a server started later (the README's examples run for a minute, a
    Redis restarts on its port) found a port picked with ``bind(0)`` taken by another test's
    outgoing connection on a busy suite."""
    ephemeral = _ephemeral()
    while True:
        with socket.socket() as sock, socket.socket() as images:
            try:
                if ephemeral.start > 10_002:
                    port = _PICK.randrange(10_000, ephemeral.start - 1)
                    sock.bind(("127.0.0.1", port))
                else:  # no room below them: one the kernel picks
                    sock.bind(("127.0.0.1", 0))
                    port = sock.getsockname()[1]
                images.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


class RedisServer:
    """One redis-server process: persistent (every write on disk before it is acknowledged),
    so it can be killed and started again with its data, as a restarted Redis is."""

    def __init__(self, folder: Path) -> None:
        assert REDIS_SERVER is not None
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            str(REDIS_SERVER),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", APPENDFSYNC,
            "--protected-mode", "yes",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(self.port, self.process)

    def kill(self) -> None:
        """SIGKILL: no goodbye, as when the host goes."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def flush(self) -> None:
        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()


def need_redis() -> None:
    """Skip the test, saying why, when redis-server is not installed."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; see docs/development.md)")


class RedisCluster:
    """A real three-node Redis Cluster (``--cluster-enabled yes``, slots assigned by
    ``redis-cli --cluster create``, no replicas), each node in a folder of its own."""

    def __init__(self, folder: Path, nodes: int = 3) -> None:
        assert REDIS_SERVER is not None
        self.folder = folder
        self.ports = [free_port() for _ in range(nodes)]
        self.bus_ports = [free_port() for _ in range(nodes)]  # not port + 10000: that may be past 65535
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"  # any node: the client learns the others
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            home = self.folder / str(port)
            home.mkdir(parents=True, exist_ok=True)
            command = [
                str(REDIS_SERVER),
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(home),
                "--save", "",
                "--appendonly", "no",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(home / "nodes.conf"),
                "--cluster-port", str(bus),
            ]  # fmt: skip
            self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port, process in zip(self.ports, self.processes, strict=True):
            _wait_for(port, process)
        cli = shutil.which("redis-cli")
        assert cli is not None, "redis-cli comes with redis-server"
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(create, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        deadline = time.monotonic() + 30
        for port in self.ports:  # every node must know every slot before the tests go
            client = redis.Redis(port=port)
            while client.cluster("info").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Redis Cluster on {nodes} did not reach cluster_state:ok")
                time.sleep(0.05)
            client.close()

    def flush(self) -> None:
        for port in self.ports:
            client = redis.Redis(port=port)
            client.flushall()
            client.close()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)
        self.processes.clear()


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the redis-server ``process`` started answers on ``port``."""
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {port}") from None
            time.sleep(0.02)
        finally:
            client.close()
