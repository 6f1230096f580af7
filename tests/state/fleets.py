"""Real ``sfmock serve`` processes for the shared-store tests: one on memory, two sharing
a Redis, or one with ``--workers 2``; every response checked against the contract."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from conftest import contract_hook

CONFIG = """\
frozen_clock: true
seed: 3
prices: {"Kwai-Kolors/Kolors": "0.25"}
accounts:
  - {id: quota, keys: [sk-quota], balance: "1000.00", limits: {rpm: 7}}
  - {id: money, keys: [sk-money], balance: "2.00"}
  - {id: plain, keys: [sk-plain], balance: "1000.00"}
"""
GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
API_AT = re.compile(r"API at (http://127\.0\.0\.1:\d+)/v1")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Serve:
    """One ``sfmock serve`` process (and its workers), stopped with :meth:`stop`."""

    def __init__(self, config: Path, *extra: str) -> None:
        command = [sys.executable, "-m", "sfmock", "serve", "--config", str(config), "--port", "0"]
        command += ["--log-level", "warning", *extra]
        self.process = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_url()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line)

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            found = API_AT.search(line)
            if found:
                url = found.group(1)
                self._wait_until_serving(url, deadline)
                return url
        self.stop()
        raise RuntimeError("sfmock serve did not start:\n" + "".join(self.log))

    def _wait_until_serving(self, url: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/_sfmock/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{url} did not answer")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # any worker left behind
        except ProcessLookupError:
            pass
        self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()


class Fleet:
    """The processes of one test setup, and clients to every URL they answer on."""

    def __init__(self, serves: Sequence[Serve], urls: Sequence[str]) -> None:
        self.serves = list(serves)
        self.urls = list(urls)
        self.clients = [
            httpx.Client(base_url=url, timeout=30, event_hooks={"request": [], "response": [contract_hook]})
            for url in urls
        ]

    def client(self, n: int) -> httpx.Client:
        """The client of URL ``n`` (round robin)."""
        return self.clients[n % len(self.clients)]

    def at_once(self, count: int, call: Callable[[httpx.Client], httpx.Response]) -> list[int]:
        """``count`` calls, 16 at a time, spread over every URL; their statuses."""
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(lambda n: call(self.client(n)).status_code, range(count)))

    def control(self, n: int, method: str, path: str, **options: Any) -> Any:
        response = self.client(n).request(method, "/_sfmock/" + path, **options)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for serve in self.serves:
            serve.stop()
