"""The second outside catalogue (outsider_2026/README.md): every client at the defaults,
on two seeds, judged as its author expected; a correct one is never accused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sfmock.checks import ClientCheckFailed, check_client
from sfmock.config import load_settings

HERE = Path(__file__).parent / "outsider_2026"
LIVE_2026 = Path(__file__).parents[2] / "fixtures" / "live-2026.yaml"
# the one client judged on the 2026 profile, and under the name that profile gives its flaw
ON_2026_PROFILE = {"f06_truncate_512": "whole-url"}


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"outsider_2026_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLIENTS = sorted(HERE.glob("[cf][0-9]*.py"))


def test_the_catalogue_holds_correct_and_flawed_clients() -> None:
    expected = [load(path).EXPECTED for path in CLIENTS]
    assert expected.count("correct") >= 10 and len(expected) - expected.count("correct") >= 10


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("path", CLIENTS, ids=lambda path: path.stem)
def test_each_client_gets_the_verdict_its_author_expected(path: Path, seed: int) -> None:
    module = load(path)
    options: dict[str, Any] = dict(getattr(module, "CHECK_KWARGS", {}))
    expected = module.EXPECTED
    if path.stem in ON_2026_PROFILE:
        options["settings"] = load_settings(LIVE_2026)
        expected = ON_2026_PROFILE[path.stem]
    if expected == "correct":
        check_client(module.generate, seed=seed, **options)
        return
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(module.generate, seed=seed, **options)
    assert failed.value.invariant == expected, str(failed.value)
