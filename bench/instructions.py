"""Instructions per generation in process: a figure a busy machine does not move.

``python bench/instructions.py`` runs the in-process generation loop of ``bench/run.py``
(the whole app, no socket) under ``valgrind --tool=cachegrind`` twice, 300 and 1,300
generations, and prints the difference over 1,000: the start-up and warm-up cancel out.
Timings on a machine shared with other work move by a fifth from one run to the next; this
count moves by a few thousand in 400,000. Needs ``valgrind`` (Debian package).
Run with ``PYTHONPATH`` set to measure another tree with the same script. ``--limits``:
the load benchmark's configuration instead (``bench/run.py``'s RPM, IPM and IPD, never
reached, on the real clock: every request at its own time in three sliding windows).

``python bench/instructions.py --redis`` does the same on a Redis store (a throw-away
``redis-server`` the script starts, outside valgrind): the worker's own instructions,
which the round trip's wait and the kernel's work do not change.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from redis_cpu import generation_scope  # noqa: E402
from run import BODY  # noqa: E402
from stacks import redis_server  # noqa: E402

LIMITS = {"rpm": 1_000_000_000, "ipm": 1_000_000_000, "ipd": 1_000_000_000}  # bench/run.py's


def generations(count: int, limits: bool = False, store: str = "memory") -> None:
    """``count`` generations through the app, in process, on ``store`` (``limits``:
    :data:`LIMITS`, on the real clock)."""
    from sfmock import Settings, VirtualClock, create_app
    from sfmock.service.quota import Limits

    if limits:
        settings = Settings(seed=1, default_balance=Decimal("1000000000"), limits=Limits(**LIMITS), store=store)
        app = create_app(settings)
    else:
        settings = Settings(seed=1, default_balance=Decimal("1000000000"), store=store)
        app = create_app(settings, clock=VirtualClock())
    body = json.dumps(BODY).encode()
    scope = generation_scope()  # with the headers a client sends besides (wrk's, below)
    scope["headers"] = [
        *scope["headers"],
        (b"content-length", b"%d" % len(body)),
        (b"content-type", b"application/json"),
    ]

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        assert message.get("status", 200) == 200, message

    async def run() -> None:
        for _ in range(count):
            await app({**scope, "state": {}}, receive, send)

    asyncio.run(run())


def counted(count: int, options: list[str]) -> int:
    """Instructions valgrind counts for a process that makes ``count`` generations."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    run = [*command, sys.executable, __file__, str(count), *options]
    # one hash seed for every count: dicts and sets laid out alike (else counts move by a few thousand)
    environment = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    done = subprocess.run(run, capture_output=True, text=True, check=True, env=environment)
    return int(re.search(r"I\s+refs:\s+([\d,]+)", done.stderr).group(1).replace(",", ""))  # type: ignore[union-attr]


def main() -> None:
    options = [arg for arg in sys.argv[1:] if arg.startswith("--")]
    counts = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    if counts:  # one measured process: the count, then the store
        generations(int(counts[0]), limits="--limits" in options, store=counts[1] if len(counts) > 1 else "memory")
        return
    if "--redis" in options:
        with redis_server() as url:
            passed = [option for option in options if option != "--redis"]
            each = [*passed, url]
            print(f"{(counted(1300, each) - counted(300, each)) // 1000} instructions per generation on Redis")
        return
    print(f"{(counted(1300, options) - counted(300, options)) // 1000} instructions per generation")


if __name__ == "__main__":
    main()
