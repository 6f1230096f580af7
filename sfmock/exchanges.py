"""One request to the fake and what came back, as the in-process transports and the live
socket's recorder both keep it: :class:`Exchange`, how a fault ended it for the client
(:func:`failure_of`), and the two signals the app raises to a client's transport
(:class:`HangForever`, :class:`TimedOut`).
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["READ_TIMEOUT", "REAL_MONOTONIC", "Exchange", "HangForever", "Interrupted", "TimedOut", "failure_of"]

# the read timeout of the in-process request being served (None: the client set none);
# a fault's wait that outlasts it ends in the client's timeout (see sfmock.testing.checks)
READ_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar("sfmock_read_timeout", default=None)

# bound at import: the checker's virtual time patches ``time`` but leaves sfmock's own names be
REAL_MONOTONIC = time.monotonic


class HangForever(BaseException):
    """The client waits for something that never comes (a BaseException: no ``except
    Exception`` in the client swallows it)."""


class Interrupted(HangForever):
    """A request the app holds reached a signal the client set for itself (a real-time
    alarm): the transport calls :meth:`deliver` in the client's thread, at its edge, where
    the signal would interrupt the read; if that returns, the read waits on (the hang)."""

    def deliver(self) -> None:
        """Run the client's handler (it may raise)."""


class TimedOut(BaseException):
    """Raised inside the app when the in-process client's read timeout has run out."""


@dataclass(frozen=True, kw_only=True)
class Exchange:
    """One request and what came back (``failure``: ``dropped``, ``truncated``, ``timeout``,
    or ``cancelled``: the client stopped waiting before the answer came)."""

    method: str
    url: str
    path: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None
    headers: dict[str, str]
    body: bytes
    failure: str | None
    fault: str | None
    started: float
    ended: float
    # real monotonic seconds at both ends: a client may wait on a clock the checker does
    # not control (trio, select in C), which only real time shows
    real_started: float = 0.0
    real_ended: float = 0.0
    # when a thread of the client's stopped waiting (its deadline) while this answer was being made
    deadline: float | None = None
    # when the client sent it, where before ``started``: its thread waited while another
    # thread's request was answered (the in-process transport answers one at a time)
    sent: float | None = None
    # the server never answered it and the client set no read timeout: its thread waits forever
    # (recorded where that thread's end was not the run's: a worker a caller's deadline left behind)
    endless: bool = False

    @property
    def sent_at(self) -> float:
        """When the client sent it (it was in flight from then)."""
        return self.started if self.sent is None else self.sent

    @property
    def trace_id(self) -> str | None:
        return self.headers.get("x-siliconcloud-trace-id") or self.headers.get("x-amz-request-id")

    def describe(self, origin: float = 0.0) -> str:
        """One transcript line; times are seconds after ``origin``."""
        outcome = self.failure or str(self.status)
        fault = f" [{self.fault}]" if self.fault else ""
        trace = f" trace={self.trace_id}" if self.trace_id else ""
        turn = (
            ""
            if self.sent is None
            else f" (sent at t+{self.sent - origin:.1f}s: it waited while another thread's request was answered)"
        )
        return f"t+{self.started - origin:.1f}s {self.method} {self.path} -> {outcome}{fault}{trace}{turn}"


def failure_of(state: dict[str, Any], status: int | None, read_timeout: float | None) -> tuple[str | None, str | None]:
    """How a request the app handled ended for its client, and the fault that did it.

    ``(failure, fault)``: failure is ``dropped``, ``truncated``, ``timeout`` or ``None``.
    """
    failure = None
    if state.get("dropped"):
        failure = "truncated" if status is not None else "dropped"
    fault = state.get("fault")
    if fault is None:
        return failure, None
    waited = (fault.delay or 0.0) + (fault.action.hang or 0.0)
    if fault.action.hang is not None or (read_timeout is not None and waited > read_timeout):
        failure = "timeout"
    return failure, fault.describe()
