"""The line of the client's own code a thread is at: where a report says a client waits."""

from __future__ import annotations

import os
import sysconfig
import traceback
from collections.abc import Iterable
from types import FrameType
from typing import Any

__all__ = ["awaited_line", "client_line"]

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


def awaited_line(tasks: Iterable[Any]) -> str | None:
    """The innermost line of the client's own code where one of an event loop's ``tasks``
    is suspended (the first task made, of those suspended in the client's code): where a
    report says an asyncio client waits. Each task's chain of awaits is followed down, as
    its coroutine frames have no callers to walk up."""

    def number(task: Any) -> int:
        name = task.get_name()
        return int(name.rpartition("-")[2]) if name.rpartition("-")[2].isdigit() else 1 << 30

    for task in sorted(tasks, key=number):
        awaited: Any = task.get_coro()
        innermost: FrameType | None = None
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None and not frame.f_code.co_filename.startswith((*_LIBRARIES, _WAITS)):
                innermost = frame
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        if innermost is not None:
            return client_line(innermost)
    return None
