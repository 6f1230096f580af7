"""The suite's order (tests/scheduling.py): the longest tests first, the rest as pytest had them."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from scheduling import LONGEST, WHOLE, kept_whole, longest_first, rank

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("prefix", LONGEST)
def test_each_long_test_named_exists(prefix: str) -> None:
    path, name = prefix.split("::")
    source = (ROOT / path).read_text("utf-8")
    function = name.split("[")[0]
    assert re.search(rf"^def {re.escape(function)}\w*\(", source, re.M), prefix
    if "[" in name:  # a parameter id: a name in the test's folder (the catalogue's clients)
        case = name.split("[")[1].rstrip("-")
        assert any(case in module.read_text("utf-8") for module in (ROOT / path).parent.glob("*.py")), prefix


def test_the_longest_go_first_in_their_order_and_the_rest_keep_theirs() -> None:
    def item(nodeid: str) -> Any:
        return cast(pytest.Item, SimpleNamespace(nodeid=nodeid))

    rest = [item("tests/test_a.py::test_one"), item("tests/test_b.py::test_two"), item("tests/test_c.py::test_three")]
    second = item(LONGEST[1] + "[x]")
    first = item(LONGEST[0])
    ordered = longest_first([rest[0], second, rest[1], first, rest[2]])
    assert [i.nodeid for i in ordered] == [first.nodeid, second.nodeid, *(i.nodeid for i in rest)]


def test_pytest_runs_the_suite_in_that_order(request: pytest.FixtureRequest) -> None:
    ranks = [rank(item.nodeid) for item in request.session.items]
    assert ranks == sorted(ranks)


@pytest.mark.parametrize("module", WHOLE)
def test_each_module_kept_whole_exists_and_has_a_module_fixture(module: str) -> None:
    assert 'scope="module"' in (ROOT / module).read_text("utf-8"), module


def test_a_chunk_does_not_end_inside_a_module_kept_whole() -> None:
    whole = WHOLE[0]
    pending = ["tests/test_a.py::test_one", f"{whole}::test_one", f"{whole}::test_two[x]", f"{whole}::test_three"]
    pending += ["tests/test_b.py::test_one", "tests/test_b.py::test_two"]
    assert kept_whole(pending, 1) == 1  # ends before the module
    assert kept_whole(pending, 2) == 4  # would cut it after its first test: all of it goes
    assert kept_whole(pending, 3) == 4
    assert kept_whole(pending, 5) == 5  # another module may be cut, as xdist's chunks do
    assert kept_whole(pending, 9) == 6
    assert kept_whole(pending[1:], 1) == 3
