"""Verification: count requests that match a pattern, or check their order, from the journal.

A :class:`Pattern` names what a request must be (method, path glob, model, key, status,
fault rule, body fields); :class:`Verifier` counts the journal's matches exactly, at
least or at most, or finds patterns in order. Before it decides it waits until the
requests in flight are recorded (async clients do not race the check) and, with
``within=S``, until the expectation holds or S seconds pass on the server's clock (a
virtual clock moves only when told), never longer than ``timeout`` real seconds. A
failure is a :class:`VerificationFailed`, an ``AssertionError`` naming the closest near
misses and, for each, which field differed: expected vs seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sfmock.chaos.journal import Entry, mask_key
from sfmock.chaos.sessions import SessionState
from sfmock.clock import Clock
from sfmock.globs import glob_matches, glob_problem
from sfmock.wording import unknown as unknown_name

__all__ = ["Difference", "Pattern", "VerificationFailed", "Verifier", "hide_frame"]

FIELDS = ("method", "path", "model", "key", "status", "fault", "body")
NEAR_MISSES = 3
# how far a differing field puts a request from the pattern: another route is farther
# off than another status (ties go to the most recent request)
_WEIGHT = {"path": 4, "method": 3, "model": 2, "key": 2}
MAX_TIMEOUT = 60.0
_MISSING = object()


@dataclass(frozen=True, kw_only=True)
class Difference:
    """One field of an entry that did not match: what the pattern wanted, what was seen."""

    field: str
    expected: Any
    seen: Any

    def __str__(self) -> str:
        seen = "(absent)" if self.seen is _MISSING else repr(self.seen)
        return f"{self.field} expected {self.expected!r}, seen {seen}"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "expected": self.expected, "seen": None if self.seen is _MISSING else self.seen}


@dataclass(frozen=True, kw_only=True)
class Pattern:
    """What a request must be; unset fields match anything.

    ``path`` is a glob (``/v1/*``); ``key`` an API key (compared masked, as the journal
    keeps it); ``fault`` a rule name (``header`` for the ``X-Sfmock-Fault`` header);
    ``body`` maps field names, dotted for nested ones (``"image_size"``, ``"a.b.0"``),
    to the values they must have.
    """

    method: str | None = None
    path: str | None = None
    model: str | None = None
    key: str | None = None
    status: int | None = None
    fault: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, document: Any, where: str = "pattern") -> Pattern:
        """A pattern from a JSON object; ``ValueError`` naming ``where``, the key and the expectation."""
        if isinstance(document, Pattern):
            return document
        if not isinstance(document, Mapping):
            raise ValueError(f"{where}: expected an object with any of {', '.join(FIELDS)}")
        unknown = sorted(set(document) - set(FIELDS))
        if unknown:
            raise ValueError(f"{where}: " + unknown_name("field", unknown[0], FIELDS))
        for name in ("method", "path", "model", "key", "fault"):
            if document.get(name) is not None and not isinstance(document[name], str):
                raise ValueError(f"{where}.{name}: expected a string, got {document[name]!r}")
        problem = glob_problem(document.get("path") or "")
        if problem is not None:
            raise ValueError(f"{where}.path: {problem}")
        status = document.get("status")
        if isinstance(status, float) and status.is_integer():
            status = int(status)  # 404.0 is the integer 404 in JSON
            document = {**document, "status": status}
        if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError(f"{where}.status: expected an HTTP status (100 to 599), got {status!r}")
        body = document.get("body")
        body = {} if body is None else body
        if not isinstance(body, Mapping) or not all(isinstance(k, str) for k in body):
            raise ValueError(f"{where}.body: expected an object of field names and values")
        return cls(**{**document, "body": dict(body)})

    def differences(self, entry: Entry) -> list[Difference]:
        """Every field in which ``entry`` differs from the pattern (empty: it matches)."""
        found = []
        if self.method is not None and entry.method != self.method.upper():
            found.append(Difference(field="method", expected=self.method.upper(), seen=entry.method))
        if self.path is not None and not glob_matches(entry.path, self.path):
            found.append(Difference(field="path", expected=self.path, seen=entry.path))
        if self.status is not None and entry.status != self.status:
            found.append(Difference(field="status", expected=self.status, seen=entry.status))
        if self.fault is not None and not _fault_matches(entry.fault, self.fault):
            found.append(Difference(field="fault", expected=self.fault, seen=entry.fault))
        if self.key is not None and entry.key != mask_key(self.key):
            found.append(Difference(field="key", expected=mask_key(self.key), seen=entry.key))
        if self.model is None and not self.body:
            return found
        body = entry.body
        if self.model is not None and entry.model != self.model:
            found.append(Difference(field="model", expected=self.model, seen=entry.model))
        for name, expected in self.body.items():
            seen = _dig(body, name)
            if seen != expected:
                found.append(Difference(field=f"body.{name}", expected=expected, seen=seen))
        return found

    def describe(self) -> str:
        parts = [f"{name}={getattr(self, name)!r}" for name in FIELDS[:-1] if getattr(self, name) is not None]
        parts += [f"body.{name}={value!r}" for name, value in self.body.items()]
        return "{" + " ".join(parts) + "}" if parts else "{any request}"


def _fault_matches(fault: str | None, wanted: str) -> bool:
    if fault is None:
        return wanted == "none"
    return fault == wanted or fault.split(":", 1)[0] == wanted or fault.startswith(wanted)


def _dig(body: Any, dotted: str) -> Any:
    value = body
    for part in dotted.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


class VerificationFailed(AssertionError):
    """A verification that did not hold; ``near_misses`` lists (entry, differences)."""

    def __init__(self, message: str, near_misses: Sequence[tuple[Entry, list[Difference]]] = ()) -> None:
        super().__init__(message)
        self.near_misses = list(near_misses)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": False,
            "message": str(self),
            "near_misses": [
                {"entry": entry.to_json(), "differences": [d.to_json() for d in diffs]}
                for entry, diffs in self.near_misses
            ],
        }


def hide_frame(info: Any) -> bool:
    """``__tracebackhide__`` of the frames between a test's ``verify(...)`` and the failure:
    pytest then shows the test's own line and the message, not sfmock's frames; any other
    exception (a bug of sfmock's) keeps them."""
    return bool(info.errisinstance((VerificationFailed, ValueError)))


class Verifier:
    """Verifications over one session's journal."""

    def __init__(self, session: SessionState, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    def verify(
        self,
        pattern: Pattern | Mapping[str, Any] | None = None,
        *,
        count: int | None = None,
        at_least: int | None = None,
        at_most: int | None = None,
        within: float | None = None,
        timeout: float = 5.0,
        **fields: Any,
    ) -> list[Entry]:
        """The matching entries, if their number is ``count`` (or between ``at_least`` and
        ``at_most``; with none of them, at least one); else :class:`VerificationFailed`.

        The pattern is ``pattern`` or the keyword fields (``method``, ``path``, ``model``,
        ``key``, ``status``, ``fault``, ``body``).
        """
        __tracebackhide__ = hide_frame
        chosen = Pattern.from_mapping(fields if pattern is None else pattern)
        low, high = _bounds(count, at_least, at_most)

        def matching(entries: list[Entry]) -> list[Entry]:
            return [e for e in entries if not chosen.differences(e)]

        def decided(entries: list[Entry]) -> bool:
            n = len(matching(entries))
            return low <= n <= high or n > high

        entries = self._settle(decided, within, timeout)
        found = matching(entries)
        if low <= len(found) <= high:
            return found
        wanted = _describe_bounds(low, high)
        head = f"verify: expected {wanted} matching {chosen.describe()}, saw {len(found)} (of {len(entries)} recorded)"
        if len(found) > high:
            extra: list[tuple[Entry, list[Difference]]] = [(e, []) for e in found[int(high) :][:NEAR_MISSES]]
            lines = [f"  {_line(e)}" for e, _ in extra]
            raise VerificationFailed("\n".join([head, "matches beyond the limit:", *lines]), extra)
        raise _near_miss_failure(head, chosen, [e for e in entries if e not in found])

    def verify_order(
        self,
        *patterns: Pattern | Mapping[str, Any],
        within: float | None = None,
        timeout: float = 5.0,
    ) -> list[Entry]:
        """One entry per pattern, in the journal's order (others may come between);
        else :class:`VerificationFailed` naming the first step not found."""
        __tracebackhide__ = hide_frame
        chosen = [Pattern.from_mapping(p, f"patterns[{i}]") for i, p in enumerate(patterns)]
        if not chosen:
            raise ValueError("verify_order: expected at least one pattern")

        def decided(entries: list[Entry]) -> bool:
            return len(_in_order(chosen, entries)) == len(chosen)

        entries = self._settle(decided, within, timeout)
        found = _in_order(chosen, entries)
        if len(found) == len(chosen):
            return found
        step = len(found)
        after = found[-1].id if found else 0
        where = f"after #{after}" if found else "in the journal"
        head = (
            f"verify_order: step {step + 1} of {len(chosen)} {chosen[step].describe()} not found {where}"
            f" ({len(entries)} recorded)"
        )
        if found:
            head += "\nmatched so far: " + ", ".join(f"step {i + 1} #{e.id}" for i, e in enumerate(found))
        raise _near_miss_failure(head, chosen[step], [e for e in entries if e.id > after])

    async def averify(self, *args: Any, **kwargs: Any) -> list[Entry]:
        """:meth:`verify` from async code: waits in a thread, so the event loop serves on."""
        return await asyncio.to_thread(self.verify, *args, **kwargs)

    async def averify_order(self, *args: Any, **kwargs: Any) -> list[Entry]:
        """:meth:`verify_order` from async code."""
        return await asyncio.to_thread(self.verify_order, *args, **kwargs)

    def _settle(self, decided: Callable[[list[Entry]], bool], within: float | None, timeout: float) -> list[Entry]:
        """The journal once nothing is in flight and, with ``within``, the outcome is decided
        or ``within`` seconds passed on the server clock; at most ``timeout`` real seconds."""
        if within is not None and within < 0:
            raise ValueError(f"verify: within must be >= 0, got {within}")
        real_deadline = time.monotonic() + max(0.0, min(timeout, MAX_TIMEOUT))
        clock_deadline = None if within is None else self.clock.now() + within
        activity = self.session.activity
        while True:
            with activity.condition:
                idle = activity.in_flight == 0
            entries = self.session.journal.entries()
            if idle and (clock_deadline is None or decided(entries) or self.clock.now() >= clock_deadline):
                return entries
            left = real_deadline - time.monotonic()
            if left <= 0:
                return entries
            activity.wait(min(0.02, left))


def _bounds(count: int | None, at_least: int | None, at_most: int | None) -> tuple[int, int | float]:
    for name, value in (("count", count), ("at_least", at_least), ("at_most", at_most)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"verify: {name} must be an integer >= 0, got {value!r}")
    if count is not None:
        if at_least is not None or at_most is not None:
            raise ValueError("verify: give count, or at_least and/or at_most, not both")
        return count, count
    if at_least is None and at_most is None:
        return 1, float("inf")
    low = at_least or 0
    high: int | float = float("inf") if at_most is None else at_most
    if low > high:
        # a rule JSON Schema cannot state: the contract names it x-sfmock-bounds
        raise ValueError(f"verify: at_least ({low}) is more than at_most ({at_most}) (rule: x-sfmock-bounds)")
    return low, high


def _describe_bounds(low: int, high: int | float) -> str:
    if low == high:
        return f"exactly {low} request{'s' if low != 1 else ''}"
    if high == float("inf"):
        return f"at least {low}"
    if low == 0:
        return f"at most {int(high)}"
    return f"between {low} and {int(high)}"


def _in_order(patterns: list[Pattern], entries: list[Entry]) -> list[Entry]:
    found: list[Entry] = []
    for entry in entries:
        if len(found) == len(patterns):
            break
        if not patterns[len(found)].differences(entry):
            found.append(entry)
    return found


def _line(entry: Entry) -> str:
    fault = f" [{entry.fault}]" if entry.fault else ""
    status = entry.status if entry.status is not None else entry.outcome
    return f"#{entry.id} {entry.method} {entry.path} -> {status}{fault}"


def _near_miss_failure(head: str, pattern: Pattern, candidates: list[Entry]) -> VerificationFailed:
    scored = [(e, pattern.differences(e)) for e in candidates]
    scored.sort(key=lambda pair: (sum(_WEIGHT.get(d.field, 1) for d in pair[1]), -pair[0].id))
    closest = [(e, d) for e, d in scored if d][:NEAR_MISSES]
    if not closest:
        return VerificationFailed(head + "\nno other requests were recorded")
    lines = [f"  {_line(e)}: " + "; ".join(str(d) for d in diffs) for e, diffs in closest]
    return VerificationFailed("\n".join([head, "closest near misses:", *lines]), closest)
