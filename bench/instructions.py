"""Instructions per generation in process: a figure a busy machine does not move.

``python bench/instructions.py`` runs the in-process generation loop of ``bench/run.py``
(the whole app, no socket) under ``valgrind --tool=cachegrind`` twice, 300 and 1,300
generations, and prints the difference over 1,000: the start-up and warm-up cancel out.
Timings on a machine shared with other work move by a fifth from one run to the next; this
count moves by a few thousand in 400,000. Needs ``valgrind`` (Debian package).
Run with ``PYTHONPATH`` set to measure another tree with the same script.

``python bench/instructions.py --redis`` does the same on a Redis store (a throw-away
``redis-server`` the script starts, outside valgrind): the worker's own instructions,
which the round trip's wait and the kernel's work do not change.
"""

from __future__ import annotations

import asyncio
import json
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


def generations(count: int, store: str = "memory") -> None:
    """``count`` generations through the app, in process, on ``store``."""
    from sfmock import Settings, VirtualClock, create_app

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


def counted(count: int, store: str) -> int:
    """Instructions valgrind counts for a process that makes ``count`` generations."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    run = [*command, sys.executable, __file__, str(count), store]
    done = subprocess.run(run, capture_output=True, text=True, check=True)
    return int(re.search(r"I\s+refs:\s+([\d,]+)", done.stderr).group(1).replace(",", ""))  # type: ignore[union-attr]


def per_generation(store: str) -> int:
    return (counted(1300, store) - counted(300, store)) // 1000


def main() -> None:
    if sys.argv[1:] == ["--redis"]:
        with redis_server() as url:
            print(f"{per_generation(url)} instructions per generation on Redis")
    elif len(sys.argv) > 1:
        generations(int(sys.argv[1]), *sys.argv[2:3])
    else:
        print(f"{per_generation('memory')} instructions per generation")


if __name__ == "__main__":
    main()
