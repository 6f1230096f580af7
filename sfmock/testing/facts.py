"""What the invariants read off a run (:mod:`sfmock.testing.invariants`): its last
success, a batch's size, whether an answer was transient or its image downloaded, a
``Retry-After``, whether a rerun waited the same."""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sfmock.contract.openapi import load_contract
from sfmock.contract.validation import RequestValidator
from sfmock.service.legacy import legacy_model
from sfmock.testing.evidence import (
    IMMEDIATE,
    Run,
    own_deadline,
)
from sfmock.testing.strategies import DOWNLOAD_FAULTS, SUCCESS
from sfmock.transports import Exchange

BACKOFF_STATUSES = frozenset({429, 503})  # a retry of these waits (invariants.backoff)

__all__ = [
    "Rerun",
    "answer",
    "batch_size",
    "deterministic",
    "difference",
    "download_failure",
    "downloaded",
    "gave_up",
    "json_or_raw",
    "last_success",
    "retry_after",
    "same_wait",
    "short",
    "succeeded",
    "transient",
    "validator",
]

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@functools.cache
def validator() -> RequestValidator:
    return RequestValidator(load_contract())


def json_or_raw(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def generation_body(exchange: Exchange) -> Any:
    """A generation request's body as the service reads it: on the 2024 route the path names
    the model, whatever the body says (as the fake's handler takes it)."""
    body = json_or_raw(exchange.request_body)
    model = legacy_model(exchange.path)
    if model is not None and isinstance(body, dict):
        return {**body, "model": model}
    return body


def short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def difference(first: Any, other: Any) -> str:
    if not (isinstance(first, dict) and isinstance(other, dict)):
        return f"{short(first)} -> {short(other)}"
    changes = []
    for name in sorted(set(first) | set(other), key=str):
        if name not in other:
            changes.append(f"{name}: removed (was {short(first[name])})")
        elif name not in first:
            changes.append(f"{name}: added {short(other[name])}")
        elif first[name] != other[name]:
            changes.append(f"{name}: {short(first[name])} -> {short(other[name])}")
    return "; ".join(changes)


def last_success(run: Run) -> float:
    """When the last 200 generation started (0 when none did)."""
    return max((g.started for g in run.generations if g.status == 200 and g.failure is None), default=0.0)


def batch_size(run: Run) -> Any:
    """The ``batch_size`` of the last generation answered 200 (the batch the client asked the
    service for, whatever ``ctx.request`` said), else the one in ``ctx.request``."""
    for exchange in reversed(run.generations):
        if exchange.status == 200 and exchange.failure is None:
            body = generation_body(exchange)
            if isinstance(body, dict):
                return body.get("batch_size", 1)
    return run.request.get("batch_size", 1)


def transient(exchange: Exchange) -> bool:
    return exchange.failure is not None or exchange.status in TRANSIENT_STATUSES


def downloaded(run: Run, answer: Exchange) -> bool:
    """Whether an image URL of ``answer`` (by its signature) was downloaded."""
    signatures = (parse_qs(urlsplit(d.url).query).get("X-Amz-Signature", [""])[0].encode() for d in run.downloads)
    return any(signature and signature in answer.body for signature in signatures)


def stalled_download(run: Run) -> Exchange | None:
    """The image download a run that hung was waiting on: its last request, a download held
    by a fault (``download-timeout``) and never answered; ``None`` if it hung elsewhere."""
    last = run.exchanges[-1] if run.exchanges else None
    if last is None or last not in run.downloads or last.failure != "timeout" or last.fault is None:
        return None
    return last


def gave_up(run: Run) -> str:
    """What the client gave up after: the last attempt's transient answer, or its own timeout
    (the outcome before is not what ended it)."""
    last = run.generations[-1]
    if last.failure == "cancelled" or (last.failure == "timeout" and last.fault is None):
        return f"after its own timeout (it stopped waiting after {last.ended - last.started:.1f}s)"
    if run.error is not None and own_deadline(run.error):
        return f"after its own timeout ({type(run.error).__name__}) following a transient {answer(last)}"
    return f"after a transient {answer(last)}"


def answer(exchange: Exchange) -> str:
    """How the answer ended, in words: a status, or a failure (a hang the server itself ended,
    as a program's ``timeout`` does, said as such: the client saw a closed connection)."""
    hang = re.search(r"\bhang=([0-9.]+)", exchange.fault or "") if exchange.failure == "timeout" else None
    if hang is not None and exchange.ended - exchange.started >= float(hang[1]) - 1e-3:
        return f"timeout (no answer for {float(hang[1]):g}s, then the connection closed)"
    return exchange.failure or str(exchange.status)


def succeeded(exchange: Exchange, run: Run, index: int) -> bool:
    """A generation that answered 200 with a usable body (a fault on its download may follow)."""
    outcome = run.outcome(index)
    return exchange.status == 200 and exchange.failure is None and (outcome in SUCCESS or outcome in DOWNLOAD_FAULTS)


def download_failure(run: Run, answer: Exchange, following: Exchange) -> Exchange | None:
    """The last failed download of ``answer``'s image before ``following``; ``None`` if every
    download before it worked (or none was tried)."""
    between = [d for d in run.downloads if answer.ended <= d.started <= following.started]
    failed = [d for d in between if d.status != 200 or d.failure is not None]
    return failed[-1] if failed else None


def retry_after(exchange: Exchange) -> float | None:
    value = exchange.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def unrepeatable(random_seed: int) -> Run:
    """A program's run "under another random state": none can be made (its random state is its
    own), so its waits count as random, and a back-off that shrinks is not judged (jitter may)."""
    return Run(schedule=(), exchanges=(), result=None, error=None, api_key="", max_attempts=0, min_attempts=0)


# random states a short wait is drawn again under before it counts as at once: full jitter of a
# 1 s base draws under 50 ms one time in twenty, all five times one in three million
DRAWS = 4


class Rerun:
    """The run again under other random states, each made once when a verdict needs it."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._waits: dict[int, list[float]] = {}

    def waits(self, other: int = 1) -> list[float] | None:
        """Its waits under the ``other``-th other random state, rounded (``None``: the run
        cannot be made again)."""
        if self.run.rerun is None:
            return None
        if other not in self._waits:
            self._waits[other] = [round(w, 6) for w in self.run.rerun(self.run.random_seed + other).waits()]
        return self._waits[other]


def deterministic(run: Run, other: Rerun) -> bool:
    """Whether the client's waits stay the same under another random state (no jitter)."""
    waits = other.waits()
    return waits is None or waits == [round(w, 6) for w in run.waits()]


def same_wait(run: Run, index: int, other: Rerun) -> bool:
    """Whether wait ``index`` stays under :data:`IMMEDIATE` under :data:`DRAWS` other random
    states: a short wait that is a jittered draw (full jitter may draw 30 ms, or 0 s from
    ``randint``) is no flaw; a fixed one is, and so is a jitter that is always that short
    (``random.uniform(0, 0.01)``).

    A program's run cannot be made again: there, a short wait counts as fixed where the run
    retried a 429 or 503 that soon more than once (full jitter of a 1 s base draws under 50 ms
    one time in twenty; twice in a row, one in four hundred, and a check's replay sees it again)."""
    if run.rerun is unrepeatable:
        immediate, attempts = IMMEDIATE - 1e-6, run.generations
        soon = [i for i, w in enumerate(run.waits()) if w < immediate and attempts[i].status in BACKOFF_STATUSES]
        return index in soon and len(soon) > 1
    for draw in range(1, DRAWS + 1):
        waits = other.waits(draw)
        if waits is None:
            return True
        if index >= len(waits) or waits[index] >= IMMEDIATE - 1e-6:
            return False
    return True
