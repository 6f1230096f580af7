"""The line of the client's own code a thread is at: where a report says a client waits."""

from __future__ import annotations

import os
import sysconfig
import traceback
from collections.abc import Iterable
from types import FrameType
from typing import Any

__all__ = ["asyncio_tasks", "awaited_line", "client_line", "trio_tasks"]

_LIBRARIES = tuple({sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")})
# sfmock's own code (the virtual waits a threading wait passes through, the transports): never the client's
_WAITS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def client_line(frame: FrameType | None) -> str:
    """The innermost line of the client's own code on the stack (not the library it waits in)."""
    innermost = frame
    while frame is not None and frame.f_code.co_filename.startswith((*_LIBRARIES, _WAITS)):
        frame = frame.f_back
    chosen = frame or innermost
    if chosen is None:
        return "an unknown place"
    summary = traceback.extract_stack(chosen, limit=1)[-1]
    return f"{summary.filename}:{summary.lineno} ({(summary.line or '').strip()})"


def awaited_line(coroutines: Iterable[Any]) -> str | None:
    """The innermost line of the client's own code where one of an event loop's tasks (their
    ``coroutines``, the first made first) is suspended: where a report says an async client
    waits. Each chain of awaits is followed down, as a suspended coroutine's frame has no
    callers to walk up."""
    for awaited in coroutines:
        innermost: FrameType | None = None
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None and not frame.f_code.co_filename.startswith((*_LIBRARIES, _WAITS)):
                innermost = frame
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        if innermost is not None:
            return client_line(innermost)
    return None


def asyncio_tasks(tasks: Iterable[Any]) -> list[Any]:
    """The coroutines of asyncio ``tasks``, the first made first (``Task-1``, ``Task-2``, ...)."""

    def number(task: Any) -> int:
        last = task.get_name().rpartition("-")[2]
        return int(last) if last.isdigit() else 1 << 30

    return [task.get_coro() for task in sorted(tasks, key=number)]


def trio_tasks(root: Any) -> list[Any]:
    """The coroutines of a trio run's tasks, the root's first, each nursery's in order."""
    found, pending = [], [root]
    while pending:
        task = pending.pop(0)
        found.append(task.coro)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found
