"""The arguments of a check, refused at one boundary for ``check_client`` and ``sfmock check``:
an argument no check can run with names the argument (or the option) and what it takes,
instead of a verdict that blames the client (or a pass that checked nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from sfmock.checks import ClientContext, check_client
from sfmock.cli import main
from sfmock.config import Settings
from sfmock.testing.arguments import ArgumentError
from sfmock.testing.program_check import check_program
from sfmock.testing.programs import ProgramSetup


def never_called(ctx: ClientContext) -> bytes:
    raise AssertionError("the client ran: the arguments should have been refused before any run")


STRICT_REFUSED = {"model": "Kwai-Kolors/Kolors", "prompt": "x", "batch_size": 2}  # strict: needs image_size

# (keyword arguments of check_client, the argument named, words of the expectation)
BAD = [
    ({"outcomes": []}, "outcomes", "expected at least one outcome"),
    ({"outcomes": ["503", "teapot"]}, "outcomes", "unknown outcome 'teapot'"),
    ({"schedule": ["503", "5O3"]}, "schedule", "unknown outcome '5O3' in the schedule; did you mean '503'?"),
    ({"invariants": []}, "invariants", "expected at least one invariant"),
    ({"min_attempts": 5, "max_attempts": 2}, "min_attempts", "5 is more than the maximum of attempts (2)"),
    ({"max_attempts": 0}, "max_attempts", "at least 1; got 0"),
    ({"max_total_wait": -1}, "max_total_wait", "0 or more; got -1"),
    ({"max_total_wait": float("nan")}, "max_total_wait", "a finite number of seconds"),
    ({"hang_bound": 0}, "hang_bound", "more than 0; got 0"),
    ({"request": {"model": "nope/none", "prompt": "x"}}, "request", "unknown model 'nope/none'"),
    ({"request": {"model": "Kwai-Kolors/kolors", "prompt": "x"}}, "request", "did you mean 'Kwai-Kolors/Kolors'?"),
    ({"request": {"model": "Kwai-Kolors/Kolors"}}, "request", "the service would refuse it"),
    ({"request": {}}, "request", "expected a 'model'"),
    ({"request": STRICT_REFUSED, "settings": Settings(strict=True)}, "request", "breaks the strict contract"),
]


@pytest.mark.parametrize(("kwargs", "argument", "expected"), BAD)
def test_check_client_refuses_an_argument_no_check_can_run_with(
    kwargs: dict[str, Any], argument: str, expected: str
) -> None:
    with pytest.raises(ArgumentError) as refused:
        check_client(never_called, seed=1, **kwargs)
    assert refused.value.argument == argument
    assert str(refused.value).startswith(f"argument {argument}: ") and expected in str(refused.value)
    assert isinstance(refused.value, ValueError)


def test_the_same_request_is_accepted_where_the_fake_accepts_it() -> None:
    from sfmock.testing.arguments import check_arguments

    # lenient (the default): the fake accepts a batch without an image_size
    check_arguments(request=STRICT_REFUSED, outcomes=None, schedule=None, min_attempts=3, max_attempts=3, strict=False)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"outcomes": []}, "argument outcomes: expected at least one outcome"),
        ({"checks": []}, "argument checks: expected at least one check"),
        ({"checks": ["retries", "retires"]}, "argument checks: unknown check 'retires'; did you mean 'retries'?"),
    ],
)
def test_check_program_refuses_them_too_before_any_run(options: dict[str, Any], expected: str) -> None:
    setup = ProgramSetup(command=("false",))  # would be "made no request": never reached
    with pytest.raises(ArgumentError, match=expected):
        check_program(setup, **options)
    with pytest.raises(ArgumentError, match="argument min_attempts: 4 is more than the maximum of attempts"):
        check_program(ProgramSetup(command=("false",), min_attempts=4, max_attempts=3))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--outcomes", ""], "--outcomes: expected at least one outcome (an empty list checks nothing); of: ok, 503"),
        (["--checks", ""], "--checks: expected at least one check (an empty list checks nothing); of: key-not"),
        (["--min-attempts", "5", "--max-attempts", "2"], "--min-attempts: 5 is more than the maximum of attempts (2)"),
        (["--max-attempts", "0"], "--max-attempts: expected a whole number of attempts, at least 1; got 0"),
        (["--request", '{"model":"nope/none","prompt":"x"}'], "--request: unknown model 'nope/none'; expected one of"),
        (["--request", '{"model":"Kwai-Kolors/Kolors"}'], "--request: the service would refuse it"),
        (["--schedule", "503,teapot"], "--schedule: unknown outcome 'teapot' in the schedule"),
    ],
)
def test_sfmock_check_says_which_option_is_wrong_with_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--quiet", *argv, "--", "false"]) == 2
    captured = capsys.readouterr()
    assert f"sfmock check: error: {message}" in captured.err, captured.err
    assert "Traceback" not in captured.err and "client check passed" not in captured.out


def simple(ctx: ClientContext) -> bytes:
    http = ctx.http_client(timeout=60)
    answer = http.post(
        f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
    )
    answer.raise_for_status()
    return http.get(answer.json()["images"][0]["url"]).raise_for_status().content


def test_the_default_request_is_one_the_fake_accepts_strict_or_not() -> None:
    seen: list[dict[str, Any]] = []

    def noting(ctx: ClientContext) -> bytes:
        seen.append(dict(ctx.request))
        return simple(ctx)

    check_client(noting, schedule=[], settings=Settings(strict=True))  # every check: valid-requests too
    check_client(noting, schedule=[])
    assert seen[0]["image_size"] == "1024x1024" and "image_size" not in seen[1]


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10"])
def test_max_examples_that_no_search_can_run_with_is_refused_naming_it(value: Any) -> None:
    # outsider19: max_examples=0 came out as Hypothesis's own InvalidArgument, through sfmock's frames
    with pytest.raises(ArgumentError, match=r"max_examples: expected a whole number of schedules, at least 1"):
        check_client(never_called, max_examples=value)


def _yields_the_image(ctx: ClientContext) -> Any:
    yield b"never made"


async def _yields_it_async(ctx: ClientContext) -> Any:
    yield b"never made"


@pytest.mark.parametrize(
    ("client", "said"),
    [
        ("generate", "expected a function of ctx that returns the image; got 'generate'"),
        (_yields_the_image, "_yields_the_image is a generator function"),
        (_yields_it_async, "_yields_it_async is a generator function"),
    ],
    ids=["a-name", "generator", "async-generator"],
)
def test_a_client_no_run_could_call_for_an_image_is_refused(client: Any, said: str) -> None:
    # outsider19: each ran 131 schedules, then blamed coverage or returns-image
    with pytest.raises(ArgumentError, match=r"argument client: ") as refused:
        check_client(client)
    assert said in str(refused.value)
