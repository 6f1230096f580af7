"""The control API under ``/_sfmock/``: health, reset, scenario, clock and journal.

Documented in the contract like every route. When the server listens on anything but
loopback, every call needs the ``X-Sfmock-Token`` header.
"""

from __future__ import annotations

import hmac
import math
import time
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .admission import Admission
from .clock import Clock
from .errors import ConfigError
from .faults import FaultEngine, Scenario
from .journal import Journal
from .lifecycle import Lifecycle
from .responses import json_response
from .schemas import load_yaml

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


class Control:
    """The state a test may inspect or reset, behind a small HTTP API."""

    def __init__(
        self,
        *,
        engine: FaultEngine,
        journal: Journal,
        admission: Admission,
        lifecycle: Lifecycle,
        clock: Clock,
        scenario: Scenario,
        token: str | None,
        version: str,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.admission = admission
        self.lifecycle = lifecycle
        self.clock = clock
        self.initial_scenario = scenario
        self.token = token
        self.version = version

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
            if self.token is not None:
                given = request.headers.get(TOKEN_HEADER, "")
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return _error(401, f"the control API needs the {TOKEN_HEADER} header with the server's token")
            response: Response = await handler(request)
            return response

        return guarded

    def reset_all(self) -> None:
        """Quotas, balances, journal, faults, clock and model retirements back to how the server started."""
        self.admission.reset()
        self.journal.clear()
        self.engine.replace(self.initial_scenario)
        reset = getattr(self.clock, "reset", None)
        if reset is not None:
            reset()
        self.lifecycle.reset(self.clock.now())

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
            try:
                document = load_yaml(await request.body())
                self.engine.replace(Scenario.from_document(document if document is not None else {}, "scenario"))
            except yaml.YAMLError as exc:
                return _error(400, f"scenario: not valid YAML or JSON: {exc}")
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
            try:
                command = load_yaml(await request.body()) or {}
            except yaml.YAMLError:
                command = None
            if not isinstance(command, dict) or len(command) != 1 or not set(command) <= {"advance", "set"}:
                return _error(400, 'clock: expected {"advance": SECONDS} or {"set": UNIX_TIME}')
            ((verb, value),) = command.items()
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return _error(400, f"clock: {verb} needs a number, got {value!r}")
            if verb == "advance" and value < 0:
                return _error(400, "clock: advance needs a number >= 0 (use set to go back)")
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
        for name, kind in _FILTERS.items():
            if name in request.query_params:
                try:
                    filters[name] = kind(request.query_params[name])
                except ValueError:
                    return _error(400, f"journal: {name} must be {kind.__name__}")
        entries = self.journal.entries(**filters)
        return json_response(
            {
                "entries": [e.to_json() for e in entries],
                "count": len(entries),
                "size": self.journal.size,
                "evicted": self.journal.dropped,
            }
        )


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)
