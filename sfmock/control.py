"""The control API under ``/_sfmock/``: health, reset, scenario, clock and journal.

Documented in the contract like every route. When the server listens on anything but
loopback, every call needs the ``X-Sfmock-Token`` header. Every call is refused when a
browser makes it from another origin (``Origin`` not this server: CSRF) or, over a
socket, names an unexpected ``Host`` (DNS rebinding); bodies are capped.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import math
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .admission import Admission
from .clock import MAX_TIME, Clock
from .documents import DocumentError, load_document
from .errors import ConfigError
from .faults import FaultEngine, Scenario
from .journal import Journal
from .responses import JSON_TYPE, json_response

__all__ = ["CONTROL_PREFIX", "JOURNAL_PAGE_CHARS", "TOKEN_HEADER", "Control"]

JOURNAL_PAGE_CHARS = 4 * 1024 * 1024  # one journal answer holds about this much; page with ?after=

CONTROL_PREFIX = "/_sfmock"
TOKEN_HEADER = "x-sfmock-token"
_FILTERS = {
    "method": str,
    "path": str,
    "status": int,
    "key": str,
    "model": str,
    "fault": str,
    "since": float,
    "limit": int,
    "after": int,
}
_KINDS = {str: "a string", int: "an integer", float: "a number"}


class Control:
    """The state a test may inspect or reset, behind a small HTTP API."""

    def __init__(
        self,
        *,
        engine: FaultEngine,
        journal: Journal,
        admission: Admission,
        clock: Clock,
        scenario: Scenario,
        token: str | None,
        version: str,
        max_body_bytes: int = 256 * 1024,
        host_names: Iterable[str] = (),
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.admission = admission
        self.clock = clock
        self.initial_scenario = scenario
        self.token = token
        self.version = version
        self.max_body_bytes = max_body_bytes
        self.host_names = frozenset(name.lower().strip("[]") for name in host_names) | {"localhost"}

    def routes(self) -> list[Route]:
        p = CONTROL_PREFIX
        return [
            Route(f"{p}/health", self._guard(self.health), methods=["GET"]),
            Route(f"{p}/reset", self._guard(self.reset), methods=["POST"]),
            Route(f"{p}/scenario", self._guard(self.scenario), methods=["GET", "PUT", "DELETE"]),
            Route(f"{p}/clock", self._guard(self.clock_state), methods=["GET", "POST"]),
            Route(f"{p}/journal", self._guard(self.journal_entries), methods=["GET", "DELETE"]),
        ]

    def _guard(self, handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            if self.token is not None:
                given = request.headers.get(TOKEN_HEADER, "")
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return _error(401, f"the control API needs the {TOKEN_HEADER} header with the server's token")
            response: Response = await handler(request)
            return response

        return guarded

    def _refusal(self, request: Request) -> Response | None:
        """403 for a cross-origin browser or an unexpected Host, 413 for a body declared too large."""
        origins = request.headers.getlist("origin")
        if origins and not all(self._local_origin(origin) for origin in origins):
            return _error(403, f"control API: cross-origin request refused (Origin {origins[0][:100]!r})")
        if request.headers.get("sec-fetch-site") == "cross-site":
            return _error(403, "control API: cross-site request refused (Sec-Fetch-Site: cross-site)")
        # over a socket only: DNS rebinding needs a network connection (in-process has none)
        if request.scope.get("state", {}).get("transport") is not None:
            host = request.headers.get("host", "")
            if not self._expected_host(host):
                return _error(403, f"control API: unexpected Host {host[:100]!r} (DNS rebinding?)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            response = _error(413, f"control API: body over the limit of {self.max_body_bytes} bytes")
            response.headers["connection"] = "close"  # the body is not read: the connection cannot go on
            return response
        return None

    def _expected_host(self, host: str) -> bool:
        name = urlsplit(f"//{host}").hostname if host else None
        if name is None:
            return False
        return name in self.host_names or _is_ip(name)

    def _local_origin(self, origin: str) -> bool:
        try:
            name = urlsplit(origin).hostname
        except ValueError:
            return False
        if name is None:  # "null": a sandboxed page or a file
            return False
        return name in self.host_names or (_is_ip(name) and ipaddress.ip_address(name).is_loopback)

    async def _body(self, request: Request) -> bytes | Response:
        """The body, or the 413 answer once it passes the limit (read no further)."""
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    return _error(413, f"control API: body over the limit of {self.max_body_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            return _error(400, "control API: the client went away before its body arrived")
        return b"".join(chunks)

    def reset_all(self) -> None:
        """Quotas, balances, journal, faults and clock back to how the server started."""
        self.admission.reset()
        self.journal.clear()
        self.engine.replace(self.initial_scenario)
        reset = getattr(self.clock, "reset", None)
        if reset is not None:
            reset()

    async def health(self, request: Request) -> Response:
        return json_response(
            {
                "status": "ok",
                "version": self.version,
                "time": self.clock.now(),
                "scenario": self.engine.scenario.name,
                "journal": len(self.journal),
            }
        )

    async def reset(self, request: Request) -> Response:
        self.reset_all()
        return json_response({"status": "reset"})

    async def scenario(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.engine.replace(Scenario())
        elif request.method == "PUT":
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            if not body.strip():  # DELETE clears the scenario; an empty PUT is a mistake
                return _error(400, "scenario: a body is required (a scenario document, YAML or JSON)")
            try:
                # parsing and checking up to 1000 rules takes a while: off the event loop
                self.engine.replace(await run_in_threadpool(_scenario, body))
            except DocumentError as exc:
                return _error(400, f"scenario: {exc}")
            except ConfigError as exc:
                return _error(400, str(exc))
        current = self.engine.scenario
        return json_response(
            {
                "name": current.name,
                "description": current.description,
                **current.source,
                "rules_count": len(current.rules),
            }
        )

    async def clock_state(self, request: Request) -> Response:
        if request.method == "POST":
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            try:
                command = load_document(body)
            except DocumentError:
                command = None
            if not isinstance(command, dict) or len(command) != 1 or not set(command) <= {"advance", "set"}:
                return _error(400, 'clock: expected {"advance": SECONDS} or {"set": UNIX_TIME}')
            ((verb, value),) = command.items()
            problem = _clock_problem(verb, value, self.clock.now())
            if problem is not None:
                return _error(400, f"clock: {problem}")
            method = getattr(self.clock, verb, None)
            if method is None:
                return _error(409, "clock: this server's clock cannot be moved")
            method(value)
        now = self.clock.now()
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return json_response({"now": now, "iso": iso, "controllable": hasattr(self.clock, "advance")})

    async def journal_entries(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.journal.clear()
        filters: dict[str, Any] = {}
        for name in request.query_params:
            if name not in _FILTERS:
                return _error(400, f"journal: unknown filter {name!r}; the filters are {', '.join(_FILTERS)}")
        for name, kind in _FILTERS.items():
            if name in request.query_params:
                try:
                    filters[name] = kind(request.query_params[name])
                except ValueError:
                    return _error(400, f"journal: {name} must be {_KINDS[kind]}")
        for name in ("limit", "after"):
            if name in filters and filters[name] < (1 if name == "limit" else 0):
                return _error(400, f"journal: {name} must be at least {1 if name == 'limit' else 0}")
        if "since" in filters and not math.isfinite(filters["since"]):
            return _error(400, "journal: since must be a finite number")
        # filtering by model and serialising large bodies take a while: off the event loop
        entries = await run_in_threadpool(functools.partial(self.journal.entries, **filters))
        texts, after = await run_in_threadpool(self.journal.serialise, entries, JOURNAL_PAGE_CHARS)
        head = {
            "count": len(texts),
            "size": self.journal.size,
            "evicted": self.journal.dropped,
            "bytes": self.journal.held_bytes,
            "max_bytes": self.journal.max_bytes,
            "next_after": after,
        }
        content = bytes(json_response(head).body)[:-1] + b',"entries":[' + ",".join(texts).encode("utf-8") + b"]}"
        return Response(content, media_type=JSON_TYPE)


def _scenario(body: bytes) -> Scenario:
    document = load_document(body)
    if document is None:  # DELETE clears the scenario; an empty PUT is a mistake
        raise DocumentError("a body is required (a scenario document, YAML or JSON)")
    return Scenario.from_document(document, "scenario")


MAX_ADVANCE = 3_153_600_000  # a century of seconds: what the contract allows one move


def _clock_problem(verb: str, value: Any, now: float) -> str | None:
    """Why ``{verb: value}`` may not move the clock, or ``None``; the clock stays within 0..MAX_TIME."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{verb} needs a number, got {str(value)[:60]!r}"
    if verb == "advance" and not 0 <= value <= MAX_ADVANCE:
        return f"advance needs a number from 0 to {MAX_ADVANCE} (a century; use set to go back)"
    target = now + value if verb == "advance" else value
    if not 0 <= target <= MAX_TIME:
        return f"{verb} {value!r} would put the clock outside 0..{MAX_TIME} (1970 to 9999)"
    return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)
