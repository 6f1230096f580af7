"""Building the ASGI app: the API, the image host, and the gateway's 404/405 answers."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import secrets
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import __version__
from .accounts import KeyRegistry, OpenAuthenticator
from .admission import Admission
from .api import Api
from .auth import Authenticator
from .chaos import ChaosMiddleware, Sleep
from .clock import Clock, ShiftedClock, VirtualClock
from .config import Settings
from .contract import Contract, load_contract
from .control import CONTROL_PREFIX, Control
from .errors import ApiError
from .faults import FaultEngine, Scenario
from .generation import Generator
from .imagehost import ImageHost
from .journal import Journal
from .lifecycle import Lifecycle
from .responses import METHOD_NOT_ALLOWED, NOT_FOUND, json_response
from .signing import UrlSigner
from .tracing import TraceIdMiddleware

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    authenticator: Authenticator | None = None,
    contract: Contract | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """The fake SiliconFlow service as an ASGI app.

    ``clock`` defaults to the wall clock, movable through the control API (or a frozen
    one with ``settings.frozen_clock``); pass a :class:`~sfmock.VirtualClock` to move time
    by hand. ``authenticator`` defaults to the accounts of ``settings``, or to accepting
    any bearer token when it declares none. ``sleep`` is what faults wait with.
    """
    settings = settings or Settings()
    if clock is None:
        clock = VirtualClock(time.time()) if settings.frozen_clock else ShiftedClock()
    contract = contract or load_contract()
    seed = settings.seed
    signer = UrlSigner(settings.signing_key, ttl=settings.url_ttl)
    generator = Generator(
        contract=contract, signer=signer, base_url=settings.base_url, image_prefix=settings.image_prefix
    )
    lifecycle = Lifecycle(settings.retire, started=clock.now())
    if authenticator is None:
        if settings.accounts is None:
            authenticator = OpenAuthenticator(settings.default_balance)
        else:
            authenticator = KeyRegistry(settings.accounts)
    admission = Admission(
        limits=settings.limits,
        model_limits=settings.model_limits,
        prices=settings.prices,
        headers=settings.rate_limit_headers,
        balance_status=settings.balance_status,
        dialect=settings.dialect,
        rate_limit_codes=settings.rate_limit_codes,
    )
    api = Api(
        contract=contract,
        generator=generator,
        authenticator=authenticator,
        admission=admission,
        clock=clock,
        rng=random.Random(None if seed is None else f"{seed}:generation"),
        strict=settings.strict,
        max_body_bytes=settings.max_body_bytes,
        lifecycle=lifecycle,
        unknown_fields=settings.unknown_fields,
        invalid_parameter_code=settings.invalid_parameter_code,
    )
    host = ImageHost(signer, clock, generator.max_pixels)
    scenario = settings.scenario or Scenario()
    engine = FaultEngine(scenario, seed=seed)
    journal = Journal(settings.journal_size)
    control = Control(
        engine=engine,
        journal=journal,
        admission=admission,
        lifecycle=lifecycle,
        clock=clock,
        scenario=scenario,
        token=control_token(settings),
        version=__version__,
    )
    routes = [
        Route("/v1/images/generations", api.generate, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/user/info", api.user_info, methods=["GET"]),
        Route(settings.image_prefix + "{object}", host.download, methods=["GET"]),
        *control.routes(),
    ]
    trace_rng = random.Random(None if seed is None else f"{seed}:trace")
    chaos = Middleware(
        ChaosMiddleware,
        engine=engine,
        journal=journal,
        clock=clock,
        authenticator=authenticator,
        sleep=sleep,
        max_body_bytes=settings.max_body_bytes,
        control_prefix=CONTROL_PREFIX,
        store_prefix=settings.image_prefix,
        lifecycle=lifecycle,
        dialect=settings.dialect,
        rate_limit_codes=settings.rate_limit_codes,
    )
    app = FakeApp(
        routes=routes,
        middleware=[Middleware(TraceIdMiddleware, rng=trace_rng), chaos],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.contract = contract
    app.state.admission = admission
    app.state.lifecycle = lifecycle
    app.state.journal = journal
    app.state.faults = engine
    app.state.control = control
    return app


class FakeApp(Starlette):
    """The Starlette app, plus one thing: it notes the connection's transport.

    Faults that drop or cut a connection need it, and only the server's own ``send``
    leads to it (uvicorn's exposes ``transport``); Starlette wraps ``send`` before any
    middleware sees it, so this is the one place to look.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            owner = getattr(send, "__self__", None)
            scope.setdefault("state", {})["transport"] = getattr(owner, "transport", None)
        await super().__call__(scope, receive, send)


def control_token(settings: Settings) -> str | None:
    """The control API's token: the configured one, or a fresh one off loopback."""
    if settings.control_token is not None:
        return settings.control_token
    if settings.host in ("localhost", "") or _is_loopback(settings.host):
        return None
    return secrets.token_urlsafe(18)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.body, exc.status, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return json_response(METHOD_NOT_ALLOWED, 405, dict(exc.headers or {}))
    return json_response(NOT_FOUND, 404)
