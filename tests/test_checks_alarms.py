"""A client that bounds its requests with a real-time alarm (``signal.alarm`` or
``setitimer``, a ``SIGALRM`` handler that raises) rather than its HTTP library's timeout:
the alarm runs on the check's clock (outsider21: such a client was accused of having no
timeout, though on a socket its alarm ends a request the server never answers)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, check_client

TRANSIENT = {429, 500, 502, 503, 504}


class Deadline(Exception):
    pass


def _raise(signum: int, frame: Any) -> None:
    raise Deadline("the request took too long")


def _alarmed(arm: Callable[[float], None], *, handler: Any = _raise, seconds: float = 30.0) -> Any:
    """Generation, then its image's download, each retried under ``arm(seconds)``; httpx
    itself has no timeout."""

    def retried(call: Callable[[], httpx.Response]) -> httpx.Response:
        failure: Exception = RuntimeError("not tried")
        for turn in range(5):
            arm(seconds)
            try:
                answer = call()
                if answer.status_code not in TRANSIENT:
                    return answer.raise_for_status()
                trace = answer.headers.get("x-siliconcloud-trace-id") or answer.headers.get("x-amz-request-id")
                failure = RuntimeError(f"HTTP {answer.status_code} (trace id {trace})")
            except (httpx.TransportError, Deadline) as exc:
                failure = exc
            finally:
                arm(0)
            time.sleep(2**turn)
        raise failure

    def client(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=None)
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        previous = signal.signal(signal.SIGALRM, handler)
        try:
            for turn in range(5):
                made = retried(lambda: http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth))
                try:
                    url = made.json()["images"][0]["url"]
                except (ValueError, KeyError, IndexError):  # a cut or malformed body: ask again
                    time.sleep(2**turn)
                    continue
                return retried(lambda: http.get(url)).content  # noqa: B023 (called at once)
            raise RuntimeError("gave up")
        finally:
            signal.signal(signal.SIGALRM, previous)

    return client


def _alarm(seconds: float) -> None:
    signal.alarm(int(seconds))


def _itimer(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, seconds)


@pytest.mark.parametrize("arm", [_alarm, _itimer], ids=["alarm", "setitimer"])
def test_a_client_bounded_by_a_real_time_alarm_is_timed_out_by_it(arm: Callable[[float], None]) -> None:
    report = check_client(_alarmed(arm), seed=1, max_examples=40)
    assert "timeout" in report.outcomes and "download-timeout" in report.outcomes


def test_the_alarm_ends_the_hang_at_its_own_time() -> None:
    ended: list[float] = []

    def timed(ctx: ClientContext) -> bytes:
        started = time.monotonic()
        try:
            return _alarmed(_alarm, seconds=45)(ctx)
        finally:
            ended.append(time.monotonic() - started)

    check_client(timed, schedule=["timeout"], random_seed=0, invariants=["timeouts", "retries"])
    assert 45 <= ended[0] < 45 + 60  # the alarm's 45 s, then a back-off and a normal answer


def test_a_handler_that_does_not_raise_leaves_the_read_waiting_forever() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_alarmed(_alarm, handler=lambda signum, frame: None), schedule=["timeout"], random_seed=0)
    assert failed.value.invariant == "timeouts"
    assert "SIGALRM handler returned without raising" in failed.value.problem


def test_an_alarm_shorter_than_a_generation_cuts_every_normal_answer() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(_alarmed(_itimer, seconds=0.5), schedule=[], random_seed=0)
    assert failed.value.invariant == "timeouts" and "timed out after 0.5s on a normal answer" in failed.value.problem


def test_the_alarm_is_the_processs_own_again_after_the_check() -> None:
    check_client(_alarmed(_alarm), schedule=[], random_seed=0)
    assert signal.alarm is not None and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.alarm.__module__ in (None, "signal", "_signal")  # the real function, not the check's


def test_an_alarm_left_set_after_the_client_returned_is_caught() -> None:
    # outsider22: signal.alarm(30) never cleared passed; 30 s later it goes off elsewhere
    def left_armed(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=None)
        auth = {"Authorization": f"Bearer {ctx.api_key}"}
        signal.signal(signal.SIGALRM, _raise)
        signal.alarm(30)
        answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=auth)
        return http.get(answer.raise_for_status().json()["images"][0]["url"]).content

    previous = signal.getsignal(signal.SIGALRM)
    try:
        with pytest.raises(ClientCheckFailed) as failed:
            check_client(left_armed, schedule=[], random_seed=0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert failed.value.invariant == "timeouts"
    assert "returned with its SIGALRM timer still set (28s to go)" in failed.value.problem
