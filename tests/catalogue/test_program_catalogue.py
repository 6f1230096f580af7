"""The program catalogue of issue 23: programs in other languages, written as an outsider
would (plain ``fetch`` in Node, curl's own ``--retry`` in bash, a standard-library Python
script), each with a request of its own (a fixed prompt, one from argv). Checked at the
defaults of ``sfmock check``: each flawed one is judged on the flaw its first lines name,
the correct ones pass, and none is judged on ``faithful-request``: none of them takes its
request from ``$SFMOCK_REQUEST``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from sfmock.testing.program_check import check_program
from sfmock.testing.programs import ProgramSetup

PROGRAMS = Path(__file__).parent / "programs"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def node(name: str, *args: str) -> tuple[str, ...]:
    return ("node", name, *args)


def python(name: str) -> tuple[str, ...]:
    return (sys.executable, name)


CORRECT = [
    pytest.param(node("fetch-careful.mjs", "a lantern on a jetty at night"), marks=needs_node, id="node-fetch"),
    pytest.param(python("urllib_careful.py"), id="python-urllib"),
]
FLAWED = [
    pytest.param(node("fetch-no-retry-on-503.mjs"), "retries", marks=needs_node, id="node-no-retry-on-503"),
    pytest.param(node("fetch-new-seed-each-try.mjs"), "same-body", marks=needs_node, id="node-new-seed"),
    pytest.param(("bash", "curl-retry-key-on-download.sh"), "downloads", marks=needs_curl, id="curl-key-on-download"),
    pytest.param(python("urllib_exits_zero.py"), "exit-status", id="python-exits-zero"),
    pytest.param(python("urllib_saves_last_chunk.py"), "saved-image", id="python-saves-last-chunk"),
]


def test_each_program_names_its_flaw_and_the_check_that_catches_it() -> None:
    for param in FLAWED:
        command, check = param.values
        head = (PROGRAMS / command[1]).read_text("utf-8")[:1000]
        assert "Flaw:" in head and f"Caught by: {check}." in head, command
    for param in CORRECT:
        (command,) = param.values
        head = (PROGRAMS / command[1]).read_text("utf-8")[:1000]
        assert "Correct." in head and "Flaw:" not in head, command


@pytest.mark.parametrize("command", CORRECT)
def test_a_correct_program_passes_at_the_defaults(command: tuple[str, ...]) -> None:
    report = check_program(ProgramSetup(command=command, cwd=str(PROGRAMS)))
    assert report.passed, report.text()
    assert "faithful-request" in report.not_applied and "faithful-request" not in report.checks
    assert "not applied: faithful-request (it chooses its own request" in report.text()
    assert not report.unmet, report.text()  # every outcome met within the default budget


@pytest.mark.parametrize(("command", "expected"), FLAWED)
def test_a_flawed_program_is_judged_on_its_real_flaw_at_the_defaults(command: tuple[str, ...], expected: str) -> None:
    report = check_program(ProgramSetup(command=command, cwd=str(PROGRAMS)))
    assert report.failure is not None, report.text()
    assert report.failure.check == expected, report.text()
    assert report.failure.reproduced is True, report.text()
    assert "faithful-request" in report.not_applied
