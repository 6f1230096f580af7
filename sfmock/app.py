"""Building the ASGI app: the API, the image host, and the gateway's 404/405 answers."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sfmock._version import __version__
from sfmock.chaos.codecs import ENTRIES, SCENARIOS
from sfmock.chaos.control import CONTROL_PREFIX, Control
from sfmock.chaos.faults import FaultEngine, Scenario
from sfmock.chaos.journal import Entry, Journal
from sfmock.chaos.metrics import Metrics
from sfmock.chaos.page import Page
from sfmock.chaos.pipeline import Pipeline, Sleep
from sfmock.chaos.sessions import Sessions, SessionState
from sfmock.chaos.verify import Pattern, Verifier, hide_frame
from sfmock.clock import Clock, ScopedClock, ShiftedClock, VirtualClock
from sfmock.config import Settings
from sfmock.contract.openapi import Contract, load_contract
from sfmock.errors import ApiError
from sfmock.fidelity.replay import Recordings, ReplayGenerator
from sfmock.service.accounts import Authenticator, KeyRegistry, OpenAuthenticator
from sfmock.service.admission import Admission
from sfmock.service.api import Api
from sfmock.service.chat import CHAT_PATH, ChatRoute
from sfmock.service.direct import DirectRoute
from sfmock.service.generation import Generator
from sfmock.service.imagehost import ImageHost
from sfmock.service.legacy import GENERATION_PATH, LEGACY_ROUTE
from sfmock.service.lifecycle import Lifecycle, SessionEpoch
from sfmock.service.origins import Origins
from sfmock.service.responses import METHOD_NOT_ALLOWED, NOT_FOUND, json_response
from sfmock.service.rule_errors import RuleWording
from sfmock.service.signing import UrlSigner
from sfmock.state.memory import MemoryStore
from sfmock.state.open import open_store
from sfmock.state.tally import Tally

__all__ = ["FakeApp", "create_app", "serving_secrets"]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    authenticator: Authenticator | None = None,
    contract: Contract | None = None,
    sleep: Sleep = asyncio.sleep,
) -> FakeApp:
    """The fake SiliconFlow service as an ASGI app.

    ``clock`` defaults to the wall clock, movable through the control API (or a frozen
    one with ``settings.frozen_clock``); pass a :class:`~sfmock.VirtualClock` to move time
    by hand. ``authenticator`` defaults to the accounts of ``settings``, or to accepting
    any bearer token when it declares none. ``sleep`` is what faults wait with.
    """
    settings = settings or Settings()
    store = open_store(settings.store, open_mode=settings.accounts is None)
    # the journal bytes and open-mode accounts of every session together, bounded for the server
    tallies = (Tally(settings.journal_max_bytes), Tally(settings.max_open_accounts))
    if isinstance(store, MemoryStore):
        store.journal_tally = tallies[0]
    if clock is None:
        frozen = settings.frozen_clock
        clock = store.clock(lambda: VirtualClock(time.time()) if frozen else ShiftedClock(), frozen=frozen)
    contract = contract or load_contract()
    seed = settings.seed
    signer = UrlSigner(settings.signing_key, ttl=settings.url_ttl, token=settings.url_token)
    generator = Generator(
        contract=contract,
        signer=signer,
        base_url=settings.image_base_url,
        image_prefix=settings.image_prefix,
        object_names=settings.object_names,
    )
    pictures: dict[str, bytes] = {}
    if settings.replay is not None:
        generator = ReplayGenerator(
            contract=contract,
            signer=signer,
            base_url=settings.image_base_url,
            image_prefix=settings.image_prefix,
            object_names=settings.object_names,
            recordings=Recordings(settings.replay, settings.replay_match),
            fallback=settings.replay_miss == "fake",
            pictures=pictures,
        )
    lifecycle = Lifecycle(settings.retire, epoch=store.epoch(clock.now()))  # one for every process of a store
    scoped = ScopedClock(clock)  # what the service reads: the time of the session being served
    configured = bool(settings.image_public_url or settings.public_url)
    origins = Origins(
        image_port=settings.image_socket_port,
        configured=configured,
        # bound off loopback with no public URL, this server's own address (0.0.0.0, say)
        # means nothing to a client: image URLs follow the Host the client used instead
        from_host=not configured and not is_loopback(settings.host),
    )
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
        max_accounts=settings.max_open_accounts if settings.accounts is None else None,
        balance_status=settings.balance_status,
        dialect=settings.dialect,
        rate_limit_codes=settings.rate_limit_codes,
        book=store.book(None),
        tally=None if store.shared or settings.accounts is not None else tallies[1],
    )
    api = Api(
        contract=contract,
        generator=generator,
        authenticator=authenticator,
        admission=admission,
        clock=scoped,
        rng=random.Random(None if seed is None else f"{seed}:generation"),
        strict=settings.strict,
        max_body_bytes=settings.max_body_bytes,
        origins=origins,
        lifecycle=lifecycle,
        unknown_fields=settings.unknown_fields,
        invalid_parameter_code=settings.invalid_parameter_code,
        wording=RuleWording(settings.range_errors, settings.size_errors),
    )
    host = ImageHost(
        signer,
        scoped,
        generator.max_pixels,
        pictures,
        content_type=settings.image_content_type,
        ranges=settings.byte_ranges == "s3",
    )
    scenario = settings.scenario or Scenario()

    def new_session(name: str | None) -> SessionState:
        own = admission if name is None else admission.fresh(store.book(name), owner=name)
        engine = FaultEngine(seed=seed, faults=store.faults(name, scenario, SCENARIOS))
        size, most = settings.journal_size, settings.journal_max_bytes
        journal = Journal(size, max_bytes=most, log=store.log(name, ENTRIES, size=size, max_bytes=most))
        if name is None:
            retired = lifecycle
        else:  # the run's start and schedule, and only the models this session's faults retired
            epoch = SessionEpoch(lifecycle.epoch, store.epoch(clock.now(), name))
            retired = Lifecycle(settings.retire, epoch=epoch)
        own_clock = clock if name is None else store.session_clock(name, clock)
        return SessionState(
            name=name, journal=journal, engine=engine, admission=own, lifecycle=retired, clock=own_clock
        )

    sessions = Sessions(new_session, store=store, tallies=tallies)
    metrics = Metrics(contract.models, rules=[rule.name for rule in scenario.rules])
    control = Control(
        sessions=sessions,
        lifecycle=lifecycle,
        clock=clock,
        scenario=scenario,
        token=control_token(settings),
        version=__version__,
        max_body_bytes=settings.control_max_body_bytes,
        host_names=host_names(settings),
        metrics=metrics,
        image_base=lambda request: origins.image_base(request) or settings.image_base_url,
    )
    page = Page(control=control, authenticator=authenticator, max_pixels=generator.max_pixels)
    routes = [
        Route(GENERATION_PATH, api.generate, methods=["POST"]),  # served by DirectRoute, 405 for others
        Route(LEGACY_ROUTE, api.text_to_image, methods=["POST"]),
        Route(CHAT_PATH, ChatRoute(api).complete, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/user/info", api.user_info, methods=["GET"]),
        Route(settings.image_prefix + "{object}", host.download, methods=["GET"]),  # and DirectRoute
        *control.routes(),
        *page.routes(),
    ]
    trace_rng = random.Random(None if seed is None else f"{seed}:trace")
    direct = [
        DirectRoute(methods=["POST"], path=GENERATION_PATH, endpoint=api.generate),
        DirectRoute(
            methods=["GET", "HEAD"],
            path=settings.image_prefix,
            endpoint=host.download,
            param="object",
            shadowed=[route.path for route in routes if isinstance(route, Route)],
        ),
    ]

    def pipeline(router: ASGIApp) -> Pipeline:
        return Pipeline(
            router,
            rng=trace_rng,
            sessions=sessions,
            metrics=metrics,
            clock=scoped,
            authenticator=authenticator,
            sleep=sleep,
            max_body_bytes=settings.max_body_bytes,
            control_prefix=CONTROL_PREFIX,
            store_prefix=settings.image_prefix,
            lifecycle=lifecycle,
            dialect=settings.dialect,
            rate_limit_codes=settings.rate_limit_codes,
            store=store,
            direct=direct,
        )

    app = FakeApp(
        routes=routes,
        pipeline=pipeline,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.contract = contract
    app.state.admission = admission
    app.state.sessions = sessions
    app.state.journal = sessions.default.journal
    app.state.faults = sessions.default.engine
    app.state.lifecycle = lifecycle
    app.state.control = control
    app.state.metrics = metrics
    app.state.store = store
    return app


class FakeApp(Starlette):
    """The Starlette app, plus verification (:meth:`verify`, :meth:`verify_order`), and it
    notes the connection's transport.

    Every HTTP request goes through one :class:`~sfmock.chaos.pipeline.Pipeline` (made by
    ``pipeline`` around the router and its exception handlers) in place of Starlette's
    middleware stack: the pipeline answers every failure itself.

    Faults that drop or cut a connection need the transport, and only the server's own
    ``send`` leads to it (uvicorn's exposes ``transport``), so this is the one place to look.
    """

    def __init__(self, *, pipeline: Callable[[ASGIApp], Pipeline], **options: Any) -> None:
        super().__init__(**options)
        self._make_pipeline = pipeline
        self.pipeline: Pipeline | None = None

    def build_middleware_stack(self) -> ASGIApp:
        handlers = {key: value for key, value in self.exception_handlers.items() if key not in (500, Exception)}
        self.pipeline = self._make_pipeline(ExceptionMiddleware(self.router, handlers=handlers, debug=self.debug))
        return self.pipeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            state = scope.setdefault("state", {})
            if transport is not None or "transport" not in state:  # a Recorder outside may have noted it
                state["transport"] = transport
            stack = self.middleware_stack
            if stack is not None:  # what Starlette's own __call__ does once it is built, one frame less
                scope["app"] = self
                await stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def verifier(self, session: str | None = None) -> Verifier:
        """Verifications over the journal of ``session`` (the default one for ``None``)."""
        sessions: Sessions = self.state.sessions
        state = sessions.get(session)
        return Verifier(state, state.clock)

    def verify(
        self, pattern: Pattern | Mapping[str, Any] | None = None, *, session: str | None = None, **options: Any
    ) -> list[Entry]:
        """Count requests matching a pattern: see :meth:`sfmock.chaos.verifyVerifier.verify`."""
        __tracebackhide__ = hide_frame
        return self.verifier(session).verify(pattern, **options)

    def verify_order(
        self, *patterns: Pattern | Mapping[str, Any], session: str | None = None, **options: Any
    ) -> list[Entry]:
        """Requests matching patterns in order: see :meth:`sfmock.chaos.verifyVerifier.verify_order`."""
        __tracebackhide__ = hide_frame
        return self.verifier(session).verify_order(*patterns, **options)


def serving_secrets(settings: Settings) -> tuple[str, str | None]:
    """(signing key, control token) every worker of one server must share: the
    configured ones, else drawn once here (kept in memory, never written anywhere)."""
    return settings.signing_key or secrets.token_urlsafe(32), control_token(settings)


def control_token(settings: Settings) -> str | None:
    """The control API's token: the configured one, or a fresh one off loopback."""
    if settings.control_token is not None:
        return settings.control_token
    if is_loopback(settings.host):
        return None
    return secrets.token_urlsafe(18)


def host_names(settings: Settings) -> set[str]:
    """The names the control API answers to in ``Host`` (IP literals always pass)."""
    names = {"localhost", settings.host}
    for url in (settings.public_url, settings.image_public_url):
        if url:
            names.add(urlsplit(url).hostname or "localhost")
    return names


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host in ("localhost", ""):
        return True
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
