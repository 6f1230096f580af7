"""Load over real sockets: 50 concurrent clients, 10,000 generations and their downloads.

The fake runs in its own process (as in production use), on a frozen clock. Zero
unexpected errors; every URL downloads before it expires and is refused after; the
journal, the quota counters and the balances add up exactly to what was sent. (20,000
until 2026-12-08: every check is the same at 10,000, with 50 clients at once throughout, and
a lost update or a URL refused early shows within a few hundred; the test was 7% of
the suite's CPU, 76 of 1,150 s, on a 2-core machine.)
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import httpx
import pytest
from yarl import URL

GENERATIONS = 10_000
CLIENTS = 50
KEYS = [f"sk-load-key-{n:02d}" for n in range(5)]
PRICE = Decimal("0.05")  # Kwai-Kolors/Kolors, one image
DAILY = 1_000_000
BALANCE = 10_000
# aiohttp, not httpx, sends the load: the same requests for a third of the CPU, which is
# the test's own cost, not the server's (the suite runs on two cores)
TIMEOUT = aiohttp.ClientTimeout(total=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    accounts = "".join(f"  - {{id: acct-{n}, balance: '{BALANCE}', keys: [{key}]}}\n" for n, key in enumerate(KEYS))
    config = tmp_path / "load.yaml"
    config.write_text(
        f"seed: 1\nfrozen_clock: true\nrate_limit_headers: true\njournal_size: {3 * GENERATIONS}\n"
        f"limits: {{rpd: {DAILY}, ipd: {DAILY}}}\naccounts:\n{accounts}"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--config", str(config), "--log-level", "warning"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        match = re.search(r"(http://\S+)/v1", process.stderr.readline())
        assert match
        yield match[1]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
        if process.stderr:
            process.stderr.close()


def test_load(server: str) -> None:
    sent: Counter[str] = Counter()
    problems: list[str] = []
    urls: list[str] = []

    async def client(jobs: asyncio.Queue[int]) -> None:
        async with aiohttp.ClientSession(base_url=server, timeout=TIMEOUT) as http:
            while not jobs.empty():
                job = jobs.get_nowait()
                key = KEYS[job % len(KEYS)]
                body = {"model": "Kwai-Kolors/Kolors", "prompt": f"load {job}", "image_size": "128x128", "seed": job}
                async with http.post(
                    "/v1/images/generations", json=body, headers={"Authorization": f"Bearer {key}"}
                ) as answer:
                    sent[key] += 1
                    if answer.status != 200:
                        problems.append(f"generation {job}: {answer.status} {(await answer.text())[:80]}")
                        continue
                    url = (await answer.json())["images"][0]["url"]
                async with http.get(URL(url, encoded=True)) as image:  # the URL exactly as given
                    if image.status != 200 or not (await image.read()).startswith(b"\x89PNG"):
                        problems.append(f"download {job}: {image.status}")
                urls.append(url)

    async def refused_after_expiry() -> Counter[int | None]:
        statuses: Counter[int | None] = Counter()
        queue: asyncio.Queue[str] = asyncio.Queue()
        for url in urls:
            queue.put_nowait(url)

        async def check() -> None:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                while not queue.empty():
                    async with http.get(URL(queue.get_nowait(), encoded=True)) as refused:
                        await refused.read()
                        statuses[refused.status] += 1

        await asyncio.gather(*(check() for _ in range(CLIENTS)))
        return statuses

    async def run() -> None:
        jobs: asyncio.Queue[int] = asyncio.Queue()
        for job in range(GENERATIONS):
            jobs.put_nowait(job)
        await asyncio.gather(*(client(jobs) for _ in range(CLIENTS)))

    began = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - began
    assert problems == []
    assert sum(sent.values()) == GENERATIONS and len(set(urls)) == GENERATIONS

    # nothing lost: the journal, the quota counters and the balances add up to what was sent
    with httpx.Client(base_url=server, timeout=60) as http:
        entries, after = [], None  # the journal answers in pages of a few MB
        while True:
            params = {"status": 200} if after is None else {"status": 200, "after": after}
            journal = http.get("/_sfmock/journal", params=params).json()
            entries += journal["entries"]
            after = journal["next_after"]
            if after is None:
                break
        assert Counter(e["path"].startswith("/temporary/outputs/") for e in entries) == {
            False: GENERATIONS,
            True: GENERATIONS,
        }
        assert journal["evicted"] == 0
        for key in KEYS:
            auth = {"Authorization": f"Bearer {key}"}
            balance = Decimal(http.get("/v1/user/info", headers=auth).json()["data"]["balance"])
            assert balance == BALANCE - PRICE * sent[key]
            probe = http.post(
                "/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "count"}, headers=auth
            )
            assert int(probe.headers["x-ratelimit-remaining-rpd"]) == DAILY - sent[key] - 1
        # an hour later, every one of those URLs is refused as expired
        http.post("/_sfmock/clock", json={"advance": 3600}).raise_for_status()
    assert asyncio.run(refused_after_expiry()) == Counter({403: GENERATIONS})
    print(
        f"\n{2 * GENERATIONS} requests from {CLIENTS} clients in {elapsed:.1f}s "
        f"({2 * GENERATIONS / elapsed:.0f} requests/s)"
    )
