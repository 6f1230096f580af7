"""Client checks: drive a user's client against the fake under generated server behaviour.

``check_client(fn)`` runs ``fn`` (one image generation through the user's client) again
and again, each time against a *schedule*: the outcomes the fake gives to successive
generation requests (``["503", "timeout", "ok"]``). Everything runs in-process on a
virtual clock, so a client's back-off sleeps cost nothing. After each run, invariants
read the transcript; the first schedule that breaks one is shrunk by Hypothesis to the
smallest that still does, and reported with its transcript, seed and a replay line.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import httpx
from hypothesis import HealthCheck, find
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import NoSuchExample

from .app import create_app
from .clock import VirtualClock
from .config import Settings
from .contract import load_contract
from .errors import SfmockError
from .faults import Action, Rule, Scenario
from .signing import UrlSigner
from .strategies import OUTCOMES, schedules
from .transports import Exchange, InProcess, Transport, requests_adapter
from .validation import RequestValidator

__all__ = ["INVARIANTS", "CheckReport", "ClientCheckFailed", "ClientContext", "Run", "check_client"]

GENERATE = "/v1/images/generations"
STORE = "/default/outputs/"
BASE = "http://sfmock.test"
TRANSIENT = frozenset({"429", "500", "503", "504", "timeout", "dropped"})
PERMANENT = frozenset({"400", "401", "403", "404"})
SUCCESS = frozenset({"ok", "slow", "extra-fields"})


@dataclass
class ClientContext:
    """What the client under test is given: where the fake is, a key, and what to ask."""

    base_url: str
    api_key: str
    request: dict[str, Any]
    clock: VirtualClock
    inprocess: InProcess
    slept: list[float] = field(default_factory=list)

    def http_client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` wired to the fake (for the API and the image downloads)."""
        return httpx.Client(transport=Transport(self.inprocess), **kwargs)

    def requests_session(self) -> Any:
        """A ``requests.Session`` wired to the fake."""
        import requests

        session = requests.Session()
        session.mount("http://", requests_adapter(self.inprocess))
        return session

    def sleep(self, seconds: float) -> None:
        """Sleep on the virtual clock (``time.sleep`` is routed here during a check too)."""
        self.slept.append(seconds)
        self.clock.advance(max(0.0, seconds))


