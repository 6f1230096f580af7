"""The worst event-loop stall a journal read causes: fill the journal with large array
bodies, read it whole (every page), and ping the server meanwhile.

    .venv/bin/python bench/journal_stall.py          # prints the figures

The pings go to ``GET /_sfmock/health`` every millisecond on their own connection; the
figure is the longest any of them took while the journal was being read.
"""

from __future__ import annotations

import json
import threading
import time

import httpx

from sfmock import Settings, VirtualClock
from sfmock.server import FakeServer

ENTRIES = 1000
AUTH = {"Authorization": "Bearer sk-bench-0123456789"}


def main() -> None:
    body = json.dumps({"model": "Kwai-Kolors/Kolors", "prompt": "x", "extra": [0] * 21_000}).encode()  # ~64 KB
    with FakeServer(Settings(seed=1, journal_size=ENTRIES, journal_max_bytes=2**30), clock=VirtualClock()) as fake:
        with httpx.Client(base_url=fake.url, timeout=120) as client:
            for _ in range(ENTRIES):
                client.post("/v1/images/generations", content=body, headers=AUTH)
        done = threading.Event()
        read_time = [0.0]

        def read_all() -> None:
            started = time.monotonic()
            with httpx.Client(base_url=fake.url, timeout=120) as reader:
                after = None
                while True:
                    page = reader.get("/_sfmock/journal", params={} if after is None else {"after": after}).json()
                    after = page.get("next_after")
                    if after is None:
                        break
            read_time[0] = time.monotonic() - started
            done.set()

        with httpx.Client(base_url=fake.url, timeout=120) as pinger:
            pinger.get("/_sfmock/health")
            idle = []
            for _ in range(200):
                t = time.monotonic()
                pinger.get("/_sfmock/health")
                idle.append(time.monotonic() - t)
            threading.Thread(target=read_all).start()
            worst = 0.0
            while not done.is_set():
                t = time.monotonic()
                pinger.get("/_sfmock/health")
                worst = max(worst, time.monotonic() - t)
                time.sleep(0.001)
    print(f"journal of {ENTRIES} entries of {len(body)} bytes: read whole in {read_time[0]:.2f} s")
    print(f"health pings: idle max {max(idle) * 1000:.1f} ms; worst during the read {worst * 1000:.1f} ms")


if __name__ == "__main__":
    main()
