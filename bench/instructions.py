"""Instructions per generation in process: a figure a busy machine does not move.

``python bench/instructions.py`` runs the in-process generation loop of ``bench/run.py``
(the whole app, no socket) under ``valgrind --tool=cachegrind`` twice, 300 and 1,300
generations, and prints the difference over 1,000: the start-up and warm-up cancel out.
Timings on a machine shared with other work move by a fifth from one run to the next; this
count moves by a few thousand in 400,000. Needs ``valgrind`` (Debian package).
Run with ``PYTHONPATH`` set to measure another tree with the same script.
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


def generations(count: int) -> None:
    """``count`` generations through the app, in process."""
    from sfmock import Settings, VirtualClock, create_app

    app = create_app(Settings(seed=1, default_balance=Decimal("1000000000")), clock=VirtualClock())
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


def counted(count: int) -> int:
    """Instructions valgrind counts for a process that makes ``count`` generations."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    done = subprocess.run([*command, sys.executable, __file__, str(count)], capture_output=True, text=True, check=True)
    return int(re.search(r"I\s+refs:\s+([\d,]+)", done.stderr).group(1).replace(",", ""))  # type: ignore[union-attr]


def main() -> None:
    if len(sys.argv) > 1:
        generations(int(sys.argv[1]))
        return
    print(f"{(counted(1300) - counted(300)) // 1000} instructions per generation")


if __name__ == "__main__":
    main()