@dataclass(frozen=True, kw_only=True)
class Run:
    """One run of the client under one schedule: what it sent, got, returned or raised."""

    schedule: tuple[str, ...]
    exchanges: tuple[Exchange, ...]
    result: Any
    error: BaseException | None
    api_key: str
    max_attempts: int
    min_attempts: int

    @property
    def generations(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST" and e.path == GENERATE]

    @property
    def downloads(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.startswith(STORE)]

    def outcome(self, attempt: int) -> str:
        """The scheduled outcome of generation attempt ``attempt`` (0-based)."""
        return self.schedule[attempt] if attempt < len(self.schedule) else "ok"


Invariant = Callable[[Run], "str | None"]


def valid_requests(run: Run) -> str | None:
    """Every generation request has a bearer key and a body valid under the contract."""
    validator = _validator()
    for number, exchange in enumerate(run.generations, 1):
        if not exchange.request_headers.get("authorization", "").lower().startswith("bearer "):
            return f"request {number} has no 'Authorization: Bearer' header"
        try:
            body = json.loads(exchange.request_body)
        except ValueError:
            return f"request {number} body is not JSON"
        if not isinstance(body, dict):
            return f"request {number} body is not a JSON object"
        if body.get("model") not in validator.contract.models:
            return f"request {number} names a model the contract does not list: {body.get('model')!r}"
        problem = validator.first_error(body)
        if problem is not None:
            return f"request {number} breaks the contract: {problem}"
    return None


def retries(run: Run) -> str | None:
    """Transient failures are retried, with waits that never shrink; permanent ones are not."""
    attempts = run.generations
    if len(attempts) > run.max_attempts:
        return f"made {len(attempts)} generation attempts; at most {run.max_attempts} are reasonable"
    for index in range(len(attempts) - 1):
        outcome = run.outcome(index)
        if outcome in PERMANENT:
            return f"retried after a permanent {outcome} (attempt {index + 1})"
        if outcome in SUCCESS and attempts[index].status == 200:
            return f"asked again after a successful answer (attempt {index + 1}): that pays twice"
    if attempts:
        last = run.outcome(len(attempts) - 1)
        if last in TRANSIENT and len(attempts) < run.min_attempts:
            return (
                f"gave up after a transient {last} on attempt {len(attempts)} "
                f"(expected at least {run.min_attempts} attempts)"
            )
    waits = [attempts[i + 1].started - attempts[i].ended for i in range(len(attempts) - 1)]
    for index, wait in enumerate(waits):
        if wait <= 0 and run.outcome(index) in ("429", "503"):
            return f"retried a {run.outcome(index)} at once, without backing off (attempt {index + 2})"
        if index and wait < waits[index - 1] - 1e-9:
            return f"back-off shrank: waited {waits[index - 1]:.2f}s, then {wait:.2f}s (attempt {index + 2})"
    return None


def same_body(run: Run) -> str | None:
    """A retry resends exactly the same body, seed included."""
    bodies = [e.request_body for e in run.generations]
    for number, body in enumerate(bodies[1:], 2):
        if _json_or_raw(body) != _json_or_raw(bodies[0]):
            return f"attempt {number} sent a different body than attempt 1"
    return None


def downloads(run: Run) -> str | None:
    """Images are downloaded, without Authorization, before their URL expires."""
    for exchange in run.downloads:
        name = exchange.path.rsplit("/", 1)[-1]
        if "authorization" in exchange.request_headers:
            return f"downloaded {name} with the Authorization header (object storage refuses two auth mechanisms)"
        expiry = _expiry(exchange.url)
        signature = parse_qs(urlsplit(exchange.url).query).get("X-Amz-Signature", [""])[0].encode()
        issued_by = next((g for g in run.generations if signature and signature in g.body), None)
        if expiry is not None and issued_by is not None and expiry > issued_by.ended and exchange.started >= expiry:
            late = exchange.started - expiry
            return f"downloaded {name} {late:.0f}s after its URL expired (URLs live {_ttl(exchange.url)}s)"
    attempts = run.generations
    if run.error is None and attempts and run.outcome(len(attempts) - 1) in SUCCESS:
        if not any(d.status == 200 for d in run.downloads):
            return "returned without downloading the image"
    return None


def errors(run: Run) -> str | None:
    """An error raised to the caller carries the status and trace id, never the API key."""
    error = run.error
    if error is None:
        return None
    public = f"{error}\n{error!r}\n" + "\n".join(repr(arg) for arg in error.args)
    if run.api_key in public:
        return f"the {type(error).__name__} raised to the caller contains the API key"
    answered = [e for e in run.exchanges if e.status is not None]
    last = run.exchanges[-1] if run.exchanges else None
    if last is None or last.status is None or last.status < 400 or last not in answered:
        return None
    text = public + _attribute_text(error)
    missing = [
        what
        for what, value in (("status", str(last.status)), ("trace id", last.trace_id))
        if value and value not in text
    ]
    if missing:
        return (
            f"the {type(error).__name__} raised after a {last.status} lacks its {' and '.join(missing)}: "
            f"{str(error)[:160]!r}"
        )
    return None


def tolerant(run: Run) -> str | None:
    """A successful answer is a success, even with fields the client does not know."""
    attempts = run.generations
    if run.error is None or not attempts:
        return None
    last = run.outcome(len(attempts) - 1)
    if last in SUCCESS and attempts[-1].status == 200 and all(d.status == 200 for d in run.downloads):
        extra = " with unknown fields" if last == "extra-fields" else ""
        return f"raised {type(run.error).__name__} on a successful answer{extra}: {str(run.error)[:160]!r}"
    return None


# checked in this order; the first broken one is reported (causes before consequences)
INVARIANTS: Mapping[str, Invariant] = {
    "valid-requests": valid_requests,
    "same-body": same_body,
    "downloads": downloads,
    "retries": retries,
    "errors": errors,
    "tolerant": tolerant,
}


class ClientCheckFailed(SfmockError, AssertionError):
    """A client broke an invariant; the message is the whole report."""

    def __init__(self, *, invariant: str, message: str, run: Run, seed: int, examples: int) -> None:
        self.invariant = invariant
        self.problem = message
        self.schedule = list(run.schedule)
        self.run = run
        self.seed = seed
        origin = run.exchanges[0].started if run.exchanges else 0.0
        lines = [f"  {n}. {e.describe(origin)}" for n, e in enumerate(run.exchanges, 1)]
        transcript = "\n".join(lines) or "  (no request)"
        raised = "returned normally" if run.error is None else f"raised {type(run.error).__name__}: {run.error}"
        super().__init__(
            f"client check failed: [{invariant}] {message}\n"
            f"smallest schedule: {self.schedule!r} (after {examples} schedules, seed {seed})\n"
            f"transcript:\n{transcript}\n"
            f"the client {raised}\n"
            f"replay: check_client(fn, schedule={self.schedule!r})"
        )


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """What a passing check ran."""

    examples: int
    invariants: tuple[str, ...]
    seed: int


class _Harness:
    def __init__(self, settings: Settings, api_key: str) -> None:
        self.clock = VirtualClock()
        self.app = create_app(settings, clock=self.clock, sleep=self._sleep)
        self.inprocess = InProcess(self.app, self.clock)
        self.api_key = api_key

    async def _sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def run(
        self,
        client: Callable[[ClientContext], Any],
        schedule: Sequence[str],
        request: dict[str, Any],
        max_attempts: int,
        min_attempts: int,
    ) -> Run:
        self.app.state.control.reset_all()
        self.app.state.faults.replace(_scenario(schedule))
        self.inprocess.transcript.clear()
        context = ClientContext(
            base_url=f"{BASE}/v1",
            api_key=self.api_key,
            request=dict(request),
            clock=self.clock,
            inprocess=self.inprocess,
        )
        result: Any = None
        error: BaseException | None = None
        with _virtual_time(context):
            try:
                result = client(context)
            except Exception as exc:
                error = exc
        return Run(
            schedule=tuple(schedule),
            exchanges=tuple(self.inprocess.transcript),
            result=result,
            error=error,
            api_key=self.api_key,
            max_attempts=max_attempts,
            min_attempts=min_attempts,
        )


def check_client(
    client: Callable[[ClientContext], Any],
    *,
    request: Mapping[str, Any] | None = None,
    invariants: Sequence[str | Invariant] | None = None,
    outcomes: Sequence[str] | None = None,
    schedule: Sequence[str] | None = None,
    max_examples: int = 200,
    seed: int = 0,
    max_attempts: int = 6,
    min_attempts: int = 3,
    api_key: str = "sk-sfmock-check-0123456789",
    settings: Settings | None = None,
) -> CheckReport:
    """Check ``client`` under generated schedules; raise :class:`ClientCheckFailed` on a break.

    ``client(ctx)`` makes one generation of ``ctx.request`` through the client under test,
    using ``ctx.base_url``, ``ctx.api_key`` and ``ctx.http_client()`` (or
    ``ctx.requests_session()``), and returns (ideally) the image bytes. ``invariants``
    picks from :data:`INVARIANTS` by name, or adds callables ``Run -> message | None``.
    ``schedule`` replays one schedule instead of searching. ``min_attempts``: a transient
    failure must be retried until at least this many attempts; ``max_attempts``: never more.
    """
    chosen = _invariants(invariants)
    body = dict(request or {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42})
    base = settings or Settings()
    harness = _Harness(replace(base, seed=seed, public_url=BASE, url_ttl=base.url_ttl), api_key)
    examples = 0

    def violation(candidate: Sequence[str]) -> tuple[str, str, Run] | None:
        nonlocal examples
        examples += 1
        run = harness.run(client, candidate, body, max_attempts, min_attempts)
        for name, invariant in chosen:
            try:
                message = invariant(run)
            except AssertionError as exc:
                message = str(exc) or "assertion failed"
            if message:
                return name, message, run
        return None

    try:
        if schedule is not None:
            found = violation(list(schedule))
        else:
            strategy = schedules(outcomes or list(OUTCOMES))
            config = hypothesis_settings(
                max_examples=max_examples, database=None, deadline=None, suppress_health_check=list(HealthCheck)
            )
            try:
                smallest = find(
                    strategy, lambda s: violation(s) is not None, settings=config, random=random.Random(seed)
                )
            except NoSuchExample:
                smallest = None
            found = None if smallest is None else violation(smallest)
    finally:
        harness.inprocess.close()
    if found is not None:
        name, message, run = found
        raise ClientCheckFailed(invariant=name, message=message, run=run, seed=seed, examples=examples)
    return CheckReport(examples=examples, invariants=tuple(name for name, _ in chosen), seed=seed)


def _invariants(selection: Sequence[str | Invariant] | None) -> list[tuple[str, Invariant]]:
    chosen: list[tuple[str, Invariant]] = []
    for item in selection if selection is not None else list(INVARIANTS):
        if isinstance(item, str):
            if item not in INVARIANTS:
                raise ValueError(f"unknown invariant {item!r}; choose from {sorted(INVARIANTS)}")
            chosen.append((item, INVARIANTS[item]))
        else:
            chosen.append((getattr(item, "__name__", "custom"), item))
    return chosen


def _scenario(schedule: Sequence[str]) -> Scenario:
    steps = tuple(Action.from_config(OUTCOMES[outcome]) for outcome in schedule)
    if not steps:
        return Scenario(name="schedule")
    rule = Rule(name="schedule", when={"path": GENERATE, "method": "POST"}, steps=steps, sequence=True)
    return Scenario(name="schedule", rules=(rule,))


@contextmanager
def _virtual_time(context: ClientContext) -> Iterator[None]:
    with mock.patch.object(time, "sleep", context.sleep):
        yield


@functools.cache
def _validator() -> RequestValidator:
    return RequestValidator(load_contract())


def _json_or_raw(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def _expiry(url: str) -> float | None:
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    try:
        return UrlSigner.issued_at(query) + int(query["X-Amz-Expires"])
    except (KeyError, ValueError):
        return None


def _ttl(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("X-Amz-Expires", ["?"])[0]


def _attribute_text(error: BaseException) -> str:
    parts = []
    for value in vars(error).values():
        if isinstance(value, str | int):
            parts.append(str(value))
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        parts.extend(str(v) for v in dict(headers).values())
    status = getattr(response, "status_code", None)
    if status is not None:
        parts.append(str(status))
    return "\n".join(parts)
