"""``sfmock serve --workers N``: N processes serving the same listening sockets (the API's
and, on an origin of its own, the image host's).

Each worker is a whole fake (its own event loop and app) in a process of its own,
started with ``spawn`` and handed the sockets and the settings through a pipe (never a
file: the settings may hold the signing key). They share their state through the store
the settings name (Redis), so they answer as one service; their metrics add up through
files in a temporary folder (``prometheus_client``'s multiprocess mode: counts only, no
keys), removed when they stop. Ctrl+C or SIGTERM stops them
all; if one dies, the others are stopped too and the exit status says so.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from types import FrameType

from sfmock.chaos.metrics import FOLDER_VARIABLE
from sfmock.config import Settings

__all__ = ["run_workers"]

_spawn = multiprocessing.get_context("spawn")


def _worker(settings: Settings, sockets: list[socket.socket], log_level: str) -> None:
    """One worker: build the app and serve ``sockets`` until told to stop."""
    from sfmock.app import create_app
    from sfmock.heap import keep_freed_memory
    from sfmock.protocol import uvicorn_config
    from sfmock.server import PromptServer

    keep_freed_memory()  # a spawned process starts with the allocator's defaults

    app = create_app(settings)
    gc.collect()
    gc.freeze()
    config = uvicorn_config(app, log_level=log_level, read_timeout=settings.read_timeout, timeout_graceful_shutdown=2)
    try:
        PromptServer(config).run(sockets=sockets)
    except KeyboardInterrupt:  # Ctrl+C reaches the whole process group: a normal stop
        pass


def run_workers(settings: Settings, sockets: list[socket.socket], *, workers: int, log_level: str) -> int:
    """Serve ``sockets`` with ``workers`` processes until Ctrl+C or SIGTERM (0), or until one
    of them dies (1)."""
    processes = [
        _spawn.Process(target=_worker, args=(settings, sockets, log_level), name=f"sfmock-worker-{n + 1}", daemon=False)
        for n in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    counts = tempfile.TemporaryDirectory(prefix="sfmock-metrics-")
    try:
        inherited = os.environ.get(FOLDER_VARIABLE)
        os.environ[FOLDER_VARIABLE] = counts.name  # the workers inherit it when they start
        try:
            for process in processes:
                process.start()
        finally:
            if inherited is None:
                del os.environ[FOLDER_VARIABLE]
            else:
                os.environ[FOLDER_VARIABLE] = inherited
        for sock in sockets:
            sock.close()  # the workers hold them now
        while not stopping and all(p.is_alive() for p in processes):
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes what is in flight
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        counts.cleanup()
    if stopping:
        return 0
    dead = [p.name for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    print(f"sfmock: worker {', '.join(dead) or '?'} stopped; stopping the others", file=sys.stderr, flush=True)
    return 1
