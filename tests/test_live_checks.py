"""The client checks on the 2026 profile (issue 24): a client that cuts image URLs, one that
insists on ``image/png`` and one that parses one error shape only are each caught by a named
invariant; a correct client passes; a check draws only what the configured fake sends."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from demo_clients import careful_generate

from sfmock import Settings, load_settings
from sfmock.checks import INVARIANTS, ClientCheckFailed, ClientContext, check_client
from sfmock.testing.live_checks import LIVE_OUTCOMES
from sfmock.testing.strategies import drawn_outcomes

PROFILE = Path(__file__).resolve().parent.parent / "fixtures" / "live-2026.yaml"


def flawed(
    *, cut_urls: int | None = None, png_only: bool = False, details_only: bool = False
) -> Callable[[ClientContext], bytes]:
    """The careful client with one flaw real clients have: a URL column of ``cut_urls``
    characters, an ``image/png`` check, a 429 parser that needs ``Details: METRIC``."""

    def cut(request: httpx.Request) -> None:
        if cut_urls and "/outputs/" in request.url.path:
            request.url = httpx.URL(str(request.url)[:cut_urls])

    def check(response: httpx.Response) -> None:
        if png_only and "/outputs/" in response.url.path and response.status_code == 200:
            if response.headers.get("content-type") != "image/png":
                raise ValueError(f"not an image: {response.headers.get('content-type')}")
        if details_only and response.status_code == 429:
            response.read()
            re.search(r"Details: ?([A-Z]+)", response.json()["message"]).group(1)  # type: ignore[union-attr]

    def run(ctx: ClientContext) -> bytes:
        made = ctx.http_client

        def http_client(**options: Any) -> httpx.Client:
            http = made(**options)
            hooks = http.event_hooks
            hooks["request"].append(cut)
            hooks["response"].append(check)
            http.event_hooks = hooks
            return http

        ctx.http_client = http_client  # type: ignore[method-assign]
        return careful_generate(ctx)

    return run


def live() -> Settings:
    return load_settings(PROFILE)


def test_the_live_outcomes_are_drawn_only_where_the_fake_sends_them() -> None:
    assert not set(drawn_outcomes(Settings())) & set(LIVE_OUTCOMES)
    assert set(LIVE_OUTCOMES) <= set(drawn_outcomes(live()))
    assert "429-plain" in drawn_outcomes(Settings(dialect="observed"))
    assert "400-size" not in drawn_outcomes(Settings(range_errors="observed"))
    report = check_client(careful_generate, seed=2, max_examples=25)  # the default profile: none of them is met
    assert not set(report.outcomes) & set(LIVE_OUTCOMES)


def test_a_correct_client_passes_on_the_2026_profile() -> None:
    report = check_client(careful_generate, settings=live(), seed=1, max_examples=60)
    assert {"whole-url", "image-type"} <= set(report.invariants) == set(INVARIANTS)
    assert report.succeeded > 0


@pytest.mark.parametrize("cut", [255, 512])
def test_a_client_that_cuts_urls_is_caught_by_whole_url(cut: int) -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(flawed(cut_urls=cut), settings=live(), seed=1)
    assert failed.value.invariant == "whole-url" and failed.value.schedule == []
    assert f"cut to {cut} characters of the" in failed.value.problem
    # URLs without the token are shorter than 512 characters: that column holds them
    check_client(flawed(cut_urls=512), seed=1, max_examples=10)


def test_a_client_that_insists_on_image_png_is_caught_by_image_type() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(flawed(png_only=True), settings=live(), seed=1)
    assert failed.value.invariant == "image-type" and failed.value.schedule == []
    assert "served as 'application/octet-stream'" in failed.value.problem
    check_client(flawed(png_only=True), seed=1, max_examples=10)  # image/png by default


def test_a_client_that_parses_one_429_shape_is_caught_on_the_third_body() -> None:
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(flawed(details_only=True), settings=live(), seed=1)
    # it gives up on a transient 429 it could not read: the cause, named before errors
    assert failed.value.invariant == "retries" and failed.value.schedule == ["429-plain"]
    assert "gave up after a transient 429" in failed.value.problem
    assert "raised AttributeError" in str(failed.value)
    check_client(flawed(details_only=True), settings=live(), outcomes=["ok", "429-observed"], seed=1, max_examples=20)


@pytest.mark.parametrize("outcome", ["400-range", "400-size"])
def test_a_correct_client_meets_the_live_400_bodies(outcome: str) -> None:
    check_client(careful_generate, settings=live(), schedule=[outcome])


def test_a_client_retrying_the_live_400_is_caught_by_retries() -> None:
    stubborn = functools.partial(careful_generate, retry_everything=True)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(stubborn, settings=live(), schedule=["400-range"])
    assert failed.value.invariant == "retries" and "retried after a permanent 400" in failed.value.problem


def test_downloads_under_the_temporary_none_prefix_are_seen() -> None:
    """``image_prefix: /temporary/None/`` (seen 2026): the check sees the download there."""
    report = check_client(careful_generate, settings=Settings(image_prefix="/temporary/None/"), schedule=[])
    assert report.succeeded == 1
