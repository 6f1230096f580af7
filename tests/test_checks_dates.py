"""``datetime.now()`` and its kin on the check's virtual clock: a circuit breaker timed with
them (pybreaker's ``datetime.now(timezone.utc)``) closes again as the check's time passes,
where on the real clock, which does not move while a check runs, it stayed open for good.
"""

from __future__ import annotations

import asyncio
import copy
import copyreg
import datetime
import json
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import date as imported_date
from datetime import datetime as imported_datetime
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import orjson
import pybreaker
import pytest
from hypothesis import database  # noqa: F401 (its module global `datetime` must stay real in a check)

from sfmock.checks import ClientCheckFailed, ClientContext, Run, check_client

# the real classes, kept where the check does not look (it swaps module globals bound to them)
REAL = SimpleNamespace(datetime=datetime.datetime, date=datetime.date)
REQUEST = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42}
TRANSIENT = {429, 500, 502, 503, 504}
TRACE = "x-siliconcloud-trace-id"


class ServiceError(Exception):
    """An answer the client could not use: its status and trace id in the message."""

    def __init__(self, status: int | None, trace: str | None, what: str = "") -> None:
        self.status_code = status
        super().__init__(f"HTTP {status}, trace id {trace}: {what}"[:300])


class Transient(ServiceError):
    """A failure worth another try: what the breaker counts."""

    def __init__(self, status: int | None, trace: str | None, what: str = "", retry_after: float = 0.0) -> None:
        super().__init__(status, trace, what)
        self.retry_after = retry_after


def _ask(http: httpx.Client, ctx: ClientContext) -> httpx.Response:
    """One generation request: a transient answer or no answer raises (the breaker counts it)."""
    try:
        answer = http.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )
    except httpx.TransportError as exc:
        raise Transient(None, None, f"no answer: {exc!r}") from exc
    if answer.status_code in TRANSIENT:
        try:
            retry_after = float(answer.headers.get("retry-after", "0"))
        except ValueError:
            retry_after = 0.0
        raise Transient(answer.status_code, answer.headers.get(TRACE), answer.text[:120], retry_after)
    return answer


def _behind(breaker: pybreaker.CircuitBreaker, *, back_off: bool = True) -> Any:
    def generate(ctx: ClientContext) -> bytes:
        """Six attempts at most, behind a breaker the process shares: a doubling back-off,
        Retry-After honoured, and while the breaker is open a wait of its reset timeout, after
        which it lets one call through. Correct (``back_off=False``: retries at once, leaving
        the pacing to the breaker; a flaw)."""
        delay, last = 1.0, None
        with ctx.http_client(timeout=30) as http:
            for _attempt in range(6):
                try:
                    answer = breaker.call(_ask, http, ctx)
                except pybreaker.CircuitBreakerError as exc:  # it opened, now or before this call
                    last = exc.__context__ if isinstance(exc.__context__, Transient) else last
                    wait = max(breaker.reset_timeout, last.retry_after if last else 0.0)
                    time.sleep(wait)
                    continue
                except Transient as exc:
                    last = exc
                    if back_off:
                        time.sleep(max(delay, exc.retry_after))
                        delay *= 2
                    continue
                trace = answer.headers.get(TRACE)
                if answer.status_code != 200:
                    raise ServiceError(answer.status_code, trace, answer.text[:120])
                url = answer.json()["images"][0]["url"]
                return http.get(url).raise_for_status().content
        if last is not None:
            raise last
        raise ServiceError(None, None, "the breaker stayed open")

    return generate


