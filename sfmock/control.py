"""The control API under ``/_sfmock/``: health, reset, scenario, clock, journal, verify.

Documented in the contract like every route. When the server listens on anything but
loopback, every call needs the ``X-Sfmock-Token`` header. A call with the
``X-Sfmock-Session`` header acts on that session's journal, scenario and counters.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from typing import Any

import anyio.to_thread
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .clock import Clock
from .errors import ConfigError
from .faults import Scenario
from .metrics import CONTENT_TYPE, Metrics
from .responses import json_response
from .schemas import load_yaml
from .sessions import SessionError, Sessions, SessionState, session_name
from .verify import MAX_TIMEOUT, VerificationFailed, Verifier

__all__ = ["CONTROL_PREFIX", "TOKEN_HEADER", "Control"]

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
}
_VERIFY_KEYS = ("pattern", "count", "at_least", "at_most", "order", "within", "timeout")


class Control:
    """The state a test may inspect or reset, behind a small HTTP API."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        clock: Clock,
        scenario: Scenario,
        token: str | None,
        version: str,
        metrics: Metrics,
    ) -> None:
        self.metrics = metrics
        self.sessions = sessions
        self.clock = clock
        self.initial_scenario = scenario
        self.token = token
        self.version = version

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

    def reset_all(self) -> None:
        """Quotas, balances, journal, faults and clock back to how the server started;
        named sessions are forgotten."""
        self.sessions.forget_named()
        self.sessions.default.reset(self.initial_scenario)
        reset = getattr(self.clock, "reset", None)
        if reset is not None:
            reset()

    async def health(self, request: Request) -> Response:
        session = _session(request)
        return json_response(
            {
                "status": "ok",
                "version": self.version,
                "time": self.clock.now(),
                "scenario": session.engine.scenario.name,
                "journal": len(session.journal),
            }
        )

    async def reset(self, request: Request) -> Response:
        session = _session(request)
        if session.name is None:
            self.reset_all()
        else:  # one session: its own state only; the shared clock stays where it is
            session.reset(self.initial_scenario)
        return json_response({"status": "reset"})

    async def scenario(self, request: Request) -> Response:
        engine = _session(request).engine
        if request.method == "DELETE":
            engine.replace(Scenario())
        elif request.method == "PUT":
            try:
                document = load_yaml(await request.body())
                engine.replace(Scenario.from_document(document if document is not None else {}, "scenario"))
            except yaml.YAMLError as exc:
                return _error(400, f"scenario: not valid YAML or JSON: {exc}")
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
        if request.method == "POST":
            try:
                command = load_yaml(await request.body()) or {}
            except yaml.YAMLError:
                command = None
            verbs = {"advance", "set", "freeze"}
            if not isinstance(command, dict) or len(command) != 1 or not set(command) <= verbs:
                return _error(400, 'clock: expected {"advance": SECONDS}, {"set": UNIX_TIME} or {"freeze": BOOLEAN}')
            ((verb, value),) = command.items()
            if verb == "freeze":
                return self._freeze(value)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return _error(400, f"clock: {verb} needs a number, got {value!r}")
            if verb == "advance" and value < 0:
                return _error(400, "clock: advance needs a number >= 0 (use set to go back)")
            method = getattr(self.clock, verb, None)
            if method is None:
                return _error(409, "clock: this server's clock cannot be moved")
            method(value)
        return self._clock_json()

    def _freeze(self, value: Any) -> Response:
        if not isinstance(value, bool):
            return _error(400, f"clock: freeze needs true or false, got {value!r}")
        freeze = getattr(self.clock, "freeze", None)
        if freeze is None:
            if value == _frozen(self.clock):
                return self._clock_json()
            return _error(409, "clock: this server's clock cannot be " + ("frozen" if value else "thawed"))
        freeze(value)
        return self._clock_json()

    def _clock_json(self) -> Response:
        now = self.clock.now()
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        controllable = hasattr(self.clock, "advance")
        return json_response({"now": now, "iso": iso, "controllable": controllable, "frozen": _frozen(self.clock)})

    async def verify(self, request: Request) -> Response:
        """``POST /_sfmock/verify``: ``{"pattern": {...}, "count": N}`` or ``{"order": [...]}``."""
        try:
            command = json.loads(await request.body())
        except ValueError:
            command = None
        if not isinstance(command, dict):
            return _error(400, "verify: expected a JSON object with pattern (or order) and count/at_least/at_most")
        unknown = sorted(set(command) - set(_VERIFY_KEYS))
        if unknown:
            return _error(400, f"verify: unknown field {unknown[0]!r}; expected any of {', '.join(_VERIFY_KEYS)}")
        waits: dict[str, Any] = {}
        for name in ("within", "timeout"):
            value = command.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TIMEOUT:
                    return _error(400, f"verify: {name} must be a number of seconds from 0 to {MAX_TIMEOUT:g}")
                waits[name] = float(value)
        verifier = Verifier(_session(request), self.clock)
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
            return verifier.verify(command.get("pattern") or {}, **counts, **waits)

        try:
            entries = await anyio.to_thread.run_sync(run)
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
        for name, kind in _FILTERS.items():
            if name in request.query_params:
                try:
                    filters[name] = kind(request.query_params[name])
                except ValueError:
                    return _error(400, f"journal: {name} must be {kind.__name__}")
        entries = journal.entries(**filters)
        return json_response(
            {
                "entries": [e.to_json() for e in entries],
                "count": len(entries),
                "size": journal.size,
                "evicted": journal.dropped,
            }
        )


def _frozen(clock: Clock) -> bool:
    """Whether time stands still unless moved (a virtual clock, or a frozen server clock)."""
    frozen = getattr(clock, "frozen", None)
    if frozen is not None:
        return bool(frozen)
    return hasattr(clock, "advance")


def _session(request: Request) -> SessionState:
    session: SessionState = request.state.session
    return session


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)
