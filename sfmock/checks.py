"""Client checks: drive a user's client against the fake under generated server behaviour.

``check_client(fn)`` runs ``fn`` (one image generation through the user's client, sync
or ``async``) again and again, each time against a *schedule*: the outcomes the fake
gives to successive generation requests (``["503", "timeout", "ok"]``). Time is virtual
(:mod:`sfmock.vtime`), so back-off sleeps and timeouts cost nothing. After each run the
invariants (:mod:`sfmock.invariants`) read the transcript; the first schedule that
breaks one is shrunk by Hypothesis to the smallest that still does and reported with its
transcript and a replay line. A check that never reached the fake, or never saw the
client succeed, fails too: nothing tested is not a pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from hypothesis import Phase, example, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from .app import create_app
from .clock import VirtualClock
from .config import Settings
from .errors import SfmockError
from .faults import Action, Rule, Scenario
from .invariants import GENERATE, INVARIANTS, Invariant, Run
from .recorder import Recorder
from .server import ServerThread, listen
from .strategies import DOWNLOAD_FAULTS, OUTCOMES, TRANSIENT, schedules
from .transports import READ_TIMEOUT, AsyncTransport, Exchange, InProcess, TimedOut, Transport, requests_adapter
from .vtime import HangForever, VirtualTime, new_event_loop

__all__ = ["INVARIANTS", "CheckReport", "ClientCheckFailed", "ClientContext", "Run", "check_client"]

BASE = "http://sfmock.test"
DEFAULT_KEY = "sk-sfmock-check-0123456789"
LIVE_REAL_CAP = 1.0  # on the live socket a fault waits at most this many real seconds
Client = Callable[["ClientContext"], Any]


@dataclass
class ClientContext:
    """What the client under test is given: where the fake is, a key, and what to ask."""

    base_url: str
    api_key: str
    request: dict[str, Any]
    clock: VirtualClock
    inprocess: InProcess
    slept: list[float] = field(default_factory=list)
    live: Callable[[], str] | None = field(default=None, repr=False)

    def http_client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` wired to the fake (for the API and the image downloads)."""
        return httpx.Client(transport=Transport(self.inprocess), **kwargs)

    def async_http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` wired to the fake (``AsyncOpenAI(http_client=...)`` takes it)."""
        return httpx.AsyncClient(transport=AsyncTransport(self.inprocess), **kwargs)

    def requests_session(self) -> Any:
        """A ``requests.Session`` wired to the fake."""
        import requests

        session = requests.Session()
        session.mount("http://", requests_adapter(self.inprocess))
        return session

    @property
    def live_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the fake on a real socket, for any HTTP stack
        (aiohttp, urllib, urllib3 pools, pycurl...). Socket timeouts there are real seconds."""
        if self.live is None:
            raise RuntimeError("this context has no live socket")
        return self.live() + "/v1"

    def sleep(self, seconds: float) -> None:
        """Sleep on the virtual clock (``time.sleep`` is routed here during a check too)."""
        self.slept.append(seconds)
        self.clock.advance(max(0.0, seconds))


class ClientCheckFailed(SfmockError, AssertionError):
    """A client broke an invariant (or was never really tested); the message is the report."""

    def __init__(
        self, *, invariant: str, message: str, run: Run | None, seed: int | None, examples: int, replay: str, note: str
    ) -> None:
        self.invariant = invariant
        self.problem = message
        self.run = run
        self.schedule = list(run.schedule) if run is not None else []
        self.random_seed = run.random_seed if run is not None else 0
        self.seed = seed
        self.replay = replay
        lines = []
        if run is not None:
            origin = run.exchanges[0].started if run.exchanges else 0.0
            lines = [f"  {n}. {e.describe(origin)}" for n, e in enumerate(run.exchanges, 1)]
        transcript = "\n".join(lines) or "  (no request reached the fake)"
        raised = "returned normally" if run is None or run.error is None else _error_line(run.error)
        if run is not None and run.hung is not None:
            raised = "was stopped: it would have waited forever"
        seeded = f", seed {seed}" if seed is not None else ""
        super().__init__(
            f"client check failed: [{invariant}] {message}\n"
            + (f"{note}\n" if note else "")
            + f"smallest schedule: {self.schedule!r} (random seed {self.random_seed}; "
            f"after {examples} schedules{seeded})\n"
            f"transcript:\n{transcript}\n"
            f"the client {raised}\n"
            f"replay: {replay}"
        )


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """What a passing check ran: how many schedules, which invariants and outcomes."""

    examples: int
    invariants: tuple[str, ...]
    seed: int | None
    outcomes: tuple[str, ...] = ()  # the outcomes the client actually met
    reached: int = 0  # runs in which the client reached the fake
    succeeded: int = 0  # runs that completed a generation and its download


@dataclass(kw_only=True)
class _Options:
    request: dict[str, Any]
    max_attempts: int
    min_attempts: int
    returns_image: bool
    max_total_wait: float
    strict: bool


class _Harness:
    """One fake for a whole check: in-process and (on demand) on a live socket."""

    def __init__(self, settings: Settings, api_key: str, hang_bound: float) -> None:
        self.clock = VirtualClock()
        self.hang_bound = hang_bound
        self.app = create_app(settings, clock=self.clock, sleep=self._fault_sleep)
        self.inprocess = InProcess(self.app, self.clock, latency=_generation_latency)
        self.api_key = api_key
        self.slept: list[float] = []
        self.vtime = VirtualTime(self.clock, self._client_sleep)
        self._live: tuple[ServerThread, Recorder, str] | None = None
        self._live_lock = threading.Lock()

    def _client_sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(max(0.0, seconds))

    async def _fault_sleep(self, seconds: float) -> None:
        """How a fault waits: up to the client's read timeout, which then fires."""
        if threading.get_ident() in self.vtime.real_threads:  # the live socket: real, short
            wait = min(seconds, LIVE_REAL_CAP)
            await asyncio.sleep(wait)
            self.clock.advance(wait)
            return
        budget = READ_TIMEOUT.get()
        wait = min(seconds, self.hang_bound) if budget is None else min(seconds, budget)
        if _on_virtual_loop():
            await asyncio.sleep(wait)  # the client's own asyncio timeouts may end it first
        else:
            self.clock.advance(wait)
        if budget is not None and seconds > budget:
            raise TimedOut()
        if budget is None and seconds >= self.hang_bound:
            raise HangForever(
                f"would hang forever: a request the server never answers got no timeout from the client "
                f"(stopped after {self.hang_bound:g}s of virtual time); set a read timeout"
            )

    def live_url(self) -> str:
        with self._live_lock:
            if self._live is None:
                sock = listen("127.0.0.1", 0)
                url = f"http://127.0.0.1:{sock.getsockname()[1]}"
                recorder = Recorder(self.app, self.clock, public_url=url)
                thread = ServerThread(recorder, sock)
                thread.start()
                assert thread.thread.ident is not None
                self.vtime.real_threads.add(thread.thread.ident)
                self._live = (thread, recorder, url)
            return self._live[2]

    def close(self) -> None:
        self.inprocess.close()
        if self._live is not None:
            self._live[0].stop()

    def run(self, client: Client, schedule: Sequence[str], random_seed: int, options: _Options) -> Run:
        self.app.state.control.reset_all()
        self.app.state.faults.replace(_scenario(schedule))
        self.inprocess.transcript.clear()
        if self._live is not None:
            self._live[1].exchanges.clear()
        context = ClientContext(
            base_url=f"{BASE}/v1",
            api_key=self.api_key,
            request=json.loads(json.dumps(options.request)),
            clock=self.clock,
            inprocess=self.inprocess,
            slept=self.slept,
            live=self.live_url,
        )
        self.slept.clear()
        result: Any = None
        error: BaseException | None = None
        hung: str | None = None
        random.seed(random_seed)
        with _captured_logs() as logs, self.vtime.running():
            try:
                result = _call(client, context, self.vtime)
            except HangForever as exc:
                hung = str(exc)
            except Exception as exc:
                error = exc
        exchanges = list(self.inprocess.transcript)
        if self._live is not None:
            exchanges += self._live[1].exchanges
        exchanges.sort(key=lambda e: e.started)
        return Run(
            schedule=tuple(schedule),
            exchanges=tuple(exchanges),
            result=result,
            error=error,
            api_key=self.api_key,
            max_attempts=options.max_attempts,
            min_attempts=options.min_attempts,
            request=options.request,
            strict=options.strict,
            returns_image=options.returns_image,
            hung=hung,
            logs=tuple(logs),
            random_seed=random_seed,
            max_total_wait=options.max_total_wait,
            rerun=lambda other: self.run(client, schedule, other, options),
        )


def check_client(
    client: Client,
    *,
    request: Mapping[str, Any] | None = None,
    invariants: Sequence[str | Invariant] | None = None,
    outcomes: Sequence[str] | None = None,
    schedule: Sequence[str] | None = None,
    random_seed: int | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    max_attempts: int = 6,
    min_attempts: int = 3,
    api_key: str = DEFAULT_KEY,
    settings: Settings | None = None,
    returns_image: bool = True,
    max_total_wait: float = 600.0,
    hang_bound: float = 600.0,
) -> CheckReport:
    """Check ``client`` under generated schedules; raise :class:`ClientCheckFailed` on a break.

    ``client(ctx)`` (a function or ``async def``) makes one generation of ``ctx.request``
    through the client under test, using ``ctx.base_url`` and ``ctx.api_key`` with
    ``ctx.http_client()``, ``ctx.async_http_client()`` or ``ctx.requests_session()``, or
    ``ctx.live_base_url`` for any other HTTP stack, and returns the image bytes
    (``returns_image=False`` if it returns nothing to compare). ``invariants`` picks from
    :data:`INVARIANTS` by name, or adds callables ``Run -> message | None``.

    The search follows the Hypothesis settings in force (profile, ``max_examples``,
    ``derandomize``, the example database, ``--hypothesis-seed``); ``seed`` fixes it.
    ``schedule`` (with ``random_seed``) replays one schedule instead of searching.
    ``min_attempts``: a transient failure must be retried until at least this many
    attempts; ``max_attempts``: never more. ``max_total_wait``: seconds of back-off a run
    may spend. ``hang_bound``: virtual seconds after which a client waiting on an answer
    that never comes is stopped as "would hang forever".
    """
    __tracebackhide__ = True
    chosen = _invariants(invariants)
    base = settings or Settings()
    options = _Options(
        request=dict(request or {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42}),
        max_attempts=max_attempts,
        min_attempts=min_attempts,
        returns_image=returns_image,
        max_total_wait=max_total_wait,
        strict=base.strict,
    )
    names = list(outcomes) if outcomes is not None else list(OUTCOMES)
    replay = _replay_line(client, options, chosen, settings, api_key, max_total_wait, hang_bound)
    harness = _Harness(replace(base, seed=0 if seed is None else seed, public_url=BASE), api_key, hang_bound)
    tally = _Tally()

    def judge(candidate: Sequence[str], rseed: int) -> tuple[str, str, Run] | None:
        run = harness.run(client, candidate, rseed, options)
        tally.add(run)
        for name, invariant in chosen:
            try:
                message = invariant(run)
            except AssertionError as exc:
                message = str(exc) or "assertion failed"
            if message:
                tally.failures.append((tuple(candidate), rseed))
                return name, message, run
        return None

    try:
        with harness.vtime.installed():
            verdict = _verdict(
                judge, tally, schedule, random_seed, names, max_attempts, max_examples, seed, client, replay
            )
        if verdict is not None:
            raise verdict
    finally:
        harness.close()
    return CheckReport(
        examples=tally.runs,
        invariants=tuple(name for name, _ in chosen),
        seed=seed,
        outcomes=tuple(sorted(tally.outcomes, key=list(OUTCOMES).index)),
        reached=tally.reached,
        succeeded=tally.succeeded,
    )


Judge = Callable[[Sequence[str], int], "tuple[str, str, Run] | None"]


def _verdict(
    judge: Judge,
    tally: _Tally,
    schedule: Sequence[str] | None,
    random_seed: int | None,
    names: list[str],
    max_attempts: int,
    max_examples: int | None,
    seed: int | None,
    client: Client,
    replay: Callable[[Sequence[str], int], str],
) -> ClientCheckFailed | None:
    __tracebackhide__ = True
    if True:
        if schedule is not None:
            found = judge(list(schedule), random_seed or 0)
        else:
            found = _search(judge, tally, names, max_attempts, max_examples, seed, _digest(client, replay([], 0)))
        if found is not None:
            if schedule is None:
                found = _minimize(judge, found)
            name, message, run = found
            return ClientCheckFailed(
                invariant=name,
                message=message,
                run=run,
                seed=seed,
                examples=tally.runs,
                replay=replay(run.schedule, run.random_seed),
                note=_flakiness(judge, found),
            )
        uncovered = tally.uncovered(replaying=schedule is not None)
        if uncovered is not None:
            return ClientCheckFailed(
                invariant="coverage",
                message=uncovered,
                run=tally.last,
                seed=seed,
                examples=tally.runs,
                replay=replay([], 0),
                note="",
            )
    return None


class _Violation(Exception):
    def __init__(self, found: tuple[str, str, Run]) -> None:
        super().__init__(found[1])
        self.found = found


class _Tally:
    """What the runs of one check saw, for the verdict that nothing was tested."""

    def __init__(self) -> None:
        self.runs = self.reached = self.succeeded = 0
        self.outcomes: set[str] = set()
        self.failures: list[tuple[tuple[str, ...], int]] = []
        self.errors: dict[str, int] = {}
        self.statuses: set[str] = set()
        self.last: Run | None = None

    def add(self, run: Run) -> None:
        self.runs += 1
        self.last = run
        if run.exchanges:
            self.reached += 1
        for index in range(len(run.generations)):
            self.outcomes.add(run.outcome(index))
        self.statuses.update(e.failure or str(e.status) for e in run.generations)
        gens_ok = any(g.status == 200 and g.failure is None for g in run.generations)
        if gens_ok and any(d.status == 200 and d.failure is None for d in run.downloads):
            self.succeeded += 1
        if run.error is not None:
            line = _error_line(run.error)
            self.errors[line] = self.errors.get(line, 0) + 1

    def uncovered(self, *, replaying: bool = False) -> str | None:
        seen = "; ".join(f"{line} ({count}x)" for line, count in list(self.errors.items())[:3])
        if not self.reached:
            return (
                f"the client never reached the fake in {self.runs} runs"
                + (f": it raised {seen}" if seen else "")
                + ". It must use ctx.http_client(), ctx.async_http_client(), ctx.requests_session() "
                "or ctx.live_base_url; a connection of its own goes elsewhere"
            )
        if not self.succeeded and not replaying:
            answers = ", ".join(sorted(self.statuses))
            return (
                f"the client never succeeded in {self.runs} runs (no generation answered 200 whose image it "
                f"downloaded); generation answers seen: {answers}" + (f"; it raised {seen}" if seen else "")
            )
        return None


def _search(
    judge: Callable[[Sequence[str], int], tuple[str, str, Run] | None],
    tally: _Tally,
    names: list[str],
    max_attempts: int,
    max_examples: int | None,
    seed: int | None,
    database_key: bytes,
) -> tuple[str, str, Run] | None:
    """Hypothesis looks for a breaking (schedule, random seed) and shrinks it."""
    __tracebackhide__ = True
    strategy = st.tuples(schedules(names, max_attempts=max_attempts), st.integers(0, 2**32 - 1))
    current = hypothesis_settings()  # the profile in force
    config = hypothesis_settings(
        current,
        max_examples=max_examples if max_examples is not None else current.max_examples,
        deadline=None,  # a run's real duration says nothing: time is virtual
        report_multiple_bugs=False,
        phases=[phase for phase in current.phases if phase is not Phase.explain],
        print_blob=False,
    )

    def search(case: tuple[list[str], int]) -> None:
        found = judge(*case)
        if found is not None:
            raise _Violation(found)

    # always tried first, so no verdict depends on luck: the happy path, each outcome once,
    # and a run of transient failures longer than any client should retry
    transient = [name for name in names if name in TRANSIENT]
    cases: list[list[str]] = [[], *([name] for name in names if name != "ok")]
    if transient:
        cases.append([transient[0]] * (max_attempts + 1))
    for case in reversed(cases):
        search = example((case, 0))(search)
    test = config(given(strategy)(search))
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    test._hypothesis_internal_database_key = database_key  # type: ignore[attr-defined]
    try:
        test()
    except _Violation as violation:
        return violation.found
    except Flaky:
        # a failure the search saw did not come back when Hypothesis replayed it: report it
        smallest = min(tally.failures, key=lambda f: (len(f[0]), f[0], f[1]))
        return judge(*smallest) or _first_failure(judge, smallest)
    return None


def _minimize(judge: Judge, found: tuple[str, str, Run]) -> tuple[str, str, Run]:
    """Drop outcomes one by one while the same invariant still breaks: the smallest schedule."""
    improved = True
    while improved:
        improved = False
        schedule = found[2].schedule
        for index in range(len(schedule)):
            candidate = schedule[:index] + schedule[index + 1 :]
            again = judge(candidate, found[2].random_seed)
            if again is not None and again[0] == found[0]:
                found, improved = again, True
                break
    return found


def _first_failure(
    judge: Callable[[Sequence[str], int], tuple[str, str, Run] | None], case: tuple[tuple[str, ...], int]
) -> tuple[str, str, Run] | None:
    for _ in range(20):
        found = judge(*case)
        if found is not None:
            return found
    return None


def _flakiness(judge: Callable[[Sequence[str], int], tuple[str, str, Run] | None], found: tuple[str, str, Run]) -> str:
    """Replay the reported case twice more: a client that is not deterministic is named so."""
    run = found[2]
    again = [judge(run.schedule, run.random_seed) for _ in range(2)]
    failed = 1 + sum(1 for result in again if result is not None)
    if failed == 3:
        return ""
    return (
        f"flaky: this schedule failed {failed} of 3 replays with the same random seed "
        "(the client depends on something the check does not control: threads, real time, its own RNG)"
    )


def _call(client: Client, context: ClientContext, vtime: VirtualTime) -> Any:
    if inspect.iscoroutinefunction(client):
        return _run_async(client(context), vtime)
    result = client(context)
    if inspect.isawaitable(result):
        return _run_async(result, vtime)
    return result


def _run_async(awaitable: Any, vtime: VirtualTime) -> Any:
    loop = new_event_loop(vtime)
    try:
        return loop.run_until_complete(awaitable)
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        try:
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException:
            pass
        loop.close()


def _on_virtual_loop() -> bool:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return type(loop).__name__ == "_VirtualLoop"


def _generation_latency(exchange: Exchange) -> float:
    """A 200 generation takes its ``timings.inference`` seconds to come back."""
    if exchange.path != GENERATE or exchange.status != 200:
        return 0.0
    try:
        return float(json.loads(exchange.body)["timings"]["inference"])
    except (ValueError, KeyError, TypeError):
        return 0.0


class _LogCollector(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__(logging.INFO)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.records.append(f"{record.name}: {text}")


@contextmanager
def _captured_logs() -> Iterator[list[str]]:
    """Every log record of INFO and above emitted while the client runs.

    The root logger is opened to INFO for the run; its other handlers keep seeing only
    what they saw before, so nothing the user sees changes.
    """
    records: list[str] = []
    root = logging.getLogger()
    level = root.level
    quiet = _AtLeast(root.getEffectiveLevel())
    others = list(root.handlers)
    for handler in others:
        handler.addFilter(quiet)
    collector = _LogCollector(records)
    root.addHandler(collector)
    root.setLevel(min(root.getEffectiveLevel(), logging.INFO))
    try:
        yield records
    finally:
        root.removeHandler(collector)
        root.setLevel(level)
        for handler in others:
            handler.removeFilter(quiet)


class _AtLeast(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


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
    generation = [OUTCOMES[o] if o not in DOWNLOAD_FAULTS else "pass" for o in schedule]
    download = [OUTCOMES[o] for o in schedule if o in DOWNLOAD_FAULTS]
    rules = []
    if generation:
        steps = tuple(Action.from_config(step) for step in generation)
        rules.append(Rule(name="schedule", when={"path": GENERATE, "method": "POST"}, steps=steps, sequence=True))
    if download:
        steps = tuple(Action.from_config(step) for step in download)
        rules.append(Rule(name="schedule", when={"path": "*/outputs/*", "method": "GET"}, steps=steps, sequence=True))
    return Scenario(name="schedule", rules=tuple(rules))


def _error_line(error: BaseException) -> str:
    return f"raised {type(error).__name__}: {str(error)[:160]}"


def _digest(client: Client, replay: str) -> bytes:
    """The example-database key: the client and everything that shapes its check."""
    name = f"{getattr(client, '__module__', '')}.{getattr(client, '__qualname__', repr(client))}"
    return hashlib.sha256(f"sfmock-check\0{name}\0{replay}".encode()).digest()


def _replay_line(
    client: Client,
    options: _Options,
    chosen: list[tuple[str, Invariant]],
    settings: Settings | None,
    api_key: str,
    max_total_wait: float,
    hang_bound: float,
) -> Callable[[Sequence[str], int], str]:
    """``check_client(...)`` with every option that shapes the run, for a schedule and seed."""
    fixed = [f"request={options.request!r}", f"invariants={[n for n, _ in chosen]!r}"]
    optional = {
        "max_attempts": (options.max_attempts, 6),
        "min_attempts": (options.min_attempts, 3),
        "returns_image": (options.returns_image, True),
        "max_total_wait": (max_total_wait, 600.0),
        "hang_bound": (hang_bound, 600.0),
    }
    fixed += [f"{key}={value!r}" for key, (value, default) in optional.items() if value != default]
    if api_key != DEFAULT_KEY:
        fixed.append("api_key=...")
    if settings is not None:
        default = Settings()
        changed = {
            f: getattr(settings, f)
            for f in settings.__dataclass_fields__
            if getattr(settings, f) != getattr(default, f)
        }
        if changed:
            fixed.append(f"settings=Settings(**{changed!r})")
    name = getattr(client, "__name__", "fn")

    def line(schedule: Sequence[str], random_seed: int) -> str:
        return f"check_client({name}, schedule={list(schedule)!r}, random_seed={random_seed}, {', '.join(fixed)})"

    return line
