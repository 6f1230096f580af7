"""The control API under ``/_sfmock/``: health, reset, scenario, clock, journal, verify.

Documented in the contract like every route. When the server listens on anything but
loopback, every call needs the ``X-Sfmock-Token`` header. Every call is refused when a
browser makes it from another origin (``Origin`` not this server: CSRF) or, over a
socket, names an unexpected ``Host`` (DNS rebinding); bodies are capped. A call with
the ``X-Sfmock-Session`` header acts on that session's journal, scenario, counters and
clock; without it, the clock is the server's, which every session's follows.
"""

from __future__ import annotations

import functools
import hmac
import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sfmock.chaos.faults import Scenario
from sfmock.chaos.inbound import repeated_own_header
from sfmock.chaos.metrics import CONTENT_TYPE, Metrics
from sfmock.chaos.sessions import SessionError, Sessions, SessionState, session_name
from sfmock.chaos.verify import VerificationFailed, Verifier
from sfmock.clock import MAX_TIME, Clock, stands_still
from sfmock.documents import DocumentError, load_document, loads_json
from sfmock.errors import ConfigError
from sfmock.globs import glob_problem
from sfmock.service.lifecycle import Lifecycle
from sfmock.service.responses import JSON_TYPE, json_response
from sfmock.service.sameorigin import expected_host, local_origin
from sfmock.wording import unknown as unknown_name

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
_VERIFY_KEYS = ("pattern", "count", "at_least", "at_most", "order", "within", "timeout")


