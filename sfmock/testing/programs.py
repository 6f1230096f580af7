"""Running a program as the client under test, and judging what it did.

Each run gets a fake of its own (an app on the real clock, wrapped in a
:class:`~sfmock.testing.recorderRecorder`, on fresh loopback ports, the API's and the image
host's) with one schedule installed,
so runs never see each other's requests and may go in parallel. The program learns
where the fake is from its environment (:func:`program_environment`) and reports success
by its exit status; it may save the image to ``$SFMOCK_OUTPUT`` to have it compared with
what the fake served. The recorded exchanges become a :class:`~sfmock.testing.invariantsRun`
judged by the same invariants as ``check_client``, plus the checks only a program needs
(:mod:`sfmock.testing.program_rules`).

Real time cannot be virtual for another process, so the schedules' slow outcomes are
shortened (:data:`TIMINGS`): a hang lasts 2 s, a delay at most 1 s, a slow body trickles
in 50 ms steps, a Retry-After says at most 1 s. A normal answer comes at once, except in a
run with ``latency``: there a generation's 200 comes after its ``timings.inference``
seconds (at most 2 s), so a read timeout shorter than a generation takes fires.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfmock.app import create_app
from sfmock.chaos.faults import Action, Rule, Scenario, Seconds
from sfmock.clock import ShiftedClock
from sfmock.config import Settings
from sfmock.errors import SfmockError
from sfmock.server import ServerThread, listen
from sfmock.service.legacy import is_generation
from sfmock.testing.arguments import DEFAULT_REQUEST
from sfmock.testing.evidence import Run
from sfmock.testing.facts import unrepeatable
from sfmock.testing.harness import _inference, schedule_scenario
from sfmock.testing.images import whole_images
from sfmock.testing.owned import StartFailed, run_owned, stop_all
from sfmock.testing.recorder import BeforeAnswer, Recorder

__all__ = [
    "DEFAULT_REQUEST",
    "PNG",
    "TIMINGS",
    "ProgramError",
    "ProgramExit",
    "ProgramRun",
    "ProgramSetup",
    "kill_running",
    "program_environment",
    "replay_command",
    "run_program",
    "short_scenario",
    "stall_hold",
]

TIMINGS: Mapping[str, float] = {
    "hang": 2.0,  # a "timeout" answers nothing for this long, then drops the connection
    "max_delay": 1.0,  # any delay of an outcome is cut to this
    "slow_interval": 0.05,  # a "slow" body trickles in chunks this far apart
    "immediate": 0.05,  # a retry sooner than this after the answer counts as "at once"
    # in the replay that confirms a retry "at once", the same retry may come this late: a busy
    # machine starts a process (curl, node) in more than 50 ms, and a jittered back-off
    # rarely draws twice under it (a full jitter of 1 s: 1 run in 44)
    "replay_immediate": 0.15,
    "retry_after": 1.0,  # a Retry-After header says at most this many seconds
    "latency": 2.0,  # in a run with latency, a generation's 200 waits its timings.inference, at most this
    # in the run of "download-timeout" alone, the download is held until the program gives up,
    # for at most its --timeout and this: a download timeout as long as a whole run still fires
    "stall_grace": 2.0,
}
STALLED: str = "download-timeout"  # the outcome whose run holds the download (see stall_hold)
STALL_SLACK = 0.5  # a program that gives up this close to the end of the hold did not give up
PNG = b"\x89PNG\r\n\x1a\n"
KEEP_OUTPUT = 64 * 1024  # characters kept of each of stdout and stderr


class ProgramError(SfmockError):
    """The program could not be tested at all (it could not start, or made no request)."""


class ProgramExit(Exception):
    """Stands for a program's non-zero exit in a :class:`Run`: the error it reported.

    Its message is one line (the exit and the last line printed); ``output`` holds the rest,
    which the invariants read as they read an exception's attributes.
    """

    def __init__(self, status: int | None, output: str) -> None:
        self.status = status
        self.output = output
        what = "was killed (it did not finish in time)" if status is None else f"exited with status {status}"
        last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
        super().__init__(f"the program {what}" + (f"; it printed last: {last[:200]}" if last else ""))


@dataclass(frozen=True, kw_only=True)
class ProgramSetup:
    """What every run of a check shares: the command, the request, the key and the limits."""

    command: tuple[str, ...]
    request: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_REQUEST))
    api_key: str = "sk-sfmock-check-0123456789"
    timeout: float = 30.0
    seed: int = 0
    max_attempts: int = 6
    min_attempts: int = 3
    settings: Settings = field(default_factory=Settings)
    config: str | None = None  # the file ``settings`` came from, for the replay line
    # judged on faithful-request: True (--request), False, None: if its request follows
    # $SFMOCK_REQUEST (sfmock.testing.program_rules.takes_request)
    judge_request: bool | None = None
    cwd: str | None = None
    # hold a stalled download until the program gives up (see stall_hold): --schedule download-timeout
    hold_stalled: bool = False


@dataclass(frozen=True, kw_only=True)
class ProgramRun:
    """One run of the program under one schedule: what it sent, got, printed and returned."""

    run: Run
    status: int | None  # None: killed after ``timeout`` seconds
    stdout: str
    stderr: str
    saved: bytes | None  # what the program wrote to $SFMOCK_OUTPUT, if anything
    duration: float
    latency: float = 0.0  # seconds a generation's 200 was due after (a run with latency), else 0

    @property
    def schedule(self) -> tuple[str, ...]:
        return self.run.schedule

    @property
    def got_image(self) -> bool:
        """A PNG downloaded whole, in one answer or in parts (its URL came from a generation's
        200, even one cut short: a program may use the URL it got)."""
        images = whole_images(self.run.downloads)
        return any(image.startswith(PNG) for image in images) and any(e.status == 200 for e in self.run.generations)


def program_environment(base_url: str, setup: ProgramSetup, output: Path) -> dict[str, str]:
    """The variables a program gets on top of the caller's environment (documented in the README)."""
    api = f"{base_url}/v1"
    return {
        "SILICONFLOW_BASE_URL": api,
        "SILICONFLOW_API_KEY": setup.api_key,
        "OPENAI_BASE_URL": api,
        "OPENAI_API_KEY": setup.api_key,
        "SFMOCK_REQUEST": json.dumps(dict(setup.request), separators=(",", ":")),
        "SFMOCK_OUTPUT": str(output),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def short_scenario(schedule: Sequence[str], *, stall: float | None = None) -> Scenario:
    """The schedule as a scenario, its slow outcomes cut to :data:`TIMINGS`; with ``stall``,
    a hang of the image download lasts that long instead (:func:`stall_hold`)."""
    scenario = schedule_scenario(schedule)
    rules = tuple(
        dataclasses.replace(rule, steps=tuple(_shorten(s, stall if _downloads(rule) else None) for s in rule.steps))
        for rule in scenario.rules
    )
    return dataclasses.replace(scenario, rules=rules)


def _downloads(rule: Rule) -> bool:
    return rule.when.get("method") == "GET"


def stall_hold(setup: ProgramSetup, schedule: Sequence[str]) -> float | None:
    """How long the image download is held in this run (``None``: 2 s, as any hang).

    A program's timeout fires in real time, and a default one (Node's fetch: 300 s) cannot be
    told from none in a run's time, so only a check told ``--schedule download-timeout``
    (``setup.hold_stalled``) waits for it; elsewhere it hangs 2 s and drops, as ``timeout``
    does. Then the download is held until the program closes it, for at most a whole run's
    ``--timeout`` and :data:`TIMINGS` ``stall_grace``; a program still waiting then has no
    download timeout, or none shorter than a run may last."""
    if not setup.hold_stalled or list(schedule) != [STALLED]:
        return None
    return setup.timeout + TIMINGS["stall_grace"]


def _shorten(action: Action, stall: float | None = None) -> Action:
    changes: dict[str, Any] = {}
    if action.error is not None and "retry_after" in action.error:
        changes["error"] = {
            **action.error,
            "retry_after": min(action.error["retry_after"], int(TIMINGS["retry_after"])),
        }
    if action.hang is not None:
        changes["hang"] = min(action.hang, TIMINGS["hang"] if stall is None else stall)
    if action.slow_body is not None:
        changes["slow_body"] = (action.slow_body[0], min(action.slow_body[1], TIMINGS["slow_interval"]))
    if action.delay is not None:
        cap = TIMINGS["max_delay"]
        delay = action.delay
        changes["delay"] = dataclasses.replace(
            delay, low=min(delay.low, cap), high=min(delay.high, cap) if delay.kind == "uniform" else delay.high
        )
        if delay.kind == "lognormal":  # a log-normal draw has no upper bound: make it fixed
            changes["delay"] = Seconds(kind="fixed", low=min(delay.low, cap))
    return dataclasses.replace(action, **changes) if changes else action


def run_program(
    setup: ProgramSetup, schedule: Sequence[str], *, latency: bool = False, immediate: str = "immediate"
) -> ProgramRun:
    """Run the program once against a fake of its own that follows ``schedule``.

    ``latency``: a generation's 200 goes out after the latency the fake models for it (its
    ``timings.inference``, at most :data:`TIMINGS` ``latency``), in real time.
    ``immediate``: the :data:`TIMINGS` entry under which a retry counts as "at once".
    Raises :class:`ProgramError` when the program cannot be started.
    """
    clock = ShiftedClock()
    sockets = [listen("127.0.0.1", 0)]
    if not setup.settings.single_origin:  # the image host on an origin of its own, as by default
        sockets.append(listen("127.0.0.1", 0, "--image-port"))
    port, image_port = sockets[0].getsockname()[1], sockets[-1].getsockname()[1]
    base_url, image_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{image_port}"
    images = image_port if len(sockets) > 1 else setup.settings.image_port
    settings = dataclasses.replace(setup.settings, host="127.0.0.1", port=port, image_port=images, seed=setup.seed)
    app = create_app(settings, clock=clock)
    stall = stall_hold(setup, schedule)
    app.state.faults.replace(short_scenario(schedule, stall=stall))
    due: list[float] = []
    hold = _held_for_latency(due) if latency else None
    recorder = Recorder(app, clock, public_url=base_url, image_url=image_url, before_answer=hold)
    thread = ServerThread(recorder, sockets, log_level="critical")
    with tempfile.TemporaryDirectory(prefix="sfmock-run-") as scratch, thread.running():
        output = Path(scratch) / "image.png"
        env = {**os.environ, **program_environment(base_url, setup, output)}
        started = time.monotonic()
        # a held download does not eat the run's own time: the program is killed that much later
        status, stdout, stderr = _execute(setup, env, setup.timeout + (stall or 0.0))
        duration = time.monotonic() - started
        saved = output.read_bytes() if output.is_file() else None
    exchanges = tuple(_settled(recorder.exchanges, TIMINGS[immediate]))
    error = None if status == 0 else ProgramExit(status, _tail(stderr + stdout))
    run = Run(
        schedule=tuple(schedule),
        exchanges=exchanges,
        result=saved,
        error=error,
        api_key=setup.api_key,
        max_attempts=setup.max_attempts,
        min_attempts=setup.min_attempts,
        request=dict(setup.request),
        strict=setup.settings.strict,
        returns_image=False,  # a program reports its image in $SFMOCK_OUTPUT: `saved-image` judges it
        rerun=unrepeatable,
        hung=_still_waiting(exchanges, stall),
    )
    waited = max(due, default=0.0)
    return ProgramRun(
        run=run, status=status, stdout=stdout, stderr=stderr, saved=saved, duration=duration, latency=waited
    )


def _held_for_latency(due: list[float]) -> BeforeAnswer:
    """Holds a generation's 200 for its modelled latency (noted in ``due``); a program that
    closes the connection meanwhile has given up: the exchange is marked as its timeout."""

    async def before_answer(scope: Any, status: int, body: bytes) -> None:
        if scope["method"] != "POST" or not is_generation(scope["path"]) or status != 200:
            return
        delay = min(_inference(body), TIMINGS["latency"])
        due.append(delay)
        state = scope.setdefault("state", {})
        transport = state.get("transport")
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            if transport is not None and transport.is_closing():
                state["client_gone"] = True
                for note in state.get("before_drop", ()):  # the Recorder notes when it gave up
                    note()
                return
            await asyncio.sleep(min(0.01, left))

    return before_answer


def _still_waiting(exchanges: Sequence[Any], stall: float | None) -> str | None:
    """Why the run counts as endless: its held download was still open when the hold ended."""
    if stall is None:
        return None
    for exchange in exchanges:
        held = exchange.real_ended - exchange.real_started
        if exchange.method == "GET" and exchange.fault is not None and held >= stall - STALL_SLACK:
            return (
                f"would hang forever: a request the server never answers was still open after {held:.0f}s, "
                "longer than a whole run may last (--timeout); set a read timeout"
            )
    return None


def _execute(setup: ProgramSetup, env: Mapping[str, str], timeout: float) -> tuple[int | None, str, str]:
    if _STOPPING.is_set():
        raise ProgramError("interrupted: no new runs")
    try:  # everything the program starts is gone when this returns (sfmock.testing.owned)
        status, out, err = run_owned(setup.command, env=env, cwd=setup.cwd, timeout=timeout)
    except StartFailed as exc:
        raise ProgramError(f"cannot start {setup.command[0]!r}: {exc}") from None
    return status, _text(out), _text(err)


_STOPPING = threading.Event()


def kill_running() -> None:
    """Kill every program a run has started and not yet reaped, with its children (on Ctrl+C)."""
    _STOPPING.set()
    stop_all()


def _text(data: bytes) -> str:
    return _tail(data.decode("utf-8", "replace"))


def _tail(text: str) -> str:
    return text if len(text) <= KEEP_OUTPUT else "...\n" + text[-KEEP_OUTPUT:]


def _settled(exchanges: Sequence[Any], immediate: float) -> list[Any]:
    """Exchanges in arrival order, a generation retried sooner than ``immediate`` moved back to "at once".

    From outside the process a retry with no wait still shows a gap of a few milliseconds
    (the program's own work, the loopback): below ``immediate`` it counts as none.
    """
    ordered = sorted(exchanges, key=lambda e: e.started)
    settled: list[Any] = []
    previous = None
    for exchange in ordered:
        if is_generation(exchange.path) and exchange.method == "POST":
            if previous is not None and 0 < exchange.started - previous.ended < immediate:
                exchange = dataclasses.replace(exchange, started=previous.ended)
            previous = exchange
        settled.append(exchange)
    return settled


def replay_command(setup: ProgramSetup, schedule: Sequence[str], checks: Sequence[str] | None) -> str:
    """The ``sfmock check`` command line that runs exactly ``schedule`` with these options."""
    words = ["sfmock", "check", "--seed", str(setup.seed), "--schedule", ",".join(schedule)]
    defaults = ProgramSetup(command=setup.command)
    if setup.judge_request or dict(setup.request) != dict(DEFAULT_REQUEST):
        words += ["--request", json.dumps(setup.request, separators=(",", ":"))]
    for flag, value, default in (
        ("--timeout", setup.timeout, defaults.timeout),
        ("--min-attempts", setup.min_attempts, defaults.min_attempts),
        ("--max-attempts", setup.max_attempts, defaults.max_attempts),
    ):
        if value != default:
            words += [flag, f"{value:g}"]
    if checks is not None:
        words += ["--checks", ",".join(checks)]
    if setup.config is not None:
        words += ["--config", setup.config]
    return shlex.join([*words, "--", *setup.command])
