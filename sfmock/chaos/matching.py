"""Choosing a request's fault: what the scenario's rules match on, and the forced one of
the ``X-Sfmock-Fault`` header."""

from __future__ import annotations

import json

from starlette.types import Scope

from sfmock.chaos.fault_header import parse_fault_header
from sfmock.chaos.faults import FAULT_HEADER, Action, Fault, FaultEngine, RequestInfo, Scenario
from sfmock.clock import Clock
from sfmock.errors import ApiError
from sfmock.service.accounts import Authenticator
from sfmock.service.auth import bearer_token
from sfmock.service.legacy import GENERATION_PATH, legacy_model
from sfmock.service.lifecycle import Lifecycle

__all__ = ["FaultMatcher"]


class FaultMatcher:
    """Picks the fault for a request from its session's engine (``None``: no fault)."""

    def __init__(self, *, authenticator: Authenticator, clock: Clock, lifecycle: Lifecycle) -> None:
        self.authenticator = authenticator
        self.clock = clock
        self.lifecycle = lifecycle

    @staticmethod
    def forced(headers: dict[str, str]) -> Action | None:
        """The fault the ``X-Sfmock-Fault`` header forces, if any; ``ValueError`` naming the
        problem when it is malformed."""
        return parse_fault_header(headers[FAULT_HEADER]) if FAULT_HEADER in headers else None

    def choose(
        self, engine: FaultEngine, scope: Scope, headers: dict[str, str], body: bytes, forced: Action | None
    ) -> Fault | None:
        """The fault to perform (``forced``, else the first rule that matches), or ``None``."""
        return engine.select(lambda scenario: self.info(scenario, scope, headers, body), forced)

    def info(self, scenario: Scenario, scope: Scope, headers: dict[str, str], body: bytes) -> RequestInfo:
        """What the rules match on; the account, model and elapsed time only when a rule asks
        (``scenario`` is the one in force, read once for the request)."""
        needs = scenario.needs
        account = model = None
        old_route = legacy_model(scope["path"])
        if "account" in needs:
            try:
                account = self.authenticator.authenticate(headers.get("authorization")).id
            except ApiError:
                account = None
        if "model" in needs:
            try:
                parsed = json.loads(body)
                model = parsed.get("model") if isinstance(parsed, dict) else None
            except ValueError:
                model = None
            model = old_route if old_route is not None else model
        return RequestInfo(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            key=bearer_token(headers.get("authorization")),
            account=account,
            model=model if isinstance(model, str) else None,
            elapsed=self.clock.now() - self.lifecycle.started if "after" in needs else 0.0,
            aliases=(GENERATION_PATH,) if old_route is not None else (),
        )