def test_a_client_behind_a_pybreaker_circuit_breaker_passes() -> None:
    # on the real clock the breaker a run opened never closed again: every later run raised
    # CircuitBreakerError without a request, and `coverage` failed a correct client. (A breaker
    # a run leaves open has closed by the next only if that run begins later on `time.time`,
    # a day later: with the fake's clock back at its start each run, it was still open.)
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=30)
    opened: list[datetime.datetime] = []

    class Opened(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
            if new.name == pybreaker.STATE_OPEN:
                opened.append(cb._state_storage.opened_at)

    breaker.add_listener(Opened())
    started = time.time()
    report = check_client(_behind(breaker), request=REQUEST, seed=1)
    assert report.examples >= 20
    assert len(opened) >= 3, "few schedules opened the breaker: the test tests little"
    assert all(when.timestamp() > started + 86_400 for when in opened)  # the fake's clock (a day on and later)


def test_a_pybreaker_breaker_a_run_opened_lets_a_call_through_after_its_reset_timeout() -> None:
    # the real clock did not move in the 30 virtual seconds: the breaker stayed open, and the
    # client gave up after three attempts of the six the schedule called for
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=30)
    runs: list[Run] = []

    def kept(run: Run) -> str | None:
        runs.append(run)
        return None

    check_client(_behind(breaker), request=REQUEST, schedule=["503", "500", "502", "ok"], invariants=["retries", kept])
    [run] = runs
    assert [exchange.status for exchange in run.generations] == [503, 500, 502, 200]
    assert run.waits() == pytest.approx([1.0, 2.0, 30.0])
    assert run.error is None and breaker.current_state == pybreaker.STATE_CLOSED


def test_a_breaker_client_that_leaves_the_pacing_to_the_breaker_is_still_caught() -> None:
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=30)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_behind(breaker, back_off=False), request=REQUEST, seed=1)
    assert failed.value.invariant == "backoff"
    assert "at once, without backing off" in str(failed.value)


def test_a_breaker_that_opens_for_an_hour_is_a_wait_too_long() -> None:
    # the client waits the breaker out, virtual hour after virtual hour: the breaker closes
    # (on the real clock it never did, and the verdict was a run without a request)
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=3600)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_behind(breaker), request=REQUEST, seed=1)
    assert failed.value.invariant == "backoff"
    assert "in all between attempts; at most 600s is reasonable" in str(failed.value)


def _download(ctx: ClientContext) -> bytes:
    with ctx.http_client(timeout=30) as http:
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        for _attempt in range(6):
            answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            if answer.status_code == 200:
                return http.get(answer.json()["images"][0]["url"]).raise_for_status().content
            time.sleep(60.0)
        raise ServiceError(answer.status_code, answer.headers.get(TRACE))


def _readings() -> dict[str, Any]:
    return {
        "time": time.time(),
        "now": datetime.datetime.now(),
        "now_utc": datetime.datetime.now(UTC),
        "now_tz": datetime.datetime.now(tz=datetime.timezone(datetime.timedelta(hours=8))),
        "utcnow": datetime.datetime.utcnow(),
        "today": datetime.datetime.today(),
        "date_today": datetime.date.today(),
        "imported_now": imported_datetime.now(UTC),
        "imported_today": imported_date.today(),
    }


def _expected(when: float) -> dict[str, Any]:
    return {
        "now": REAL.datetime.fromtimestamp(when),
        "now_utc": REAL.datetime.fromtimestamp(when, UTC),
        "now_tz": REAL.datetime.fromtimestamp(when, datetime.timezone(datetime.timedelta(hours=8))),
        "utcnow": REAL.datetime.fromtimestamp(when, UTC).replace(tzinfo=None),
        "today": REAL.datetime.fromtimestamp(when),
        "date_today": REAL.date.fromtimestamp(when),
        "imported_now": REAL.datetime.fromtimestamp(when, UTC),
        "imported_today": REAL.date.fromtimestamp(when),
    }


def test_datetime_now_is_the_runs_virtual_time_for_the_client_and_real_outside() -> None:
    seen: list[dict[str, Any]] = []
    between: list[float] = []

    def client(ctx: ClientContext) -> bytes:
        seen.append(_readings())
        time.sleep(3600.5)  # an hour and a half-second on: the readings follow the clock
        seen.append(_readings())
        with ThreadPoolExecutor(1) as pool:  # a thread of the client's sees it too
            seen.append(pool.submit(_readings).result())
        return _download(ctx)

    def reads_real_time(run: Run) -> str | None:  # an invariant: sfmock's, between runs
        before = time.time()
        now = datetime.datetime.now(UTC).timestamp()
        between.append(now)
        return None if before - 1e-6 <= now <= time.time() + 1e-6 else f"read {now} between runs"

    started = time.time()
    check_client(client, request=REQUEST, schedule=["ok"], invariants=["retries", reads_real_time])
    finished = time.time()
    assert len(seen) == 3 and between
    for reading in seen:
        when = reading.pop("time")
        assert when > finished + 86_400  # the fake's clock (a day on and later), not the machine's
        expected = _expected(when)
        assert reading == expected  # to the microsecond
        assert all(type(value) is type(expected[name]) for name, value in reading.items())  # the real classes
    assert seen[1]["now_utc"] - seen[0]["now_utc"] == datetime.timedelta(seconds=3600.5)
    outside = datetime.datetime.now(UTC).timestamp()
    assert started <= outside <= time.time()
    assert started <= between[0] <= finished


