"""Running a client once under one schedule, for the client checks.

:class:`Harness` holds one fake for a whole check, in-process and (on demand) on a live socket,
and runs the client under virtual time with its log records captured (``logcapture``),
returning the :class:`Run` the invariants judge; :class:`ClientContext` is what the client
is given. Searched by checks.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from sfmock.app import create_app
from sfmock.chaos.faults import Action, Rule, Scenario
from sfmock.clock import VirtualClock
from sfmock.config import Settings
from sfmock.requests_transport import requests_adapter
from sfmock.server import ServerThread, listen
from sfmock.service.legacy import is_generation
from sfmock.service.origins import IN_PROCESS_API
from sfmock.testing.evidence import GENERATE, Run, downloaded_images, served_keys
from sfmock.testing.logcapture import captured_logs
from sfmock.testing.recorder import Recorder
from sfmock.testing.runclock import first_start
from sfmock.testing.strategies import DOWNLOAD_FAULTS, OUTCOMES
from sfmock.testing.valarm import AlarmDue, VirtualAlarm
from sfmock.testing.vloop import new_event_loop, on_virtual_loop, virtual_loops
from sfmock.testing.vtime import HangForever, VirtualTime
from sfmock.testing.vtrio import VirtualTrio, on_virtual_trio, trio_sleep
from sfmock.testing.watchdog import OutOfTime, Watchdog
from sfmock.transports import (
    READ_TIMEOUT,
    AsyncTransport,
    Exchange,
    InProcess,
    TimedOut,
    Transport,
)

__all__ = ["BASE", "DEFAULT_KEY", "Client", "ClientContext", "Harness", "Options", "schedule_scenario"]

BASE = IN_PROCESS_API  # http://sfmock.test; its images are on http://images.sfmock.test


DEFAULT_KEY = "sk-sfmock-check-0123456789"


LIVE_REAL_CAP = 1.0  # on the live socket a fault waits at most this many real seconds
LIVE_TURNS = 3  # turns of the client's loop a live answer's latency waits for
# real seconds each step of that hand-over may take at most: the steps end as soon as the
# client's loop has turned, so the bound only matters on a machine so busy that a thread
# waits long for its turn, where a short one let the answer overtake the client's timeout
LIVE_HANDOVER_BOUND = 5.0
STRAGGLER_BOUND = 2.0  # real seconds a run's end waits for its requests still being answered
LIVE_BUSY_TURNS = 100  # turns after which a loop that never waits is taken to poll: the answer goes out
LIVE_SETTLE_TURNS = 5  # turns of the server's loop then given to read the end of a connection the client closed


_real_monotonic, _real_sleep = time.monotonic, time.sleep  # sfmock's modules keep real time


Client = Callable[["ClientContext"], Any]


@dataclass
class ClientContext:
    """What the client under test is given: where the fake is, a key, and what to ask."""

    base_url: str
    # not in its repr: a retry library logs the arguments of the call it retries (stamina's
    # retry_scheduled), and the context is one; the key must not be in the client's logs by it
    api_key: str = field(repr=False)
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
        # the client's limits shape its kept connections (httpx gives them to its own transport only)
        return httpx.AsyncClient(transport=AsyncTransport(self.inprocess, limits=kwargs.get("limits")), **kwargs)

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


@dataclass(kw_only=True)
class Options:
    request: dict[str, Any]
    max_attempts: int
    min_attempts: int
    returns_image: bool
    max_total_wait: float
    strict: bool


class Harness:
    """One fake for a whole check: in-process and (on demand) on a live socket."""

    def __init__(self, settings: Settings, api_key: str, hang_bound: float) -> None:
        self.clock = VirtualClock(first_start())
        self.hang_bound = hang_bound
        self.alarm = VirtualAlarm(self.clock)
        self.app = create_app(settings, clock=self.clock, sleep=self._fault_sleep)
        self.single_origin = settings.single_origin
        self.inprocess = InProcess(self.app, self.clock, latency=_generation_latency, wait=self._latency_wait)
        self.api_key = api_key
        self.slept: list[float] = []
        self.vtime = VirtualTime(self.clock, self._client_sleep)
        self.vtime.busy = lambda: self._live is not None and self._live[1].in_flight > 0
        self.vtime.progress = self._progress
        self.vtime.answering = lambda: bool(self.inprocess.answering or self.inprocess.next_in_line())
        self.vtime.requests = lambda: [*self.inprocess.answering.values(), *self.inprocess.next_in_line()]
        self.trio = VirtualTrio(self.vtime)
        self._live: tuple[ServerThread, Recorder, str] | None = None
        self._live_lock = threading.Lock()
        self.watchdog = Watchdog(self._progress)
        self.watchdog.busy = self.vtime.busy
        self.watchdog.reached = lambda: self.vtime.endless_wait
        # what the check gave out so far: image URLs (url_key) and the images downloaded (digest)
        self.served_urls, self.served_images = set[str](), set[bytes]()
        self._random = random.getstate()  # each run seeds the global RNG; the caller gets its own back

    def _client_sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(max(0.0, seconds))

    async def _latency_wait(self, seconds: float) -> float | None:
        """An answer's latency: time the client's timeouts can fire in, on its own loop or
        its other threads; returns when a thread of the client's gave up waiting inside it."""
        if on_virtual_loop():
            await asyncio.sleep(seconds)
            return None
        if on_virtual_trio():
            await trio_sleep(seconds)
            return None
        self._ring_within(seconds)  # the client's own alarm, shorter than the answer takes
        return self.vtime.pass_latency(seconds)

    def _ring_within(self, seconds: float) -> None:
        """Where the client's real-time alarm comes due within ``seconds`` of a wait on its
        thread, the clock stops there and the alarm rings (:mod:`sfmock.testing.valarm`)."""
        rings = self.alarm.due(seconds)
        if rings is not None:
            self.clock.advance(rings)
            raise AlarmDue(self.alarm)

    async def _fault_sleep(self, seconds: float) -> None:
        """How a fault waits: up to the client's read timeout, which then fires."""
        if threading.get_ident() in self.vtime.real_threads:  # the live socket: real, short
            wait = min(seconds, LIVE_REAL_CAP)
            await asyncio.sleep(wait)
            self.clock.advance(wait)
            return
        budget = READ_TIMEOUT.get()
        wait = min(seconds, self.hang_bound) if budget is None else min(seconds, budget)
        if on_virtual_loop():
            await asyncio.sleep(wait)  # the client's own asyncio timeouts may end it first
        elif on_virtual_trio():
            await trio_sleep(wait)  # or its trio deadlines
        else:
            # the client's own real-time alarm, on the clock (within the hang, as a read timeout is)
            self._ring_within(seconds if budget is None else min(seconds, budget))
            self.clock.advance(wait)
        if budget is not None and seconds > budget:
            raise TimedOut()
        if budget is None and seconds >= self.hang_bound:
            raise HangForever(
                f"would hang forever: a request the server never answers got no timeout from the client "
                f"(stopped after {self.hang_bound:g}s of virtual time); set a read timeout"
            )

    async def _live_latency(self, scope: Any, status: int, body: bytes) -> None:
        """A generation's latency on the live socket: the clock moves by it before the answer
        goes out, and the client's loop gets to look at its timers (a read timeout shorter than
        the latency fires, as it would); a client that gave up is marked gone."""
        if scope.get("path") != GENERATE or status != 200:
            return
        delay = _inference(body)
        if delay <= 0:
            return
        looped = bool(self.vtime.loops)
        deadline = _real_monotonic() + LIVE_HANDOVER_BOUND
        while self.vtime.loops and not self.vtime.waiting and _real_monotonic() < deadline:
            await asyncio.sleep(0.001)  # until the client waits for the answer, its timeouts set
        ticks = self.vtime.ticks
        self.clock.advance(delay)
        transport = scope.get("state", {}).get("transport")
        if looped:
            await self._handed_over(ticks, transport)
        if transport is not None and transport.is_closing():
            scope["state"]["client_gone"] = True

    async def _handed_over(self, ticks: int, transport: Any) -> None:
        """Until the client's loop has seen the time, run the timeouts it brought and what
        follows them (a connection closed) and waits again, or its run is over: turns of its
        loop and the run's end, not a real-time window, which a busy machine outlasts (a
        client whose loop ended after its timeout fired was taken for one still waiting)."""
        deadline = _real_monotonic() + LIVE_HANDOVER_BOUND
        while _real_monotonic() < deadline and not (transport is not None and transport.is_closing()):
            turned = self.vtime.ticks - ticks
            idle = self.vtime.loops and turned >= LIVE_TURNS and self.vtime.waiting >= self.vtime.loops
            if idle or not self.vtime.active or turned >= LIVE_BUSY_TURNS:
                break
            await asyncio.sleep(0.001)
        # a connection the client closed: a few turns of this loop to read its end
        for _ in range(LIVE_SETTLE_TURNS):
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(0.001)

    def live_url(self) -> str:
        """The API's origin on a real socket, opened on first use; the image host beside it on
        a socket of its own (unless one origin), both recorded by one Recorder."""
        with self._live_lock:
            if self._live is None:
                sockets = [listen("127.0.0.1", 0)]
                if not self.single_origin:
                    sockets.append(listen("127.0.0.1", 0, "--image-port"))
                urls = [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
                url, image_url = urls[0], urls[-1]
                recorder = Recorder(
                    self.app, self.clock, public_url=url, image_url=image_url, before_answer=self._live_latency
                )
                real = self.vtime.real_threads
                thread = ServerThread(recorder, sockets, before_run=lambda: real.add(threading.get_ident()))
                thread.start()
                self._live = (thread, recorder, url)
            return self._live[2]

    @staticmethod
    def _settled(recorder: Recorder) -> list[Exchange]:
        """The live transcript once every request the client began is recorded (a client may
        act on an error's status line and return before the server has sent the body)."""
        deadline = _real_monotonic() + LIVE_REAL_CAP + 2
        while recorder.in_flight > 0 and _real_monotonic() < deadline:
            _real_sleep(0.001)
        return list(recorder.exchanges)

    def _progress(self) -> tuple[float, int, int]:
        """What moves while a client gets anywhere: the clock, and the requests it makes."""
        live = self._live[1] if self._live is not None else None
        return self.clock.now(), len(self.inprocess.transcript), len(live.exchanges) + live.in_flight if live else 0

    def live_used(self) -> bool:
        """Whether a client asked for the live socket."""
        return self._live is not None

    def close(self) -> None:
        random.setstate(self._random)
        self.trio.uninstall()
        self.watchdog.close()
        self.inprocess.close()
        if self._live is not None:
            self._live[0].stop()

    def run(self, client: Client, schedule: Sequence[str], random_seed: int, options: Options) -> Run:
        self.app.state.control.reset_all(later=self.vtime.later)  # the fake's clock a day on
        self.app.state.faults.replace(schedule_scenario(schedule))
        transcript = self.inprocess.transcript = []  # this run's: a request is recorded where it began
        if self._live is not None:
            self._live[1].exchanges = []  # a straggler of the last run stays in the last run's list
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
        alarm_left: float | None = None
        random.seed(random_seed)
        self.trio.install()
        with (
            captured_logs() as logs,
            self.vtime.running(),
            virtual_loops(self.vtime),
            self.watchdog.watching(),
            self.alarm.installed(),
        ):
            try:
                result = _call(client, context, self.vtime)
                alarm_left = self.alarm.armed()
            except HangForever as exc:
                hung = str(exc)
            except (Exception, SystemExit) as exc:  # sys.exit(message): a script's way to give up
                error = exc
            except BaseException:  # in a group, say, or a KeyboardInterrupt
                if not self.watchdog.cut:
                    raise
        if self.watchdog.cut:  # however the client let it out (or swallowed it), the run is cut short
            raise OutOfTime("the check's budget of real time ran out during a run")
        # a request a thread of the client's gave up on may still be under way on another
        # (its latency ends at once now that the run is over): it is recorded in this run
        bound = _real_monotonic() + STRAGGLER_BOUND
        while self.inprocess.calls and _real_monotonic() < bound:
            _real_sleep(0.001)
        exchanges = list(transcript)
        if self._live is not None:
            exchanges += self._settled(self._live[1])
        exchanges.sort(key=lambda e: e.started)
        run = Run(
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
            alarm_left=alarm_left,
            logs=tuple(logs),
            random_seed=random_seed,
            max_total_wait=options.max_total_wait,
            earlier_urls=frozenset(self.served_urls),
            earlier_images=frozenset(self.served_images),
            rerun=lambda other: self.run(client, schedule, other, options),
        )
        self.served_urls.update(served_keys(run))
        self.served_images.update(downloaded_images(run))
        return run


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


def _generation_latency(exchange: Exchange) -> float:
    """A 200 generation takes its ``timings.inference`` seconds to come back."""
    if not is_generation(exchange.path) or exchange.status != 200:
        return 0.0
    return _inference(exchange.body)


def _inference(body: bytes) -> float:
    try:
        return float(json.loads(body)["timings"]["inference"])
    except (ValueError, KeyError, TypeError):
        return 0.0


def schedule_scenario(schedule: Sequence[str]) -> Scenario:
    generation = tuple(_step(o if o not in DOWNLOAD_FAULTS else None) for o in schedule)
    download = tuple(_step(o) for o in schedule if o in DOWNLOAD_FAULTS)
    rules = []
    for when, steps in (
        ({"path": GENERATE, "method": "POST"}, generation),
        ({"path": "*/outputs/*", "method": "GET"}, download),
    ):
        if steps:
            rules.append(Rule(name="schedule", when=when, steps=steps, sequence=True))
    return Scenario(name="schedule", rules=tuple(rules))


@functools.cache  # a few outcomes make up every schedule of a check, and actions are immutable
def _step(outcome: str | None) -> Action:
    """The fault step of a scheduled outcome (``None``: a generation answered as usual)."""
    return Action.from_config("pass" if outcome is None else OUTCOMES[outcome])