class Control:
    """The state a test may inspect or reset, behind a small HTTP API."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        lifecycle: Lifecycle,
        clock: Clock,
        scenario: Scenario,
        token: str | None,
        version: str,
        metrics: Metrics,
        max_body_bytes: int = 256 * 1024,
        host_names: Iterable[str] = (),
        image_base: Callable[[Request], str] | None = None,
    ) -> None:
        self.metrics = metrics
        self.sessions = sessions
        self.lifecycle = lifecycle
        self.clock = clock
        self.initial_scenario = scenario
        self.token = token
        self.version = version
        self.max_body_bytes = max_body_bytes
        self.host_names = frozenset(name.lower().strip("[]") for name in host_names) | {"localhost"}
        self.image_base = image_base  # where this request's image URLs would point

    def routes(self) -> list[Route]:
        p = CONTROL_PREFIX
        return [
            Route(f"{p}/health", self.guard(self.health), methods=["GET"]),
            Route(f"{p}/reset", self.guard(self.reset), methods=["POST"]),
            Route(f"{p}/scenario", self.guard(self.scenario), methods=["GET", "PUT", "DELETE"]),
            Route(f"{p}/clock", self.guard(self.clock_state), methods=["GET", "POST"]),
            Route(f"{p}/journal", self.guard(self.journal_entries), methods=["GET", "DELETE"]),
            Route(f"{p}/verify", self.guard(self.verify), methods=["POST"]),
            Route(f"{p}/metrics", self.guard(self.metrics_text), methods=["GET"]),
        ]

    def guard(self, handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            repeated = repeated_own_header(request.scope, dict(request.headers))
            if repeated is not None:
                return _error(400, repeated)
            if self.token is not None:
                given = request.headers.get(TOKEN_HEADER, "")
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return _error(401, f"the control API needs the {TOKEN_HEADER} header with the server's token")
            try:
                session = self.sessions.get(session_name(request.headers))
            except SessionError as exc:
                return _error(400, str(exc))
            request.state.session = session
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
        return expected_host(host, self.host_names)

    def _local_origin(self, origin: str) -> bool:
        return local_origin(origin, self.host_names)

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

    def reset_all(self, later: float = 0.0) -> None:
        """Quotas, balances, journal, faults, clock and model retirements back to how the
        server started; named sessions are forgotten. ``later``: the clock starts that many
        seconds after its start instead, and a retirement at a set time moves with it (a
        check's next run, a day on: the service as configured, met on another day)."""
        self.sessions.forget_named()
        self.sessions.default.reset(self.initial_scenario)
        self.sessions.installed(self.sessions.default, 0)
        reset = getattr(self.clock, "reset", None)
        if reset is not None:
            reset()
            if later:
                getattr(self.clock, "advance")(later)  # noqa: B009 (a clock with reset moves: VirtualClock)
        self.lifecycle.reset(self.clock.now(), shift=later if reset is not None else 0.0)

    async def health(self, request: Request) -> Response:
        session = _session(request)
        return json_response(
            {
                "status": "ok",
                "version": self.version,
                "time": session.clock.now(),
                "scenario": session.engine.scenario.name,
                "journal": len(session.journal),
                **({} if self.image_base is None else {"images": self.image_base(request)}),
            }
        )

    async def reset(self, request: Request) -> Response:
        session = _session(request)
        if session.name is None:
            self.reset_all()
        else:  # one session: its own state only, its clock back on the server's
            session.reset(self.initial_scenario)
            self.sessions.installed(session, 0)
        return json_response({"status": "reset"})

    async def scenario(self, request: Request) -> Response:
        session = _session(request)
        engine = session.engine
        if request.method == "DELETE":
            engine.replace(Scenario())
            self.sessions.installed(session, 0)
        elif request.method == "PUT":
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            if not body.strip():  # DELETE clears the scenario; an empty PUT is a mistake
                return _error(400, "scenario: a body is required (a scenario document, YAML or JSON)")
            try:
                # parsing and checking up to 1000 rules takes a while: off the event loop
                engine.replace(await run_in_threadpool(_scenario, body))
                self.sessions.installed(session, len(body))  # may push out the least recently used
            except DocumentError as exc:
                return _error(400, f"scenario: {exc}")
            except ConfigError as exc:
                return _error(400, str(exc))
        current = engine.scenario
        return json_response(
            {
                "name": current.name,
                "description": current.description,
                **current.source,
                "rules_count": len(current.rules),
            }
        )

    async def clock_state(self, request: Request) -> Response:
        """``GET``, ``POST /_sfmock/clock``: the server's clock, or with the session header
        that session's (the server's plus its own moves)."""
        clock = _session(request).clock
        if request.method == "POST":
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            try:
                command = load_document(body)
            except DocumentError as exc:  # the problem named, as for every control body
                return _error(400, f"clock: {exc}")
            verbs = {"advance", "set", "freeze"}
            if not isinstance(command, dict) or len(command) != 1 or not set(command) <= verbs:
                return _error(400, 'clock: expected {"advance": SECONDS}, {"set": UNIX_TIME} or {"freeze": BOOLEAN}')
            ((verb, value),) = command.items()
            if verb == "freeze":
                return self._freeze(clock, value)
            problem = _clock_problem(verb, value, clock.now())
            if problem is not None:
                # a move the contract allows that this clock's time cannot take conflicts
                # with the state, as a frozen clock's does: 409; anything else is malformed
                return _error(409 if problem.endswith(_PAST_9999) else 400, f"clock: {problem}")
            method = getattr(clock, verb, None)
            if method is None or not hasattr(self.clock, "advance"):  # a session's moves as the server's
                return _error(409, "clock: this server's clock cannot be moved")
            method(value)
        return self._clock_json(clock)

    def _freeze(self, clock: Clock, value: Any) -> Response:
        if not isinstance(value, bool):
            return _error(400, f"clock: freeze needs true or false, got {value!r}")
        freeze = getattr(clock, "freeze", None)
        if freeze is None or not hasattr(self.clock, "advance"):
            if value == stands_still(clock):
                return self._clock_json(clock)
            return _error(409, "clock: this server's clock cannot be " + ("frozen" if value else "thawed"))
        if not value and clock is not self.clock and stands_still(self.clock):
            # thawed, a session's clock follows the server's: that one would still stand still
            return _error(
                409,
                "clock: this session's clock follows the server's, which stands still: thaw the server's "
                "(POST /_sfmock/clock without X-Sfmock-Session) if it can be, or reset the session",
            )
        freeze(value)
        return self._clock_json(clock)

    def _clock_json(self, clock: Clock) -> Response:
        now = clock.now()
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        controllable = hasattr(self.clock, "advance")
        return json_response({"now": now, "iso": iso, "controllable": controllable, "frozen": stands_still(clock)})

    async def verify(self, request: Request) -> Response:
        """``POST /_sfmock/verify``: ``{"pattern": {...}, "count": N}`` or ``{"order": [...]}``."""
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        try:  # patterns are compared, never stored: any integer may stand in one
            command = loads_json(body, max_integer=None)
        except DocumentError as exc:
            return _error(400, f"verify: {exc}")
        if not isinstance(command, dict):
            return _error(400, "verify: expected a JSON object with pattern (or order) and count/at_least/at_most")
        unknown = sorted(set(command) - set(_VERIFY_KEYS))
        if unknown:
            return _error(400, "verify: " + unknown_name("field", unknown[0], _VERIFY_KEYS))
        waits: dict[str, Any] = {}
        for name in ("within", "timeout"):
            value = command.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= HTTP_MAX_WAIT:
                    return _error(400, f"verify: {name} must be a number of seconds from 0 to {HTTP_MAX_WAIT:g}")
                waits[name] = float(value)
        for name in ("count", "at_least", "at_most"):
            value = command.get(name, 0)
            if isinstance(value, float) and value.is_integer():
                value = command[name] = int(value)  # 3.0 is the integer 3 in JSON
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                return _error(400, f"verify: {name} must be an integer from 0 to {MAX_COUNT}")
        if "order" in command and not isinstance(command["order"], list):
            return _error(400, "verify: order must be a list of patterns")
        verifier = Verifier(_session(request), _session(request).clock)
        order = command.get("order")
        if order is not None and (not isinstance(order, list) or "pattern" in command):
            return _error(400, "verify: order must be a list of patterns, and comes without pattern")

        def run() -> list[Any]:
            if order is not None:
                extra = sorted(set(command) - {"order", "within", "timeout"})
                if extra:
                    raise ValueError(f"verify: {extra[0]} does not apply to order")
                return verifier.verify_order(*order, **waits)
            counts = {k: command[k] for k in ("count", "at_least", "at_most") if command.get(k) is not None}
            pattern = command.get("pattern")
            return verifier.verify({} if pattern is None else pattern, **counts, **waits)

        try:
            entries = await run_in_threadpool(run)
        except VerificationFailed as failed:
            return json_response(failed.to_json())
        except ValueError as exc:
            return _error(400, str(exc) if str(exc).startswith("verify") else f"verify: {exc}")
        return json_response({"ok": True, "count": len(entries), "entries": [e.to_json() for e in entries]})

    async def metrics_text(self, request: Request) -> Response:
        """``GET /_sfmock/metrics``: Prometheus text format, all sessions together."""
        return Response(self.metrics.render(), headers={"content-type": CONTENT_TYPE})

    async def journal_entries(self, request: Request) -> Response:
        journal = _session(request).journal
        if request.method == "DELETE":
            journal.clear()
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
        for name in ("path", "fault"):
            problem = glob_problem(filters.get(name, ""))
            if problem is not None:
                return _error(400, f"journal: {name}: {problem}")
        for name in ("limit", "after"):
            if name in filters and filters[name] < (1 if name == "limit" else 0):
                return _error(400, f"journal: {name} must be at least {1 if name == 'limit' else 0}")
        if "since" in filters and not math.isfinite(filters["since"]):
            return _error(400, "journal: since must be a finite number")
        # filtering by model and serialising large bodies take a while: off the event loop
        entries = await run_in_threadpool(functools.partial(journal.entries, **filters))
        texts, after = await run_in_threadpool(journal.serialise, entries, JOURNAL_PAGE_CHARS)
        head = {
            "count": len(texts),
            "size": journal.size,
            "evicted": journal.dropped,
            "bytes": journal.held_bytes,
            "max_bytes": journal.max_bytes,
            "next_after": after,
        }
        content = bytes(json_response(head).body)[:-1] + b',"entries":[' + ",".join(texts).encode("utf-8") + b"]}"
        return Response(content, media_type=JSON_TYPE)


def _scenario(body: bytes) -> Scenario:
    document = load_document(body)
    if document is None:  # DELETE clears the scenario; an empty PUT is a mistake
        raise DocumentError("a body is required (a scenario document, YAML or JSON)")
    return Scenario.from_document(document, "scenario")


HTTP_MAX_WAIT = 5.0  # seconds a verify call over HTTP may wait (within, timeout); Python allows more
MAX_COUNT = 1_000_000  # a count no journal can reach is a mistake
MAX_ADVANCE = 3_153_600_000  # a century of seconds: what the contract allows one move


def _as_json(value: Any) -> str:
    """A body's value as the body wrote it (``null``, ``true``, ``"10"``), not as Python names it."""
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except ValueError:  # NaN and the like, refused elsewhere but named here
        shown = str(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _clock_problem(verb: str, value: Any, now: float) -> str | None:
    """Why ``{verb: value}`` may not move the clock, or ``None``; the clock stays within 0..MAX_TIME."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{verb} needs a number, got {_as_json(value)}"
    if verb == "advance" and not 0 <= value <= MAX_ADVANCE:
        return f"advance needs a number from 0 to {MAX_ADVANCE} (a century; use set to go back)"
    if verb == "set" and not 0 <= value <= MAX_TIME:
        return f"set {value!r} would put the clock outside 0..{MAX_TIME} (1970 to 9999)"
    if verb == "advance" and not now + value <= MAX_TIME:
        return f"advance {value!r} from {now:.0f} would put the clock{_PAST_9999}"
    return None


_PAST_9999 = " past the end of 9999"


def _session(request: Request) -> SessionState:
    session: SessionState = request.state.session
    return session


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)