def test_an_async_clients_datetime_now_follows_its_virtual_loop() -> None:
    seen: list[dict[str, Any]] = []

    async def client(ctx: ClientContext) -> bytes:
        seen.append(_readings())
        await asyncio.sleep(90.25)
        seen.append(_readings())
        async with ctx.async_http_client(timeout=30) as http:
            auth = {"Authorization": f"Bearer {ctx.api_key}"}
            answer = await http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
            return (await http.get(answer.json()["images"][0]["url"])).raise_for_status().content

    check_client(client, request=REQUEST, schedule=["ok"], invariants=["retries", "returns-image"])
    assert len(seen) == 2
    for reading in seen:
        assert reading == _expected(reading.pop("time"))
    assert seen[1]["now_utc"] - seen[0]["now_utc"] == datetime.timedelta(seconds=90.25)


@pytest.mark.parametrize("module", ["sfmock.probe", "hypothesis.probe", "_pytest.probe"])
def test_sfmocks_own_code_and_the_test_tools_read_real_time_in_a_run(module: str) -> None:
    read: dict[str, Any] = {}
    probe = compile("now = datetime.datetime.now(datetime.UTC).timestamp()", "<probe>", "exec")

    def client(ctx: ClientContext) -> bytes:
        space = {"__name__": module, "datetime": datetime}
        exec(probe, space)  # code of a module of sfmock's, or of the test tools'
        read["probe"], read["client"] = space["now"], datetime.datetime.now(UTC).timestamp()
        # the tools' own names for the classes are left alone, a client's are swapped
        read["kept"] = [sys.modules[name].datetime for name in ("hypothesis.database", "_pytest.timing")]
        read["swapped"] = pybreaker.datetime  # type: ignore[attr-defined]
        return _download(ctx)

    started = time.time()
    check_client(client, request=REQUEST, schedule=["ok"], invariants=["retries"])
    assert started <= read["probe"] <= time.time()
    assert read["client"] > started + 86_400  # the fake's clock, a day on and later
    assert read["kept"] == [REAL.datetime, REAL.datetime] and read["swapped"] is not REAL.datetime


def test_the_classes_stand_in_for_the_real_ones_and_values_serialize() -> None:
    facts: dict[str, Any] = {}

    def client(ctx: ClientContext) -> bytes:
        now, today = datetime.datetime.now(UTC), datetime.date.today()
        made_before = REAL.datetime(2020, 5, 17, 12, 0, tzinfo=UTC)

        class Stamp(datetime.datetime):  # a class of the client's, derived while the check runs
            pass

        stamp = Stamp.now()
        facts.update(
            swapped=datetime.datetime is not REAL.datetime and imported_datetime is not REAL.datetime,
            named=repr(datetime.datetime) == "<class 'datetime.datetime'>",
            instances=[
                isinstance(now, datetime.datetime),
                isinstance(made_before, datetime.datetime),
                isinstance(made_before, imported_datetime),
                isinstance(now, datetime.date),
                isinstance(today, datetime.date),
                isinstance(now, REAL.datetime),
                isinstance(stamp, Stamp),
                isinstance(stamp, datetime.datetime),
            ],
            not_instances=[isinstance(today, datetime.datetime), isinstance(made_before, Stamp)],
            subclasses=[
                issubclass(datetime.datetime, REAL.datetime),
                issubclass(REAL.datetime, datetime.datetime),
                issubclass(REAL.datetime, datetime.date),
                issubclass(datetime.datetime, datetime.date),
                issubclass(Stamp, REAL.datetime),
            ],
            not_subclasses=[issubclass(REAL.date, datetime.datetime), issubclass(REAL.datetime, Stamp)],
            built=[
                type(datetime.datetime(2021, 1, 1)),
                type(datetime.date(2021, 1, 1)),
                type(datetime.datetime.fromtimestamp(0, UTC)),
                type(datetime.datetime.fromisoformat("2021-01-01T00:00:00")),
                type(datetime.datetime.strptime("2021-01-01", "%Y-%m-%d")),
                type(datetime.datetime.combine(today, datetime.time(1))),
                type(datetime.datetime.min),
            ],
            stamp=type(stamp),
            pickled=[pickle.loads(pickle.dumps(value, protocol)) for value in (now, today) for protocol in (0, 2, 5)],
            pickled_class=pickle.dumps(datetime.datetime),
            pickle=pickle.dumps(now),
            copies=[copy.deepcopy(now), copy.copy(today)],
            orjson=orjson.dumps({"now": now, "today": today}),
            json=json.dumps({"now": now.isoformat()}),
            now=now,
            today=today,
        )
        return _download(ctx)

    check_client(client, request=REQUEST, schedule=["ok"], invariants=["retries"])
    assert facts["swapped"] and facts["named"]
    assert all(facts["instances"]) and not any(facts["not_instances"])
    assert all(facts["subclasses"]) and not any(facts["not_subclasses"])
    assert facts["built"] == [REAL.datetime, REAL.date] + [REAL.datetime] * 5
    assert facts["stamp"].__name__ == "Stamp"
    now, today = facts["now"], facts["today"]
    assert facts["pickled"] == [now] * 3 + [today] * 3
    assert all(type(value) in (REAL.datetime, REAL.date) for value in facts["pickled"])
    assert pickle.loads(facts["pickled_class"]) is REAL.datetime  # what a pickle made in a run loads as, outside it
    assert type(pickle.loads(facts["pickle"])) is REAL.datetime
    assert facts["copies"] == [now, today]
    assert orjson.loads(facts["orjson"]) == {"now": now.isoformat(), "today": today.isoformat()}
    assert json.loads(facts["json"]) == {"now": now.isoformat()}


