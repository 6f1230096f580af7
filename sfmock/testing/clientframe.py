"""The line of the client's own code a thread is at: where a report says a client waits."""

from __future__ import annotations

import os
import sysconfig
import traceback
from types import FrameType

__all__ = ["client_line"]

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
