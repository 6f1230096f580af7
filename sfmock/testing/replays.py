"""Replaying a reported case: a verdict that does not come back every time says what
differed between the runs and where that can come from."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from sfmock.testing.evidence import Run, served_urls, url_key

__all__ = ["carried_over", "difference", "flakiness"]


def carried_over(run: Run) -> str:
    """What ``run`` took from the check's earlier runs (an image URL one of them was given),
    in words, or "" when nothing: such a failure needs those runs before it, so its replay
    line, which runs the schedule on its own, can pass."""
    for number, exchange in enumerate(run.exchanges, 1):
        parts = urlsplit(exchange.url)
        path, query = unquote(parts.path), dict(parse_qsl(parts.query, keep_blank_values=True))
        if exchange.method != "GET" or url_key(path, query) not in run.earlier_urls:
            continue
        if query in served_urls(run, exchange.started).get(path, []):
            continue  # this run was given the same URL too (the same request answers alike)
        return (
            f"this failure depends on earlier runs: request {number} downloaded an image URL that an "
            "earlier run was given (the client keeps state between calls, e.g. a cache of URLs); the "
            "replay line runs this schedule on its own, with nothing kept, so it may pass"
        )
    return ""


def flakiness(replay: Callable[[], object | None], last: Callable[[], Run | None], run: Run) -> str:
    """Replay the reported case twice more. A verdict that does not come back every time is
    reported with what differed between the runs and where that can come from, without
    blaming the client for what the check itself does not hold still (the live socket)."""
    replays: list[Run] = []
    failed = 1
    for _ in range(2):
        failed += replay() is not None
        again = last()
        if again is not None:
            replays.append(again)
    if failed == 3:
        return ""
    differed = next((d for d in (difference(run, other) for other in replays) if d), "the transcripts were the same")
    live = any(urlsplit(e.url).hostname == "127.0.0.1" for r in (run, *replays) for e in r.exchanges)
    source = (
        "the live socket serves in real time, so a verdict there may depend on how fast this machine was: "
        "this is not evidence against the client"
        if live
        else "the client depends on something the check does not control: threads, real time, its own RNG, "
        "or state it keeps between calls (a module-level circuit breaker, cache or counter), which the "
        "earlier runs and replays have moved on"
    )
    return (
        f"flaky: this schedule failed {failed} of 3 replays with the same random seed; "
        f"what differed: {differed}; {source}"
    )


def difference(run: Run, other: Run) -> str:
    """The first request that went differently in ``other`` than in ``run``, in words."""
    for number, (mine, theirs) in enumerate(zip(run.exchanges, other.exchanges, strict=False), 1):
        seen, again = mine.failure or str(mine.status), theirs.failure or str(theirs.status)
        if (mine.method, mine.path) != (theirs.method, theirs.path):
            where = f"{mine.method} {mine.path} in one run and {theirs.method} {theirs.path} in another"
            return f"request {number} was {where}"
        if seen != again:
            return f"request {number} ({mine.method} {mine.path}) ended {seen} in one run and {again} in another"
    if len(run.exchanges) != len(other.exchanges):
        return f"one run made {len(run.exchanges)} requests, another {len(other.exchanges)}"
    if type(run.error) is not type(other.error):
        names = [type(e).__name__ if e is not None else "nothing" for e in (run.error, other.error)]
        return f"the client raised {names[0]} in one run and {names[1]} in another"
    try:
        returned = bool(run.error is None and run.result != other.result)
    except Exception:  # a result that cannot be compared says nothing
        returned = False
    return "the client returned something else after the same requests" if returned else ""
