"""What Linux's /proc and the thread clocks say of this process's threads and children: the
facts virtual time waits on (:mod:`sfmock.testing.vtime`). Elsewhere each says "not known"."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["children", "cpu_time", "runnable"]


def children() -> set[str]:
    """This process's living child processes (their ids), where Linux's /proc says."""
    found: set[str] = set()
    try:
        with os.scandir("/proc/self/task") as tasks:
            for task in tasks:
                try:
                    with open(f"{task.path}/children", encoding="ascii") as children:
                        found.update(children.read().split())
                except OSError:  # the thread ended meanwhile
                    continue
    except OSError:  # no /proc: none known
        pass
    return found


def runnable(thread: threading.Thread) -> bool:
    """Whether ``thread`` is running or waits only for a CPU (Linux; elsewhere: not known, no)."""
    if thread.native_id is None:  # started, and not yet running
        return True
    try:
        with open(f"/proc/self/task/{thread.native_id}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"R"
    except (OSError, IndexError):
        return False


def cpu_time(ident: int) -> float:
    """The CPU seconds a thread has used (0 where the platform cannot say, or it has ended)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (AttributeError, OSError):
        return 0.0
