"""Reading a raised error once for every invariant (``Run.error_text``) finds what the plain
reading finds: each link's texts, then the whole formatted traceback, though the traceback is
formatted only when what is sought may be in it.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sfmock.checks import ClientCheckFailed, ClientContext, check_client
from sfmock.testing.evidence import ErrorText, error_texts

KEY = "sk-sfmock-check-0123456789"


def _plain(error: BaseException, needle: str) -> str | None:
    """Where ``needle`` is in the texts of ``error``, every one of them read and formatted."""
    return next((where for where, text in error_texts(error) if needle in text), None)


def _raised(function: Callable[[], object]) -> BaseException:
    try:
        function()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def _key_on_the_line() -> None:
    raise RuntimeError("the call failed")  # sk-sfmock-check-0123456789


def _key_below_the_line() -> None:
    raise RuntimeError(
        "the call failed",  # sk-sfmock-check-0123456789 (Python 3.13 shows this line too)
    )


def _chained() -> None:
    try:
        _key_on_the_line()
    except RuntimeError as exc:
        raise ValueError("no picture") from exc


def _grouped() -> None:
    raise ExceptionGroup("several", [_raised(_key_on_the_line), *(ValueError(str(n)) for n in range(20))])


def _noted() -> None:
    error = ValueError("no picture")
    error.add_note(f"sent with {KEY}")
    raise error


def _deep(depth: int) -> None:
    _deep(depth + 1)


ERRORS = {
    "key on the line that raised": lambda: _raised(_key_on_the_line),
    "key on the next line": lambda: _raised(_key_below_the_line),
    "key in a cause": lambda: _raised(_chained),
    "key in a group member": lambda: _raised(_grouped),
    "key in a note": lambda: _raised(_noted),
    "key in the message": lambda: ValueError(f"bad key {KEY}"),
    "never raised": lambda: ValueError("no traceback"),
    "recursion": lambda: _raised(lambda: _deep(0)),
}
# the key and parts of it, numbers (line numbers, counts a traceback prints), words a traceback adds
NEEDLES = [KEY, "sk-sfmock", "0123456789", "-check-", "raise", "line", "b-exc", "RuntimeError", "ValueError"]
NEEDLES += [str(number) for number in range(0, 1100, 7)] + ["20", "21", "35", "998"]


@pytest.mark.parametrize("name", list(ERRORS))
def test_error_text_finds_what_the_plain_reading_finds(name: str) -> None:
    error = ERRORS[name]()
    read = ErrorText(error)
    for needle in NEEDLES:
        assert read.find(needle) == _plain(error, needle), needle


def test_a_key_on_the_client_line_that_raised_is_in_the_traceback() -> None:
    def hard_coded(ctx: ClientContext) -> bytes:
        with ctx.http_client() as http:
            http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": "Bearer x"})
        raise RuntimeError("no picture")  # sk-sfmock-check-0123456789

    with pytest.raises(ClientCheckFailed) as failed:
        check_client(hard_coded, invariants=["secrets"], schedule=[])
    assert "contains the API key (in its traceback)" in failed.value.problem


def _asks(ctx: ClientContext) -> httpx.Response:
    with ctx.http_client() as http:
        return http.post(
            f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"}
        )


def test_a_status_only_in_the_traceback_counts_for_errors() -> None:
    def status_in_source(ctx: ClientContext) -> bytes:
        trace = _asks(ctx).headers["x-siliconcloud-trace-id"]
        raise RuntimeError(f"refused, trace {trace}")  # the service answers 403 when the balance is out

    def status_nowhere(ctx: ClientContext) -> bytes:
        trace = _asks(ctx).headers["x-siliconcloud-trace-id"]
        raise RuntimeError(f"refused, trace {trace}")

    check_client(status_in_source, invariants=["errors"], schedule=["403"], returns_image=False)
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(status_nowhere, invariants=["errors"], schedule=["403"], returns_image=False)
    assert "raised after a 403 lacks its status:" in failed.value.problem
