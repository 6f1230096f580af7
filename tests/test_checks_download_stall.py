"""The ``download-timeout`` outcome: a 200 generation, then an image download the object
store never answers, until the client's own timeout ends it (outsider15 W9: a client that
downloads with ``timeout=None`` passed, for no outcome made the download hang).
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from sfmock import Settings
from sfmock.checks import ClientCheckFailed, ClientContext, check_client
from sfmock.strategies import DOWNLOAD_FAULTS, drawn_outcomes
from sfmock.testing.program_check import check_program
from sfmock.testing.programs import TIMINGS, ProgramSetup, short_scenario, stall_hold

TRANSIENT = {429, 500, 502, 503, 504}
CAREFUL_CURL = Path(__file__).parent / "shell" / "curl-careful.sh"


def _generate(post: Any, ctx: ClientContext) -> str:
    """The README client's generation loop; returns the image URL."""
    for attempt in range(5):
        try:
            answer = post()
        except (httpx.TransportError, requests.RequestException):
            time.sleep(random.uniform(0, 2**attempt))
            continue
        if answer.status_code in TRANSIENT and attempt < 4:
            time.sleep(random.uniform(0.5, 2**attempt))
            continue
        answer.raise_for_status()
        return str(answer.json()["images"][0]["url"])
    raise RuntimeError("no answer after 5 attempts")


def httpx_client(download_timeout: float | None) -> Any:
    def generate(ctx: ClientContext) -> bytes:
        http = ctx.http_client(timeout=60)
        headers = {"Authorization": f"Bearer {ctx.api_key}"}
        url = _generate(lambda: http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=headers), ctx)
        for attempt in range(3):  # the download retried, as `retries` asks (its URL is still good)
            try:
                return http.get(url, timeout=download_timeout).raise_for_status().content
            except httpx.TransportError:
                if attempt == 2:
                    raise
                time.sleep(random.uniform(0.5, 2))
        raise AssertionError("unreachable")

    return generate


def requests_client(download_timeout: float | None) -> Any:
    def generate(ctx: ClientContext) -> bytes:
        session = ctx.requests_session()
        headers = {"Authorization": f"Bearer {ctx.api_key}"}
        url = _generate(
            lambda: session.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers=headers, timeout=60),
            ctx,
        )
        picture = session.get(url, timeout=download_timeout)  # requests: no timeout unless given
        picture.raise_for_status()
        return picture.content

    return generate


@pytest.mark.parametrize("client", [httpx_client(None), requests_client(None)], ids=["httpx", "requests"])
def test_a_download_without_a_timeout_is_caught_at_the_defaults(client: Any) -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(client)
    assert failed.value.invariant == "timeouts", str(failed.value)
    assert failed.value.schedule == ["download-timeout"]
    assert "would hang forever" in failed.value.problem
    assert "the request was the download of" in failed.value.problem and "timeout of its own" in failed.value.problem
    assert "GET /temporary/outputs/" in str(failed.value) and "-> timeout" in str(failed.value)


@pytest.mark.parametrize("client", [httpx_client(30), requests_client(30)], ids=["httpx", "requests"])
def test_a_download_with_a_timeout_passes_at_the_defaults(client: Any) -> None:
    report = check_client(client)
    assert "download-timeout" in report.outcomes


def test_the_stalled_download_ends_at_the_clients_timeout_and_the_retry_gets_the_image() -> None:
    report = check_client(httpx_client(30), schedule=["download-timeout"], random_seed=0)
    assert report.outcomes == ("download-timeout",)


def test_a_generation_timeout_does_not_cover_the_download() -> None:
    """The generation's own timeout outcome passes the client: only the download hangs it."""
    check_client(httpx_client(None), schedule=["timeout"], random_seed=0)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(httpx_client(None), schedule=["download-timeout"], random_seed=0)
    assert failed.value.invariant == "timeouts"


def test_a_stalling_image_host_is_drawn_by_default_under_any_settings() -> None:
    assert "download-timeout" in DOWNLOAD_FAULTS
    for settings in (None, Settings(), Settings(dialect="observed"), Settings(strict=True)):
        assert "download-timeout" in drawn_outcomes(settings)


def test_only_the_run_of_download_timeout_alone_holds_the_download() -> None:
    setup = ProgramSetup(command=("true",), timeout=5, hold_stalled=True)
    assert stall_hold(setup, ["download-timeout"]) == 5 + TIMINGS["stall_grace"]
    assert stall_hold(setup, ["503", "download-timeout"]) is None
    # at the defaults a program's default timeout (Node's fetch: 300 s) cannot be told from none
    assert stall_hold(ProgramSetup(command=("true",)), ["download-timeout"]) is None
    held = short_scenario(["download-timeout"], stall=7.0).rules
    assert [rule.steps[0].hang for rule in held if rule.when["method"] == "GET"] == [7.0]
    mixed = short_scenario(["timeout", "download-timeout"]).rules
    assert [rule.steps[0].hang for rule in mixed] == [TIMINGS["hang"], TIMINGS["hang"]]


def _curl(tmp_path: Path, download: str) -> tuple[str, ...]:
    """The careful curl client with ``download`` as the options of its image download."""
    text = CAREFUL_CURL.read_text("utf-8")
    line = 'status=$(curl -sS --max-time 10 -o "$SFMOCK_OUTPUT"'
    assert line in text
    script = tmp_path / "client.sh"
    script.write_text(text.replace(line, f'status=$(curl -sS {download} -o "$SFMOCK_OUTPUT"'), "utf-8")
    return ("bash", str(script))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_program_whose_download_has_a_max_time_passes(tmp_path: Path) -> None:
    setup = ProgramSetup(command=_curl(tmp_path, "--max-time 2"), timeout=5)
    report = check_program(setup, schedule=["download-timeout"])
    assert report.passed, report.text()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_program_whose_download_has_no_max_time_is_caught(tmp_path: Path) -> None:
    setup = ProgramSetup(command=_curl(tmp_path, ""), timeout=5)
    report = check_program(setup, schedule=["download-timeout"])
    assert report.failure is not None and report.failure.check == "timeouts", report.text()
    message = report.failure.message
    assert "would hang forever" in message and "the request was the download of" in message
    assert "its latency" not in message  # the generation's latency is not what hung it