def test_everything_is_put_back_after_a_check_even_when_the_client_raises() -> None:
    late = ModuleType("late_dates")

    def client(ctx: ClientContext) -> bytes:
        sys.modules[late.__name__] = late  # a module first imported during the check
        exec("from datetime import date, datetime\nKINDS = {date: 'date', datetime: 'datetime'}", vars(late))
        assert late.datetime is datetime.datetime is not REAL.datetime
        assert late.KINDS[type(datetime.date.today())] == "date"  # a table keyed by the class
        raise RuntimeError("no image today")

    try:
        with pytest.raises(ClientCheckFailed):
            check_client(client, request=REQUEST, schedule=["ok"], invariants=["retries"])
    finally:
        sys.modules.pop(late.__name__, None)
    assert datetime.datetime is REAL.datetime and datetime.date is REAL.date
    assert imported_datetime is REAL.datetime and imported_date is REAL.date
    assert pybreaker.datetime is REAL.datetime  # type: ignore[attr-defined]
    assert late.datetime is REAL.datetime and late.date is REAL.date
    assert late.KINDS[REAL.date] == "date" and late.KINDS[REAL.datetime] == "datetime"  # it holds the stand-ins
    assert REAL.datetime not in copyreg.dispatch_table and REAL.date not in copyreg.dispatch_table


PYDANTIC_LATE = """
import datetime, sys, time
import pydantic
from sfmock.checks import check_client

assert "pydantic._internal._generate_schema" not in sys.modules

def client(ctx):
    # pydantic builds its tables of types on first use: here, during the run
    day = pydantic.TypeAdapter(datetime.date).validate_python("2026-01-02")
    with ctx.http_client(timeout=30) as http:
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
        image = http.get(answer.json()["images"][0]["url"]).content
    return image if day == datetime.date(2026, 1, 2) else b""

request = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 42}
check_client(client, request=request, schedule=["ok"], invariants=["retries", "returns-image"], progress=None)

class Entry(pydantic.BaseModel):
    day: datetime.date
    at: datetime.datetime

print(Entry(day="2026-02-03", at="2026-02-03T04:05:06").model_dump_json())
"""


def test_a_library_first_imported_during_a_run_works_after_the_check() -> None:
    # pydantic's handlers, keyed by the classes its lazy import found in the datetime module
    # (the stand-ins): a real date was "Unable to generate pydantic-core schema" ever after
    done = subprocess.run([sys.executable, "-c", PYDANTIC_LATE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"day": "2026-02-03", "at": "2026-02-03T04:05:06"}
