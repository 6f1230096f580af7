"""The README's Python examples run as written."""

from __future__ import annotations

import re

import pytest

from conftest import FIXTURES

README = (FIXTURES.parent / "README.md").read_text("utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", [b for b in BLOCKS if "def test_" in b], ids=lambda b: b.split("def test_")[1][:30])
def test_pytest_examples_pass(pytester: pytest.Pytester, block: str) -> None:
    pytester.makepyfile(block)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    tests = block.count("def test_")
    result.assert_outcomes(passed=tests)


@pytest.mark.parametrize("block", [b for b in BLOCKS if "def test_" not in b], ids=lambda b: b.splitlines()[0][:30])
def test_script_examples_run(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    if "print(failure)" in block:
        shown = re.search(r"```\n(client check failed: .*?)\n", README)
        assert shown is not None and shown.group(1) in capsys.readouterr().out
